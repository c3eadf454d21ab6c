"""KPI 3 and 4 on this machine: tiny models made in code, LiteRT host runs, sizes, fetch and BLOCKED paths."""

from __future__ import annotations

import dataclasses
import io
import json
import os
import subprocess
import sys
import tarfile
import urllib.error
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from harness.core.manifest import load_manifest
from harness.core.runner import Run
from harness.core.steps import Step
from harness.errors import BadInput, Blocked, StepFailed
from harness.kpis import plan_kpi
from harness.kpis.common.datasets import synthetic_imagefolder
from harness.kpis.common.tflite import reference_forward
from harness.kpis.common.tflite_files import looks_like_tflite, size_and_sha256
from harness.kpis.common.tflite_writer import tiny_mobilenet_like
from harness.kpis.ml import execute as kpi_ml
from harness.kpis.ml import fetch as ml_fetch
from harness.kpis.ml import models as ml_models
from harness.kpis.ml import train as ml_train
from harness.options import EnvSettings
from harness.parsers.benchmark_model import parse_benchmark_file, parse_benchmark_text
from harness.results.store import Results

pytest.importorskip("ai_edge_litert", reason="pip install ai-edge-litert (the LiteRT runtime)")

ROOT = Path(__file__).resolve().parent.parent
MANIFEST = load_manifest(ROOT / "kpis.toml")
FIXTURES = Path(__file__).parent / "fixtures" / "ml"
FAST = ("--min_secs=0", "--warmup_min_secs=0", "--num_runs=5")
ONE_THREAD = ("--warmup_runs=2", *FAST, "--num_threads=1")


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    d = tmp_path_factory.mktemp("models")
    return {
        "float": tiny_mobilenet_like(d / "float.tflite"),
        "int8": tiny_mobilenet_like(d / "int8.tflite", int8=True, sparsity=0.5),
    }


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test may reach the network: every URL open fails like a machine without internet."""

    def refuse(url: Any, *a: Any, **kw: Any) -> Any:
        name = url if isinstance(url, str) else url.full_url
        if name.startswith("file:"):
            return _real_urlopen(url, *a, **kw)
        raise urllib.error.URLError("network is unreachable (test)")

    monkeypatch.setattr("urllib.request.urlopen", refuse)
    monkeypatch.delenv(ml_models.BASELINE_ENV, raising=False)
    monkeypatch.delenv(ml_models.DENSE_TOP1_ENV, raising=False)


_real_urlopen = __import__("urllib.request").request.urlopen


def make_run(tmp_path: Path, *, mode: str = "smoke", manifest: Any = MANIFEST) -> Run:
    project = tmp_path / "project"  # a project tree without containers/cuda-train
    project.mkdir(parents=True, exist_ok=True)
    return Run(
        run_id="test-run",
        run_dir=tmp_path / "run",
        manifest=manifest,
        project_root=project,
        cache_dir=tmp_path / "cache",
        mode=mode,
    )


def plan_steps(kpi: str, *, mode: str = "smoke", targets: tuple[str, ...] = ()) -> dict[str, Step]:
    plan = plan_kpi(MANIFEST, MANIFEST.kpi(kpi), mode=mode, targets=targets, project_root=ROOT)  # type: ignore[arg-type]
    return {s.id: s for s in plan.steps}


def ant_checkout(tmp_path: Path, files: dict[str, bytes]) -> dict[str, Any]:
    root = tmp_path / "ant"
    for rel, data in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    root.mkdir(exist_ok=True)
    return {"path": str(root), "commit": MANIFEST.sources["ant"].commit}


def journal(run: Run) -> list[Any]:
    return Results.from_journal(run.run_dir).rows()


# ---- tiny models ------------------------------------------------------------------------------


def _invoke(path: Path, x: np.ndarray) -> np.ndarray:
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(path), num_threads=1)
    it.allocate_tensors()
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    if inp["dtype"] == np.int8:
        s, z = inp["quantization"]
        it.set_tensor(inp["index"], np.clip(np.round(x / s + z), -128, 127).astype(np.int8))
    else:
        it.set_tensor(inp["index"], x)
    it.invoke()
    y = it.get_tensor(out["index"])
    if out["dtype"] == np.int8:
        s, z = out["quantization"]
        return (y.astype(np.float32) - z) * s
    return y


def test_float_model_computes_what_its_weights_say(models: dict[str, Any]) -> None:
    m = models["float"]
    x = np.random.default_rng(3).uniform(-1, 1, (1, 32, 32, 3)).astype(np.float32)
    np.testing.assert_allclose(_invoke(m.path, x), reference_forward(m.net, x), atol=1e-5)


def test_int8_model_tracks_the_float_network(models: dict[str, Any]) -> None:
    m = models["int8"]
    x = np.random.default_rng(4).uniform(-1, 1, (1, 32, 32, 3)).astype(np.float32)
    np.testing.assert_allclose(_invoke(m.path, x), reference_forward(m.net, x), atol=0.03)


def test_generation_is_deterministic_and_sparsity_is_reached(tmp_path: Path, models: dict[str, Any]) -> None:
    again = tiny_mobilenet_like(tmp_path / "again.tflite", int8=True, sparsity=0.5)
    assert again.sha256 == models["int8"].sha256
    assert again.sparsity == pytest.approx(0.5, abs=0.02)
    assert models["float"].sparsity == 0.0
    assert tiny_mobilenet_like(tmp_path / "other.tflite", seed=1).sha256 != models["float"].sha256
    # Dense storage: pruning zeros weights but does not shrink a plain flatbuffer.
    assert tiny_mobilenet_like(tmp_path / "sparse.tflite", sparsity=0.9).size == models["float"].size
    assert models["int8"].size < models["float"].size


def test_size_and_sha256_and_tflite_identifier(tmp_path: Path, models: dict[str, Any]) -> None:
    m = models["float"]
    assert size_and_sha256(m.path) == (m.path.stat().st_size, m.sha256)
    assert looks_like_tflite(m.path)
    (tmp_path / "x.txt").write_text("not a model")
    assert not looks_like_tflite(tmp_path / "x.txt")
    with pytest.raises(BadInput, match="cannot read"):
        size_and_sha256(tmp_path / "missing")


def test_sparsity_out_of_range_is_bad_input(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="sparsity"):
        tiny_mobilenet_like(tmp_path / "m.tflite", sparsity=1.0)


# ---- litert_bench ------------------------------------------------------------------------------


def test_litert_bench_output_parses_as_benchmark_model(models: dict[str, Any]) -> None:
    for m in models.values():
        proc = subprocess.run(
            [sys.executable, "-m", "harness.payload.litert_bench", f"--graph={m.path}", *ONE_THREAD],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=120,
            check=False,
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        r = parse_benchmark_text(proc.stdout + proc.stderr)
        assert r.format == "current" and r.inference_avg_us > 0
        assert r.timed is not None and r.timed.count == 5
        assert r.warmup is not None and r.warmup.count == 2
        assert r.num_threads == 1 and r.graph == str(m.path)


def test_litert_bench_on_a_missing_model_fails_with_no_timing(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "harness.payload.litert_bench", f"--graph={tmp_path / 'nope.tflite'}"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 1
    with pytest.raises(BadInput, match="Could not open"):
        parse_benchmark_text(proc.stdout)


# ---- KPI 4: fetch:baseline and measure:size --------------------------------------------------


def test_missing_baseline_is_blocked_naming_the_url_and_the_env_var(tmp_path: Path) -> None:
    run = make_run(tmp_path)
    with pytest.raises(Blocked) as e:
        kpi_ml.exec_fetch(plan_steps("ml_memory")["fetch:baseline"], run)
    assert ml_models.BASELINE_ENV in str(e.value)
    assert MANIFEST.workloads["mobilenet_v2_1.0_224"].url in str(e.value)


def test_local_baseline_is_used_and_pinned(
    tmp_path: Path, models: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    run = make_run(tmp_path)
    step = plan_steps("ml_memory")["fetch:baseline"]
    monkeypatch.setenv(ml_models.BASELINE_ENV, str(models["float"].path))
    run.env = EnvSettings.from_environ()
    out = kpi_ml.exec_fetch(step, run)
    assert (out["sha256"], out["pin"]) == (models["float"].sha256, "pinned now")
    pin = ml_fetch.pin_path(run.cache_dir, "mobilenet_v2_1.0_224.tflite")
    assert pin.read_text().split()[0] == models["float"].sha256
    assert kpi_ml.exec_fetch(step, run)["pin"] == "pinned"
    monkeypatch.setenv(ml_models.BASELINE_ENV, str(models["int8"].path))
    run.env = EnvSettings.from_environ()
    with pytest.raises(StepFailed, match="differs from the one pinned"):
        kpi_ml.exec_fetch(step, run)


def test_local_baseline_path_that_does_not_exist_is_bad_input(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ml_models.BASELINE_ENV, str(tmp_path / "nope.tflite"))
    run = make_run(tmp_path)
    run.env = EnvSettings.from_environ()
    with pytest.raises(BadInput, match="no such file"):
        kpi_ml.exec_fetch(plan_steps("ml_memory")["fetch:baseline"], run)


def _tgz(path: Path, member: str, data: bytes) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        info = tarfile.TarInfo(f"./{member}")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
        other = tarfile.TarInfo("./mobilenet_v2_1.0_224_eval.pbtxt")
        tar.addfile(other, io.BytesIO(b""))
    return path


def test_downloaded_archive_is_pinned_then_reused_from_cache(tmp_path: Path, models: dict[str, Any]) -> None:
    archive = _tgz(
        tmp_path / "mobilenet_v2_1.0_224.tgz", "mobilenet_v2_1.0_224.tflite", models["float"].path.read_bytes()
    )
    wl = dataclasses.replace(MANIFEST.workloads["mobilenet_v2_1.0_224"], url=archive.as_uri())
    manifest = dataclasses.replace(MANIFEST, workloads={**MANIFEST.workloads, wl.name: wl})
    run = make_run(tmp_path, manifest=manifest)
    step = plan_steps("ml_memory")["fetch:baseline"]
    first = kpi_ml.exec_fetch(step, run)
    assert first["origin"].startswith("download of file:")
    assert first["sha256"] == models["float"].sha256
    assert ml_fetch.pin_path(run.cache_dir, "mobilenet_v2_1.0_224.tgz").is_file()
    archive.unlink()  # the second run must not need the source any more
    second = kpi_ml.exec_fetch(step, run)
    assert second["origin"].startswith("cached download") and second["path"] == first["path"]


def test_archive_differing_from_the_manifest_sha256_fails(tmp_path: Path, models: dict[str, Any]) -> None:
    archive = _tgz(tmp_path / "m.tgz", "mobilenet_v2_1.0_224.tflite", models["float"].path.read_bytes())
    wl = dataclasses.replace(MANIFEST.workloads["mobilenet_v2_1.0_224"], url=archive.as_uri(), sha256="0" * 64)
    manifest = dataclasses.replace(MANIFEST, workloads={**MANIFEST.workloads, wl.name: wl})
    with pytest.raises(StepFailed, match="differs from the manifest"):
        kpi_ml.exec_fetch(plan_steps("ml_memory")["fetch:baseline"], make_run(tmp_path, manifest=manifest))


def _size(run: Run, model: str, mode: str = "smoke") -> dict[str, Any]:
    return kpi_ml.exec_measure_size(plan_steps("ml_memory", mode=mode)[f"measure:size:{model}"], run)


def test_size_rows_for_baseline_and_shipped_model(tmp_path: Path, models: dict[str, Any]) -> None:
    run = make_run(tmp_path)
    run.outputs["fetch:baseline"] = {"path": str(models["float"].path), "origin": "local file"}
    run.outputs["source:ant:test/mlbench"] = ant_checkout(
        tmp_path, {"test/mlbench/mbv1_0.9_v4u.tflite": models["int8"].path.read_bytes()}
    )
    assert _size(run, "mobilenet_v2_1.0_224")["size"] == models["float"].size
    assert _size(run, "mbv1_0.9_v4u")["size"] == models["int8"].size
    rows = {r.variant: r for r in journal(run)}
    assert {r.fidelity for r in rows.values()} == {"static"}
    assert rows["mbv1_0.9_v4u"].artefact_sha256 == models["int8"].sha256
    assert rows["mbv1_0.9_v4u"].source_commit == MANIFEST.sources["ant"].commit
    ev = kpi_ml.exec_evaluate_memory(plan_steps("ml_memory")["evaluate"], run)
    assert ev["verdict"] == "NO_VERDICT"  # smoke rows never decide a KPI
    assert json.loads((run.run_dir / "evaluations" / "ml_memory.json").read_text())["value"] > 0


def test_size_verdict_in_measure_mode(tmp_path: Path, models: dict[str, Any]) -> None:
    run = make_run(tmp_path, mode="measure")
    run.outputs["fetch:baseline"] = {"path": str(models["float"].path)}
    run.outputs["source:ant:test/mlbench"] = ant_checkout(
        tmp_path, {"test/mlbench/mbv1_0.9_v4u.tflite": models["int8"].path.read_bytes()}
    )
    for model in ("mobilenet_v2_1.0_224", "mbv1_0.9_v4u"):
        _size(run, model, mode="measure")
    assert kpi_ml.exec_evaluate_memory(plan_steps("ml_memory")["evaluate"], run)["verdict"] == "PASS"


def test_shipped_model_absent_from_a_mirror_blocks_its_own_step(tmp_path: Path, models: dict[str, Any]) -> None:
    run = make_run(tmp_path)
    run.outputs["fetch:baseline"] = {"path": str(models["float"].path)}
    run.outputs["source:ant:test/mlbench"] = ant_checkout(tmp_path, {"test/mlbench/mlbench.py": b"# only this\n"})
    assert _size(run, "mobilenet_v2_1.0_224")["rows"] == 1
    with pytest.raises(Blocked, match="absent from the ANT checkout") as e:
        _size(run, "mbv1_0.9_v4u")
    assert "--source ant=PATH" in str(e.value)


def test_lfs_pointer_and_non_tflite_files_are_not_sized(tmp_path: Path, models: dict[str, Any]) -> None:
    run = make_run(tmp_path)
    (tmp_path / "junk.tflite").write_bytes(b"<html>not found</html>")
    run.outputs["fetch:baseline"] = {"path": str(tmp_path / "junk.tflite")}
    run.outputs["source:ant:test/mlbench"] = ant_checkout(
        tmp_path, {"test/mlbench/mbv1_0.9_v4u.tflite": b"version https://git-lfs.github.com/spec/v1\noid x\n"}
    )
    run.outputs["convert:tflite"] = {"path": str(models["int8"].path)}
    with pytest.raises(StepFailed, match="not a TFLite flatbuffer"):
        _size(run, "mobilenet_v2_1.0_224")
    with pytest.raises(Blocked, match="LFS pointer"):
        _size(run, "mbv1_0.9_v4u")
    assert _size(run, "mbv1_0.9_v4u.harness")["rows"] == 1
    assert [(r.variant, r.status) for r in journal(run)] == [("mbv1_0.9_v4u.harness", "ok")]


def test_kpi4_sizes_the_kpi3_conversion_on_its_own_even_in_a_later_command(
    tmp_path: Path, models: dict[str, Any]
) -> None:
    run = make_run(tmp_path)
    # Nothing converted in this run: the harness model is simply not part of it (not blocked).
    out = _size(run, "mbv1_0.9_v4u.harness")
    assert out["rows"] == 0 and "ant-kpi run 3 4" in out["not_in_run"]
    # KPI 3 converted earlier in the same run directory (`ant-kpi run 4 --run-id` later): sized.
    state = run.state_path("ml_latency", "convert:tflite")
    state.parent.mkdir(parents=True)
    outputs = {"path": str(models["float"].path), "source_commit": "a" * 40, "provenance": {"image_id": "sha256:f00"}}
    state.write_text(json.dumps({"status": "ok", "outputs": outputs}))
    assert _size(run, "mbv1_0.9_v4u.harness")["size"] == models["float"].size
    [row] = journal(run)
    assert (row.variant, row.fidelity, row.status) == ("mbv1_0.9_v4u.harness", "static", "ok")
    assert (row.source_commit, row.image_digest) == ("a" * 40, "sha256:f00")
    assert "never pooled" in row.note and "zeros" in row.note


def test_kpi4_report_shows_the_harness_model_beside_and_blocked_rows_by_model(
    tmp_path: Path, models: dict[str, Any]
) -> None:
    """Only the harness conversion exists: KPI 4 is BLOCKED on the pair, says why per model (never
    `blocked -:`) and still shows the conversion's size on its own."""
    from harness.core.runner import StepRunner
    from harness.kpis import executors_for
    from harness.kpis.common.executors import record_blocked
    from harness.report.markdown import render_markdown
    from harness.results.verdicts import evaluate

    run = make_run(tmp_path)
    run.outputs["convert:tflite"] = {"path": str(models["int8"].path)}
    plan = plan_kpi(MANIFEST, MANIFEST.kpi("ml_memory"), mode="smoke", project_root=ROOT)
    plan = dataclasses.replace(plan, steps=tuple(s for s in plan.steps if s.kind in ("measure", "evaluate")))
    StepRunner(run, executors_for("ml_memory"), on_blocked=record_blocked).execute(plan)
    results = Results.from_journal(run.run_dir)
    assert sorted((r.variant, r.status) for r in results.rows()) == [
        ("mbv1_0.9_v4u", "blocked"),
        ("mbv1_0.9_v4u.harness", "ok"),
        ("mobilenet_v2_1.0_224", "blocked"),
    ]
    ev = evaluate(MANIFEST.kpi("ml_memory"), results)
    assert ev.verdict.value == "BLOCKED" and "blocked -" not in ev.reason
    assert "blocked mbv1_0.9_v4u:" in ev.reason and "blocked mobilenet_v2_1.0_224:" in ev.reason
    [beside] = ev.beside
    assert (beside.variant, beside.fidelity, beside.median) == ("mbv1_0.9_v4u.harness", "static", models["int8"].size)
    md = render_markdown([ev], results, run_id="t", run_dir=run.run_dir)
    assert "mbv1_0.9_v4u.harness (MobileNet V1 pruned by this run's training" in md
    assert f"model_size {models['int8'].size:,} bytes (static, smoke, n=1)" in md
    assert "not pooled with the compared pair, not part of the verdict" in md


# ---- KPI 3: smoke steps ------------------------------------------------------------------------


def test_synthetic_imagefolder_layout(tmp_path: Path) -> None:
    out = synthetic_imagefolder(tmp_path / "synth", size=16, jpeg=False)
    files = sorted((tmp_path / "synth").rglob("*.ppm"))
    assert out["images"] == len(files) == 32 and out["format"] == "ppm"
    assert {p.parent.name for p in files} == {"c0", "c1"} and {p.parent.parent.name for p in files} == {"train", "val"}
    assert files[0].read_bytes().startswith(b"P6\n16 16\n255\n") and files[0].stat().st_size == 13 + 16 * 16 * 3


def test_train_without_the_image_context_is_blocked(tmp_path: Path) -> None:
    steps = plan_steps("ml_latency")
    with pytest.raises(Blocked, match="image cuda-train is not in this version"):
        kpi_ml.exec_train(steps["train:admm"], make_run(tmp_path))
    with pytest.raises(Blocked, match="image cuda-train is not in this version"):
        kpi_ml.exec_convert(steps["convert:tflite"], make_run(tmp_path))


def test_admm_tree_gets_the_best_acc1_fix_and_stubs(tmp_path: Path) -> None:
    src = tmp_path / "ADMM_baseline"
    src.mkdir()
    (src / "main.py").write_text("def main():\n    args = parser.parse_args()\n    run(args)\n")
    tree, stubs = ml_train.prepare_admm_tree(src, tmp_path / "work")
    lines = (tree / "main.py").read_text().splitlines()
    assert lines[1:3] == ["    args = parser.parse_args()", lines[2]] and lines[2].startswith("    best_acc1 = 0")
    assert (src / "main.py").read_text().count("best_acc1") == 0  # the checkout is left alone
    ns: dict[str, Any] = {}
    exec((stubs / "auto_augment.py").read_text(), ns)
    assert ns["AutoAugment"]()("img") == "img" and ns["Cutout"](16)("img") == "img"
    (src / "main.py").write_text("print('no parser')\n")
    with pytest.raises(StepFailed, match="best_acc1"):
        ml_train.prepare_admm_tree(src, tmp_path / "work2")


def _accuracy(run: Run) -> dict[str, Any]:
    """Rows of parse:accuracy from the captured logs of a real smoke run's training and dense validation."""
    common = {"source_commit": MANIFEST.sources["auto_compression"].commit, "image_digest": "sha256:abc"}
    run.outputs["train:admm"] = {
        "log": str(FIXTURES / "admm_smoke_train.captured.txt"),
        "argv": ["python3", "/work/src/main.py", "/data", "-a", "mobilenet_v1"],
        **common,
    }
    run.outputs["validate:dense"] = {
        "log": str(FIXTURES / "admm_smoke_dense_evaluate.captured.txt"),
        "argv": ["python3", "/work/src/main.py", "/data", "-a", "mobilenet_v1", "--evaluate"],
        "top1": 0.0,
        **common,
    }
    kpi_ml.exec_parse_latency(plan_steps("ml_latency")["parse:accuracy"], run)
    return {(r.metric, r.variant): r for r in journal(run)}


def test_accuracy_rows_carry_the_trained_variant_the_measured_dense_top1_and_provenance(tmp_path: Path) -> None:
    rows = _accuracy(make_run(tmp_path))
    pruned, dense = rows[("top1", "mbv1_0.9_v4u.harness")], rows[("top1", "mbv1_1.0_dense")]
    loss = rows[("accuracy_loss", "mbv1_0.9_v4u.harness")]
    assert (pruned.value, dense.value, loss.value, loss.unit) == (50.0, 0.0, -50.0, "%p")
    assert "mbv1_0.9_v4u" not in {v for _, v in rows}  # nothing is named after the shipped model
    assert "measured by main.py --evaluate" in loss.note and "seed-42 random initialisation" in loss.note
    # Provenance: the training's argv, pinned commit and image reach every row.
    assert pruned.argv[:2] == ("python3", "/work/src/main.py") and dense.argv[-1] == "--evaluate"
    assert {r.source_commit for r in rows.values()} == {MANIFEST.sources["auto_compression"].commit}
    assert {r.image_digest for r in rows.values()} == {"sha256:abc"}
    assert pruned.log.endswith("admm_smoke_train.captured.txt")


def test_an_explicit_dense_top1_override_is_used_and_marked(tmp_path: Path) -> None:
    run = make_run(tmp_path)
    run.env = EnvSettings(dense_top1="64.0")
    loss = _accuracy(run)[("accuracy_loss", "mbv1_0.9_v4u.harness")]
    assert loss.value == pytest.approx(14.0)
    assert f"given by {ml_models.DENSE_TOP1_ENV} (an override, not measured)" in loss.note
    # With the override, the dense validation does not run at all.
    assert ml_train.exec_validate_dense(plan_steps("ml_latency")["validate:dense"], run) == {"override": "64.0"}
    run.env = EnvSettings(dense_top1="sixty")
    with pytest.raises(BadInput, match="not a number"):
        _accuracy(run)


def test_without_a_dense_top1_the_loss_is_blocked_with_both_fixes(tmp_path: Path) -> None:
    run = make_run(tmp_path)
    run.outputs["train:admm"] = {"log": str(FIXTURES / "admm_smoke_train.captured.txt")}
    kpi_ml.exec_parse_latency(plan_steps("ml_latency")["parse:accuracy"], run)
    loss = next(r for r in journal(run) if r.metric == "accuracy_loss")
    assert loss.status == "blocked" and "validate:dense" in loss.note and ml_models.DENSE_TOP1_ENV in loss.note


def test_the_dense_validation_is_the_training_command_with_evaluate() -> None:
    for mode in ("smoke", "measure"):
        steps = plan_steps("ml_latency", mode=mode)
        train, dense = steps["train:admm"], steps["validate:dense"]
        assert dense.argv == (*train.argv, "--evaluate")  # same code, data, batch size, seed
        assert set(dense.depends) == set(train.depends) and dense.variant == "mbv1_1.0_dense"
        assert "validate:dense" in steps["parse:accuracy"].after


def _latency_run(tmp_path: Path, models: dict[str, Any], target: str) -> tuple[Run, dict[str, Step]]:
    steps = plan_steps("ml_latency", targets=(target,))
    # Same steps, but fast: no minimum durations, 5 timed runs.
    steps = {
        sid: dataclasses.replace(s, argv=(*s.argv, *FAST)) if s.kind == "measure" else s for sid, s in steps.items()
    }
    run = make_run(tmp_path)
    run.steps = steps
    run.outputs["fetch:baseline"] = {"path": str(models["float"].path)}
    run.outputs["source:ant:test/mlbench"] = ant_checkout(
        tmp_path, {"test/mlbench/mbv1_0.9_v4u.tflite": models["int8"].path.read_bytes()}
    )
    return run, steps


def test_host_latency_end_to_end(tmp_path: Path, models: dict[str, Any]) -> None:
    run, steps = _latency_run(tmp_path, models, "x86_64")
    run.outputs["deploy:x86_64"] = kpi_ml.exec_deploy(steps["deploy:x86_64"], run)
    for sid in ("measure:mobilenet_v2_1.0_224:x86_64:0", "measure:mbv1_0.9_v4u:x86_64:0"):
        run.outputs[sid] = kpi_ml.exec_measure_latency(steps[sid], run)
        assert parse_benchmark_file(run.outputs[sid]["log"]).timed.count == 5  # type: ignore[union-attr]
    assert kpi_ml.exec_parse_latency(steps["parse:x86_64"], run) == {"rows": 2}
    rows = {r.variant: r for r in journal(run)}
    assert {r.metric for r in rows.values()} == {"inference_avg"}
    assert all(r.status == "ok" and r.value > 0 and r.fidelity == "host" and r.unit == "us" for r in rows.values())
    assert rows["mbv1_0.9_v4u"].artefact_sha256 == models["int8"].sha256
    assert rows["mbv1_0.9_v4u"].log.startswith("raw/") and "litert_bench" in rows["mbv1_0.9_v4u"].note


def test_threads_follow_the_hosts_cores_and_are_recorded(tmp_path: Path, models: dict[str, Any]) -> None:
    run, steps = _latency_run(tmp_path, models, "x86_64")
    assert "--num_threads=<target cores>" in steps["measure:mbv1_0.9_v4u:x86_64:0"].argv  # the plan says so
    run.outputs["deploy:x86_64"] = kpi_ml.exec_deploy(steps["deploy:x86_64"], run)
    out = kpi_ml.exec_measure_latency(steps["measure:mbv1_0.9_v4u:x86_64:0"], run)
    cores = len(os.sched_getaffinity(0))
    assert f"--num_threads={cores}" in out["argv"] and not any("<" in a for a in out["argv"])
    assert out["identity"]["num_threads"] == cores and "sched_getaffinity" in out["identity"]["num_threads_from"]
    assert parse_benchmark_file(out["log"]).num_threads == cores  # what the tool itself reports


def test_a_timed_count_above_num_runs_is_explained_next_to_it(tmp_path: Path) -> None:
    step = plan_steps("ml_latency", targets=("x86_64",))["measure:mbv1_0.9_v4u:x86_64:0"]
    log = FIXTURES / "litert_bench_tiny_float.captured.txt"  # 37459 timed runs
    row = kpi_ml.latency_row(make_run(tmp_path), step, {"log": str(log), "argv": ["x", "--num_runs=50"]})
    assert "37459 timed runs" in row.note
    assert "--num_runs=50 is a minimum" in row.note and "37459 runs here" in row.note
    same = kpi_ml.latency_row(make_run(tmp_path), step, {"log": str(log), "argv": ["x", "--num_runs=37459"]})
    assert "is a minimum" not in same.note


def test_host_measure_of_a_missing_model_is_blocked_with_its_reason(tmp_path: Path, models: dict[str, Any]) -> None:
    run, steps = _latency_run(tmp_path, models, "x86_64")
    run.outputs.pop("fetch:baseline")
    run.outputs["deploy:x86_64"] = kpi_ml.exec_deploy(steps["deploy:x86_64"], run)
    with pytest.raises(Blocked, match=ml_models.BASELINE_ENV):
        kpi_ml.exec_measure_latency(steps["measure:mobilenet_v2_1.0_224:x86_64:0"], run)


def test_unparsable_log_becomes_a_failed_row(tmp_path: Path, models: dict[str, Any]) -> None:
    run, steps = _latency_run(tmp_path, models, "x86_64")
    log = tmp_path / "garbage.log"
    log.write_text("Segmentation fault\n")
    run.outputs["measure:mbv1_0.9_v4u:x86_64:0"] = {"log": str(log), "argv": ["x"]}
    kpi_ml.exec_parse_latency(steps["parse:x86_64"], run)
    [row] = journal(run)
    assert row.status == "failed" and "no benchmark_model timing summary" in row.note


def test_arm64_smoke_without_the_ant_benchmark_binary_is_blocked(tmp_path: Path, models: dict[str, Any]) -> None:
    run, steps = _latency_run(tmp_path, models, "arm64")
    run.outputs["deploy:arm64"] = kpi_ml.exec_deploy(steps["deploy:arm64"], run)
    with pytest.raises(Blocked, match=r"benchmark_model_aarch64 .* is absent from the ANT checkout"):
        kpi_ml.exec_measure_latency(steps["measure:mbv1_0.9_v4u:arm64:0"], run)


def test_measure_mode_on_arm64_needs_a_board(tmp_path: Path, models: dict[str, Any]) -> None:
    steps = plan_steps("ml_latency", mode="measure", targets=("arm64",))
    run = make_run(tmp_path, mode="measure")
    run.outputs["source:ant:test/mlbench"] = ant_checkout(
        tmp_path, {"test/mlbench/benchmark_model_aarch64": b"\x7fELF", "test/mlbench/mbv1_0.9_v4u.tflite": b"x"}
    )
    with pytest.raises(Blocked, match="measure run on arm64 needs a board"):
        kpi_ml.exec_deploy(steps["deploy:arm64"], run)
    with pytest.raises(Blocked, match="nothing deployed"):
        kpi_ml.exec_measure_latency(steps["measure:mbv1_0.9_v4u:arm64:0"], make_run(tmp_path, mode="measure"))


def test_executor_tables_cover_every_planned_step_kind() -> None:
    for kpi, table in (("ml_latency", kpi_ml.EXECUTORS_ML_LATENCY), ("ml_memory", kpi_ml.EXECUTORS_ML_MEMORY)):
        kinds = {s.kind for s in plan_steps(kpi).values()} - {"source", "image"}
        assert kinds <= set(table), kinds - set(table)
