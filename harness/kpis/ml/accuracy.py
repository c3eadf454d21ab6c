"""KPI 3's accuracy rows: the pruned model's Top-1, the dense model's Top-1 measured the same way (or
given as an override, and said so), and the accuracy loss between them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.core.runner import Run
from harness.core.steps import Step
from harness.errors import BadInput
from harness.kpis.ml.models import ARTEFACT, DENSE, DENSE_TOP1_ENV, KPI_LATENCY
from harness.kpis.ml.rows import _row
from harness.parsers.admm import parse_admm_file
from harness.results.rows import Row


def _training_fields(run: Run, out: dict[str, Any]) -> dict[str, Any]:
    """Provenance of a row that a run of ADMM_baseline in cuda-train produced."""
    from harness.kpis.common.training import train_identity

    return {
        "argv": [str(a) for a in out.get("argv", ())],
        "source_commit": str(out.get("source_commit", "")),
        "image_digest": str(out.get("image_digest", "")),
        "target_identity": train_identity(run),
        "log": run.rel(Path(out["log"])) if out.get("log") else "",
    }


def _dense_top1(run: Run, dense: dict[str, Any] | None) -> tuple[float | None, str]:
    """(dense Top-1, where it comes from) from validate:dense or the override; (None, why) without either."""
    given = run.env.dense_top1
    if given:
        try:
            value = float(given)
        except ValueError:
            raise BadInput(f"{DENSE_TOP1_ENV}={given!r} is not a number") from None
        return value, f"given by {DENSE_TOP1_ENV} (an override, not measured)"
    if dense and dense.get("top1") is not None:
        start = (
            "its seed-42 random initialisation, untrained (smoke)"
            if run.mode == "smoke"
            else "the --pretrained checkpoint"
        )
        return float(dense["top1"]), (
            f"measured by main.py --evaluate (ADMM_baseline's validate()) on the model the pruning starts from, "
            f"{start}, on the same val folder"
        )
    return None, (
        "the dense model's Top-1 was not measured (validate:dense did not complete) — fix: let validate:dense "
        f"complete, or give it with {DENSE_TOP1_ENV}=<percent> (marked as an override)"
    )


def accuracy_rows(run: Run, step: Step, train: dict[str, Any], dense: dict[str, Any] | None = None) -> list[Row]:
    """top1 of this run's pruned model (the last 'Best accuracy') and of the dense model it starts from,
    and accuracy_loss = dense − pruned; every row names the model that was actually trained."""
    log = Path(train["log"])
    parsed = parse_admm_file(log)
    common: dict[str, Any] = dict(
        variant=ARTEFACT,
        workload="imagenet" if run.mode == "measure" else "synthetic",
        fidelity=step.fidelity or "host",
        unit="%",
        **_training_fields(run, train),
    )
    top1 = parsed.top1
    if parsed.error or top1 is None:
        why = parsed.error or "no accuracy line"
        return [_row(run, KPI_LATENCY, metric="top1", value=float("nan"), status="failed", note=why, **common)]
    pruned = f"the last of {parsed.best_lines} 'Best accuracy' line(s) of this run's training"
    rows = [_row(run, KPI_LATENCY, metric="top1", value=top1, status="ok", note=f"pruned Top-1: {pruned}", **common)]
    value, how = _dense_top1(run, dense)
    if dense and dense.get("top1") is not None:
        rows.append(
            _row(
                run,
                KPI_LATENCY,
                metric="top1",
                value=float(dense["top1"]),
                status="ok",
                note=f"dense Top-1 ' * Acc@1', {how}",
                **{**common, **_training_fields(run, dense), "variant": DENSE},
            )
        )
    loss_common = {**common, "unit": "%p"}
    if value is None:
        rows.append(
            _row(
                run, KPI_LATENCY, metric="accuracy_loss", value=float("nan"), status="blocked", note=how,
                **loss_common,
            )
        )  # fmt: skip
    else:
        note = f"dense {value:g} % − pruned {top1:g} %; dense Top-1 {how}; pruned Top-1: {pruned}"
        rows.append(
            _row(run, KPI_LATENCY, metric="accuracy_loss", value=value - top1, status="ok", note=note, **loss_common)
        )
    return rows
