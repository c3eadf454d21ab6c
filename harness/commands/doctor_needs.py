"""What each KPI needs on this machine, checked for real: the rows of `ant-kpi doctor`.

The generic part comes from the KPI's own plan (its images, sources and emulated targets); each
KPI then adds what its steps read at run time (KPI 3: the baseline, a complete ANT clone, the dense
Top-1; KPI 7: the tvm-npu image and what its testcases need). Every probe is asked once per
command and shared by the KPIs that need it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlparse

from harness.core.manifest import Image, Manifest
from harness.core.plan import KpiPlan
from harness.env import probes
from harness.env.probes import Probe, State
from harness.env.wheelhouse import WHEEL_SETS, wheel_set
from harness.errors import HarnessError
from harness.options import EnvSettings

PYPI: Final = "https://pypi.org/simple/"
# Which requirements files a build installs, per image (cuda-train: the torch pair TORCH_BUILD picks).
# What the fork's VTA testcase downloads at run time (MXNet's Gluon model zoo, the ImageNet labels).
VTA_DOWNLOADS: Final = (
    "https://apache-mxnet.s3-accelerate.dualstack.amazonaws.com/",
    "https://github.com/uwsampl/web-data/raw/main/vta/models/synset.txt",
)
_CLONE_FIX: Final = "a complete clone of ANT (git lfs pull where needed), then --source ant=PATH"


def _wheelhouse_fix(context: str) -> str:
    name = context.rstrip("/").rsplit("/", 1)[-1]
    return (
        f"fill it with the host's pip: `ant-kpi images wheelhouse {name} -o DIR` (on a connected machine for an "
        f"air-gapped lab), then ANT_KPI_WHEELHOUSE=DIR ANT_KPI_BUILD_ARG_WHEELHOUSE_ONLY=yes; {context}/README.md"
    )


@dataclass(frozen=True, kw_only=True)
class Need:
    """One thing a KPI needs, what this machine has of it, and the fix when it is missing."""

    name: str
    probe: Probe
    fix: str = ""

    @property
    def state(self) -> State:
        return self.probe.state


class Machine:
    """The probes of one doctor command, each run at most once."""

    def __init__(
        self, manifest: Manifest, *, root: Path, cache_dir: Path, env: EnvSettings, overrides: Mapping[str, Path]
    ) -> None:
        self.manifest = manifest
        self.root = root
        self.cache_dir = cache_dir
        self.env = env
        self.overrides = overrides
        self._memo: dict[tuple[Any, ...], Any] = {}

    def _once(self, key: tuple[Any, ...], make: Callable[[], Any]) -> Any:
        if key not in self._memo:
            self._memo[key] = make()
        return self._memo[key]

    # -- the engine and images ------------------------------------------------------------------

    @functools.cached_property
    def client(self) -> Any | None:
        from harness.env.images import docker_client

        try:
            return docker_client(self.env, timeout=10)
        except Exception:  # probes.docker_engine says why, from the client it cannot make
            return None

    def engine(self) -> Need:
        def make() -> Need:
            if self.client is None:
                probe = Probe(state="missing", detail="no Docker engine answers (docker.from_env failed)")
            else:
                probe = probes.docker_engine(self.client, self.env.docker_host)
            return Need(
                name="Docker engine", probe=probe, fix="apt-get install docker.io; start dockerd (or DOCKER_HOST)"
            )

        return self._once(("engine",), make)

    def image(self, img: Image) -> Need:
        """Whether the image for the current inputs is built; if not, whether a build can install its packages."""
        return self._once(("image", img.name), lambda: self._image(img))

    def _image(self, img: Image) -> Need:
        from harness.env.image_context import build_inputs
        from harness.env.images import image_tag

        name = f"image {img.name}"
        if self.client is None or self.engine().state != "ok":
            return Need(name=name, probe=Probe(state="missing", detail="no Docker engine"), fix="see Docker engine")
        if self.client is not None and not probes.labelled_images(self.client, (img.name,)):
            built = None  # never built here: no need to hash a wheelhouse to know
        else:
            try:
                inputs = build_inputs(img, self.root, self.env)
            except HarnessError as e:
                return Need(name=name, probe=Probe(state="missing", detail=e.one_line()), fix="fix the setting named")
            built = probes.image(self.client, image_tag(img, inputs.digest()))
            if built is None or built.state != "ok":
                # Built by `ant-kpi images build` or a run: from the wheelhouse the host's pip filled.
                from harness.env.wheelhouse import cached_host_env

                host = cached_host_env(img.name, self.root / img.context, self.env, self.cache_dir / "wheelhouse")
                if host is not None:
                    built = probes.image(self.client, image_tag(img, build_inputs(img, self.root, host).digest()))
        if built is not None and built.state == "ok":
            return Need(name=name, probe=Probe(state="ok", detail=f"built for the current inputs: {built.detail}"))
        packages = self.packages(img)
        detail = "not built for the current inputs: a run builds it"
        if packages is None:
            return Need(name=name, probe=Probe(state="info", detail=f"{detail} (apt from the Debian mirror)"))
        state: State = "missing" if packages.state == "missing" else "info"
        fix = f"see 'pip packages of a {img.name} build'" if state == "missing" else ""
        return Need(name=name, probe=Probe(state=state, detail=f"{detail}; see its pip packages"), fix=fix)

    def build_packages(self, img: Image) -> list[Need]:
        """The row for an image build's pip packages (wheelhouse, index): needed now when the image is
        not built, for information (a rebuild) when it is."""
        packages = self.packages(img)
        if packages is None:
            return []
        built = self.image(img).state == "ok"
        state: State = "info" if built and packages.state == "missing" else packages.state
        detail = packages.probe.detail + (" (needed only to rebuild it)" if built and state != "ok" else "")
        return [
            Need(name=f"pip packages of a {img.name} build", probe=Probe(state=state, detail=detail), fix=packages.fix)
        ]

    def packages(self, img: Image) -> Need | None:
        """Whether a build of `img` can install its pinned Python packages (None: it installs none)."""
        from harness.env.image_context import declared_args, env_build_args, normalize_name, wheel_pin, wheelhouse_dirs

        ctx = self.root / img.context
        if img.name not in WHEEL_SETS or not (ctx / "wheelhouse").is_dir():
            return None
        args = env_build_args(declared_args(ctx / "Dockerfile"), self.env.build_args)
        files = wheel_set(img.name, ctx, torch_build=args.get("TORCH_BUILD", "cuda")).files
        pins = _pins(ctx, tuple(name for name, _ in files), normalize_name)
        have: set[tuple[str, str]] = set()
        fix = _wheelhouse_fix(img.context)
        try:
            dirs = wheelhouse_dirs(self.env.wheelhouse)
        except HarnessError as e:
            return Need(
                name="packages", probe=Probe(state="missing", detail=e.one_line()), fix=_wheelhouse_fix(img.context)
            )
        if not dirs and self.env.host_wheelhouse:
            return Need(
                name="packages",
                probe=Probe(
                    state="ok",
                    detail="the host's pip fills the pinned wheels at the image step and the image installs "
                    "offline (ANT_KPI_HOST_WHEELHOUSE=yes); cached under <cache>/wheelhouse once filled",
                ),
                fix="ahead of time: ant-kpi images wheelhouse " + img.name,
            )
        for d in dirs:
            have |= {p for p in (wheel_pin(w.name) for w in d.glob("*.whl")) if p in pins}
        house = f"wheelhouse {len(have)} of {len(pins)} pinned wheels" if dirs else "no wheelhouse (ANT_KPI_WHEELHOUSE)"
        if args.get("WHEELHOUSE_ONLY") == "yes":
            if len(have) == len(pins):
                return Need(name="packages", probe=Probe(state="ok", detail=f"{house}, no index (WHEELHOUSE_ONLY=yes)"))
            missing = sorted(f"{n}=={v}" for n, v in pins - have)[:4]
            return Need(
                name="packages",
                probe=Probe(state="missing", detail=f"{house} (WHEELHOUSE_ONLY=yes); lacks {', '.join(missing)}"),
                fix=fix,
            )
        index = self.index(args.get("PYPI_INDEX_URL") or PYPI)
        if index.state == "ok":
            return Need(name="packages", probe=Probe(state="ok", detail=f"{house}; index: {index.detail}"))
        if dirs and len(have) == len(pins):
            # pip still asks the index for every package and retries each one: slow, but it builds.
            return Need(
                name="packages",
                probe=Probe(state="ok", detail=f"{house}; index: {index.detail}; pip retries it for every package"),
                fix="set ANT_KPI_BUILD_ARG_WHEELHOUSE_ONLY=yes so pip does not wait on the index",
            )
        return Need(
            name="packages",
            probe=Probe(state="missing", detail=f"{house}; index: {index.detail}"),
            fix=_wheelhouse_fix(img.context),
        )

    def index(self, url: str) -> Probe:
        def make() -> Probe:
            hosts = probes.labelled_images(self.client, ("cuda-train", "tvm-npu")) if self.client is not None else []
            return probes.index_reachable(url, self.client, hosts)

        return self._once(("index", url), make)

    # -- sources ------------------------------------------------------------------------------------

    def source(self, name: str, paths: tuple[str, ...]) -> Need:
        """The pinned source checked out as a run would (only `paths` when given), into the shared cache."""
        return self._once(("source", name, paths), lambda: self._source(name, paths))

    def _source(self, name: str, paths: tuple[str, ...]) -> Need:
        from harness.env.sources import checkout

        src = self.manifest.sources[name]
        label = f"source {name}" + (f" ({', '.join(paths)})" if paths else "")
        try:
            co = checkout(src, self.cache_dir / "sources", override=self.overrides.get(name), paths=paths)
        except HarnessError as e:
            what, _, fix = str(e).partition(" — fix: ")
            return Need(name=label, probe=Probe(state="missing", detail=what), fix=fix)
        at = co.commit[:12] if co.commit else "used in place (not a git checkout)"
        return Need(name=label, probe=Probe(state="ok", detail=f"{at} from {co.origin or co.url}"))

    def source_path(self, name: str, paths: tuple[str, ...]) -> Path | None:
        need = self.source(name, paths)
        if need.state != "ok":
            return None
        from harness.env.sources import checkout

        return checkout(
            self.manifest.sources[name], self.cache_dir / "sources", override=self.overrides.get(name), paths=paths
        ).path


def _pins(ctx: Path, files: tuple[str, ...], normalize: Callable[[str], str]) -> set[tuple[str, str]]:
    import re

    pin = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;#]+)")
    out = set()
    for f in files:
        p = ctx / f
        if p.is_file():
            for line in p.read_text(encoding="utf-8").splitlines():
                m = pin.match(line.strip())
                if m:
                    out.add((normalize(m.group(1)), m.group(2).lower()))
    return out


# ------------------------------------------------------------------------------------------------
# Per KPI
# ------------------------------------------------------------------------------------------------


def plan_needs(m: Machine, plan: KpiPlan) -> list[Need]:
    """What the plan's own steps need: the engine and base image, each image, each source, QEMU."""
    steps = plan.steps
    images = [s.params["image"] for s in steps if s.kind == "image"]
    needs: list[Need] = []
    if images or any(s.where == "image" for s in steps):
        needs.append(m.engine())
        base = m.manifest.images[images[0]].base if images else "ant-kpi/debian:bookworm"
        needs.append(m._once(("base", base), lambda: _base(m, base)))
    for name in dict.fromkeys(images):
        needs.append(m.image(m.manifest.images[name]))
        needs += m.build_packages(m.manifest.images[name])
    for s in steps:
        if s.kind == "source":
            needs.append(m.source(s.params["source"], tuple(s.params.get("paths", ()))))
    arches = sorted({m.manifest.targets[s.target].qemu for s in steps if s.where == "qemu" and s.target})
    for qemu in arches:
        needs.append(
            Need(
                name=f"binfmt {qemu}",
                probe=probes.binfmt(qemu),
                fix=f"apt-get install qemu-user-static binfmt-support; update-binfmts --enable {qemu}",
            )
        )
    return needs


def _base(m: Machine, tag: str) -> Need:
    probe = probes.image(m.client, tag) if m.client is not None else Probe(state="missing", detail="no Docker engine")
    return Need(name="offline base image", probe=probe, fix="ant-kpi images bootstrap-base")


def env_path(name: str, value: str, what: str, fix: str) -> Need:
    if not value:
        return Need(name=what, probe=Probe(state="missing", detail=f"{name} is not set"), fix=fix)
    ok = Path(value).expanduser().exists()
    detail = f"{name}={value}" + ("" if ok else " does not exist")
    return Need(name=what, probe=Probe(state="ok" if ok else "missing", detail=detail), fix="" if ok else fix)


def ml_files(m: Machine, names: tuple[str, ...]) -> list[Need]:
    """KPIs 3 and 4: ANT's files in test/mlbench (a mirror may omit files of 4 MB and more)."""
    from harness.kpis.common.tflite_files import lfs_pointer

    out = []
    for name in names:
        rel = m.manifest.workloads[name].path
        label = f"ANT {rel}"
        # Each file on its own: a mirror without large files lacks some and has others.
        root = m.source_path("ant", (rel,))
        if root is None:
            src = m.source("ant", (rel,))
            lacks = src.probe.detail.split(" lacks ", 1)
            what = f"the ANT mirror lacks {lacks[1]}" if len(lacks) == 2 else src.probe.detail
            out.append(Need(name=label, probe=Probe(state="missing", detail=what), fix=src.fix or _CLONE_FIX))
        elif not (root / rel).is_file() or lfs_pointer(root / rel):
            what = "a Git LFS pointer" if (root / rel).is_file() else "absent"
            out.append(
                Need(
                    name=label,
                    probe=Probe(state="missing", detail=f"{what} in the ANT checkout"),
                    fix=_CLONE_FIX,
                )
            )
        else:
            size = (root / rel).stat().st_size
            out.append(Need(name=label, probe=Probe(state="ok", detail=f"{size:,} bytes")))
    return out


def baseline(m: Machine) -> Need:
    """KPIs 3 and 4: the baseline .tflite, given locally, already pinned in the cache, or downloadable."""
    wl = m.manifest.workloads["mobilenet_v2_1.0_224"]
    fix = f"set ANT_KPI_BASELINE_TFLITE=/path/to/{wl.member} (or the .tgz {wl.url})"
    if m.env.baseline_tflite:
        return env_path("ANT_KPI_BASELINE_TFLITE", m.env.baseline_tflite, f"baseline {wl.member}", fix)
    cached = sorted((m.cache_dir / "downloads").rglob(wl.member)) if (m.cache_dir / "downloads").is_dir() else []
    if cached:
        return Need(name=f"baseline {wl.member}", probe=Probe(state="ok", detail=f"in the cache: {cached[0]}"))
    probe = probes.url_reachable(wl.url)
    if probe.state == "ok":
        probe = Probe(state="ok", detail=f"downloadable: {probe.detail}")
    return Need(name=f"baseline {wl.member}", probe=probe, fix=fix)


def dense_top1(m: Machine) -> Need:
    """KPI 3: the dense Top-1 is measured in cuda-train (validate:dense), unless given as an override."""
    if m.env.dense_top1:
        return Need(
            name="dense Top-1",
            probe=Probe(
                state="info", detail=f"ANT_KPI_DENSE_TOP1={m.env.dense_top1}: an override, marked in the report"
            ),
        )
    img = m.image(m.manifest.images["cuda-train"])
    detail = "measured by validate:dense (main.py --evaluate) in cuda-train"
    if img.state == "missing":
        return Need(
            name="dense Top-1", probe=Probe(state="missing", detail=f"{detail}: needs image cuda-train"), fix=img.fix
        )
    return Need(name="dense Top-1", probe=Probe(state="ok", detail=detail))


def measure_training(m: Machine) -> list[Need]:
    """KPIs 3, 5 and 8 in measure mode: ImageNet and a GPU engine."""
    data = m.env.imagenet or m.env.engine_data
    name = "ANT_KPI_IMAGENET" if m.env.imagenet else "ANT_KPI_ENGINE_DATA"
    gpu = probes.which("nvidia-smi")
    return [
        env_path(
            name, data, "ImageNet (train/, val/)", "set ANT_KPI_IMAGENET=/path (or ANT_KPI_ENGINE_DATA on a GPU engine)"
        ),
        Need(
            name="GPU",
            probe=gpu
            if gpu.state == "ok" or m.env.docker_host
            else Probe(state="missing", detail="no nvidia-smi here"),
            fix="train on a GPU server's engine: DOCKER_HOST=ssh://user@gpu-server",
        ),
    ]


def npu_needs(m: Machine) -> list[Need]:
    """KPI 7: the tvm-npu image (named, built, or buildable when asked) and what its testcases need."""
    from harness.kpis.npus.tvm import testcase_requirements

    img = m.manifest.images["tvm-npu"]
    named = m.env.tvm_npu_image
    out: list[Need] = []
    if named:
        probe = probes.image(m.client, named) if m.client is not None else Probe(state="missing", detail="no engine")
        tag = named if probe.state == "ok" else ""
        out.append(
            Need(name="image tvm-npu", probe=probe, fix="ANT_KPI_TVM_NPU_IMAGE must name an image on the engine")
        )
    else:
        need = m.image(img)
        built = need.state == "ok" and need.probe.detail.startswith("built")
        tag = need.probe.detail.split(": ", 1)[1].split(" ", 1)[0] if built else ""
        if not built and not m.env.build_tvm_npu_image:
            need = Need(
                name=need.name,
                probe=Probe(state="missing", detail=f"{need.probe.detail}; a KPI 7 run builds it only when asked"),
                fix="set ANT_KPI_BUILD_TVM_NPU_IMAGE=1 (a build of ≈ 45 min here)"
                + (f"; {need.fix}" if need.fix else ""),
            )
        out.append(need)
    versions: dict[str, str] = {}
    if tag and m.client is not None:
        from harness.env.images import read_tool_versions

        versions = read_tool_versions(m.client, tag)
    for url in VTA_DOWNLOADS:
        probe = m.index(url)
        out.append(
            Need(
                name=f"VTA testcase download ({urlparse(url).hostname})",
                probe=probe,
                fix=""
                if probe.state == "ok"
                else "the testcase downloads its model at run time: give the engine's "
                "containers that access (a trusted proxy CA or a direct route)",
            )
        )
    out.append(_gemmini_tree(m))
    for npu in ("VTA", "Ethos-U55", "Gemmini"):
        lacking = testcase_requirements(npu, versions) if tag else []
        if not tag:
            out.append(
                Need(name=f"{npu} testcase tools", probe=Probe(state="info", detail="known once the image exists"))
            )
        elif lacking:
            out.append(  # the image lacks a tool
                Need(
                    name=f"{npu} testcase",
                    probe=Probe(state="missing", detail="; ".join(w for w, _ in lacking)),
                    fix=lacking[0][1],
                )
            )
        else:
            out.append(Need(name=f"{npu} testcase tools", probe=Probe(state="ok", detail="the image has them")))
    out.append(
        Need(
            name="ethos-u-vela (Vela compile, static fidelity: shown, never counted)",
            probe=probes.module("ethosu"),
            fix="pip install ethos-u-vela",
        )
    )
    return out


def _gemmini_tree(m: Machine) -> Need:
    """The fork's 3rdparty/gemmini: without it the Gemmini back end is built OFF."""
    from harness.kpis.npus.tvm import GEMMINI_DIR

    root = m.source_path("ant_model_db", ("compiler",))
    name = f"Gemmini back end ({GEMMINI_DIR} of the fork)"
    if root is None:
        return Need(name=name, probe=Probe(state="missing", detail="the ANT-Model-DB checkout failed (above)"))
    tree = root / "compiler" / GEMMINI_DIR
    if tree.is_dir() and any(tree.iterdir()):
        return Need(name=name, probe=Probe(state="ok", detail=f"{GEMMINI_DIR} has its sources"))
    return Need(
        name=name,
        probe=Probe(state="missing", detail=f"{GEMMINI_DIR} is empty (no recorded commit): Gemmini is built OFF"),
        fix="--source ant_model_db=PATH: a checkout whose compiler/3rdparty/gemmini holds ucb-bar/gemmini",
    )


# -- a labgrid lab ---------------------------------------------------------------------------------


def lab_needs(m: Machine) -> list[Need]:
    """For an inventory whose boards name labgrid places: the client, each coordinator, each place."""
    return list(m._once(("labgrid",), lambda: _lab_needs(m)))


def _lab_needs(m: Machine) -> list[Need]:
    from harness.env.lab import labgrid
    from harness.env.lab.inventory import inventory_path, load_boards
    from harness.errors import HarnessError

    path = inventory_path(None, env=m.env)
    if not path.exists():
        return []
    try:
        boards = load_boards(path, targets={t.name: t.arch for t in m.manifest.targets.values()})
    except HarnessError as e:
        return [Need(name="board inventory", probe=Probe(state="missing", detail=e.one_line()), fix=f"fix {path}")]
    lab = [b for b in boards.values() if b.labgrid]
    if not lab:
        return []
    try:
        binary = labgrid.client_path()
    except HarnessError as e:
        return [
            Need(
                name="labgrid client (boards with a place)",
                probe=Probe(state="missing", detail=str(e)),
                fix=labgrid.INSTALL,
            )
        ]
    needs = [Need(name="labgrid client (boards with a place)", probe=Probe(state="ok", detail=binary))]
    for coordinator in sorted({b.coordinator for b in lab}):
        client = labgrid.Client(coordinator=coordinator, username=labgrid.run_username("doctor"), binary=binary)
        try:
            places = client.places()
        except HarnessError as e:
            needs.append(
                Need(
                    name=f"labgrid coordinator {client.where()}",
                    probe=Probe(state="missing", detail=str(e)),
                    fix="start labgrid-coordinator there, or set coordinator in boards.toml / LG_COORDINATOR",
                )
            )
            continue
        for b in (b for b in lab if b.coordinator == coordinator):
            match = [
                p for p in places if p.name == b.place or (b.reserve and all(p.tags.get(k) == v for k, v in b.reserve))
            ]
            held = ", ".join(f"{p.name} held by {p.acquired}" for p in match if p.acquired)
            detail = f"{len(match)} place(s): {', '.join(p.name for p in match)}" + (f"; {held}" if held else "")
            needs.append(
                Need(
                    name=f"board {b.name}: {b.address}",
                    probe=Probe(state="ok", detail=detail) if match else Probe(state="missing", detail="no such place"),
                    fix="" if match else "create the place and add-match its NetworkService (labgrid-client create)",
                )
            )
    return needs
