"""Sessions of the ANT KPI harness: thin wrappers around `ant-kpi` (all logic is in harness/).

Sessions run in the current Python environment (no per-session virtualenv), where
`pip install -e '.[test,lint]'` put the harness: builds and measurements must not pay for
re-installing PyTorch or the Docker SDK, and offline machines cannot.

Every kpi_* session forwards its arguments to `ant-kpi run`, so
    nox -s kpi_js_memory -- --dry-run
    nox -s kpi_js_memory -- --mode measure --target rpi2
    nox -s kpi_js_memory -- --source iotjs=/srv/mirrors/iotjs.git
all work.
"""

from __future__ import annotations

import shutil

import nox

from harness.kpis import REGISTRY

nox.options.default_venv_backend = "none"
nox.options.sessions = ["dry_run", "tests", "lint"]

HAS_DOCKER = shutil.which("docker") is not None or shutil.which("dockerd") is not None

# One session per KPI, from the KPI registry (harness/kpis/__init__.py): the one list of KPIs.
KPI_SESSIONS = {e.session: (e.id, list(e.needs)) for e in REGISTRY.values()}


def _kpi_session(kpi: str, needs_docker: bool) -> object:
    def session(s: nox.Session) -> None:
        args = list(s.posargs)
        if needs_docker and not HAS_DOCKER and "--dry-run" not in args:
            s.log(
                "Docker is not installed here: builds and images will end BLOCKED; "
                "`-- --dry-run` shows the plan without it"
            )
        s.run("ant-kpi", "run", kpi, *args, external=True)

    session.__doc__ = f"KPI {kpi}: `ant-kpi run {kpi}` (pass `-- --dry-run`, `-- --mode measure`, ...)"
    return session


for _name, (_kpi, _tags) in KPI_SESSIONS.items():
    nox.session(name=_name, tags=["kpi", *_tags])(_kpi_session(_kpi, "docker" in _tags))


@nox.session(tags=["laptop"])
def dry_run(session: nox.Session) -> None:
    """The laptop-only dry run: every step of all eight KPIs; no Docker, no network, no board."""
    session.run("ant-kpi", "validate", external=True)
    session.run("ant-kpi", "plan", *session.posargs, external=True)


@nox.session(tags=["build", "docker"])
def build_arm(session: nox.Session) -> None:
    """Cross-build IoT.js, IoT.js-Plus and vminfo for rpi2 (armhf) and arm64 in the arm-cross image."""
    session.run("ant-kpi", "build", *session.posargs, external=True)


@nox.session(tags=["build", "docker"])
def build_ant(session: nox.Session) -> None:
    """Build ANT (with dep/iotjs forced to IoT.js-Plus 3bbccce) for armhf, arm64 and x86_64."""
    session.run("ant-kpi", "build", "ant", *session.posargs, external=True)


@nox.session(tags=["docker"])
def bootstrap_base(session: nox.Session) -> None:
    """Make the offline Debian base image with debootstrap (no registry needed)."""
    session.run("ant-kpi", "images", "bootstrap-base", *session.posargs, external=True)


@nox.session
def report(session: nox.Session) -> None:
    """Render the report of the newest run (or `-- RUN_ID`, `-- RUN_ID --lang ko`)."""
    session.run("ant-kpi", "report", *session.posargs, external=True)


@nox.session
def doctor(session: nox.Session) -> None:
    """What this machine has for each KPI, and the fix for each gap."""
    session.run("ant-kpi", "doctor", external=True)


@nox.session
def tests(session: nox.Session) -> None:
    """The test suite: unit tests plus integration tests against real Docker, QEMU and sshd."""
    session.run("python", "-m", "pytest", *session.posargs, external=True)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff (lint and format) and mypy; the import layers are checked by the tests (tests/test_layout.py)."""
    paths = ("harness", "tests", "noxfile.py", "bench")
    session.run("ruff", "check", *paths, external=True)
    session.run("ruff", "format", "--check", *paths, external=True)
    session.run("mypy", external=True)


@nox.session
def bench(session: nox.Session) -> None:
    """Performance figures (printed, never asserted): the dry run of all eight KPIs, and more."""
    session.run("python", "bench/bench.py", *session.posargs, external=True)
