"""A long-lived container that commands are executed in, one after another.

The container starts once (`sleep infinity`), every command runs through `docker exec` with an
argument vector (never a shell string), and the container is removed on exit. Set
ANT_KPI_KEEP_CONTAINER=1 to keep a container whose block raised, for inspection.

Mounts are bind mounts, so their host paths are paths on the machine that runs the Docker engine:
with a remote engine (DOCKER_HOST=ssh://...), use `copy_in` / `copy_out` instead.
"""

from __future__ import annotations

import contextlib
import io
import os
import shlex
import sys
import tarfile
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePosixPath
from types import TracebackType
from typing import TYPE_CHECKING, Any

from harness.errors import BadInput, Blocked, StepFailed

if TYPE_CHECKING:
    import docker
    from rich.console import Console

KEEP_ENV = "ANT_KPI_KEEP_CONTAINER"


class Container:
    """A container as a context manager: `with Container(client, tag, ...) as c: c.run([...])`."""

    def __init__(
        self,
        client: docker.DockerClient,
        image_tag: str,
        *,
        mounts: Mapping[str | Path, str] | None = None,
        workdir: str = "/",
        env: Mapping[str, str] | None = None,
        name_prefix: str = "ant-kpi",
        keep_on_failure: bool | None = None,
        console: Console | None = None,
    ) -> None:
        self.client = client
        self.image_tag = image_tag
        self.mounts = {str(Path(h).resolve()): c for h, c in (mounts or {}).items()}
        self.workdir = workdir
        self.env = dict(env or {})
        self.name = f"{name_prefix}-{uuid.uuid4().hex[:12]}"
        self.keep_on_failure = (os.environ.get(KEEP_ENV) == "1" if keep_on_failure is None
                                else keep_on_failure)
        self.console = console
        self._id: str | None = None

    # ---- lifecycle -------------------------------------------------------------------------

    def __enter__(self) -> Container:
        from docker.errors import APIError, ImageNotFound

        for container_path in self.mounts.values():
            if not PurePosixPath(container_path).is_absolute():
                raise BadInput(f"container mount point {container_path!r} is not an absolute path")
        volumes = {host: {"bind": cpath, "mode": "rw"} for host, cpath in self.mounts.items()}
        try:
            created = self.client.containers.run(
                self.image_tag,
                ["sleep", "infinity"],
                name=self.name,
                detach=True,
                volumes=volumes,
                working_dir=self.workdir,
                environment=self.env,
                user="root",
                # Pid 1 is `sleep`: an init reaps the zombies that exec'd builds leave behind.
                init=True,
                labels={"org.ant-kpi.role": "work"},
            )
        except ImageNotFound as e:
            raise Blocked(f"image {self.image_tag} is not present on the Docker engine",
                          "run `ant-kpi images build`") from e
        except APIError as e:
            raise StepFailed(
                f"cannot start a container from {self.image_tag}: {e.explanation or e}"
            ) from e
        self._id = str(created.id)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._id is None:
            return
        if exc_type is not None and self.keep_on_failure:
            message = (f"kept container {self.name} for inspection: "
                       f"docker exec -it {self.name} bash; remove it with docker rm -f {self.name}")
            if self.console is not None:
                self.console.print(message)
            else:
                print(message, file=sys.stderr)
            return
        self.remove()

    def remove(self) -> None:
        """Remove the container (killing what still runs in it)."""
        from docker.errors import NotFound

        if self._id is None:
            return
        # force=True kills `sleep infinity` at once; a stop would wait for its timeout.
        with contextlib.suppress(NotFound):
            self.client.api.remove_container(self._id, force=True, v=True)
        self._id = None

    @property
    def id(self) -> str:
        if self._id is None:
            raise RuntimeError("the container is not running: use it inside a `with` block")
        return self._id

    # ---- commands --------------------------------------------------------------------------

    def run(
        self,
        argv: Sequence[str],
        *,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
        log_path: Path,
    ) -> int:
        """Execute argv in the container, appending its output to log_path; its exit code."""
        if isinstance(argv, str) or not argv:
            raise BadInput(f"a command must be a non-empty argument list, not {argv!r}")
        args = [str(a) for a in argv]
        exec_id = self.client.api.exec_create(
            self.id, args, stdout=True, stderr=True, tty=False,
            environment=dict(env) if env else None, workdir=cwd or self.workdir,
        )["Id"]
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("ab") as log:
            log.write(f"$ {shlex.join(args)}   # in {self.name}:{cwd or self.workdir}\n".encode())
            log.flush()
            # stdout and stderr interleaved in arrival order, as a terminal would show them.
            for chunk in self.client.api.exec_start(exec_id, stream=True, demux=False):
                log.write(chunk)
                log.flush()
            code = self._exit_code(exec_id)
            log.write(f"# exit code {code}\n".encode())
        return code

    def _exit_code(self, exec_id: str) -> int:
        info: dict[str, Any] = self.client.api.exec_inspect(exec_id)
        code = info.get("ExitCode")
        # None means the process is still running, which cannot happen after its stream ended
        # unless the engine lost it: report it as a failure, never as success.
        return 255 if code is None else int(code)

    def check(self, argv: Sequence[str], *, cwd: str | None = None,
              env: Mapping[str, str] | None = None, log_path: Path) -> None:
        """Like run, but a non-zero exit raises StepFailed naming the log."""
        code = self.run(argv, cwd=cwd, env=env, log_path=log_path)
        if code != 0:
            raise StepFailed(f"`{shlex.join(argv)}` exited {code} in {self.image_tag}",
                             log=log_path)

    # ---- files -----------------------------------------------------------------------------

    def copy_in(self, host_path: Path, container_dir: str) -> None:
        """Copy a host file or directory into container_dir (which must exist)."""
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            tar.add(str(host_path), arcname=host_path.name)
        if not self.client.api.put_archive(self.id, container_dir, buf.getvalue()):
            raise StepFailed(f"cannot copy {host_path} into {self.name}:{container_dir}")

    def copy_out(self, container_path: str, host_dir: Path) -> Path:
        """Copy a file or directory from the container into host_dir; the host path made."""
        from docker.errors import NotFound

        try:
            chunks, _ = self.client.api.get_archive(self.id, container_path)
        except NotFound as e:
            raise StepFailed(f"{self.name}:{container_path} does not exist") from e
        host_dir.mkdir(parents=True, exist_ok=True)
        with tarfile.open(fileobj=io.BytesIO(b"".join(chunks))) as tar:
            if hasattr(tarfile, "data_filter"):
                # The archive comes from a container: refuse paths and links leaving host_dir.
                tar.extractall(host_dir, filter="data")
            else:  # Python < 3.10.12 / 3.11.4 has no extraction filters
                tar.extractall(host_dir)
        return host_dir / PurePosixPath(container_path).name
