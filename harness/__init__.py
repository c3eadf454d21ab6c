"""ANT KPI harness: one reproducible command per KPI of the ANT framework evaluation."""

from __future__ import annotations

__version__ = "0.1.0"
