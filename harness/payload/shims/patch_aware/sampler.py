"""`sampler.RASampler` (torchvision references API): only used with --ra-sampler in distributed runs.

The KPI command does not pass --ra-sampler, so the stand-in refuses instead of sampling differently.
"""

from __future__ import annotations

from typing import Any


class RASampler:
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise NotImplementedError(
            "--ra-sampler (repeated augmentation) is not supported by the ANT KPI harness stand-in "
            "for torchvision's sampler.py"
        )
