"""Probes of what this machine has: the checks behind `ant-kpi doctor`, each answering (state, detail).

A probe never installs or builds anything. The one that asks whether an image build can reach its
package index runs in a container of an image that has Python (the index is reached from the
engine's network with the CA store an image has, which is where pip runs during a build); with no
such image yet it asks from this host with Debian's CA set, the store an image gets, and says so.
"""

from __future__ import annotations

import importlib.util
import shutil
import socket
import ssl
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal
from urllib.parse import urlparse

State = Literal["ok", "missing", "info"]

# What Debian's ca-certificates package installs: the trust store of every image built on the base.
DEBIAN_CA_DIR: Final = Path("/usr/share/ca-certificates/mozilla")
PROBE_TIMEOUT_S: Final = 10.0
# Run with `python3 -c` in a container: connect, handshake with the image's own CA store, say how
# it ended on one line (`ok TLSv1.3`, or `<cause>: <detail>`).
_TLS_PROBE: Final = """
import socket, ssl, sys
host, port = sys.argv[1], int(sys.argv[2])
try:
    with socket.create_connection((host, port), timeout=10) as s:
        with ssl.create_default_context().wrap_socket(s, server_hostname=host) as t:
            print("ok", t.version())
except ssl.SSLCertVerificationError as e:
    print("certificate:", e.verify_message or e)
except socket.gaierror as e:
    print("dns:", e)
except ConnectionRefusedError as e:
    print("refused:", e)
except (TimeoutError, socket.timeout) as e:
    print("timeout:", e or "no answer in 10 s")
except OSError as e:
    print("network:", e)
"""


@dataclass(frozen=True, kw_only=True)
class Probe:
    """What one check found: ok, missing (with why) or info (nothing is wrong, something to know)."""

    state: State
    detail: str


def which(cmd: str) -> Probe:
    path = shutil.which(cmd)
    return Probe(state="ok", detail=path) if path else Probe(state="missing", detail=f"{cmd} is not on PATH")


def module(name: str) -> Probe:
    found = importlib.util.find_spec(name) is not None
    return Probe(state="ok" if found else "missing", detail="importable" if found else f"no module {name}")


def binfmt(name: str) -> Probe:
    p = Path("/proc/sys/fs/binfmt_misc") / name
    try:
        text = p.read_text()
    except OSError:
        return Probe(state="missing", detail=f"{p} absent")
    first = text.splitlines()[0] if text else ""
    interp = next((ln.split(" ", 1)[1] for ln in text.splitlines() if ln.startswith("interpreter")), "?")
    return Probe(state="ok" if first == "enabled" else "missing", detail=f"{first}, {interp}")


def disk(path: Path, need_gib: float = 20) -> Probe:
    usage = shutil.disk_usage(path if path.exists() else Path.cwd())
    free = usage.free / 2**30
    return Probe(state="ok" if free >= need_gib else "missing", detail=f"{free:.0f} GiB free at {path}")


def docker_engine(client: Any, host: str) -> Probe:
    try:
        info = client.version()
    except Exception as e:  # any failure means "not reachable"; the detail says why
        return Probe(state="missing", detail=f"{type(e).__name__}: {_first_line(e)}")
    return Probe(state="ok", detail=f"engine {info.get('Version', '?')} at {host or 'the local socket'}")


def image(client: Any, tag: str) -> Probe:
    """Whether the engine has image `tag`."""
    found = _get_image(client, tag)
    if found is None:
        return Probe(state="missing", detail=f"{tag} is not on the engine")
    return Probe(state="ok", detail=f"{tag} ({str(found.id)[:19]})")


def labelled_images(client: Any, names: tuple[str, ...]) -> list[str]:
    """Tags of the harness's images named by their org.ant-kpi.image label (first tag of each)."""
    tags = []
    for name in names:
        try:
            found = client.images.list(filters={"label": f"org.ant-kpi.image={name}"})
        except Exception:  # an engine that cannot list answers nothing here; docker_engine says why
            return []
        tags += [t for img in found for t in (img.tags or [])[:1]]
    return tags


def index_reachable(url: str, client: Any | None, probe_images: list[str]) -> Probe:
    """Whether an image build reaches the package index at `url`: the real cause when it does not
    (certificate, DNS, refused, timeout), asked from inside a container when an image can."""
    parsed = urlparse(url)
    host, port = parsed.hostname or "", parsed.port or (443 if parsed.scheme == "https" else 80)
    if not host:
        return Probe(state="missing", detail=f"{url!r} is not a URL")
    if client is not None and probe_images:
        tag = probe_images[0]
        try:
            out = client.containers.run(
                tag, ["python3", "-c", _TLS_PROBE, host, str(port)], remove=True, stdout=True, stderr=True
            )
            answer = out.decode(errors="replace").strip().splitlines()[-1] if out else "no answer"
            where = f"from a container of {tag}"
        except Exception as e:  # the container could not run: say so and ask from the host
            answer, where = _host_tls(host, port), f"from this host (a container of {tag} failed: {_first_line(e)})"
    else:
        answer, where = _host_tls(host, port), "from this host with Debian's CA set (no image with Python yet)"
    if answer.startswith("ok"):
        return Probe(state="ok", detail=f"{host}:{port} answers with a trusted certificate ({where})")
    return Probe(state="missing", detail=f"{host}:{port} {_cause(answer)} ({where})")


def _cause(answer: str) -> str:
    kind, _, detail = answer.partition(":")
    words = {
        "certificate": "presents a certificate the image does not trust (a TLS-intercepting proxy?)",
        "dns": "cannot be resolved (DNS)",
        "refused": "refuses the connection",
        "timeout": "does not answer (timeout)",
        "network": "is unreachable",
    }
    return f"{words.get(kind.strip(), 'cannot be reached')}: {detail.strip()}"


def _host_tls(host: str, port: int) -> str:
    """The same probe from this host, trusting only what Debian's ca-certificates gives an image."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    certs = sorted(DEBIAN_CA_DIR.glob("*.crt"))
    for crt in certs:
        ctx.load_verify_locations(cafile=str(crt))
    if not certs:
        ctx.load_default_certs()
    try:
        with (
            socket.create_connection((host, port), timeout=PROBE_TIMEOUT_S) as s,
            ctx.wrap_socket(s, server_hostname=host) as t,
        ):
            return f"ok {t.version()}"
    except ssl.SSLCertVerificationError as e:
        return f"certificate: {e.verify_message or e}"
    except socket.gaierror as e:
        return f"dns: {e}"
    except ConnectionRefusedError as e:
        return f"refused: {e}"
    except TimeoutError as e:
        return f"timeout: {e or 'no answer'}"
    except OSError as e:
        return f"network: {e}"


def url_reachable(url: str, timeout: float = PROBE_TIMEOUT_S) -> Probe:
    """Whether a download URL answers from this host (a HEAD request; nothing is downloaded)."""
    req = urllib.request.Request(url, method="HEAD")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return Probe(state="ok", detail=f"{urlparse(url).hostname} answers (HTTP {r.status})")
    except urllib.error.HTTPError as e:
        return Probe(state="missing", detail=f"{url} answers HTTP {e.code}")
    except urllib.error.URLError as e:
        return Probe(state="missing", detail=f"{urlparse(url).hostname} cannot be reached: {e.reason}")
    except (OSError, ValueError) as e:
        return Probe(state="missing", detail=f"{url} cannot be reached: {e}")


def _get_image(client: Any, tag: str) -> Any | None:
    try:
        return client.images.get(tag)
    except Exception:  # not found, or the engine is gone: both mean "not there"
        return None


def _first_line(e: BaseException) -> str:
    text = str(e)
    return text.splitlines()[0][:160] if text else type(e).__name__
