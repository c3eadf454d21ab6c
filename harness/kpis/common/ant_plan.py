"""The plan steps KPIs 2 and 6 share: where ANT runs (kept apart from ant_build, which plans must not import)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from harness.core.plan import PlanContext
    from harness.core.steps import Step


def ant_deploy(ctx: PlanContext, target: str, what: str, depends: Sequence[str]) -> Step:
    """Where ANT runs for KPIs 2 and 6: the build tree, in the image it was built in."""
    where, _ = ctx.run_where(target)
    if where == "board":
        return ctx.deploy(target, ["ant build tree (iotjs + native module .so files)", what], depends)
    t = ctx.manifest.targets[target]
    how = f"the kernel's binfmt_misc runs the {t.arch} binaries under {t.qemu}" if where == "qemu" else "natively"
    return ctx.step(
        id=f"deploy:{target}",
        kind="deploy",
        where="host",
        target=target,
        description=f"mount the ANT build tree for {target} at /src in the ant-build image, where its "
        f"native modules were linked ({how}); stage {what}",
        depends=tuple(depends),
        key_parts=(where,),
    )
