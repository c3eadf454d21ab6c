"""A long-lived container that commands are executed in, one after another.

The container starts once (`sleep infinity`), every command runs through `docker exec` with an
argument vector (never a shell string), and the container is removed on exit. Set
ANT_KPI_KEEP_CONTAINER=1 to keep a container whose block raised, for inspection.

Mounts are bind mounts, so their host paths are paths on the machine that runs the Docker engine:
with a remote engine (DOCKER_HOST=ssh://...), use `copy_in` / `copy_out` instead.

GPUs: a container asks the engine for them with a device request (what `docker run --gpus`
does). `gpu_choice` decides: by default when the engine has the nvidia runtime (the NVIDIA
Container Toolkit), or as ANT_KPI_GPUS says (all, none, or device=0,1).
"""

from __future__ import annotations

import contextlib
import itertools
import shlex
import sys
import tarfile
import tempfile
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final

from harness.errors import BadInput, Blocked, StepFailed

if TYPE_CHECKING:
    import docker
    from rich.console import Console

KEEP_ENV = "ANT_KPI_KEEP_CONTAINER"
# auto (default) | all | none | device=<id>[,<id>…]
GPUS_ENV: Final = "ANT_KPI_GPUS"
_GPU_FIX: Final = (
    "install the NVIDIA driver and the NVIDIA Container Toolkit on the engine's machine "
    f"(nvidia-ctk runtime configure --runtime=docker), or set {GPUS_ENV}=none for a CPU run"
)


@dataclass(frozen=True, kw_only=True)
class GpuChoice:
    """Whether a container asks for GPUs, which ones (empty: all), and why."""

    requested: bool
    device_ids: tuple[str, ...] = ()
    reason: str = ""

    def device_requests(self) -> list[Any]:
        """The Docker SDK's device requests for this choice (what `docker run --gpus` sends)."""
        if not self.requested:
            return []
        from docker.types import DeviceRequest

        if self.device_ids:
            return [DeviceRequest(device_ids=list(self.device_ids), capabilities=[["gpu"]])]
        return [DeviceRequest(count=-1, capabilities=[["gpu"]])]


def engine_runtimes(client: docker.DockerClient) -> set[str]:
    """The OCI runtimes the engine offers (`docker info`: Runtimes), e.g. {'runc', 'nvidia'}."""
    info: dict[str, Any] = client.info()
    return set((info.get("Runtimes") or {}).keys()) | {str(info.get("DefaultRuntime") or "")} - {""}


def decide_gpus(setting: str, runtimes: set[str]) -> GpuChoice:
    """The GPU decision from ANT_KPI_GPUS (auto, all, none, device=…) and the engine's runtimes."""
    value = setting.strip().lower()
    if value in ("", "auto"):
        if "nvidia" in runtimes:
            return GpuChoice(requested=True, reason="the engine has the nvidia runtime")
        return GpuChoice(requested=False, reason=f"the engine has no nvidia runtime; set {GPUS_ENV}=all to ask anyway")
    if value in ("all", "1", "yes", "true"):
        return GpuChoice(requested=True, reason=f"{GPUS_ENV}={setting}")
    if value in ("none", "0", "no", "false"):
        return GpuChoice(requested=False, reason=f"{GPUS_ENV}={setting}")
    if value.startswith("device="):
        ids = tuple(i.strip() for i in value.removeprefix("device=").split(",") if i.strip())
        if ids:
            return GpuChoice(requested=True, device_ids=ids, reason=f"{GPUS_ENV}={setting}")
    raise BadInput(f"{GPUS_ENV}={setting!r}: use auto, all, none or device=<id>[,<id>...]")


def gpu_choice(client: docker.DockerClient, setting: str) -> GpuChoice:
    """decide_gpus with the runtimes this engine reports (asked only when the setting is auto)."""
    value = setting.strip().lower()
    runtimes = engine_runtimes(client) if value in ("", "auto") else set()
    return decide_gpus(setting, runtimes)


class Container:
    """A container as a context manager: `with Container(client, tag, ...) as c: c.run([...])`."""

    def __init__(
        self,
        client: docker.DockerClient,
        image_tag: str,
        *,
        mounts: Mapping[str | Path, str] | None = None,
        read_only_mounts: Mapping[str | Path, str] | None = None,
        workdir: str = "/",
        env: Mapping[str, str] | None = None,
        name_prefix: str = "ant-kpi",
        keep_on_failure: bool = False,
        console: Console | None = None,
        gpus: GpuChoice | None = None,
        resolve_mounts: bool = True,
    ) -> None:
        """`resolve_mounts=False` keeps host paths as given: they name paths on a remote engine."""
        self.client = client
        self.image_tag = image_tag

        def host(p: str | Path) -> str:
            return str(Path(p).resolve()) if resolve_mounts else str(p)

        self.mounts = {host(h): c for h, c in (mounts or {}).items()}
        self.read_only_mounts = {host(h): c for h, c in (read_only_mounts or {}).items()}
        self.gpus = gpus or GpuChoice(requested=False)
        self.workdir = workdir
        self.env = dict(env or {})
        self.name = f"{name_prefix}-{uuid.uuid4().hex[:12]}"
        self.keep_on_failure = keep_on_failure
        self.console = console
        self._id: str | None = None

    # ---- lifecycle -------------------------------------------------------------------------

    def __enter__(self) -> Container:
        from docker.errors import APIError, ImageNotFound

        for container_path in [*self.mounts.values(), *self.read_only_mounts.values()]:
            if not PurePosixPath(container_path).is_absolute():
                raise BadInput(f"container mount point {container_path!r} is not an absolute path")
        for host_path in [*self.mounts, *self.read_only_mounts]:
            if not PurePosixPath(host_path).is_absolute():
                raise BadInput(f"mounted host path {host_path!r} is not an absolute path")
        volumes = {host: {"bind": cpath, "mode": "rw"} for host, cpath in self.mounts.items()}
        volumes.update({host: {"bind": cpath, "mode": "ro"} for host, cpath in self.read_only_mounts.items()})
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
                device_requests=self.gpus.device_requests() or None,
            )
        except ImageNotFound as e:
            raise Blocked(
                f"image {self.image_tag} is not present on the Docker engine", "run `ant-kpi images build`"
            ) from e
        except APIError as e:
            if self.gpus.requested and _is_gpu_refusal(str(e.explanation or e)):
                raise Blocked(
                    f"GPUs were requested ({self.gpus.reason}) but the engine cannot provide them: "
                    f"{e.explanation or e}",
                    _GPU_FIX,
                ) from e
            raise StepFailed(f"cannot start a container from {self.image_tag}: {e.explanation or e}") from e
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
            message = (
                f"kept container {self.name} for inspection: "
                f"docker exec -it {self.name} bash; remove it with docker rm -f {self.name}"
            )
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
            self.id,
            args,
            stdout=True,
            stderr=True,
            tty=False,
            environment=dict(env) if env else None,
            workdir=cwd or self.workdir,
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

    def check(
        self, argv: Sequence[str], *, cwd: str | None = None, env: Mapping[str, str] | None = None, log_path: Path
    ) -> None:
        """Like run, but a non-zero exit raises StepFailed naming the log."""
        code = self.run(argv, cwd=cwd, env=env, log_path=log_path)
        if code != 0:
            raise StepFailed(f"`{shlex.join(argv)}` exited {code} in {self.image_tag}", log=log_path)

    # ---- files -----------------------------------------------------------------------------

    def copy_in(self, host_path: Path, container_dir: str, *, name: str | None = None) -> None:
        """Copy a host file or directory into container_dir (which must exist), as `name` if given."""
        # A temporary file, not memory: a work tree or a data set may be large.
        with tempfile.TemporaryFile() as buf:
            with tarfile.open(fileobj=buf, mode="w") as tar:
                tar.add(str(host_path), arcname=name or host_path.name)
            buf.seek(0)
            if not self.client.api.put_archive(self.id, container_dir, buf):
                raise StepFailed(f"cannot copy {host_path} into {self.name}:{container_dir}")

    def copy_out(self, container_path: str, host_dir: Path) -> Path:
        """Copy a file or directory from the container into host_dir; the host path made."""
        from docker.errors import NotFound

        try:
            chunks, _ = self.client.api.get_archive(self.id, container_path)
        except NotFound as e:
            raise StepFailed(f"{self.name}:{container_path} does not exist") from e
        host_dir.mkdir(parents=True, exist_ok=True)
        # Spooled to a temporary file: checkpoints of a training run can be hundreds of MB.
        with tempfile.TemporaryFile() as buf:
            for chunk in chunks:
                buf.write(chunk)
            buf.seek(0)
            with tarfile.open(fileobj=buf) as tar:
                extract_checked(tar, host_dir, where=f"{self.name}:{container_path}")
        return host_dir / PurePosixPath(container_path).name


def unsafe_member(member: tarfile.TarInfo, symlinks: set[str]) -> str:
    """Why `member` must not be extracted ('' when it may): what the `data` filter checks, and more.

    Only directories, regular files and symbolic links are taken, with plain relative names. A link's
    target is relative: some leading '..' then plain names, inside the archive's root; no member may
    lie under a link (nothing is written through one). That closes the link tricks the `data` filter
    of some Python releases let through (hard links to links, chains of links, empty names).
    """
    name = PurePosixPath(member.name)
    if not member.name or name.is_absolute() or ".." in name.parts or name == PurePosixPath("."):
        return "not a plain relative path"
    if any(str(parent) in symlinks for parent in name.parents):
        return "lies under a symbolic link"
    if member.issym():
        target = PurePosixPath(member.linkname)
        parts = list(target.parts)
        ups = len(parts) - len(list(itertools.dropwhile(lambda p: p == "..", parts)))
        if not member.linkname or target.is_absolute() or ".." in parts[ups:]:
            return f"symbolic link to {member.linkname!r} (only relative targets without inner '..')"
        if ups > len(name.parts) - 1:
            return f"symbolic link to {member.linkname!r} leaves the directory"
        return ""
    if not (member.isdir() or member.isfile()):
        return "not a regular file, directory or symbolic link"
    return ""


def extract_checked(tar: tarfile.TarFile, dest: Path, *, where: str) -> None:
    """Extract `tar` into dest after checking every member (unsafe_member), with the `data` filter."""
    if not hasattr(tarfile, "data_filter"):
        raise Blocked(
            f"this Python ({sys.version.split()[0]}) has no tar extraction filters",
            "use Python 3.10.13+, 3.11.5+ or 3.12+ (pyproject.toml's requires-python)",
        )
    symlinks: set[str] = set()
    members = tar.getmembers()
    for m in members:
        why = unsafe_member(m, symlinks)
        if why:
            raise StepFailed(f"refusing to extract {m.name!r} from {where}: {why}")
        if m.issym():
            symlinks.add(str(PurePosixPath(m.name)))
    tar.extractall(dest, members=members, filter="data")


def _is_gpu_refusal(message: str) -> bool:
    """Whether an engine error says it has no GPU support (no nvidia runtime or CDI device)."""
    text = message.lower()
    return "could not select device driver" in text or "nvidia" in text or "gpu" in text
