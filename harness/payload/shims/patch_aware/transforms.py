"""`transforms.get_mixup_cutmix` (torchvision references API, >= 0.16 keyword arguments).

The KPI command leaves --mixup-alpha and --cutmix-alpha at 0, where the function returns None
and batches are collated unchanged; other values fail loudly.
"""

from __future__ import annotations

from typing import Any


def get_mixup_cutmix(*, mixup_alpha: float, cutmix_alpha: float, num_categories: int, use_v2: bool) -> Any:
    if mixup_alpha <= 0 and cutmix_alpha <= 0:
        return None
    raise NotImplementedError(
        "mixup/cutmix are not supported by the ANT KPI harness stand-in for torchvision's transforms.py "
        f"(got --mixup-alpha {mixup_alpha}, --cutmix-alpha {cutmix_alpha})"
    )
