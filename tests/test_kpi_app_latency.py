"""KPI 2 pieces that need no upstream code: the derived script copies and the companion stand-in."""

from __future__ import annotations

import http.client
import re
import socket
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from harness.core.manifest import load_manifest, parse_manifest, tomllib
from harness.core.runner import open_run
from harness.errors import ManifestError, StepFailed
from harness.kpis import plan_kpi
from harness.kpis.app_latency.execute import SMOKE_SENDS, UPSTREAM_SENDS, derive_copy, rows_for
from harness.parsers import resourcebench
from harness.payload import companion
from harness.results.journal import append_row_journal
from harness.results.judgement import Verdict
from harness.results.runs import collect
from harness.results.verdicts import evaluate

ROOT = Path(__file__).resolve().parent.parent
FIX = ROOT / "tests" / "fixtures" / "ant"
STANDIN = (FIX / "bench_standin.js").read_text()


# -- derived copies ------------------------------------------------------------------------------


def test_per_send_copy_stamps_every_request_and_keeps_the_upstream_loop() -> None:
    out = derive_copy(STANDIN, name="x.js", per_send=True, sends=UPSTREAM_SENDS)
    assert "'**ResourceBench** ' + new Date().valueOf()" in out
    assert "+ startTimeValue" not in out
    assert "totalCount < 49" in out


def test_smoke_copies_lower_the_loop_bound_and_raw_copies_keep_the_load_time_stamp() -> None:
    out = derive_copy(STANDIN, name="x.js", per_send=False, sends=SMOKE_SENDS)
    assert f"totalCount < {SMOKE_SENDS - 1}" in out
    assert "+ startTimeValue" in out


def test_raw_copy_in_measure_mode_is_the_upstream_text() -> None:
    assert derive_copy(STANDIN, name="x.js", per_send=False, sends=UPSTREAM_SENDS) == STANDIN


def test_a_changed_upstream_script_fails_the_patch_instead_of_running_unpatched() -> None:
    changed = STANDIN.replace("startTimeValue;", "stamp0;").replace("+ startTimeValue", "+ stamp0")
    with pytest.raises(StepFailed, match="load-time stamp"):
        derive_copy(changed, name="x.js", per_send=True, sends=UPSTREAM_SENDS)
    with pytest.raises(StepFailed, match="loop bound"):
        derive_copy(STANDIN.replace("< 49", "< 20"), name="x.js", per_send=False, sends=SMOKE_SENDS)


# -- the companion's replies ---------------------------------------------------------------------


def test_companion_echoes_the_legacy_timestamp() -> None:
    assert companion.reply_for("**ResourceBench** 1700000000123") == "1700000000123"


def test_companion_answers_a_resource_request_with_the_same_id_method_and_uri() -> None:
    body = "ResourceRequest\n7\nGET\n/resourcebench\n**ResourceBench** 1700000000123"
    assert companion.reply_for(body) == "ResourceResponse\n7\nGET\n/resourcebench\n1700000000123"
    req = companion.parse_resource_request(body)
    assert req is not None and req.request_id == "7" and req.uri == "/resourcebench"


def test_companion_ignores_other_messages() -> None:
    assert companion.reply_for("hello") is None
    assert companion.parse_resource_request("ResourceRequest\n1\nGET") is None


# -- the companion against a tiny fake device ----------------------------------------------------


class _FakeDevice:
    """main-old.js's reply endpoint: records what the companion posts back."""

    def __init__(self) -> None:
        self.received: list[str] = []
        device = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n).decode()
                ok = self.path == companion.DEVICE_REPLY_PATH
                if ok:
                    device.received.append(body)
                msg = b"Success" if ok else b"Not Found Entry"
                self.send_response(200 if ok else 404)
                self.send_header("Content-Length", str(len(msg)))
                self.end_headers()
                self.wfile.write(msg)

            def do_GET(self) -> None:
                msg = b"Alive"
                self.send_response(200)
                self.send_header("Content-Length", str(len(msg)))
                self.end_headers()
                self.wfile.write(msg)

            def log_message(self, format: str, *args: object) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = int(self.server.server_address[1])
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def wait_for(self, n: int, timeout_s: float = 5.0) -> list[str]:
        deadline = time.monotonic() + timeout_s
        while len(self.received) < n and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.received


@pytest.fixture
def device() -> Iterator[_FakeDevice]:
    d = _FakeDevice()
    d.thread.start()
    yield d
    d.server.shutdown()
    d.server.server_close()


def _post(port: int, path: str, body: str) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    conn.request("POST", path, body=body.encode(), headers={"Content-Length": str(len(body))})
    status = conn.getresponse().status
    conn.close()
    return status


def test_companion_posts_replies_back_to_the_device_and_counts_them(device: _FakeDevice) -> None:
    with companion.CompanionStandIn(port=0, device_port=device.port) as c:
        assert _post(c.port, "/companion", "**ResourceBench** 42") == 200
        assert _post(c.port, "/companion", "ResourceRequest\n0\nGET\n/resourcebench\n**ResourceBench** 43") == 200
        assert _post(c.port, "/companion", "unrelated") == 200
        assert _post(c.port, "/elsewhere", "**ResourceBench** 44") == 404
        got = device.wait_for(2)
        counters = c.counters
    assert got == ["42", "ResourceResponse\n0\nGET\n/resourcebench\n43"]
    assert (counters.received, counters.legacy, counters.resource, counters.ignored) == (3, 1, 1, 1)
    assert (counters.echoed, counters.delivered, counters.failed) == (2, 2, 0)
    assert "echoed 2, delivered 2, failed 0" in counters.line()
    # Its own share of each round trip is timed per reply, and reported in order.
    assert len(counters.own_ms) == 2 and all(0 <= x < 1000 for x in counters.own_ms)
    assert counters.own_line().startswith("companion: own ms: ") and len(counters.own_line().split()) == 3 + 2


def test_companion_counts_replies_the_device_did_not_take() -> None:
    with companion.CompanionStandIn(port=0, device_port=1, timeout_s=1.0) as c:
        _post(c.port, "/companion", "**ResourceBench** 1")
        deadline = time.monotonic() + 5
        while c.counters.failed == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
    assert c.counters.failed == 1
    assert c.counters.delivered == 0
    assert c.counters.errors


def test_runtime_client_sees_a_device_alive(device: _FakeDevice) -> None:
    client = companion.RuntimeClient(port=device.port, timeout_s=5)
    assert client.alive()
    client.wait_alive(2.0)
    with pytest.raises(companion.RuntimeRefused, match="404"):
        client.install("var x;")  # the fake only knows the reply path


def test_the_session_driver_counts_result_lines_with_the_parser_pattern(tmp_path: Path) -> None:
    log = tmp_path / "runtime.log"
    log.write_text((FIX / "legacy_persend.x86_64.captured.log").read_text())
    assert companion._count_lines(log, re.compile(resourcebench.LINE_PATTERN)) == 10


# -- one whole session against a stand-in runtime ------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_session_installs_starts_counts_lines_stops_and_reports_the_companion(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    device, comp = _free_port(), _free_port()
    app = tmp_path / "app.js"
    app.write_text("var onStart = function () {};\n")
    log = tmp_path / "runtime.log"
    rc = companion.main(
        [
            "session", "--app", str(app), "--runtime-log", str(log), "--cwd", str(tmp_path),
            "--line-pattern", resourcebench.LINE_PATTERN, "--lines", "4", "--duration", "20",
            "--companion-port", str(comp), "--device-port", str(device),
            "--", sys.executable, str(FIX / "fake_main_old.py"), str(device), str(comp),
        ]
    )  # fmt: skip
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "ended by all 4 lines" in out
    samples = resourcebench.parse(log)
    assert len(samples) >= 4
    assert all(0 <= s.ms < 1000 for s in samples)
    assert "onStop" in log.read_text()
    counters = next(ln for ln in out.splitlines() if ln.startswith("companion: received"))
    assert "failed 0" in counters
    own = next(ln for ln in out.splitlines() if ln.startswith("companion: own ms:"))
    assert len(own.split()) - 3 >= 4  # one figure per reply the stand-in sent


def test_a_session_whose_runtime_dies_at_start_up_fails_with_its_exit_code(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    app = tmp_path / "app.js"
    app.write_text("x")
    rc = companion.main(
        [
            "session", "--app", str(app), "--runtime-log", str(tmp_path / "r.log"),
            "--line-pattern", resourcebench.LINE_PATTERN, "--duration", "5", "--startup-timeout", "10",
            "--companion-port", str(_free_port()), "--device-port", str(_free_port()),
            "--", sys.executable, "-c", "raise SystemExit(3)",
        ]
    )  # fmt: skip
    assert rc == 2
    assert "exited 3 before answering" in capsys.readouterr().out


# -- rows ----------------------------------------------------------------------------------------


def test_rows_keep_every_sample_through_the_report_and_compare_the_two_apis(tmp_path: Path) -> None:

    root = ROOT
    m = load_manifest(root / "kpis.toml")
    run = open_run(manifest=m, project_root=root, mode="smoke", runs_dir=tmp_path / "runs", run_id="t",
                   cache_dir=tmp_path / "cache")  # fmt: skip
    plan = plan_kpi(m, m.kpi("app_latency"), mode="smoke", targets=("x86_64",))
    steps = {s.variant: s for s in plan.steps if s.kind == "measure"}
    # Both sessions as the harness captured them on x86_64 (per-send copies, and the upstream copy).
    legacy = FIX / "legacy_persend.x86_64.captured.log"
    resource = FIX / "resource_persend.x86_64.captured.log"
    summary = [
        "session: 10 lines in 20.5 s, ended by all 10 lines; runtime exit -15",
        "companion: received 10 (legacy 10, resource 0, ignored 0), echoed 10, delivered 10, failed 0",
        "companion: own ms: 0.310 0.295 0.402 0.288 0.301 0.330 0.297 0.350 0.289 0.312",
    ]
    raw = str(FIX / "resource_raw.x86_64.captured.log")
    for variant, log in (("legacy", legacy), ("resource-api", resource)):
        outputs = {
            "sessions": {"persend": {"rc": 0, "log": str(log)}, "raw": {"rc": 0, "log": raw}},
            "sends": 10,
            "summary": summary,
            "started_at": 0.0,
            "argv": ["iotjs", "main-old.js"],
        }
        for row in rows_for(run, steps[variant], outputs):
            append_row_journal(run.run_dir, row)
    df = collect(run.run_dir).df
    rtt = df[df.metric == "rtt"]
    assert len(rtt) == 2 * 9  # sample 1 of each dropped as warm-up, none collapsed by the report
    # Each printed line keeps its own sample index; the repeat stays the measurement's repeat.
    assert sorted(rtt[rtt.variant == "legacy"]["sample"]) == list(range(2, 11))
    assert set(rtt["repeat"]) == {steps["legacy"].repeat or 0}
    n_raw = len(resourcebench.parse(Path(raw)))
    assert len(df[df.metric == "elapsed_raw"]) == 2 * n_raw
    own = df[df.metric == "companion_own"]
    assert len(own) == 2 * 10 and own.value.max() < 1.0  # the stand-in's share, beside the round trips
    assert set(df.fidelity) == {"host"}
    assert rtt.note.str.contains("smoke: 10 sends instead of 50").all()
    ev = evaluate(m.kpi("app_latency"), collect(run.run_dir))
    assert ev.verdict == Verdict.NO_VERDICT  # smoke rows never decide
    assert ev.statistic == "overhead_pct"
    from harness.results.statistics import compare

    def kept(p: Path) -> list[float]:
        return [x.ms for x in resourcebench.without_warmup(resourcebench.parse(p))]

    assert ev.value == pytest.approx(compare(kept(legacy), kept(resource), "overhead_pct").value)


def test_a_session_that_printed_nothing_leaves_a_failed_row(tmp_path: Path) -> None:

    root = ROOT
    m = load_manifest(root / "kpis.toml")
    run = open_run(manifest=m, project_root=root, mode="smoke", runs_dir=tmp_path / "runs", run_id="t",
                   cache_dir=tmp_path / "cache")  # fmt: skip
    step = next(s for s in plan_kpi(m, m.kpi("app_latency"), targets=("x86_64",)).steps if s.kind == "measure")
    empty = tmp_path / "empty.log"
    empty.write_text("onInitialize\n")
    rows = rows_for(run, step, {"sessions": {"persend": {"rc": 2, "log": str(empty)}}, "sends": 10, "started_at": 0.0})
    assert [(r.metric, r.status) for r in rows] == [("rtt", "failed")]
    assert "session exited 2" in rows[0].note


def test_the_ant_build_checks_out_only_the_paths_it_needs_and_forces_dep_iotjs() -> None:
    m = load_manifest(ROOT / "kpis.toml")
    plan = plan_kpi(m, m.kpi("app_latency"), mode="smoke", targets=("x86_64",))
    build = next(s for s in plan.steps if s.id == "build:ant:x86_64")
    src = next(s for s in plan.steps if s.id in build.depends and s.id.startswith("source:ant:"))
    assert "test/mlbench" not in src.params["paths"]
    assert {"api", "app-core", "test/resourcebench"} <= set(src.params["paths"])
    assert "source:iotjs_plus_ant" in build.depends
    assert "--external-modules=/src/api/" in build.argv


def test_build_paths_are_read_strictly() -> None:
    data = tomllib.loads((ROOT / "kpis.toml").read_text())
    assert parse_manifest(data, ROOT / "kpis.toml").builds["ant"].paths[0] == "api"
    data["builds"]["ant"]["paths"] = "api"
    with pytest.raises(ManifestError, match=r"builds\.ant\.paths.*list of strings"):
        parse_manifest(data, ROOT / "kpis.toml")


def test_kpi2_smoke_measures_five_interleaved_legs_and_the_upstream_copy_once() -> None:
    from harness.kpis.app_latency.execute import copies_for

    m = load_manifest(ROOT / "kpis.toml")
    plan = plan_kpi(m, m.kpi("app_latency"), mode="smoke", targets=("x86_64",))
    legs = [(s.variant, s.repeat) for s in plan.steps if s.kind == "measure"]
    assert len(legs) == 10  # 5 legs per variant of 10 sends: ≈45 round trips each after the warm-up
    assert [v for v, _ in legs][:4] == ["legacy", "resource-api", "resource-api", "legacy"]  # A/B, then B/A
    steps = [s for s in plan.steps if s.kind == "measure"]
    assert [copies_for(s) for s in steps[:3]] == [("persend", "raw"), ("persend", "raw"), ("persend",)]
