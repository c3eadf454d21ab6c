"""What the pinned upstream builds need on today's toolchains, for the report."""

from __future__ import annotations

from collections.abc import Sequence

from harness.core.manifest import Kpi, Manifest

BUILD_NOTES_HEADING = "## Upstream builds on today's toolchains"


def builds_of(manifest: Manifest, kpis: Sequence[Kpi]) -> list[str]:
    """Names of the builds the KPIs' variants and tools use, in manifest order."""
    used = {v.build for k in kpis for v in k.variants if v.build} | {t for k in kpis for t in k.tools}
    return [b for b in manifest.builds if b in used]


def build_notes_markdown(manifest: Manifest, kpis: Sequence[Kpi]) -> str:
    """A report section: per build, the upstream command, every extra flag and derived file, and why."""
    names = builds_of(manifest, kpis)
    if not names:
        return ""
    out = [
        BUILD_NOTES_HEADING,
        "",
        "The pinned sources date from 2017-2021; these are the changes the harness makes so they build "
        "with the pinned image's tools. Each is applied on top of the upstream command, never instead of it.",
        "",
    ]
    for name in names:
        b = manifest.builds[name]
        src = manifest.sources[b.source]
        out.append(f"### {name} ({src.url} @ `{src.commit[:12]}`)")
        out.append("")
        for target, argv in b.argv.items():
            out.append(f"- {target}: `{' '.join(argv)}`")
        for target, why in b.unsupported.items():
            out.append(f"- {target}: not built — {why}")
        for fix in b.fixes:
            out.append(f"- extra `{' '.join(fix.args)}`: {fix.reason}")
        for d in b.derive:
            out.append(f"- derived `{d.path}` from `{d.from_}`: {d.reason}")
        if b.overlay is not None:
            out.append(f"- `{b.overlay.path}` replaced by source {b.overlay.source}: {b.overlay.reason}")
        out.append("")
    return "\n".join(out)
