"""KPI 3 and 4 on this machine: tiny models made in code, LiteRT host runs, sizes, fetch and BLOCKED paths."""

from __future__ import annotations

import dataclasses
import io
import json
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
FAST = ("--min_secs=0", "--warmup_min_secs=0", "--num_runs=5", "--num_threads=1")


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
    monkeypatch.delenv(kpi_ml.DENSE_TOP1_ENV, raising=False)


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
            [sys.executable, "-m", "harness.payload.litert_bench", f"--graph={m.path}", "--warmup_runs=2", *FAST],
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


def test_size_rows_for_baseline_and_shipped_model(tmp_path: Path, models: dict[str, Any]) -> None:
    run = make_run(tmp_path)
    run.outputs["fetch:baseline"] = {"path": str(models["float"].path), "origin": "local file"}
    run.outputs["source:ant:test/mlbench"] = ant_checkout(
        tmp_path, {"test/mlbench/mbv1_0.9_v4u.tflite": models["int8"].path.read_bytes()}
    )
    out = kpi_ml.exec_measure_size(plan_steps("ml_memory")["measure:size"], run)
    assert out["sizes"] == {"mobilenet_v2_1.0_224": models["float"].size, "mbv1_0.9_v4u": models["int8"].size}
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
    kpi_ml.exec_measure_size(plan_steps("ml_memory", mode="measure")["measure:size"], run)
    assert kpi_ml.exec_evaluate_memory(plan_steps("ml_memory")["evaluate"], run)["verdict"] == "PASS"


def test_shipped_model_absent_from_a_mirror_gives_a_blocked_row(tmp_path: Path, models: dict[str, Any]) -> None:
    run = make_run(tmp_path)
    run.outputs["fetch:baseline"] = {"path": str(models["float"].path)}
    run.outputs["source:ant:test/mlbench"] = ant_checkout(tmp_path, {"test/mlbench/mlbench.py": b"# only this\n"})
    out = kpi_ml.exec_measure_size(plan_steps("ml_memory")["measure:size"], run)
    assert list(out["sizes"]) == ["mobilenet_v2_1.0_224"]
    blocked = [r for r in journal(run) if r.status == "blocked"]
    assert [r.variant for r in blocked] == ["mbv1_0.9_v4u"]
    assert "absent from the ANT checkout" in blocked[0].note and "--source ant=PATH" in blocked[0].note


def test_lfs_pointer_and_non_tflite_files_are_not_sized(tmp_path: Path, models: dict[str, Any]) -> None:
    run = make_run(tmp_path)
    (tmp_path / "junk.tflite").write_bytes(b"<html>not found</html>")
    run.outputs["fetch:baseline"] = {"path": str(tmp_path / "junk.tflite")}
    run.outputs["source:ant:test/mlbench"] = ant_checkout(
        tmp_path, {"test/mlbench/mbv1_0.9_v4u.tflite": b"version https://git-lfs.github.com/spec/v1\noid x\n"}
    )
    run.outputs["convert:tflite"] = {"path": str(models["int8"].path)}
    kpi_ml.exec_measure_size(plan_steps("ml_memory")["measure:size"], run)
    status = {r.variant: (r.status, r.note) for r in journal(run)}
    assert status["mobilenet_v2_1.0_224"][0] == "failed" and "not a TFLite" in status["mobilenet_v2_1.0_224"][1]
    assert status["mbv1_0.9_v4u"][0] == "blocked" and "LFS pointer" in status["mbv1_0.9_v4u"][1]
    assert status["mbv1_0.9_v4u.harness"][0] == "ok"


def test_nothing_to_size_blocks_the_step(tmp_path: Path) -> None:
    run = make_run(tmp_path)
    with pytest.raises(Blocked) as e:
        kpi_ml.exec_measure_size(plan_steps("ml_memory")["measure:size"], run)
    assert ml_models.BASELINE_ENV in str(e.value)
    assert journal(run) == []


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


def test_accuracy_rows_from_an_admm_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    step = plan_steps("ml_latency")["parse:accuracy"]
    run = make_run(tmp_path)
    run.outputs["train:admm"] = {"log": str(FIXTURES / "admm_smoke_1_1_epochs.handwritten.txt")}
    kpi_ml.exec_parse_latency(step, run)
    rows = {r.metric: r for r in journal(run)}
    assert (rows["top1"].value, rows["top1"].status) == (62.5, "ok")
    assert rows["accuracy_loss"].status == "blocked" and kpi_ml.DENSE_TOP1_ENV in rows["accuracy_loss"].note
    monkeypatch.setenv(kpi_ml.DENSE_TOP1_ENV, "64.0")
    run2 = make_run(tmp_path / "2")
    run2.env = EnvSettings.from_environ()
    run2.outputs["train:admm"] = run.outputs["train:admm"]
    kpi_ml.exec_parse_latency(step, run2)
    loss = next(r for r in journal(run2) if r.metric == "accuracy_loss")
    assert (loss.value, loss.unit) == (pytest.approx(1.5), "%p")


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
