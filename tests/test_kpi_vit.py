"""KPI 8 without the image: patches, the throughput timer on stand-in models, rows, BLOCKED paths, plan."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.core.manifest import load_manifest
from harness.core.runner import Run
from harness.core.steps import Step
from harness.errors import Blocked, StepFailed
from harness.kpis import plan_kpi
from harness.kpis.common.training import prepare_tree
from harness.kpis.vit import execute as kpi_vit

ROOT = Path(__file__).resolve().parent.parent
MANIFEST = load_manifest(ROOT / "kpis.toml")
FIXTURES = Path(__file__).parent / "fixtures" / "vit"
ENGINE = """def train_one_epoch(model, model_ema, loss_scaler, loss, optimizer, max_norm, is_second_order):
    for _ in range(1):
        loss_scaler(loss, optimizer, clip_grad=max_norm,
                        parameters=model.parameters(), create_graph=is_second_order)

        torch.cuda.synchronize()
        if model_ema is not None:
            model_ema.update(model)
"""
VIT = """            sparse = torch.FloatTensor(sparse).cuda()
            return x, sparse.detach()
"""
# Stand-ins for PackViT's model modules with the constructor arguments the bench passes: blocks
# that take (x, policy), a packed model that halves the tokens at block 1, prints from forward and
# appends to score_placeholder.json, as upstream's do.
FAKE_MODELS = """
import torch
from torch import nn


class _Block(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.fc = nn.Linear(d, d)

    def forward(self, x, policy=None):
        return x + self.fc(x)


class VisionTransformerTeacher(nn.Module):
    def __init__(self, patch_size=16, embed_dim=8, depth=2, num_heads=2, mlp_ratio=4, qkv_bias=True):
        super().__init__()
        self.proj = nn.Conv2d(3, embed_dim, patch_size, patch_size)
        self.blocks = nn.ModuleList(_Block(embed_dim) for _ in range(depth))

    def forward(self, x):
        x = self.proj(x).flatten(2).transpose(1, 2)
        for b in self.blocks:
            x = b(x)
        return x[:, 0], x


class VisionTransformerDiffPruning(VisionTransformerTeacher):
    def __init__(self, pruning_loc=(), token_ratio=(), distill=False, **kw):
        super().__init__(**kw)
        self.score_predictor = nn.ModuleList([nn.Linear(kw["embed_dim"], 2)])

    def forward(self, x):
        x = self.proj(x).flatten(2).transpose(1, 2)
        for i, b in enumerate(self.blocks):
            print(x.size())
            if i == 1:
                x = x[:, : x.shape[1] // 2]
            x = b(x)
        if WRITES_SCORES:
            with open("score_placeholder.json", "a") as f:
                f.write("{}\\n")
        return x[:, 0]
"""


def make_run(tmp_path: Path, *, mode: str = "smoke") -> Run:
    return Run(
        run_id="test-run",
        run_dir=tmp_path / "run",
        manifest=MANIFEST,
        project_root=ROOT,
        cache_dir=tmp_path / "cache",
        mode=mode,
    )


def plan_steps(mode: str = "smoke") -> dict[str, Step]:
    plan = plan_kpi(MANIFEST, MANIFEST.kpi("vit_throughput"), mode=mode, project_root=ROOT)  # type: ignore[arg-type]
    return {s.id: s for s in plan.steps}


# ---- the upstream tree ------------------------------------------------------------------------


def _fake_packvit(root: Path) -> Path:
    root.mkdir(parents=True)
    (root / "engine_l2.py").write_text(ENGINE)
    (root / "vit_l2_3keep_senet.py").write_text(VIT)
    return root


def test_both_cuda_patches_apply_with_their_indentation(tmp_path: Path) -> None:
    tree, _ = prepare_tree(_fake_packvit(tmp_path / "PackViT"), tmp_path / "work", patches=kpi_vit.PATCHES)
    engine = (tree / "engine_l2.py").read_text()
    assert "        if torch.cuda.is_available():  # ANT KPI harness" in engine
    assert "\n            torch.cuda.synchronize()\n        if model_ema" in engine
    compile(engine, "engine_l2.py", "exec")
    assert ".to(x.device)" in (tree / "vit_l2_3keep_senet.py").read_text()


def test_a_missing_anchor_names_the_file_and_why(tmp_path: Path) -> None:
    src = _fake_packvit(tmp_path / "PackViT")
    (src / "vit_l2_3keep_senet.py").write_text("sparse = torch.FloatTensor(sparse).to('cuda')\n")
    with pytest.raises(StepFailed, match=r"vit_l2_3keep_senet\.py: the text to patch is not there"):
        prepare_tree(src, tmp_path / "work", patches=kpi_vit.PATCHES)


# ---- the throughput timer -----------------------------------------------------------------------


@pytest.fixture
def bench() -> Any:
    pytest.importorskip("torch")
    from harness.payload import vit_throughput_bench

    return vit_throughput_bench


@pytest.fixture
def fake_src(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    src = tmp_path / "PackViT"
    src.mkdir()
    # Only the model training evaluates (vit_l2_3keep_senet) writes score_placeholder.json.
    (src / "vit_l2_3keep_senet.py").write_text("WRITES_SCORES = True\n" + FAKE_MODELS)
    (src / "vit_l2_3keep_senet_inference.py").write_text("WRITES_SCORES = False\n" + FAKE_MODELS)
    monkeypatch.chdir(tmp_path)
    yield src
    for name in ("vit_l2_3keep_senet", "vit_l2_3keep_senet_inference"):
        sys.modules.pop(name, None)
    if str(src) in sys.path:
        sys.path.remove(str(src))


def test_timer_times_each_forward_after_warm_up_and_counts_tokens(
    bench: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    import torch

    calls = []

    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.blocks = torch.nn.ModuleList([torch.nn.Identity(), torch.nn.Identity()])

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            calls.append(torch.is_inference_mode_enabled())
            print("noise from forward")
            t = x.flatten(2).transpose(1, 2)
            return self.blocks[1](self.blocks[0](t)[:, :3])

    r = bench.time_forward(Net(), torch.zeros(2, 3, 4, 4), warmup=2, iters=5)
    assert len(calls) == 7 and all(calls)
    assert len(r["iteration_s"]) == 5 and r["images_per_s"] == pytest.approx(2 * 5 / sum(r["iteration_s"]))
    assert r["tokens_per_block"] == [16, 3]
    assert "noise" not in capsys.readouterr().out
    with pytest.raises(ValueError):
        bench.time_forward(Net(), torch.zeros(1, 3, 4, 4), warmup=0, iters=0)


def test_bench_command_times_the_three_models_from_one_checkpoint(bench: Any, fake_src: Path, tmp_path: Path) -> None:
    import torch

    net = bench.build(fake_src, "packvit", "deit_tiny")
    ckpt = tmp_path / "checkpoint_best.pth"
    torch.save({"model": net.state_dict(), "args": {"arch": "deit_tiny"}}, ckpt)
    docs = {}
    for model in ("vit", "packvit", "packvit_masked"):
        out = tmp_path / f"{model}.json"
        assert (
            bench.main(
                [
                    "bench",
                    "--src",
                    str(fake_src),
                    "--checkpoint",
                    str(ckpt),
                    "--model",
                    model,
                    "--arch",
                    "deit_tiny",
                    "--warmup",
                    "1",
                    "--iters",
                    "2",
                    "--out",
                    str(out),
                ]
            )
            == 0
        )
        docs[model] = json.loads(out.read_text())
    assert docs["vit"]["class"] == "vit_l2_3keep_senet_inference.VisionTransformerTeacher"
    assert docs["vit"]["tokens_per_block"][-1] == 196 and docs["packvit"]["tokens_per_block"][-1] == 98
    assert docs["vit"]["parameters"] < docs["packvit"]["parameters"]  # the predictors are not in the plain ViT
    assert docs["packvit"]["checkpoint_sha256"] == docs["vit"]["checkpoint_sha256"]
    # The masked model's score file went to the null sink, not to the working directory.
    assert not (tmp_path / "score_placeholder.json").exists()


def test_token_removal_model_is_timed_at_batch_one_only(bench: Any, fake_src: Path, tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="batch 1 only"):
        bench.main(
            [
                "bench",
                "--src",
                str(fake_src),
                "--checkpoint",
                str(tmp_path / "x.pth"),
                "--model",
                "packvit",
                "--batch",
                "4",
                "--out",
                str(tmp_path / "o.json"),
            ]
        )


def test_init_checkpoint_writes_the_deit_layout(
    bench: Any, fake_src: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import torch

    out = tmp_path / "w.pth"
    assert bench.main(["init-checkpoint", "--src", str(fake_src), "--arch", "deit_tiny", "--out", str(out)]) == 0
    ckpt = torch.load(out, weights_only=True)
    assert set(ckpt) == {"model"} and "proj.weight" in ckpt["model"]
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["note"].startswith("random")


def test_bench_script_has_no_harness_imports() -> None:
    text = (ROOT / "harness" / "payload" / "vit_throughput_bench.py").read_text()
    assert "from harness" not in text and "import harness" not in text


# ---- rows ---------------------------------------------------------------------------------------


def _bench_doc(**kw: Any) -> dict[str, Any]:
    doc = {
        "class": "vit_l2_3keep_senet_inference.VisionTransformerDiffPruning",
        "batch": 1,
        "warmup": 3,
        "iters": 10,
        "median_iteration_s": 0.05,
        "threads": 2,
        "device": "cpu",
        "torch": "2.x",
        "images_per_s": 19.5,
        "tokens_per_block": [197, 197, 197, 122.4],
        "checkpoint_sha256": "cd" * 32,
    }
    return {**doc, **kw}


def _outputs(tmp_path: Path, doc: dict[str, Any]) -> dict[str, Any]:
    p = tmp_path / "bench.json"
    p.write_text(json.dumps(doc))
    return {"json": str(p), "log": str(tmp_path / "b.log"), "argv": ["python3"], "identity": {"kind": "host"}}


def test_throughput_row_carries_images_per_second_at_host_fidelity(tmp_path: Path) -> None:
    step = plan_steps()["measure:packvit:x86_64:0"]
    row = kpi_vit.throughput_row(make_run(tmp_path), step, _outputs(tmp_path, _bench_doc()))
    assert (row.status, row.value, row.unit, row.fidelity, row.variant) == ("ok", 19.5, "images/s", "host", "packvit")
    assert "not TFLite" in row.note and "122" in row.note and row.artefact_sha256 == "cd" * 32


def test_rows_from_the_captured_smoke_bench_runs(tmp_path: Path) -> None:
    steps = plan_steps()
    run = make_run(tmp_path)
    rows = {}
    for v in ("vit", "packvit", "packvit_masked"):
        doc = json.loads((FIXTURES / f"bench_{v}_deit_small_b1.captured.json").read_text())
        rows[v] = kpi_vit.throughput_row(run, steps[f"measure:{v}:x86_64:0"], _outputs(tmp_path, doc))
        assert rows[v].status == "ok" and rows[v].value > 0
    # The plain ViT keeps all 197 tokens; token removal leaves fewer after blocks 3, 6 and 9; the
    # trained (masked) model keeps every token and adds the representative ones.
    assert "[197, 197, 197, 197" in rows["vit"].note
    assert "tokens per block [197, 197, 197, 98" in rows["packvit"].note
    assert "200, 200, 200]" in rows["packvit_masked"].note


def test_unreadable_or_non_positive_bench_output_is_a_failed_row(tmp_path: Path) -> None:
    step = plan_steps()["measure:vit:x86_64:0"]
    run = make_run(tmp_path)
    assert kpi_vit.throughput_row(run, step, _outputs(tmp_path, _bench_doc(images_per_s=0))).status == "failed"
    (tmp_path / "bench.json").write_text("[")
    assert kpi_vit.throughput_row(run, step, {"json": str(tmp_path / "bench.json")}).status == "failed"


def test_top1_row_is_max_accuracy_with_the_token_drop_shares(tmp_path: Path) -> None:
    train = {"log": str(FIXTURES / "packvit_smoke_1_epoch.handwritten.txt"), "argv": []}
    row = kpi_vit.top1_row(make_run(tmp_path), train)
    assert (row.metric, row.value, row.variant, row.status) == ("top1", 0.0, "packvit", "ok")
    assert "0.49, 0.73, 0.85" in row.note
    crashed = kpi_vit.top1_row(make_run(tmp_path), {"log": str(FIXTURES / "no_cuda_driver.handwritten.txt")})
    assert crashed.status == "failed" and "NVIDIA" in crashed.note


def test_parse_throughput_writes_a_row_per_completed_measurement(tmp_path: Path) -> None:
    steps = plan_steps()
    run = make_run(tmp_path)
    run.steps = steps
    run.outputs["measure:vit:x86_64:0"] = _outputs(tmp_path, _bench_doc())
    assert kpi_vit.exec_parse(steps["parse:throughput"], run) == {"rows": 1}


# ---- BLOCKED paths and plan ---------------------------------------------------------------------


def test_tflite_conversion_is_blocked_with_the_reason_in_a_measure_run(tmp_path: Path) -> None:
    steps = plan_steps("measure")
    with pytest.raises(Blocked, match="data-dependent"):
        kpi_vit.exec_convert(steps["convert:tflite"], make_run(tmp_path, mode="measure"))
    with pytest.raises(Blocked, match="no TFLite model"):
        kpi_vit.exec_measure(steps["measure:vit:arm64:0"], make_run(tmp_path, mode="measure"))


def test_measure_mode_without_deit_weights_is_blocked_naming_the_download(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(kpi_vit.DEIT_ENV, raising=False)
    steps = plan_steps("measure")
    with pytest.raises(Blocked, match=r"deit_small_patch16_224-cd65a155\.pth"):
        kpi_vit.exec_fetch(steps["weights:deit_small"], make_run(tmp_path, mode="measure"))


def test_smoke_plan_times_pytorch_on_x86_64_and_lists_the_tflite_steps_as_not_part_of_the_mode() -> None:
    steps = plan_steps()
    host = [s for s in steps.values() if s.kind == "measure" and s.target == "x86_64"]
    assert {s.variant for s in host} == {"vit", "packvit", "packvit_masked"}
    assert {(s.where, s.fidelity) for s in host} == {("image", "host")}
    # Nothing that can only end BLOCKED is planned in smoke mode (the run cannot exit 3 by construction)…
    assert "convert:tflite" not in steps and not [s for s in steps.values() if s.target == "arm64"]
    # …and what is left out is listed, with why, for the plan and the report.
    plan = plan_kpi(MANIFEST, MANIFEST.kpi("vit_throughput"), mode="smoke", project_root=ROOT)
    skipped = {n.id: n for n in plan.not_in_mode}
    assert set(skipped) == {"convert:tflite", "measure:{vit,packvit,packvit_masked}:arm64"}
    assert all(n.planned_in == "measure" for n in skipped.values())
    assert "data-dependent" in skipped["convert:tflite"].why
    measure = plan_steps("measure")
    arm = [s for s in measure.values() if s.kind == "measure" and s.target == "arm64"]
    assert arm and all(s.depends == ("convert:tflite",) for s in arm) and all(not s.argv for s in arm)
    train = steps["train:packvit"].argv
    for flag in ("--no-repeated-aug", "--distill", "--model_path"):
        assert flag in train
    assert train[train.index("--mixup") + 1] == "0" and train[train.index("--model_path") + 1] == kpi_vit.RANDOM_WEIGHTS
    assert steps["weights:deit_small"].argv[2] == "init-checkpoint"


def test_measure_plan_follows_the_readme_and_takes_real_weights() -> None:
    steps = plan_steps("measure")
    train = steps["train:packvit"].argv
    assert train[:2] == ("torchrun", "--nproc_per_node=4") and "--dist-eval" in train
    assert train[train.index("--epochs") + 1] == "30" and train[-1] == kpi_vit.DEIT_WEIGHTS
    assert steps["measure:packvit:arm64:0"].fidelity == "board"
