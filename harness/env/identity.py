"""Who ran a measurement: the identity of this machine, recorded in every row's provenance."""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any


def host_identity() -> dict[str, Any]:
    """Machine, kernel, CPU count and model, frequency governor and load averages of this host."""
    ident: dict[str, Any] = {
        "kind": "host",
        "machine": platform.machine(),
        "kernel": platform.release(),
        "cpus": os.cpu_count(),
    }
    try:
        cpu = next(
            ln.split(":", 1)[1].strip()
            for ln in Path("/proc/cpuinfo").read_text().splitlines()
            if ln.startswith("model name")
        )
        ident["cpu"] = cpu
    except (OSError, StopIteration):
        pass
    gov = Path("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor")
    if gov.exists():
        ident["governor"] = gov.read_text().strip()
    try:
        load = os.getloadavg()
        ident["load"] = [round(x, 2) for x in load]
    except OSError:
        pass
    return ident
