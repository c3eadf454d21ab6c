"""Expand a KPI of the manifest into its ordered steps: the dry run, and the runner's input.

Planning reads only the manifest and the container build contexts on disk: it contacts no Docker
daemon, no network and no board.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.core.manifest import Build, Image, Kpi, Manifest, Target
from harness.core.steps import Mode, Step, Where, step_key

# Where a run keeps each KPI's plan (plans/<kpi>.json): what ran, and what the mode left out.
PLANS_DIR = "plans"


@dataclass(frozen=True, kw_only=True)
class NotInMode:
    """A step of the seed procedure this mode does not plan: it cannot produce anything in this mode
    (not merely here), so it is listed, said why, and never counted as blocked."""

    id: str  # the step id it has in the mode that plans it
    what: str
    why: str
    planned_in: Mode  # the mode that plans it

    def line(self) -> str:
        return f"{self.id}: {self.what} — {self.why}; a {self.planned_in} run plans it"

    def to_dict(self) -> dict[str, str]:
        return {"id": self.id, "what": self.what, "why": self.why, "planned_in": self.planned_in}


@dataclass(frozen=True, kw_only=True)
class KpiPlan:
    kpi: Kpi
    mode: Mode
    targets: tuple[str, ...]
    steps: tuple[Step, ...]
    gaps: tuple[str, ...] = ()
    not_in_mode: tuple[NotInMode, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "kpi": self.kpi.id,
            "number": self.kpi.number,
            "session": self.kpi.session,
            "title_en": self.kpi.title_en,
            "title_ko": self.kpi.title_ko,
            "target": self.kpi.target.describe(self.kpi.compare),
            "verdict_fidelity": list(self.kpi.verdict_fidelity),
            "mode": self.mode,
            "targets": list(self.targets),
            "gaps": list(self.gaps),
            "not_in_mode": [n.to_dict() for n in self.not_in_mode],
            "steps": [s.to_dict() for s in self.steps],
        }


@dataclass(kw_only=True)
class PlanContext:
    """What a procedure needs to lay out its steps; it accumulates them in order."""

    manifest: Manifest
    kpi: Kpi
    mode: Mode
    targets: tuple[str, ...]
    project_root: Path
    # The key of an image step from its build context (env.images.context_digest, bound by the caller:
    # planning reads the context on disk but the core does not know how images are built).
    image_key: Callable[[Image], str]
    boards: Mapping[str, str] = field(default_factory=dict)  # target -> board name (measure mode)
    steps: list[Step] = field(default_factory=list)
    gaps: list[str] = field(default_factory=list)
    # id -> (position in steps, key): a step's dependencies are looked up, never searched for, so
    # planning stays linear in the number of steps (repeats × workloads × variants).
    _index: dict[str, tuple[int, str]] = field(default_factory=dict)
    not_in_mode: list[NotInMode] = field(default_factory=list)

    # -- step helpers ------------------------------------------------------------------------

    def add(self, step: Step) -> Step:
        if step.id in self._index:
            return step
        self._index[step.id] = (len(self.steps), step.key)
        self.steps.append(step)
        return step

    def skip_in_this_mode(self, id: str, what: str, why: str) -> None:
        """List a step the other mode plans and this one cannot do (see NotInMode)."""
        other: Mode = "measure" if self.mode == "smoke" else "smoke"
        if all(n.id != id for n in self.not_in_mode):
            self.not_in_mode.append(NotInMode(id=id, what=what, why=why, planned_in=other))

    def step(
        self, *, id: str, kind: str, where: Where, description: str, key_parts: Iterable[object] = (), **kw: Any
    ) -> Step:
        deps = tuple(kw.pop("depends", ()))
        after = tuple(kw.get("after", ()))
        # In plan order (the order the keys have always been hashed in), each dependency once.
        found = sorted({self._index[d] for d in (*deps, *after) if d in self._index})
        dep_keys = [key for _, key in found]
        # The KPI is not part of the key: a build shared by two KPIs is one cached build.
        key = step_key(id, list(key_parts), dep_keys, kw.get("argv", ()))
        return self.add(
            Step(
                id=id,
                kpi=self.kpi.id,
                kind=kind,  # type: ignore[arg-type]
                where=where,
                description=description,
                depends=deps,
                key=key,
                **kw,
            )
        )

    def source(self, name: str, *, paths: Sequence[str] = ()) -> Step:
        src = self.manifest.sources[name]
        subs = " + submodules at their recorded commits" if src.submodules else ""
        only = f" (only {', '.join(paths)})" if paths else ""
        return self.step(
            id=f"source:{name}" + (":" + ",".join(paths) if paths else ""),
            kind="source",
            where="host",
            description=f"check out {src.url} at {src.commit}{subs}{only}",
            key_parts=(src.url, src.commit, src.submodules, list(paths)),
            argv=("git", "checkout", "--detach", src.commit),
            inputs=(src.url,),
            outputs=(f"cache/src/{name}-{src.commit[:12]}",),
            notes=src.notes,
            params={"source": name, "paths": list(paths)},
        )

    def image(self, name: str) -> Step:
        img = self.manifest.images[name]
        return self.step(
            id=f"image:{name}",
            kind="image",
            where="host",
            description=f"build image {name} from {img.context} on base {img.base} "
            "(reused when its context hash is unchanged)",
            key_parts=(img.base, self.image_key(img)),
            inputs=(img.context, img.base),
            outputs=(f"ant-kpi/{name}:<context-hash>",),
            notes=(img.purpose,) if img.purpose else (),
            params={"image": name},
        )

    def build(self, build: Build, target: str) -> Step | None:
        """The build of `build` for `target`, with its source and image steps; None if unsupported."""
        if target in build.unsupported or target not in build.argv:
            why = build.unsupported.get(target, f"kpis.toml defines no build of {build.name} for {target}")
            self.gaps.append(f"{build.name} for {target}: {why}")
            return None
        src = self.source(build.source, paths=build.paths)
        deps = [src.id]
        notes = [f"fix {' '.join(f.args)}: {f.reason}" for f in build.fixes]
        notes += [f"derive {d.path} from {d.from_}: {d.reason}" for d in build.derive]
        if build.overlay is not None:
            ov = self.source(build.overlay.source)
            deps.append(ov.id)
            notes.append(f"overlay {build.overlay.path} ← source {build.overlay.source}: {build.overlay.reason}")
        img = self.image(build.image)
        deps.append(img.id)
        return self.step(
            id=f"build:{build.name}:{target}",
            kind="build",
            where="image",
            image=build.image,
            target=target,
            description=f"build {build.name} for {target} in image {build.image}",
            argv=build.full_argv(target),
            inputs=(f"source {build.source}",),
            outputs=(build.output[target], f"artefacts/sha256/…/{build.artefact}"),
            depends=tuple(deps),
            notes=tuple(notes),
            key_parts=([(d.path, d.from_, d.drop_matching) for d in build.derive], build.output[target]),
            params={"build": build.name},
        )

    # -- where measurements run ----------------------------------------------------------------

    def run_where(self, target: str) -> tuple[Where, str]:
        """(where, fidelity) of a measured run on `target` in this mode."""
        t: Target = self.manifest.targets[target]
        if self.mode == "measure" and (t.arch != "x86_64" or target in self.boards):
            return "board", "board"
        if t.qemu:
            return "qemu", "emulated"
        return "host", "host"

    def deploy(
        self,
        target: str,
        artefacts: Sequence[str],
        depends: Sequence[str],
        *,
        after: Sequence[str] = (),
        always: bool = False,
    ) -> Step:
        where, _ = self.run_where(target)
        t = self.manifest.targets[target]
        if where == "board":
            board = self.boards.get(target, f"<a {target} board from boards.toml>")
            desc = f"copy {', '.join(artefacts)} to {board} over SSH, sha256 verified"
        elif where == "qemu":
            desc = f"prepare a private {t.qemu} copy and a private {t.triple} sysroot; stage {', '.join(artefacts)}"
        else:
            desc = f"stage {', '.join(artefacts)} on the host"
        return self.step(
            id=f"deploy:{target}",
            kind="deploy",
            where=where if where != "qemu" else "host",
            target=target,
            description=desc,
            depends=tuple(depends),
            after=tuple(after),
            always=always,
            inputs=tuple(artefacts),
            key_parts=(where,),
        )

    def repeats(self) -> int:
        return self.manifest.repeats_for(self.kpi, self.mode)

    # -- the measure matrix and the tail every KPI shares -----------------------------------------

    def matrix(
        self, variants: Sequence[str], workloads: Sequence[str] = ("",), *, interleave: bool = True
    ) -> Iterator[tuple[int, str, str]]:
        """(repeat, workload, variant) in the order they are measured: repeats outermost, then
        workloads, then the variants, whose A/B order alternates per repeat (`interleaved`)."""
        for r in range(self.repeats()):
            for w in workloads:
                for v in interleaved(variants, r) if interleave else list(variants):
                    yield r, w, v

    def synthetic_data(self, description: str) -> Step:
        """The smoke runs' tiny synthetic ImageFolder (KPIs 3, 5 and 8)."""
        return self.step(
            id="data:synthetic",
            kind="fetch",
            where="host",
            description=description,
            outputs=("synth/train", "synth/val"),
        )

    def parse(self, id: str, description: str, **kw: Any) -> Step:
        """A parse step: by default run every time, so the measurements completed so far become rows."""
        kw.setdefault("always", True)
        return self.step(id=id, kind="parse", where="host", description=description, **kw)

    def evaluate(self, description: str, **kw: Any) -> Step:
        """The KPI's last step: its verdict from the rows, run every time."""
        return self.step(id="evaluate", kind="evaluate", where="host", always=True, description=description, **kw)

    def parse_steps(self) -> tuple[str, ...]:
        return tuple(s.id for s in self.steps if s.kind == "parse")


def interleaved(variants: Sequence[str], repeat: int) -> list[str]:
    """A/B order alternates per repeat so drift and warm-up hit both variants alike."""
    return list(variants) if repeat % 2 == 0 else list(reversed(variants))
