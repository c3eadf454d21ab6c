"""`ant-kpi doctor`: each KPI's real needs, checked on real parts (files, a local TLS server, the index
of wheels, the CLI), each gap named with its fix."""

from __future__ import annotations

import dataclasses
import socket
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.commands.doctor import kpi_needs
from harness.commands.doctor_needs import Machine, baseline, dense_top1, ml_files
from harness.core.manifest import load_manifest
from harness.env import probes
from harness.kpis import plan_kpi
from harness.kpis.common.tflite_writer import tiny_mobilenet_like
from harness.options import EnvSettings

ROOT = Path(__file__).resolve().parent.parent
MANIFEST = load_manifest(ROOT / "kpis.toml")


def machine(tmp_path: Path, env: EnvSettings | None = None, **overrides: Path) -> Machine:
    return Machine(MANIFEST, root=ROOT, cache_dir=tmp_path / "cache", env=env or EnvSettings(), overrides=overrides)


def ant_tree(tmp_path: Path, *, with_tool: bool) -> Path:
    """A plain ANT directory (used in place, as --source ant=PATH) whose mlbench lacks the large tool."""
    root = tmp_path / "ant"
    tiny_mobilenet_like(root / "test/mlbench/mbv1_0.9_v4u.tflite", int8=True, sparsity=0.5)
    if with_tool:
        (root / "test/mlbench/benchmark_model_aarch64").write_bytes(b"\x7fELF" + b"\0" * 60)
    return root


# ---- KPI 3 and 4: the files a run reads ------------------------------------------------------------


def test_a_missing_ant_file_is_named_with_the_complete_clone_fix(tmp_path: Path) -> None:
    m = machine(tmp_path, ant=ant_tree(tmp_path, with_tool=False))
    model, tool = ml_files(m, ("mbv1_0.9_v4u", "benchmark_model_aarch64"))
    assert model.state == "ok" and "bytes" in model.probe.detail
    assert tool.state == "missing" and "has no test/mlbench/benchmark_model_aarch64" in tool.probe.detail
    assert "complete clone" in tool.fix


def test_an_lfs_pointer_is_not_the_file(tmp_path: Path) -> None:
    root = ant_tree(tmp_path, with_tool=True)
    (root / "test/mlbench/benchmark_model_aarch64").write_text("version https://git-lfs.github.com/spec/v1\n")
    [tool] = ml_files(machine(tmp_path, ant=root), ("benchmark_model_aarch64",))
    assert tool.state == "missing" and "Git LFS pointer" in tool.probe.detail and "git lfs pull" in tool.fix


def test_the_baseline_is_given_cached_or_downloadable_and_otherwise_says_why(tmp_path: Path) -> None:
    given = tiny_mobilenet_like(tmp_path / "b.tflite").path
    assert baseline(machine(tmp_path, EnvSettings(baseline_tflite=str(given)))).state == "ok"
    gone = baseline(machine(tmp_path, EnvSettings(baseline_tflite=str(tmp_path / "nope.tflite"))))
    assert gone.state == "missing" and "does not exist" in gone.probe.detail
    # Nothing given: the manifest URL is asked (here one where nothing listens).
    closed = _closed_port()
    wl = dataclasses.replace(MANIFEST.workloads["mobilenet_v2_1.0_224"], url=f"http://127.0.0.1:{closed}/m.tgz")
    m = machine(tmp_path)
    m.manifest = dataclasses.replace(MANIFEST, workloads={**MANIFEST.workloads, wl.name: wl})
    need = baseline(m)
    assert need.state == "missing" and "refused" in need.probe.detail.lower()
    assert "ANT_KPI_BASELINE_TFLITE" in need.fix


def test_a_dense_top1_override_is_information_not_a_gap(tmp_path: Path) -> None:
    need = dense_top1(machine(tmp_path, EnvSettings(dense_top1="71.5")))
    assert need.state == "info" and "an override, marked in the report" in need.probe.detail


def test_kpi4_table_from_its_plan_and_run_time_needs(tmp_path: Path) -> None:
    given = tiny_mobilenet_like(tmp_path / "b.tflite").path
    m = machine(tmp_path, EnvSettings(baseline_tflite=str(given)), ant=ant_tree(tmp_path, with_tool=False))
    needs = {n.name: n for n in kpi_needs(m, plan_kpi(MANIFEST, MANIFEST.kpi("ml_memory"), project_root=ROOT))}
    assert needs["source ant (test/mlbench)"].state == "ok"
    assert needs["ANT test/mlbench/mbv1_0.9_v4u.tflite"].state == "ok"
    assert needs["KPI 3's own conversion"].state == "info"
    assert not [n for n in needs.values() if n.state == "missing"]


def test_steps_left_out_by_the_mode_are_listed_as_information(tmp_path: Path) -> None:
    plan = plan_kpi(MANIFEST, MANIFEST.kpi("tinyml_memory"), project_root=ROOT)
    m = machine(tmp_path)
    m.__dict__["client"] = None  # no engine asked: only the plan's rows without one are looked at
    rows = {n.name: n for n in kpi_needs(m, plan)}
    skipped = rows["not part of smoke mode: measure:peak-sram:patch"]
    assert skipped.state == "info" and "int8 TFLite export" in skipped.probe.detail
    assert rows["Docker engine"].state == "missing"


# ---- an image build's packages: the wheelhouse and the index ------------------------------------


def _pins(name: str) -> set[tuple[str, str]]:
    from harness.commands.doctor_needs import _pins as pins
    from harness.env.image_context import normalize_name

    ctx = ROOT / MANIFEST.images[name].context
    return pins(ctx, ("requirements.txt", "requirements-torch-cuda.txt", "requirements-no-deps.txt"), normalize_name)


def test_a_wheelhouse_only_build_names_the_wheels_it_lacks(tmp_path: Path) -> None:
    house = tmp_path / "wh"
    house.mkdir()
    pins = sorted(_pins("cuda-train"))
    for n, v in pins[1:]:
        (house / f"{n.replace('-', '_')}-{v}-py3-none-any.whl").write_bytes(b"")
    env = EnvSettings(wheelhouse=str(house), build_args={"WHEELHOUSE_ONLY": "yes"})
    need = machine(tmp_path, env).packages(MANIFEST.images["cuda-train"])
    assert need is not None and need.state == "missing"
    assert f"wheelhouse {len(pins) - 1} of {len(pins)} pinned wheels" in need.probe.detail
    assert f"{pins[0][0]}=={pins[0][1]}" in need.probe.detail and "ANT_KPI_WHEELHOUSE" in need.fix
    n, v = pins[0]
    (house / f"{n.replace('-', '_')}-{v}-py3-none-any.whl").write_bytes(b"")
    need = machine(tmp_path, env).packages(MANIFEST.images["cuda-train"])
    assert need is not None and need.state == "ok" and "no index" in need.probe.detail
    assert machine(tmp_path, env).packages(MANIFEST.images["arm-cross"]) is None  # apt only


def test_a_complete_wheelhouse_behind_an_untrusted_index_builds_and_says_to_skip_the_index(
    tmp_path: Path, untrusted_tls_server: int
) -> None:
    house = tmp_path / "wh"
    house.mkdir()
    for n, v in _pins("cuda-train"):
        (house / f"{n.replace('-', '_')}-{v}-py3-none-any.whl").write_bytes(b"")
    index = f"https://localhost:{untrusted_tls_server}/simple/"
    m = machine(tmp_path, EnvSettings(wheelhouse=str(house), build_args={"PYPI_INDEX_URL": index}))
    m.__dict__["client"] = None  # ask from this host: no image is needed for the answer
    need = m.packages(MANIFEST.images["cuda-train"])
    assert need is not None and need.state == "ok" and "pip retries it for every package" in need.probe.detail
    assert "certificate the image does not trust" in need.probe.detail
    assert need.fix == "set ANT_KPI_BUILD_ARG_WHEELHOUSE_ONLY=yes so pip does not wait on the index"
    # With no wheelhouse and the host's pip told not to fill one, the same index is a gap, with the fix.
    bare = machine(tmp_path, EnvSettings(build_args={"PYPI_INDEX_URL": index}, host_wheelhouse=False))
    bare.__dict__["client"] = None
    gap = bare.packages(MANIFEST.images["cuda-train"])
    assert gap is not None and gap.state == "missing" and "ant-kpi images wheelhouse cuda-train -o DIR" in gap.fix
    # By default the host's pip fills it at the image step.
    auto = machine(tmp_path, EnvSettings(build_args={"PYPI_INDEX_URL": index}))
    need = auto.packages(MANIFEST.images["cuda-train"])
    assert need is not None and need.state == "ok" and "the host's pip fills the pinned wheels" in need.probe.detail


@pytest.fixture
def untrusted_tls_server(tmp_path: Path) -> Iterator[int]:
    """A TLS server on loopback with a self-signed certificate, as a TLS-intercepting proxy presents."""
    key, crt = tmp_path / "k.pem", tmp_path / "c.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(crt),
         "-days", "1", "-subj", "/CN=localhost"],
        check=True, capture_output=True,
    )  # fmt: skip
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(crt, key)
    srv = socket.create_server(("127.0.0.1", 0))
    port = srv.getsockname()[1]

    def serve() -> None:
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            try:
                with ctx.wrap_socket(conn, server_side=True):
                    pass
            except (ssl.SSLError, OSError):
                pass

    threading.Thread(target=serve, daemon=True).start()
    yield port
    srv.close()


def test_the_index_probe_names_the_real_cause(untrusted_tls_server: int) -> None:
    cert = probes.index_reachable(f"https://localhost:{untrusted_tls_server}/simple/", None, [])
    assert cert.state == "missing" and "certificate the image does not trust" in cert.detail
    assert "self-signed certificate" in cert.detail
    refused = probes.index_reachable(f"https://127.0.0.1:{_closed_port()}/simple/", None, [])
    assert refused.state == "missing" and "refuses the connection" in refused.detail
    dns = probes.index_reachable("https://no-such-host.invalid/simple/", None, [])
    assert dns.state == "missing" and "cannot be resolved (DNS)" in dns.detail
    assert "Debian's CA set" in dns.detail  # where it was asked from, said


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = int(s.getsockname()[1])
    s.close()
    return port


# ---- the command -------------------------------------------------------------------------------


def test_doctor_prints_a_table_per_kpi_with_each_gap_and_its_fix(tmp_path: Path) -> None:
    # The baseline's URL points where nothing listens: the same answer on any machine.
    url = MANIFEST.workloads["mobilenet_v2_1.0_224"].url
    manifest = tmp_path / "kpis.toml"
    manifest.write_text((ROOT / "kpis.toml").read_text().replace(url, f"http://127.0.0.1:{_closed_port()}/m.tgz"))
    env = {"PYTHONPATH": str(ROOT), "ANT_KPI_CACHE": str(tmp_path / "cache"), "COLUMNS": "200", "PATH": "/usr/bin:/bin"}
    proc = subprocess.run(
        [sys.executable, "-m", "harness", "--manifest", str(manifest), "doctor", "4",
         "--source", f"ant={ant_tree(tmp_path, with_tool=False)}"],
        capture_output=True, text=True, env=env, timeout=300, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "KPI 4 · ml_memory · smoke: 1 of 4 missing" in out
    assert "baseline mobilenet_v2_1.0_224.tflite" in out and "Connection refused" in out
    assert "ANT_KPI_BASELINE_TFLITE=/path/to/mobilenet_v2_1.0_224.tflit" in out
    assert "Traceback" not in proc.stderr
