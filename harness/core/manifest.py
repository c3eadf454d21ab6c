"""The KPI manifest (kpis.toml): strict loading into frozen dataclasses.

Every problem is reported as one line naming the file, the key path and what is wrong; the
loader never lets a traceback through (ManifestError → exit code 2).
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal, get_args

from harness.core.fsio import read_regular
from harness.core.strict_toml import StrictTable, did_you_mean
from harness.errors import ManifestError
from harness.options import MAX_REPEATS

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

SCHEMA_VERSION: Final = 1
DEFAULT_MANIFEST: Final = "kpis.toml"

Arch = Literal["armhf", "arm64", "x86_64"]
Direction = Literal["lower", "higher"]
Statistic = Literal["reduction_pct", "overhead_pct", "speedup"]
TargetKind = Literal["better_than_baseline", "at_most", "at_least", "count_at_least", "report"]
Fidelity = Literal["board", "simulator", "emulated", "host", "static"]
WorkloadKind = Literal["js", "tflite", "binary", "data"]

FIDELITIES: Final[tuple[str, ...]] = get_args(Fidelity)
_SHA_RE: Final = re.compile(r"^[0-9a-f]{40}$")
_ID_RE: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")


@dataclass(frozen=True, kw_only=True)
class Defaults:
    repeats: int = 5
    smoke_repeats: int = 1
    warmup: int = 1
    timeout_s: float = 1800.0


@dataclass(frozen=True, kw_only=True)
class Source:
    name: str
    url: str
    commit: str
    submodules: bool = False
    notes: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class Image:
    name: str
    context: str
    base: str
    purpose: str = ""


@dataclass(frozen=True, kw_only=True)
class Target:
    name: str
    arch: Arch
    triple: str
    qemu: str = ""
    description: str = ""


@dataclass(frozen=True, kw_only=True)
class Fix:
    args: tuple[str, ...]
    reason: str


@dataclass(frozen=True, kw_only=True)
class Derive:
    """A file the upstream tree lacks, derived from another of its files by dropping lines."""

    path: str
    from_: str
    drop_matching: str
    reason: str


@dataclass(frozen=True, kw_only=True)
class Overlay:
    """Replace a directory of the build's source with another pinned source (e.g. dep/iotjs)."""

    path: str
    source: str
    reason: str


@dataclass(frozen=True, kw_only=True)
class Build:
    name: str
    source: str
    image: str
    artefact: str
    argv: Mapping[str, tuple[str, ...]]
    output: Mapping[str, str]
    fixes: tuple[Fix, ...] = ()
    derive: tuple[Derive, ...] = ()
    overlay: Overlay | None = None
    unsupported: Mapping[str, str] = field(default_factory=dict)
    paths: tuple[str, ...] = ()  # only these paths of the source are checked out (empty: all)

    def full_argv(self, target: str) -> tuple[str, ...]:
        """The upstream command plus every fix, as it is run."""
        extra = tuple(a for fix in self.fixes for a in fix.args)
        return self.argv[target] + extra


@dataclass(frozen=True, kw_only=True)
class Workload:
    name: str
    kind: WorkloadKind
    source: str = ""
    path: str = ""
    url: str = ""
    member: str = ""
    sha256: str = ""
    notes: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class Metric:
    name: str
    unit: str
    direction: Direction
    description: str = ""


@dataclass(frozen=True, kw_only=True)
class Compare:
    metric: str
    baseline: str
    candidate: str
    statistic: Statistic
    # With a bound target (KPI 3): a PASS also needs ok rows of both the baseline and the candidate
    # at one of these fidelities; the comparison is then shown beside the bound.
    required_at: tuple[Fidelity, ...] = ()
    # The metric compared at emulated fidelity when it differs (KPI 1: guest-only PSS, because the
    # emulator's own pages are the same for both runtimes and would shrink the difference).
    emulated_metric: str = ""

    def metric_at(self, fidelity: str) -> str:
        """The metric compared at `fidelity`."""
        return self.emulated_metric if fidelity == "emulated" and self.emulated_metric else self.metric


@dataclass(frozen=True, kw_only=True)
class KpiTarget:
    kind: TargetKind
    metric: str = ""
    value: float | None = None
    unit: str = ""
    of: tuple[str, ...] = ()

    def describe(self, compare: Compare | None = None, lang: str = "en") -> str:
        """The target in words, in English or (lang "ko") Korean."""
        ko = lang == "ko"
        if self.kind == "better_than_baseline":
            if compare is not None:
                if ko:
                    return f"{compare.baseline} 대비 {compare.candidate} 개선 ({compare.metric})"
                return f"{compare.candidate} better than {compare.baseline} ({compare.metric})"
            return "기준 대비 ANT 개선" if ko else "ANT better than baseline"
        if self.kind == "at_most":
            bound = f"{self.metric} ≤ {self.value:g} {self.unit}".rstrip()
            return bound + _required_words(compare, ko)
        if self.kind == "at_least":
            return f"{self.metric} ≥ {self.value:g} {self.unit}".rstrip() + _required_words(compare, ko)
        if self.kind == "count_at_least":
            if ko:
                return f"목록 {len(self.of)}개 중 {self.value:g}개 이상 통과"
            return f"≥ {self.value:g} of {len(self.of)} listed pass"
        return "보고 (수치 목표 없음)" if ko else "report (no numeric target set)"


def _required_words(compare: Compare | None, ko: bool) -> str:
    """What a bound target also needs from its comparison (KPI 3: board timings of both models)."""
    if compare is None or not compare.required_at:
        return ""
    where, c = "/".join(compare.required_at), compare
    if ko:
        return f", {c.baseline}와 {c.candidate}의 {where} {c.metric} 측정 필요 ({c.statistic} 병기)"
    return f", with {where} {c.metric} of both {c.baseline} and {c.candidate} ({c.statistic} beside)"


@dataclass(frozen=True, kw_only=True)
class Variant:
    name: str
    label: str = ""
    build: str = ""


@dataclass(frozen=True, kw_only=True)
class Kpi:
    id: str
    number: int
    session: str
    title_ko: str
    title_en: str
    procedure: str
    metrics: tuple[Metric, ...]
    target: KpiTarget
    verdict_fidelity: tuple[Fidelity, ...]
    variants: tuple[Variant, ...]
    workloads: tuple[str, ...]
    targets: tuple[str, ...]
    compare: Compare | None = None
    repeats: int | None = None
    smoke_repeats: int | None = None  # a KPI whose smoke needs several interleaved legs (KPI 2)
    tools: tuple[str, ...] = ()
    images: tuple[str, ...] = ()

    def metric(self, name: str) -> Metric:
        for m in self.metrics:
            if m.name == name:
                return m
        raise KeyError(name)


@dataclass(frozen=True, kw_only=True)
class Manifest:
    path: Path
    schema: int
    defaults: Defaults
    sources: Mapping[str, Source]
    images: Mapping[str, Image]
    targets: Mapping[str, Target]
    builds: Mapping[str, Build]
    workloads: Mapping[str, Workload]
    kpis: tuple[Kpi, ...]

    def kpi(self, key: str) -> Kpi:
        """Find a KPI by id, number or session name."""
        for k in self.kpis:
            if key in (k.id, str(k.number), k.session):
                return k
        choices = [k.id for k in self.kpis] + [k.session for k in self.kpis]
        raise ManifestError(self.path, "kpis", f"no KPI {key!r}{did_you_mean(key, choices)}")

    def repeats_for(self, kpi: Kpi, mode: str) -> int:
        if mode == "smoke":
            return kpi.smoke_repeats if kpi.smoke_repeats is not None else self.defaults.smoke_repeats
        return kpi.repeats if kpi.repeats is not None else self.defaults.repeats


def _per_target(r: StrictTable, name: str, conv: Callable[[StrictTable, str], Any]) -> dict[str, Any]:
    t = r.table_(name, required=False)
    if t is None:
        return {}
    out = {k: conv(t, k) for k in t.table}
    t.done()
    return out


def _read_source(name: str, r: StrictTable) -> Source:
    commit = r.str_("commit")
    if not _SHA_RE.match(commit):
        raise ManifestError(r.path, r._sub("commit"), f"{commit!r} is not a full commit SHA (40 lowercase hex digits)")
    s = Source(
        name=name,
        url=r.str_("url"),
        commit=commit,
        submodules=r.bool_("submodules"),
        notes=r.str_list("notes", required=False),
    )
    r.done()
    return s


def _read_build(name: str, r: StrictTable) -> Build:
    argv = _per_target(r, "argv", lambda t, k: t.str_list(k))
    output = _per_target(r, "output", lambda t, k: t.str_(k))
    unsupported = _per_target(r, "unsupported", lambda t, k: t.str_(k))
    fixes = []
    for fr in r.tables("fixes", required=False):
        fixes.append(Fix(args=fr.str_list("args"), reason=fr.str_("reason")))
        fr.done()
    derive = []
    for dr in r.tables("derive", required=False):
        derive.append(
            Derive(
                path=dr.str_("path"),
                from_=dr.str_("from"),
                drop_matching=dr.str_("drop_matching"),
                reason=dr.str_("reason"),
            )
        )
        dr.done()
    overlay = None
    ovr = r.table_("overlay", required=False)
    if ovr is not None:
        overlay = Overlay(path=ovr.str_("path"), source=ovr.str_("source"), reason=ovr.str_("reason"))
        ovr.done()
    b = Build(
        name=name,
        source=r.str_("source"),
        image=r.str_("image"),
        artefact=r.str_("artefact"),
        argv=argv,
        output=output,
        fixes=tuple(fixes),
        derive=tuple(derive),
        overlay=overlay,
        unsupported=unsupported,
        paths=r.str_list("paths", required=False),
    )
    r.done()
    for t in argv:
        if t not in output:
            raise ManifestError(r.path, f"{r.key}.output", f"has no entry for target {t!r} named in argv")
    return b


def _read_kpi(r: StrictTable) -> Kpi:
    metrics = []
    for mr in r.tables("metrics"):
        metrics.append(
            Metric(
                name=mr.str_("name"),
                unit=mr.str_("unit"),
                direction=mr.choice("direction", get_args(Direction)),  # type: ignore[arg-type]
                description=mr.str_("description", required=False),
            )
        )
        mr.done()
    if not metrics:
        raise ManifestError(r.path, r._sub("metrics"), "needs at least one metric")
    tr = r.table_("target")
    assert tr is not None
    target = KpiTarget(
        kind=tr.choice("kind", get_args(TargetKind)),  # type: ignore[arg-type]
        metric=tr.str_("metric", required=False),
        value=tr.float_("value", required=False),
        unit=tr.str_("unit", required=False),
        of=tr.str_list("of", required=False),
    )
    tr.done()
    if target.kind in ("at_most", "at_least", "count_at_least") and target.value is None:
        raise ManifestError(r.path, r._sub("target.value"), f"required for target kind {target.kind!r}")
    if target.kind in ("at_most", "at_least") and not target.metric:
        raise ManifestError(r.path, r._sub("target.metric"), f"required for target kind {target.kind!r}")
    compare = None
    cr = r.table_("compare", required=False)
    if cr is not None:
        required_at = cr.str_list("required_at", required=False)
        for i, f in enumerate(required_at):
            if f not in FIDELITIES:
                raise ManifestError(
                    r.path,
                    f"{r._sub('compare.required_at')}[{i}]",
                    f"{f!r} is not a fidelity ({', '.join(FIDELITIES)}){did_you_mean(f, FIDELITIES)}",
                )
        compare = Compare(
            metric=cr.str_("metric"),
            baseline=cr.str_("baseline"),
            candidate=cr.str_("candidate"),
            statistic=cr.choice("statistic", get_args(Statistic)),  # type: ignore[arg-type]
            required_at=required_at,  # type: ignore[arg-type]
            emulated_metric=cr.str_("emulated_metric", required=False),
        )
        cr.done()
    if target.kind == "better_than_baseline" and compare is None:
        raise ManifestError(r.path, r._sub("compare"), "required when target.kind is 'better_than_baseline'")
    variants = []
    for vr in r.tables("variants"):
        variants.append(
            Variant(
                name=vr.str_("name"), label=vr.str_("label", required=False), build=vr.str_("build", required=False)
            )
        )
        vr.done()
    fid = r.str_list("verdict_fidelity")
    for i, f in enumerate(fid):
        if f not in FIDELITIES:
            raise ManifestError(
                r.path,
                f"{r._sub('verdict_fidelity')}[{i}]",
                f"{f!r} is not a fidelity ({', '.join(FIDELITIES)}){did_you_mean(f, FIDELITIES)}",
            )
    repeats = (
        r.int_("repeats", required=False, default=-1, minimum=1, maximum=MAX_REPEATS) if "repeats" in r.table else None
    )
    smoke_repeats = (
        r.int_("smoke_repeats", required=False, default=-1, minimum=1, maximum=MAX_REPEATS)
        if "smoke_repeats" in r.table
        else None
    )
    k = Kpi(
        id=r.str_("id"),
        number=r.int_("number", minimum=1),
        session=r.str_("session"),
        title_ko=r.str_("title_ko"),
        title_en=r.str_("title_en"),
        procedure=r.str_("procedure"),
        metrics=tuple(metrics),
        target=target,
        verdict_fidelity=fid,  # type: ignore[arg-type]
        variants=tuple(variants),
        workloads=r.str_list("workloads"),
        targets=r.str_list("targets"),
        compare=compare,
        repeats=repeats,
        smoke_repeats=smoke_repeats,
        tools=r.str_list("tools", required=False),
        images=r.str_list("images", required=False),
    )
    r.done()
    return k


def load_manifest(path: str | Path = DEFAULT_MANIFEST) -> Manifest:
    """Load and validate a manifest; any problem raises ManifestError (one line, exit 2)."""
    p = Path(path)
    try:
        raw = read_regular(p)
    except FileNotFoundError:
        raise ManifestError(p, "", "no such file (pass the manifest path, or run from the project root)") from None
    except OSError as e:
        raise ManifestError(p, "", f"cannot read: {e.strerror}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ManifestError(p, "", "is not UTF-8 text") from None
    except tomllib.TOMLDecodeError as e:
        raise ManifestError(p, "", f"TOML syntax error: {e}") from None
    return parse_manifest(data, p)


def parse_manifest(data: dict[str, Any], path: Path) -> Manifest:
    top = StrictTable(path, "", data)
    schema = top.int_("schema", minimum=1)
    if schema != SCHEMA_VERSION:
        raise ManifestError(path, "schema", f"version {schema} is not supported (this harness reads {SCHEMA_VERSION})")

    defaults = Defaults()
    dr = top.table_("defaults", required=False)
    if dr is not None:
        defaults = Defaults(
            repeats=dr.int_("repeats", required=False, default=defaults.repeats, minimum=1, maximum=MAX_REPEATS),
            smoke_repeats=dr.int_(
                "smoke_repeats", required=False, default=defaults.smoke_repeats, minimum=1, maximum=MAX_REPEATS
            ),
            warmup=dr.int_("warmup", required=False, default=defaults.warmup),
            timeout_s=dr.float_("timeout_s", required=False) or defaults.timeout_s,
        )
        dr.done()

    sources = {n: _read_source(n, r) for n, r in top.named_tables("sources")}
    images = {}
    for n, r in top.named_tables("images"):
        images[n] = Image(
            name=n, context=r.str_("context"), base=r.str_("base"), purpose=r.str_("purpose", required=False)
        )
        r.done()
    targets = {}
    for n, r in top.named_tables("targets"):
        targets[n] = Target(
            name=n,
            arch=r.choice("arch", get_args(Arch)),  # type: ignore[arg-type]
            triple=r.str_("triple"),
            qemu=r.str_("qemu", required=False),
            description=r.str_("description", required=False),
        )
        r.done()
    builds = {n: _read_build(n, r) for n, r in top.named_tables("builds", required=False)}
    workloads = {}
    for n, r in top.named_tables("workloads"):
        workloads[n] = Workload(
            name=n,
            kind=r.choice("kind", get_args(WorkloadKind)),  # type: ignore[arg-type]
            source=r.str_("source", required=False),
            path=r.str_("path", required=False),
            url=r.str_("url", required=False),
            member=r.str_("member", required=False),
            sha256=r.str_("sha256", required=False),
            notes=r.str_list("notes", required=False),
        )
        r.done()
        if not (workloads[n].source and workloads[n].path) and not workloads[n].url:
            raise ManifestError(path, f"workloads.{n}", "needs either source + path or url")
    kpi_readers = top.tables("kpis")
    kpis = tuple(_read_kpi(r) for r in kpi_readers)
    top.done()

    m = Manifest(
        path=path,
        schema=schema,
        defaults=defaults,
        sources=sources,
        images=images,
        targets=targets,
        builds=builds,
        workloads=workloads,
        kpis=kpis,
    )
    _check_references(m)
    return m


def _ref(path: Path, key: str, kind: str, name: str, known: Mapping[str, object]) -> None:
    if name not in known:
        raise ManifestError(path, key, f"refers to undefined {kind} {name!r}{did_you_mean(name, list(known))}")


def _check_references(m: Manifest) -> None:
    p = m.path
    for b in m.builds.values():
        _ref(p, f"builds.{b.name}.source", "source", b.source, m.sources)
        _ref(p, f"builds.{b.name}.image", "image", b.image, m.images)
        for t in list(b.argv) + list(b.unsupported):
            _ref(p, f"builds.{b.name}.argv.{t}", "target", t, m.targets)
        if b.overlay is not None:
            _ref(p, f"builds.{b.name}.overlay.source", "source", b.overlay.source, m.sources)
    for w in m.workloads.values():
        if w.source:
            _ref(p, f"workloads.{w.name}.source", "source", w.source, m.sources)
    seen: dict[str, dict[object, int]] = {"id": {}, "number": {}, "session": {}}
    for i, k in enumerate(m.kpis):
        key = f"kpis[{i}]"
        for attr in ("id", "number", "session"):
            val = getattr(k, attr)
            if val in seen[attr]:
                raise ManifestError(p, f"{key}.{attr}", f"duplicate {attr} {val!r} (also kpis[{seen[attr][val]}])")
            seen[attr][val] = i
        for j, wname in enumerate(k.workloads):
            _ref(p, f"{key}.workloads[{j}]", "workload", wname, m.workloads)
        for j, t in enumerate(k.targets):
            _ref(p, f"{key}.targets[{j}]", "target", t, m.targets)
        for j, im in enumerate(k.images):
            _ref(p, f"{key}.images[{j}]", "image", im, m.images)
        for j, tool in enumerate(k.tools):
            _ref(p, f"{key}.tools[{j}]", "build", tool, m.builds)
        names = [v.name for v in k.variants]
        for j, v in enumerate(k.variants):
            if names.count(v.name) > 1:
                raise ManifestError(p, f"{key}.variants[{j}].name", f"duplicate variant {v.name!r}")
            if v.build:
                _ref(p, f"{key}.variants[{j}].build", "build", v.build, m.builds)
        metric_names = [mt.name for mt in k.metrics]
        if k.compare is not None:
            if k.compare.metric not in metric_names:
                raise ManifestError(
                    p,
                    f"{key}.compare.metric",
                    f"refers to undefined metric {k.compare.metric!r}{did_you_mean(k.compare.metric, metric_names)}",
                )
            em = k.compare.emulated_metric
            if em and em not in metric_names:
                raise ManifestError(
                    p,
                    f"{key}.compare.emulated_metric",
                    f"refers to undefined metric {em!r}{did_you_mean(em, metric_names)}",
                )
            for role in ("baseline", "candidate"):
                v = getattr(k.compare, role)
                if v not in names:
                    raise ManifestError(
                        p, f"{key}.compare.{role}", f"refers to undefined variant {v!r}{did_you_mean(v, names)}"
                    )
        if k.target.metric and k.target.metric not in metric_names:
            raise ManifestError(
                p,
                f"{key}.target.metric",
                f"refers to undefined metric {k.target.metric!r}{did_you_mean(k.target.metric, metric_names)}",
            )
