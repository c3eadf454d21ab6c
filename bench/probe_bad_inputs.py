"""Bad-input and fault probe of issue 14: each case tried on a harness tree, then tried / clean / failing.

    python bench/probe_bad_inputs.py                 # this tree
    python bench/probe_bad_inputs.py --tree /work/main --json before.json

Every case runs `python -m harness` of the tree under test (PYTHONPATH=<tree>) in a fresh
temporary directory, with Docker pointed at an address that does not answer. A case is *clean*
when the command ends with the exit code the README's table gives for it, prints its error on one
line with no traceback, writes nothing outside its runs directory, and passes the case's own check
(no credential in any output, every ingested row kept, ...). Anything else is *failing*, with the
reason. Nothing is asserted: tests/test_hardening*.py pin the behaviour; this prints the table.
"""

from __future__ import annotations

import argparse
import fcntl
import gzip
import io
import json
import os
import resource
import subprocess
import sys
import tarfile
import tempfile
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.test_faults import write_manifest  # noqa: E402  (the fixture world of the fault tests)

SECRET = "S3CRETTOKEN"
DEAD_ENGINE = f"tcp://probe:{SECRET}@127.0.0.1:9"
TIMEOUT_S = 120


@dataclass
class World:
    """One case's temporary directory, the tree under test and the commands' outputs."""

    tree: Path
    tmp: Path
    outputs: list[str] = field(default_factory=list)

    @property
    def runs(self) -> Path:
        return self.tmp / "runs"

    def env(self, **extra: str) -> dict[str, str]:
        (self.tmp / "gitconfig").touch()
        env = {
            **os.environ,
            "PYTHONPATH": str(self.tree),
            "ANT_KPI_CACHE": str(self.tmp / "cache"),
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": str(self.tmp / "gitconfig"),
            "DOCKER_HOST": "tcp://127.0.0.1:9",
            "COLUMNS": "200",
        }
        env.pop("ANT_KPI_RUNS", None)
        env.update(extra)
        return env

    def harness(
        self, *args: str, manifest: Path | None = None, env: dict[str, str] | None = None, runs: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-m", "harness", "--manifest", str(manifest or self.tree / "kpis.toml")]
        argv += ["--runs-dir", runs if runs is not None else str(self.runs), *args]
        try:
            done = subprocess.run(
                argv,
                cwd=self.tmp,
                env=env or self.env(),
                capture_output=True,
                text=True,
                timeout=TIMEOUT_S,
                preexec_fn=_limit_memory,
            )
        except subprocess.TimeoutExpired:
            done = subprocess.CompletedProcess(argv, -9, "", f"(timed out after {TIMEOUT_S} s)")
        self.outputs += [done.stdout, done.stderr]
        return done

    def fixture_manifest(self) -> Path:
        return write_manifest(self.tmp)


def _limit_memory() -> None:
    # A case that reads an endless device must not take the machine's memory with it.
    resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))


Check = Callable[[World, subprocess.CompletedProcess[str]], str]


def error_lines(p: subprocess.CompletedProcess[str]) -> list[str]:
    return [ln for ln in p.stderr.splitlines() if ln.strip()]


def judge(w: World, p: subprocess.CompletedProcess[str], code: int, *, one_line: bool = True) -> str:
    """'' when the command ended cleanly with `code`; else why not."""
    if "Traceback" in p.stderr:
        last = error_lines(p)[-1] if error_lines(p) else ""
        return f"traceback (exit {p.returncode}): {last[:120]}"
    if p.returncode != code:
        tail = (error_lines(p) or [p.stdout.strip()[-120:]])[-1]
        return f"exit {p.returncode}, expected {code}: {tail[:140]}"
    if one_line and code != 0 and len(error_lines(p)) != 1:
        return f"{len(error_lines(p))} lines on stderr, expected one"
    return ""


def nothing_outside(w: World, *names: str) -> str:
    for n in names:
        if (w.tmp / n).exists():
            return f"{n} was created outside the runs directory"
    return ""


def vminfo_log(path: Path, pss: int, lines: int = 11) -> Path:
    rows = ["", *(f"{1000 * i} 900 200 132 1200 {pss - 10 + i} {pss - 10 + i}" for i in range(lines)), ""]
    path.write_text("\n".join(rows))
    return path


# --------------------------------------------------------------------------------------------
# Cases: (group, name, function returning '' when clean)
# --------------------------------------------------------------------------------------------


def case_secret(w: World) -> str:
    m = w.fixture_manifest()
    env = w.env(DOCKER_HOST=DEAD_ENGINE)
    runs = [
        w.harness("run", "js_memory", "--run-id", "leak", manifest=m, env=env),
        w.harness("report", "leak", "--lang", "ko", manifest=m, env=env),
        w.harness("report", "leak", manifest=m, env=env),
        w.harness("bundle", "leak", manifest=m, env=env),
    ]
    if runs[0].returncode != 3:
        return f"run exit {runs[0].returncode}, expected 3 (BLOCKED: engine unreachable)"
    hits = [p for p in w.runs.rglob("*") if p.is_file() and SECRET.encode() in p.read_bytes()]
    bundle = w.runs / "leak.evidence.tar.gz"
    if bundle.is_file():
        with tarfile.open(bundle) as tar:
            for m_ in tar:
                f = tar.extractfile(m_) if m_.isfile() else None
                if f is not None and SECRET.encode() in f.read():
                    hits.append(Path(f"bundle:{m_.name}"))
    console = sum(SECRET in o for o in w.outputs)
    if hits or console:
        return f"secret in {len(hits)} files ({', '.join(p.name for p in hits[:3])}…) and {console} console outputs"
    return ""


def run_id_case(rid: str, *outside: str, command: str = "run") -> Callable[[World], str]:
    def case(w: World) -> str:
        m = w.fixture_manifest()
        if command == "run":
            p = w.harness("run", "js_memory", "--workload", "small", f"--run-id={rid}", manifest=m)
        elif command == "build":
            p = w.harness("build", "iotjs", "--target", "x86_64", f"--run-id={rid}", manifest=m)
        else:
            log = vminfo_log(w.tmp / "a.log", 1000)
            p = w.harness("ingest", "1", str(log), "--variant", "iotjs", "--fidelity", "board", f"--run-id={rid}")
        return judge(w, p, 2) or nothing_outside(w, *outside)

    return case


def boards_case(body: str) -> Callable[[World], str]:
    def case(w: World) -> str:
        f = w.tmp / "boards.toml"
        f.write_text(
            '[boards.b1]\nmodel = "Raspberry Pi 4"\narch = "arm64"\ntarget = "arm64"\ntransport = "ssh"\n'
            f'host = "192.0.2.1"\n{body}\n'
        )
        p = w.harness("run", "js_memory", "--target", "b1", "--boards", str(f), "--dry-run")
        return judge(w, p, 2)

    return case


def case_ingest_three_times(w: World) -> str:
    for i in range(3):
        log = vminfo_log(w.tmp / "iotjs.log", 2000 + i)
        p = w.harness("ingest", "1", str(log), "--variant", "iotjs", "--fidelity", "board", "--run-id", "hand")
        if p.returncode != 0:
            return f"ingest {i + 1} exit {p.returncode}: {error_lines(p)[-1:]}"
    run = w.runs / "hand"
    journal = sum(1 for ln in (run / "results.jsonl").read_text().splitlines() if ln.strip())
    csv_rows = len((run / "results.csv").read_text().splitlines()) - 1
    evidence = len(list((run / "ingested").iterdir()))
    if csv_rows != journal or evidence != 3:
        return f"journal {journal} rows, results.csv {csv_rows}, {evidence} evidence file(s) of 3"
    return ""


def case_ingest_partial(w: World) -> str:
    good = vminfo_log(w.tmp / "good.log", 2000)
    bad = w.tmp / "bad.log"
    bad.write_text("not a vminfo log\n")
    p = w.harness("ingest", "1", str(good), str(bad), "--variant", "iotjs", "--fidelity", "board", "--run-id", "h")
    left = [q.name for q in (w.runs / "h").rglob("*")] if (w.runs / "h").exists() else []
    return judge(w, p, 2) or (f"left {left[:4]} behind" if left else "")


def case_ingest_no_fidelity(w: World) -> str:
    log = vminfo_log(w.tmp / "a.log", 2000)
    p = w.harness("ingest", "1", str(log), "--variant", "iotjs", "--run-id", "h")
    return judge(w, p, 2)


def _hold_lock(w: World) -> int:
    w.runs.mkdir(parents=True, exist_ok=True)
    fd = os.open(w.runs / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"pid {os.getpid()} run holder\n".encode(), 0)
    return fd


def case_ingest_locked(w: World) -> str:
    log = vminfo_log(w.tmp / "a.log", 2000)
    fd = _hold_lock(w)
    try:
        p = w.harness("ingest", "1", str(log), "--variant", "iotjs", "--fidelity", "board", "--run-id", "h")
    finally:
        os.close(fd)
    return judge(w, p, 3) or ("rows were added under the lock" if (w.runs / "h" / "results.jsonl").exists() else "")


def case_run_locked(w: World) -> str:
    m = w.fixture_manifest()
    fd = _hold_lock(w)
    try:
        p = w.harness("run", "js_memory", "--workload", "small", "--run-id", "second", manifest=m)
    finally:
        os.close(fd)
    bad = judge(w, p, 3)
    if bad:
        return bad
    text = p.stderr
    if "holder" not in text or "--wait" not in text or "one run at a time" not in text:
        return "the message does not name the holder, the one-run rule and --wait"
    return ""


def case_ingest_wrong_model(w: World) -> str:
    log = w.tmp / "yolo.log"
    src = (ROOT / "tests/fixtures/ml/benchmark_model_tf2_linux.handwritten.txt").read_text()
    log.write_text(src.replace("mobilenet_v2_1.0_224.tflite", "yolov5s.tflite"))
    p = w.harness("ingest", "3", str(log), "--variant", "mbv1_0.9_v4u", "--fidelity", "board", "--run-id", "h")
    return judge(w, p, 2)


def case_ingest_time_since_load(w: World) -> str:
    log = ROOT / "tests/fixtures/ant/resource_raw.x86_64.captured.log"
    p = w.harness(
        "ingest", "2", str(log), "--variant", "resource-api", "--workload", "resource-api", "--fidelity", "board"
    )
    return judge(w, p, 2)


def case_bundle_ingested(w: World) -> str:
    log = vminfo_log(w.tmp / "a.log", 2000)
    w.harness("ingest", "1", str(log), "--variant", "iotjs", "--fidelity", "board", "--run-id", "h")
    p = w.harness("bundle", "h")
    bad = judge(w, p, 0)
    if bad:
        return bad
    with tarfile.open(w.runs / "h.evidence.tar.gz") as tar:
        names = tar.getnames()
    return "" if any("/ingested/" in n for n in names) else "the bundle has no ingested/ file"


def case_report_disagree(w: World) -> str:
    log = vminfo_log(w.tmp / "a.log", 2000)
    w.harness("ingest", "1", str(log), "--variant", "iotjs", "--fidelity", "board", "--run-id", "h")
    journal = w.runs / "h" / "results.jsonl"
    lines = journal.read_text().splitlines(keepends=True)
    journal.write_text("".join(lines + [ln.replace('"repeat":0', '"repeat":7') for ln in lines]))
    p = w.harness("report", "h", "--no-html")
    bad = judge(w, p, 0, one_line=False)
    if bad:
        return bad
    warn = [ln for ln in error_lines(p) if "journal" in ln and "table" in ln]
    return "" if len(warn) == 1 else "no warning that the journal and the tables disagree"


def case_report_stale_tmp(w: World) -> str:
    log = vminfo_log(w.tmp / "a.log", 2000)
    w.harness("ingest", "1", str(log), "--variant", "iotjs", "--fidelity", "board", "--run-id", "h")
    (w.runs / "h" / ".results.csv.abc123.tmp").write_text("half")
    p = w.harness("report", "h", "--no-html")
    left = list((w.runs / "h").glob(".*.tmp"))
    return judge(w, p, 0, one_line=False) or (f"{len(left)} stale temp file(s) left" if left else "")


def case_runs_dir_file(w: World) -> str:
    f = w.tmp / "afile"
    f.write_text("x")
    log = vminfo_log(w.tmp / "a.log", 2000)
    p = w.harness("ingest", "1", str(log), "--variant", "iotjs", "--fidelity", "board", runs=str(f))
    return judge(w, p, 2)


def case_runs_dir_file_run(w: World) -> str:
    f = w.tmp / "afile"
    f.write_text("x")
    p = w.harness("run", "js_memory", "--workload", "small", manifest=w.fixture_manifest(), runs=str(f))
    return judge(w, p, 2)


def case_runs_dir_unreachable(w: World) -> str:
    p = w.harness("run", "js_memory", "--workload", "small", manifest=w.fixture_manifest(), runs="/proc/1/nope/runs")
    return judge(w, p, 2)


def case_bundle_unwritable(w: World) -> str:
    log = vminfo_log(w.tmp / "a.log", 2000)
    w.harness("ingest", "1", str(log), "--variant", "iotjs", "--fidelity", "board", "--run-id", "h")
    p = w.harness("bundle", "h", "-o", "/proc/1/nope/out.tar.gz")
    return judge(w, p, 2)


def _zlib_corrupt(data: bytes) -> bytes:
    """The first single-byte change of `data` that makes reading it as tar.gz raise zlib.error."""
    for i in range(len(data) // 3, len(data) - 8):
        bad = bytearray(data)
        bad[i] ^= 0x55
        try:
            with tarfile.open(fileobj=io.BytesIO(bytes(bad)), mode="r:gz") as tar:
                for m in tar:
                    f = tar.extractfile(m) if m.isfile() else None
                    if f is not None:
                        f.read()
        except zlib.error:
            return bytes(bad)
        except (tarfile.TarError, OSError, EOFError, gzip.BadGzipFile):
            continue
    raise RuntimeError("no byte change gave a zlib.error")


def case_verify_zlib(w: World) -> str:
    log = vminfo_log(w.tmp / "a.log", 2000)
    w.harness("ingest", "1", str(log), "--variant", "iotjs", "--fidelity", "board", "--run-id", "h")
    w.harness("bundle", "h")
    out = w.tmp / "corrupt.tar.gz"
    out.write_bytes(_zlib_corrupt((w.runs / "h.evidence.tar.gz").read_bytes()))
    return judge(w, w.harness("verify", str(out)), 2)


def run_args_case(*args: str, code: int = 2) -> Callable[[World], str]:
    def case(w: World) -> str:
        src = w.tmp / "src"
        src.mkdir(exist_ok=True)
        a = [x.replace("{src}", str(src)) for x in args]
        return judge(w, w.harness("run", "js_memory", *a, manifest=w.fixture_manifest()), code)

    return case


def case_images_nosuch(w: World) -> str:
    p = w.harness("images", "build", "nosuch")
    bad = judge(w, p, 2)
    return bad or ("" if "nosuch" in p.stderr else "the message does not name the image")


def case_validate_fifo(w: World) -> str:
    fifo = w.tmp / "kpis.fifo"
    os.mkfifo(fifo)
    return judge(w, w.harness("validate", str(fifo)), 2)


def case_validate_device(w: World) -> str:
    return judge(w, w.harness("validate", "/dev/zero"), 2)


def case_journal_inf(w: World) -> str:
    log = vminfo_log(w.tmp / "a.log", 2000)
    w.harness("ingest", "1", str(log), "--variant", "iotjs", "--fidelity", "board", "--run-id", "h")
    journal = w.runs / "h" / "results.jsonl"
    first = journal.read_text().splitlines()[0]
    row = json.loads(first)
    row.update(value=float("inf"), repeat=9)
    with journal.open("a") as f:
        f.write(json.dumps(row) + "\n")
    return judge(w, w.harness("report", "h", "--no-html"), 2)


CASES: list[tuple[str, str, Callable[[World], str]]] = [
    ("security", "DOCKER_HOST credentials in any output", case_secret),
    *[
        ("security", f"run --run-id {rid!r}", run_id_case(rid, *outside))
        for rid, outside in (
            ("../escape", ("escape",)),
            ("/tmp/ant-kpi-probe-abs", ()),
            ("a/b", ()),
            (".", ()),
            ("..", ()),
            ("-x", ()),
            ("a\nb", ()),
            ("a\x01b", ()),
            ("x" * 300, ()),
        )
    ],
    ("security", "ingest --run-id ../escape", run_id_case("../escape", "escape", command="ingest")),
    ("security", "build --run-id ../escape", run_id_case("../escape", "escape", command="build")),
    ("security", "boards work_dir /tmp/../..", boards_case('work_dir = "/tmp/../.."')),
    ("security", "boards work_dir /tmp/../etc", boards_case('work_dir = "/tmp/../etc"')),
    ("security", "boards work_dir //", boards_case('work_dir = "//"')),
    ("bad input", "boards connect_timeout_s nan", boards_case("connect_timeout_s = nan")),
    ("bad input", "boards connect_timeout_s inf", boards_case("connect_timeout_s = inf")),
    ("bad input", "boards command_timeout_s nan", boards_case("command_timeout_s = nan")),
    ("bad input", "boards command_timeout_s inf", boards_case("command_timeout_s = inf")),
    ("data", "three ingests of one variant", case_ingest_three_times),
    ("data", "ingest: second file unparsable", case_ingest_partial),
    ("data", "ingest without --fidelity", case_ingest_no_fidelity),
    ("data", "ingest while another command holds the runs lock", case_ingest_locked),
    ("data", "ingest a yolov5s log as mbv1_0.9_v4u", case_ingest_wrong_model),
    ("data", "ingest resourcebench time-since-load log", case_ingest_time_since_load),
    ("data", "bundle carries ingested/", case_bundle_ingested),
    ("data", "report: journal and tables disagree", case_report_disagree),
    ("data", "report: stale temp file", case_report_stale_tmp),
    ("data", "run while another run holds the lock", case_run_locked),
    ("bad input", "ingest --runs-dir FILE", case_runs_dir_file),
    ("bad input", "run --runs-dir FILE", case_runs_dir_file_run),
    ("bad input", "run --runs-dir unreachable", case_runs_dir_unreachable),
    ("bad input", "bundle -o unwritable", case_bundle_unwritable),
    ("bad input", "verify: corrupt deflate stream", case_verify_zlib),
    ("bad input", "run --source nosuch=DIR", run_args_case("--source", "nosuch={src}")),
    ("bad input", "run --dry-run --source nosuch=DIR", run_args_case("--dry-run", "--source", "nosuch={src}")),
    ("bad input", "run --dry-run --source iotjs=/nonexistent", run_args_case("--dry-run", "--source", "iotjs=/no")),
    ("bad input", "run --repeats 0", run_args_case("--repeats", "0")),
    ("bad input", "run --repeats -1", run_args_case("--repeats=-1")),
    ("bad input", "run --dry-run --repeats 100000", run_args_case("--dry-run", "--repeats", "100000")),
    ("bad input", "run --workload nosuch", run_args_case("--workload", "nosuch")),
    ("bad input", "images build nosuch", case_images_nosuch),
    ("bad input", "validate a FIFO", case_validate_fifo),
    ("bad input", "validate /dev/zero", case_validate_device),
    ("bad input", "journal value inf as an ok row", case_journal_inf),
]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--tree", type=Path, default=ROOT, help="the harness tree to probe (default: this one)")
    ap.add_argument("--json", type=Path, default=None, help="also write every case's outcome here")
    ap.add_argument("-k", default="", help="only cases whose name contains this")
    a = ap.parse_args()
    outcomes = []
    for group, name, case in CASES:
        if a.k and a.k not in name:
            continue
        with tempfile.TemporaryDirectory(prefix="ant-kpi-probe-") as tmp:
            t0 = time.monotonic()
            why = case(World(tree=a.tree.resolve(), tmp=Path(tmp)))
            outcomes.append({"group": group, "case": name, "clean": not why, "why": why})
            mark = "clean  " if not why else "FAILING"
            print(f"{mark} {group:9} {name}{'' if not why else ' — ' + why} ({time.monotonic() - t0:.1f} s)")
    print()
    print(f"{'group':10} {'tried':>5} {'clean':>5} {'failing':>7}")
    for group in dict.fromkeys(o["group"] for o in outcomes):
        sel = [o for o in outcomes if o["group"] == group]
        ok = sum(o["clean"] for o in sel)
        print(f"{group:10} {len(sel):5} {ok:5} {len(sel) - ok:7}")
    ok = sum(o["clean"] for o in outcomes)
    print(f"{'all':10} {len(outcomes):5} {ok:5} {len(outcomes) - ok:7}")
    if a.json:
        a.json.write_text(json.dumps(outcomes, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
