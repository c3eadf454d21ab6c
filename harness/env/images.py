"""Container images: the Docker client, content-addressed image builds and the offline base.

An image built from `containers/<name>/` is tagged `ant-kpi/<name>:<hash[:12]>`, where the hash
covers every file of the build context and the build arguments. The same inputs therefore give
the same tag, and an existing tag is reused without contacting a registry. The Debian base is made
locally with debootstrap and `docker import`, so no registry is ever needed.

Two settings (options.EnvSettings, from these environment variables) change what is built, and so the tag:
  ANT_KPI_BUILD_ARG_<NAME>=value  passes build argument NAME to every image whose Dockerfile
                                  declares `ARG NAME` (e.g. ANT_KPI_BUILD_ARG_TORCH_BUILD=cpu);
  ANT_KPI_WHEELHOUSE=dir[:dir…]   directories of wheel files: for a context with a `wheelhouse/`
                                  folder, the wheels pinned (`name==version`) by its requirements*.txt
                                  are added to that folder in a temporary copy of the context (hard
                                  links where possible). Other contexts are not affected.

The engine is the one DOCKER_HOST names, local or remote (`ssh://user@gpu-server`; the SDK speaks
ssh with paramiko, or through the system's ssh client when paramiko is absent). A remote engine
receives the build context over that connection and builds and stores the images itself."""

from __future__ import annotations

import contextlib
import io
import json
import re
import tarfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, TextIO

from harness.core.manifest import Image
from harness.errors import Blocked, StepFailed
from harness.options import EnvSettings
from harness.redact import redact_env, redact_url

if TYPE_CHECKING:
    import docker
    from rich.console import Console
from harness.env.image_context import WHEELHOUSE_ENV, assembled_context, build_inputs

IMAGE_REPOSITORY: Final = "ant-kpi"
DEFAULT_BASE_TAG: Final = "ant-kpi/debian:bookworm"
TOOL_VERSIONS_PATH: Final = "/etc/ant-kpi/tool-versions.json"
# Labels the harness writes on images it makes; read back as provenance on reuse.
LABEL_PREFIX: Final = "org.ant-kpi"
# A build may stay silent for minutes (a large compile step): the read timeout of its HTTP
# stream must not be the client's default 60 s.
BUILD_HTTP_TIMEOUT_S: Final = 6 * 3600
_STEP_RE: Final = re.compile(r"^Step \d+/\d+ : ")
# The classic builder colours a RUN step's stderr; the log keeps plain text.
_ANSI_RE: Final = re.compile(r"\x1b\[[0-9;]*m")

_DAEMON_FIX: Final = "start it (dockerd &, or systemctl start docker) or set DOCKER_HOST"


# --------------------------------------------------------------------------------------------
# Client
# --------------------------------------------------------------------------------------------


def docker_host(env: EnvSettings) -> str:
    """Where the Docker engine is expected: DOCKER_HOST, or the default local socket."""
    return env.docker_host or "unix:///var/run/docker.sock"


def docker_client(env: EnvSettings, *, timeout: int = 60) -> docker.DockerClient:
    """A Docker client for the engine DOCKER_HOST names (the SDK also reads DOCKER_TLS_VERIFY, DOCKER_CERT_PATH)."""
    try:
        import docker
        from docker.errors import DockerException
    except ImportError as e:
        raise Blocked("the Docker SDK for Python is not installed", "pip install 'docker>=7'") from e
    where = docker_host(env)
    shown = redact_url(where)
    # ssh:// engines need paramiko in the SDK; without it, use the system ssh client instead.
    use_ssh_client = where.startswith("ssh://") and not _has_module("paramiko")
    try:
        client = docker.from_env(timeout=timeout, use_ssh_client=use_ssh_client)
        client.ping()
    except (DockerException, OSError) as e:
        # A socket that exists but refuses this user is not fixed by starting a daemon.
        if "Permission denied" in str(e):
            raise Blocked(
                f"Docker daemon at {shown} refuses this user (permission denied)",
                "add the user to the docker group (usermod -aG docker USER) or run as root",
            ) from e
        raise Blocked(f"Docker daemon not reachable at {shown}", _DAEMON_FIX) from e
    return client


def _has_module(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


# --------------------------------------------------------------------------------------------
# Image references
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class ImageRef:
    """A built (or reused) image and what it was made from."""

    name: str
    tag: str
    id: str
    digest: str
    base: str
    base_id: str
    context_hash: str
    reused: bool
    tool_versions: Mapping[str, str] = field(default_factory=dict)
    log: str | None = None

    def to_provenance(self) -> dict[str, Any]:
        return {
            "image": self.name,
            "tag": self.tag,
            "id": self.id,
            "digest": self.digest,
            "base": self.base,
            "base_id": self.base_id,
            "context_hash": self.context_hash,
            "reused": self.reused,
            "tool_versions": dict(self.tool_versions),
        }


@dataclass(frozen=True, kw_only=True)
class BaseImageRef:
    """The offline Debian base: a debootstrapped root file system imported as an image."""

    tag: str
    id: str
    suite: str
    mirror: str
    variant: str
    debootstrap_version: str
    created: str
    reused: bool

    def to_provenance(self) -> dict[str, Any]:
        return {
            "tag": self.tag,
            "id": self.id,
            "suite": self.suite,
            "mirror": self.mirror,
            "variant": self.variant,
            "debootstrap_version": self.debootstrap_version,
            "created": self.created,
            "reused": self.reused,
        }


def image_tag(image: Image, digest: str) -> str:
    return f"{IMAGE_REPOSITORY}/{image.name}:{digest[:12]}"


def _get_image(client: docker.DockerClient, tag: str) -> Any | None:
    from docker.errors import ImageNotFound

    try:
        return client.images.get(tag)
    except ImageNotFound:
        return None


def _digest(img: Any) -> str:
    digests = img.attrs.get("RepoDigests") or []
    return str(digests[0]) if digests else str(img.id)


def _labels(img: Any) -> dict[str, str]:
    return dict((img.attrs.get("Config") or {}).get("Labels") or {})


def read_tool_versions(client: docker.DockerClient, image_id: str) -> dict[str, str]:
    """The versions the image recorded at build time; {} when it has no such file."""
    from docker.errors import APIError, NotFound

    # A created (never started) container is enough to read a file: no process runs.
    cid = client.api.create_container(image_id, command=["true"])["Id"]
    try:
        try:
            chunks, _ = client.api.get_archive(cid, TOOL_VERSIONS_PATH)
        except NotFound:
            return {}
        with tarfile.open(fileobj=io.BytesIO(b"".join(chunks))) as tar:
            member = tar.next()
            f = tar.extractfile(member) if member is not None else None
            if f is None:
                return {}
            data = json.loads(f.read().decode())
        return {str(k): str(v) for k, v in data.items()}
    except (APIError, ValueError, tarfile.TarError):
        return {}
    finally:
        client.api.remove_container(cid, force=True)


# --------------------------------------------------------------------------------------------
# ensure_image
# --------------------------------------------------------------------------------------------


def ensure_image(
    image: Image,
    *,
    root: Path,
    env: EnvSettings,
    client: docker.DockerClient | None = None,
    console: Console | None = None,
    rebuild: bool = False,
    log_path: Path | None = None,
) -> ImageRef:
    """The image for `image`: reused when its context hash is unchanged, built otherwise."""
    client = client or docker_client(env)
    inputs = build_inputs(image, root, env)
    digest = inputs.digest()
    tag = image_tag(image, digest)

    existing = None if rebuild else _get_image(client, tag)
    if existing is not None:
        return _ref(client, image, tag, existing, digest, reused=True, log=None)

    base = _get_image(client, image.base)
    if base is None:
        raise Blocked(
            f"base image {image.base} is missing",
            "run `ant-kpi images bootstrap-base` (debootstrap from a Debian mirror, no registry needed)",
        )
    log = log_path or root / ".ant-kpi" / "logs" / f"image-{image.name}-{digest[:12]}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    labels = {
        f"{LABEL_PREFIX}.image": image.name,
        f"{LABEL_PREFIX}.context-hash": digest,
        f"{LABEL_PREFIX}.base": image.base,
        # A re-bootstrapped base keeps its tag, so only the id says which base this was built
        # on. The tag does not follow the base: `rebuild=True` moves an image onto a new base.
        f"{LABEL_PREFIX}.base-id": str(base.id),
    }
    if inputs.added:
        labels[f"{LABEL_PREFIX}.wheelhouse"] = f"{len(inputs.added)} wheel(s) from {WHEELHOUSE_ENV}"
    with assembled_context(inputs, root / ".ant-kpi" / "tmp") as context_dir:
        image_id = _build(
            client, context_dir, tag, dict(inputs.build_args), labels, log, console, image.name, added=inputs.added
        )
    built = client.images.get(image_id)
    return _ref(client, image, tag, built, digest, reused=False, log=log)


def _ref(
    client: docker.DockerClient, image: Image, tag: str, img: Any, digest: str, *, reused: bool, log: Path | None
) -> ImageRef:
    labels = _labels(img)
    return ImageRef(
        name=image.name,
        tag=tag,
        id=str(img.id),
        digest=_digest(img),
        base=image.base,
        base_id=labels.get(f"{LABEL_PREFIX}.base-id", ""),
        context_hash=digest,
        reused=reused,
        tool_versions=read_tool_versions(client, str(img.id)),
        log=None if log is None else str(log),
    )


@contextlib.contextmanager
def _status(console: Console | None, text: str) -> Iterator[Any]:
    """A rich status line, or None when quiet or when another live display owns the terminal."""
    if console is None:
        yield None
        return
    from rich.errors import LiveError

    status = console.status(text)
    try:
        status.start()
    except LiveError:
        # A caller's progress display is already live; the log still gets every line.
        yield None
        return
    try:
        yield status
    finally:
        status.stop()


def _build(
    client: docker.DockerClient,
    context_dir: Path,
    tag: str,
    build_args: dict[str, str],
    labels: dict[str, str],
    log: Path,
    console: Console | None,
    name: str,
    *,
    added: Mapping[str, Path] | None = None,
) -> str:
    from docker.errors import APIError

    image_id = ""
    error = ""
    trail = BuildTrail()
    with log.open("w", encoding="utf-8") as out, _status(console, f"building {tag}") as status:
        args = " ".join(f"--build-arg {k}={v}" for k, v in sorted(redact_env(build_args).items()))
        out.write(f"# docker build {context_dir} -t {tag} {args}\n")
        for rel, src in sorted((added or {}).items()):
            out.write(f"# added from {WHEELHOUSE_ENV}: {rel} <- {src}\n")
        try:
            stream = client.api.build(
                path=str(context_dir),
                tag=tag,
                buildargs=build_args,
                labels=labels,
                decode=True,
                rm=True,
                forcerm=True,
                pull=False,
                timeout=BUILD_HTTP_TIMEOUT_S,
            )
            for chunk in stream:
                image_id = _record_build_line(chunk, out, status, name, trail) or image_id
                if "error" in chunk:
                    error = str(chunk["error"]).strip()
        except APIError as e:
            error = str(e.explanation or e)
            out.write(f"# API error: {error}\n")
    if error:
        raise StepFailed(f"image {name}: docker build failed{trail.summary(error)}", log=log)
    if not image_id:
        # Older engines report the id only as "Successfully built <short id>"; the tag is set.
        image_id = str(client.images.get(tag).id)
    if console is not None:
        console.print(f"  built {tag} ({image_id[:19]}); log: {log}")
    return image_id


class BuildTrail:
    """What a failed build's one-line error needs from its output: the step, the cause, a fix.

    Docker's own error repeats the whole RUN command ("The command '/bin/sh -c …' returned a
    non-zero code: 1"); the cause is the last error line the command printed itself (pip's
    "ERROR: …", apt's "E: …"), and a build that could not reach a package index says so.
    """

    _CAUSE_RE: Final = re.compile(r"^(ERROR:|E:|error:|fatal:|FATAL:)\s*\S")
    _OFFLINE_RE: Final = re.compile(
        r"CERTIFICATE_VERIFY_FAILED|Could not fetch URL|Temporary failure resolving|"
        r"Failed to establish a new connection|Network is unreachable|Could not resolve host"
    )

    def __init__(self) -> None:
        self.step = ""
        self.cause = ""
        self.offline = False

    def feed(self, text: str) -> None:
        for line in text.splitlines():
            line = line.strip()
            if _STEP_RE.match(line):
                self.step = line.split(" : ", 1)[0]
                self.cause = ""
            elif self._CAUSE_RE.match(line) and "The command '" not in line:
                self.cause = line  # Docker's own "The command '…' returned …" is the symptom
            if self._OFFLINE_RE.search(line):
                self.offline = True

    def summary(self, error: str) -> str:
        """`` at Step 14/25: ERROR: … (fix)`` or, with nothing better, Docker's last error line."""
        lines = error.strip().splitlines()
        cause = self.cause or (lines[-1] if lines else error)
        text = f" at {self.step}: " if self.step else ": "
        text += cause[:200]
        if self.offline:
            text += (
                f" (the build could not reach a package index: for pip, give it the "
                f"wheels through {WHEELHOUSE_ENV}; for apt, the engine needs the Debian "
                f"mirror or a proxy)"
            )
        return text


def _record_build_line(chunk: Mapping[str, Any], out: TextIO, status: Any, name: str, trail: BuildTrail) -> str:
    """Write one decoded build message to the log (and the trail); returns the image id if it carries one."""
    if "stream" in chunk:
        text = _ANSI_RE.sub("", str(chunk["stream"]))
        out.write(text)
        trail.feed(text)
        line = text.strip()
        if status is not None and _STEP_RE.match(line):
            status.update(f"image {name}: {line[:110]}")
    elif "error" in chunk:
        out.write(f"ERROR: {chunk['error']}\n")
    elif "status" in chunk:
        out.write(f"{chunk['status']} {chunk.get('progress', '')}\n")
    aux = chunk.get("aux")
    out.flush()
    if isinstance(aux, Mapping) and isinstance(aux.get("ID"), str):
        return str(aux["ID"])
    return ""
