"""Hostile run folders: each damaged folder is opened by the reader, `screenshot --run`,
`animate --run`, the app's Open run and its Runs dock, in one child process under a
memory limit with a time limit per command; each must answer cleanly (exit 0 with the
damaged part named, or exit 2 and one line) and nothing outside the folder may change.

The child process (this module run as a script) prints one JSON line per command; the
tests read them. Building the cases takes one tiny recorded run."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
MEMORY_LIMIT = 6 << 30  # address space of the child (torch and Qt map about 3 GB)
COMMAND_S = 40  # per command in the child: a hang fails the case, not the suite

# name -> (damage, expected): "opens" (exit 0, the damage named) or "refused" (exit 2)
CASES: dict = {}


def case(expected: str):
    def add(fn):
        CASES[fn.__name__] = (fn, expected)
        return fn
    return add


def _last_snapshot(run: Path) -> Path:
    return max((run / "snapshots").glob("*.npz"), key=lambda p: int(p.stem))


def _fifo(path: Path) -> None:
    path.unlink(missing_ok=True)
    os.mkfifo(path)


def _edit_npz(path: Path, change) -> None:
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    meta = json.loads(str(arrays["meta"][()]))
    change(arrays, meta)
    arrays["meta"] = np.asarray(json.dumps(meta))
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)


@case("opens")
def run_json_final_is_a_number(run, out):
    (run / "run.json").write_text('{"schema_version": 2, "final": 5}')


@case("refused")
def run_json_nested_100k_deep(run, out):
    (run / "run.json").write_text("[" * 100_000)


@case("refused")
def run_json_is_a_fifo(run, out):
    _fifo(run / "run.json")


@case("refused")
def run_json_links_to_dev_zero(run, out):
    (run / "run.json").unlink()
    (run / "run.json").symlink_to("/dev/zero")


@case("refused")
def config_is_a_fifo(run, out):
    _fifo(run / "config.toml")


@case("refused")
def config_is_latin1(run, out):
    (run / "config.toml").write_bytes("name = \"caf\xe9\"\n".encode("latin-1"))


@case("refused")
def config_nested_100k_deep(run, out):
    (run / "config.toml").write_text("x = " + "[" * 100_000)


@case("refused")
def config_dotted_key_of_20k_parts(run, out):
    (run / "config.toml").write_text(".".join(["a"] * 20_000) + " = 1\n")


@case("refused")
def config_links_outside(run, out):
    (run / "config.toml").unlink()
    (run / "config.toml").symlink_to(out / "victim.toml")


@case("opens")
def history_is_a_fifo(run, out):
    _fifo(run / "history.csv")


@case("opens")
def history_is_binary(run, out):
    (run / "history.csv").write_bytes(b"step,loss\n\xff\xfe\x00\x01\n")


@case("opens")
def history_has_a_million_rows(run, out):
    text = (run / "history.csv").read_text()
    row = text.splitlines()[-1]
    with open(run / "history.csv", "a") as fh:
        fh.write((row + "\n") * 1_000_000)


@case("opens")
def history_step_is_x(run, out):
    lines = (run / "history.csv").read_text().splitlines()
    lines[2] = "x" + lines[2][lines[2].index(","):]
    (run / "history.csv").write_text("\n".join(lines) + "\n")


@case("opens")
def history_links_to_dev_zero(run, out):
    (run / "history.csv").unlink()
    (run / "history.csv").symlink_to("/dev/zero")


@case("opens")
def last_snapshot_is_a_fifo(run, out):
    _fifo(_last_snapshot(run))


@case("opens")
def last_snapshot_is_truncated(run, out):
    p = _last_snapshot(run)
    p.write_bytes(p.read_bytes()[:100])


@case("opens")
def last_snapshot_is_a_zip_bomb(run, out):
    p = _last_snapshot(run)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        header = io.BytesIO()
        np.lib.format.write_array_header_1_0(
            header, {"descr": "<f4", "fortran_order": False, "shape": (1 << 29,)})
        with zf.open("embedding.npy", "w", force_zip64=True) as fh:
            fh.write(header.getvalue())
            block = b"\0" * (1 << 24)
            for _ in range(128):  # 2 GB of zeros, about 2 MB packed
                fh.write(block)
    p.write_bytes(buf.getvalue())


@case("opens")
def last_snapshot_declares_a_1e12_shape(run, out):
    p = _last_snapshot(run)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        header = io.BytesIO()
        np.lib.format.write_array_header_1_0(
            header, {"descr": "<f4", "fortran_order": False, "shape": (10**12,)})
        zf.writestr("embedding.npy", header.getvalue() + b"\0" * 64)
    p.write_bytes(buf.getvalue())


@case("opens")
def last_snapshot_step_is_x(run, out):
    _edit_npz(_last_snapshot(run), lambda a, m: m.update(step="x"))


@case("opens")
def last_snapshot_holds_a_pickle(run, out):
    _edit_npz(_last_snapshot(run),
              lambda a, m: a.update(embedding=np.array([{"x": 1}], dtype=object)))


@case("opens")
def last_snapshot_does_not_match_the_probe(run, out):
    _edit_npz(_last_snapshot(run), lambda a, m: a.update(embedding=a["embedding"][:5]))


@case("opens")
def snapshot_named_superscript_two(run, out):
    shutil.copy(_last_snapshot(run), run / "snapshots" / "\u00b2.npz")


@case("refused")
def probe_ways_is_x(run, out):
    _edit_npz(run / "probe.npz", lambda a, m: m["run"].update(ways="x"))


@case("refused")
def probe_is_a_fifo(run, out):
    _fifo(run / "probe.npz")


@case("refused")
def probe_rows_disagree(run, out):
    _edit_npz(run / "probe.npz", lambda a, m: a.update(x=a["x"][:3]))


@case("opens")
def writer_lock_is_a_fifo(run, out):
    _fifo(run / ".writer.lock")


@case("opens")
def cached_frames_are_nan(run, out):
    (run / "frames").mkdir(exist_ok=True)
    n = len(np.load(run / "probe.npz")["label"])
    for p in (run / "snapshots").glob("*.npz"):
        np.savez(run / "frames" / f"embedding-{p.stem}.npz",
                 coords=np.full((n, 2), np.nan, np.float32), method=np.asarray("pca"))


@case("opens")
def frames_link_outside(run, out):
    shutil.rmtree(run / "frames", ignore_errors=True)
    (run / "frames").symlink_to(out)


@case("refused")
def snapshots_link_outside(run, out):
    for p in (run / "snapshots").glob("*.npz"):
        shutil.copy(p, out / p.name)
    shutil.rmtree(run / "snapshots")
    (run / "snapshots").symlink_to(out)


# damage that costs nothing to show: a lock that holds nothing, a frame cache recomputed
QUIET = ("run_json_final_is_a_number", "writer_lock_is_a_fifo", "cached_frames_are_nan",
         "frames_link_outside")


def _outside(folder: Path) -> None:
    """Files a hostile folder points at: a user's own config, frames and snapshots."""
    folder.mkdir()
    (folder / "victim.toml").write_text('name = "mine"\n')
    np.savez(folder / "raw.npz", coords=np.ones((3, 2), np.float32), method=np.asarray("x"))
    np.savez(folder / "embedding-40.npz", coords=np.ones((3, 2), np.float32),
             method=np.asarray("x"))


def _fingerprint(folder: Path) -> dict:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.iterdir()) if p.is_file()}


# ---------------------------------------------------------------------------------------
# The child process: every command on every case


def _peak_rss_mb() -> int:
    """This process's own peak resident memory (VmHWM). Not getrusage's ru_maxrss: Linux
    carries that across exec from the forking parent, so under a long pytest session the
    child read the parent's 3.7 GB before it had done anything."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) // 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024


def _child(spec_path: str) -> None:
    import contextlib
    import resource
    import signal
    import time

    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    spec = json.loads(Path(spec_path).read_text())
    work = Path(spec["work"])

    class Hung(Exception):
        pass

    def alarm(*_):
        raise Hung

    signal.signal(signal.SIGALRM, alarm)

    def attempt(name: str, cmd: str, fn) -> None:
        err = io.StringIO()
        t0 = time.perf_counter()
        signal.alarm(COMMAND_S)
        try:
            with contextlib.redirect_stderr(err):
                rc = fn()
        except Hung:
            rc = "hung"
        except BaseException as exc:  # a traceback is a failure of the case
            rc = f"raised {type(exc).__name__}: {str(exc)[:200]}"
        finally:
            signal.alarm(0)
        lines = [x for x in err.getvalue().splitlines()
                 if x.startswith("gsh-lab:") or "Traceback" in x]
        print(json.dumps({"case": name, "cmd": cmd, "rc": rc, "lines": lines,
                          "s": round(time.perf_counter() - t0, 2),
                          "maxrss_mb": _peak_rss_mb()}),
              flush=True)

    import main
    from app.qtapp import application
    from engine.record import open_run
    from engine.record_format import RunRecordError

    def reader(run: Path) -> int:
        try:
            r = open_run(run)
            if r.latest() is None:
                raise RunRecordError(f"{run} has no snapshot that opens")
            for step in list(r.steps):
                with contextlib.suppress(RunRecordError):
                    r.snapshot(step)
                r.read_frame("embedding", step)
        except RunRecordError as exc:
            print(f"gsh-lab: error: {exc}", file=sys.stderr)
            return 2
        for p in r.problems:
            print(f"gsh-lab: warning: {p}", file=sys.stderr)
        return 0

    app = application()
    from PySide6 import QtCore

    from app.window import MainWindow
    from tests.test_app import InlineProjection

    settings = QtCore.QSettings(str(work / "settings.ini"), QtCore.QSettings.Format.IniFormat)
    window = MainWindow(None, settings=settings, projection_factory=InlineProjection,
                        runs_dir=work / "cases")
    window.show()
    window._confirm = lambda *a: False

    def open_in_app(run: Path) -> int:
        ok = window.open_run(run)
        if window.error_box is not None:
            window.error_box.close()
        print(f"gsh-lab: {'opened' if ok else 'error: ' + str(window.last_error)}",
              file=sys.stderr)
        return 0 if ok else 2

    def runs_dock() -> int:
        window.runs.refresh()
        rows = {s["run"]: s["status"] for s in window.runs.summaries}
        print(f"gsh-lab: runs dock {json.dumps(rows)}", file=sys.stderr)
        return 0

    for name in spec["cases"]:
        run = work / "cases" / name
        attempt(name, "reader", lambda run=run: reader(run))
        attempt(name, "app", lambda run=run: open_in_app(run))
        if name in spec["screenshot"]:
            attempt(name, "screenshot", lambda run=run, name=name: main.main(
                ["screenshot", "--run", str(run), "--out", str(work / f"{name}.png"),
                 "--panel", "collisions", "--size", "640x480"]))
        if name in spec["cli"]:
            attempt(name, "animate", lambda run=run, name=name: main.main(
                ["animate", "--run", str(run), "--out", str(work / f"{name}.gif"),
                 "--seconds", "1", "--fps", "2", "--size", "320x240", "--quiet"]))
    attempt("*", "runs dock", runs_dock)
    window.close()
    app.processEvents()


# ---------------------------------------------------------------------------------------
# The tests


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    from tests.test_record import record_run

    work = tmp_path_factory.mktemp("hostile")
    base = work / "base"
    record_run(base)
    (work / "cases").mkdir()
    outside = {}
    for name, (damage, _expected) in CASES.items():
        run = work / "cases" / name
        shutil.copytree(base, run, symlinks=True)
        out = work / f"outside-{name}"
        _outside(out)
        damage(run, out)
        outside[name] = (out, _fingerprint(out))
    # the CLI commands on the cases whose damage they read differently from the reader
    cli = ["run_json_final_is_a_number", "history_has_a_million_rows", "history_is_a_fifo",
           "last_snapshot_is_a_fifo", "last_snapshot_is_a_zip_bomb", "probe_is_a_fifo",
           "cached_frames_are_nan", "frames_link_outside", "config_dotted_key_of_20k_parts",
           "writer_lock_is_a_fifo"]
    spec = work / "spec.json"
    screenshot = ["run_json_final_is_a_number", "last_snapshot_is_a_zip_bomb",
                  "frames_link_outside", "probe_is_a_fifo"]  # each draws a window: seconds
    spec.write_text(json.dumps({"work": str(work), "cases": list(CASES), "cli": cli,
                                "screenshot": screenshot}))
    env = {**os.environ, "GSH_THREADS": "1", "QT_QPA_PLATFORM": "offscreen"}
    proc = subprocess.run([sys.executable, "-m", "tests.test_hostile_runs", str(spec)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    found = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert found, proc.stderr[-3000:]
    (ROOT / ".hostile.json").write_text(json.dumps(found, indent=1)) if os.environ.get(
        "GSH_HOSTILE_DUMP") else None
    return {"found": found, "outside": outside, "stderr": proc.stderr}


@pytest.mark.parametrize("name", list(CASES))
def test_each_damaged_folder_answers_cleanly(results, name):
    expected = CASES[name][1]
    answers = [r for r in results["found"] if r["case"] == name]
    assert answers, results["stderr"][-3000:]
    for r in answers:
        where = f"{name} / {r['cmd']}: {r}"
        assert r["rc"] in (0, 2), where
        assert not any("Traceback" in x for x in r["lines"]), where
        assert r["s"] < COMMAND_S
        if r["rc"] == 2:
            errors = [x for x in r["lines"] if x.startswith("gsh-lab: error:")]
            assert len(errors) == 1, where
        if r["cmd"] in ("reader", "app"):
            assert r["rc"] == (0 if expected == "opens" else 2), where
        if expected == "opens" and r["cmd"] == "reader" and name not in QUIET:
            assert any("warning" in x for x in r["lines"]), f"damage not named: {where}"


@pytest.mark.parametrize("name", list(CASES))
def test_nothing_outside_the_folder_changes(results, name):
    out, before = results["outside"][name]
    assert _fingerprint(out) == before


def test_memory_stays_bounded(results):
    assert max(r["maxrss_mb"] for r in results["found"]) < 3000


def test_one_bad_neighbour_leaves_the_runs_dock_listing_the_rest(results):
    dock = next(r for r in results["found"] if r["cmd"] == "runs dock")
    assert dock["rc"] == 0, dock
    rows = json.loads(dock["lines"][0].split("runs dock ", 1)[1])
    assert rows["run_json_nested_100k_deep"] == "damaged"
    assert rows["history_step_is_x"] in ("finished", "did not finish")


@pytest.mark.parametrize("sub", ["frames", "snapshots"])
def test_force_never_deletes_through_a_symlinked_folder(tmp_path, sub, capsys):
    import main
    from tests.test_record import record_run

    run = tmp_path / "run"
    record_run(run)
    out = tmp_path / "outside"
    _outside(out)
    before = _fingerprint(out)
    shutil.rmtree(run / sub, ignore_errors=True)
    (run / sub).symlink_to(out)
    cfg = tmp_path / "c.toml"
    cfg.write_text((run / "config.toml").read_text())
    rc = main.main(["run", "--config", str(cfg), "--out", str(run), "--force", "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "symlink" in err[0], err
    assert _fingerprint(out) == before


def test_a_sweep_never_resumes_into_a_symlinked_run(tmp_path):
    from engine.sweep import RUNS, Sweep, SweepError, make_axis, prepare, run_sweep, summary_row
    from tests.helpers import tiny_config
    from tests.test_record import record_run

    base = tiny_config(**{"train.steps": 10})
    sweep = Sweep(base, [make_axis("data.theta_scale", "0.5", base)], name="t")
    folder = tmp_path / "sweep"
    _sweep, points = prepare(folder, sweep)
    outside_run = tmp_path / "outside-run"
    record_run(outside_run)
    before = _fingerprint(outside_run)
    (folder / RUNS / points[0].id).symlink_to(outside_run)
    row = summary_row(folder, points[0])
    assert row["status"] == "unreadable" and "symlink" in row["error"]
    with pytest.raises(SweepError, match="symlink"):
        run_sweep(folder)
    assert _fingerprint(outside_run) == before


def test_a_symlinked_sweep_lock_is_refused(tmp_path):
    from engine.sweep import LOCK, Sweep, SweepError, make_axis, prepare, run_sweep
    from tests.helpers import tiny_config

    base = tiny_config(**{"train.steps": 10})
    folder = tmp_path / "sweep"
    prepare(folder, Sweep(base, [make_axis("data.theta_scale", "0.5", base)], name="t"))
    victim = tmp_path / "victim.txt"
    victim.write_text("mine\n")
    (folder / LOCK).symlink_to(victim)
    with pytest.raises(SweepError, match="remove it"):
        run_sweep(folder)
    assert victim.read_text() == "mine\n"


@pytest.mark.parametrize("text, message", [
    ('name = "a\\u0000b"', "control characters"),
    ('name = "\\u001b[2J"', "control characters"),
    (".".join(["a"] * 5000) + " = 1", "dotted key"),
    ("x = " + "[" * 5000, "nested too deeply"),
])
def test_hostile_config_text_is_one_line(text, message):
    from engine.config import ConfigError, parse

    with pytest.raises(ConfigError, match=message) as exc:
        parse(text, "c.toml")
    assert "\n" not in str(exc.value)


def test_a_preset_name_cannot_leave_the_presets(tmp_path):
    from engine.sweep import SWEEP_DIR, SweepError, sweep_from_dict

    (tmp_path / "x.toml").write_text('name = "outside"\n')
    rel = os.path.relpath(tmp_path / "x", SWEEP_DIR.parent / "presets")
    with pytest.raises(SweepError, match="unknown preset"):
        sweep_from_dict({"preset": rel})


def test_a_running_sweep_cluster_refuses_a_client_without_its_credentials():
    import urllib.error
    import urllib.request

    from distributed import Client, Security

    from engine.executors import probe_scheduler, start_local_cluster
    from engine.resources import memory_limit
    from engine.sweep_spec import SweepError

    cluster = start_local_cluster(1)
    try:
        address = cluster.scheduler_address
        assert address.startswith("tls://127.0.0.1:")
        with Client(cluster) as ours:  # the sweep's own client holds the credentials
            assert ours.submit(int, "42").result() == 42
        for wrong in (address, address.replace("tls://", "tcp://")):
            with pytest.raises(SweepError, match="cannot connect|certificate"):
                probe_scheduler(wrong, 5)
        with pytest.raises(Exception, match="certificate|TLS|SSL"):
            Client(address, timeout=5, security=Security.temporary())  # another CA
        # the scheduler's HTTP server serves nothing: no identity, no dashboard
        port = cluster.scheduler.http_server.port
        with pytest.raises(urllib.error.HTTPError, match="404"):
            urllib.request.urlopen(f"http://127.0.0.1:{port}/json/identity.json", timeout=5)
        limits = [w["memory_limit"] for w in cluster.scheduler_info["workers"].values()]
        assert limits == [max(memory_limit(), 1 << 28)]
    finally:
        cluster.close()


def test_a_scheduler_that_is_not_a_cluster_exits_2_and_creates_nothing(tmp_path, capsys,
                                                                       monkeypatch):
    import socket
    import threading

    import main
    from engine import executors

    monkeypatch.setattr(executors, "CONNECT_S", 1.0)
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(4)
    other = socket.socket()
    other.bind(("127.0.0.1", 0))
    other.listen(4)

    def serve_garbage() -> None:
        conn, _ = other.accept()
        with conn:
            conn.sendall(b"\xff" * 64)
            conn.recv(1)

    server = threading.Thread(target=serve_garbage, daemon=True)
    server.start()
    try:
        for address, message in (
                (f"tcp://127.0.0.1:{silent.getsockname()[1]}", "no Dask scheduler answered"),
                (f"tcp://127.0.0.1:{other.getsockname()[1]}", "not a Dask scheduler"),
                ("not-an-address", "not a Dask address")):
            out = tmp_path / "sweep"
            rc = main.main(["sweep", "--preset", "quick", "--vary", "seed=0,1", "--out", str(out),
                            "--scheduler", address, "--quiet"])
            err = capsys.readouterr().err.strip().splitlines()
            assert rc == 2 and len(err) == 1 and message in err[0], err
            assert not out.exists()
    finally:
        silent.close()
        other.close()
        server.join(5)


def _slow_open(monkeypatch, gate):
    """RunSession.open that waits for `gate` (a stuck disk) before reading."""
    from app.session import RunSession

    real = RunSession.open.__func__

    def slow(cls, *a, **kw):
        gate.wait(30)
        return real(cls, *a, **kw)

    monkeypatch.setattr(RunSession, "open", classmethod(slow))


def _recorded(tmp_path) -> Path:
    from tests.test_record import record_run

    run = tmp_path / "run"
    record_run(run)
    return run


def test_opening_a_slow_run_keeps_the_window_responsive(window, qtbot, tmp_path, monkeypatch):
    import threading

    from PySide6 import QtCore

    run = _recorded(tmp_path)
    gate = threading.Event()
    _slow_open(monkeypatch, gate)
    ticks = []
    timer = QtCore.QTimer()
    timer.timeout.connect(lambda: ticks.append(1))
    timer.start(50)
    QtCore.QTimer.singleShot(1200, gate.set)  # the disk answers after a while
    try:
        assert window.open_run(run)
    finally:
        timer.stop()
    assert len(ticks) >= 10  # the event loop ran all along (a blocked one ticks 0-1 times)
    assert window.session.reader.path == run


def test_cancel_leaves_the_window_as_it_was(window, qtbot, tmp_path, monkeypatch):
    import threading

    from PySide6 import QtCore, QtWidgets

    run = _recorded(tmp_path)
    before = window.session
    gate = threading.Event()
    _slow_open(monkeypatch, gate)

    def cancel() -> None:
        dialog = window.findChild(QtWidgets.QProgressDialog, "reading-run")
        assert dialog is not None
        dialog.cancel()

    QtCore.QTimer.singleShot(800, cancel)
    try:
        assert not window.open_run(run)
        assert window.session is before and "cancelled" in window.statusBar().currentMessage()
    finally:
        gate.set()


def test_a_read_past_its_time_limit_is_given_up_in_one_line(window, tmp_path, monkeypatch):
    import threading

    from app import reading

    run = _recorded(tmp_path)
    gate = threading.Event()
    _slow_open(monkeypatch, gate)
    monkeypatch.setattr(reading, "OPEN_LIMIT_S", 1.0)
    try:
        assert not window.open_run(run)
        assert "no answer within 1 s" in window.last_error and "\n" not in window.last_error
    finally:
        gate.set()


def test_open_on_a_damaged_run_starts_and_ends_cleanly_on_sigterm(tmp_path):
    """`main.py open` of a run whose last snapshot is a FIFO: the window opens (no hang);
    SIGTERM closes it with exit 0 and no leaked-semaphore warning."""
    import signal
    import time

    run = _recorded(tmp_path)
    _fifo(_last_snapshot(run))
    env = {**os.environ, "GSH_THREADS": "1", "QT_QPA_PLATFORM": "offscreen",
           "XDG_CONFIG_HOME": str(tmp_path / "config")}
    proc = subprocess.Popen([sys.executable, "main.py", "open", str(run), "--runs-dir",
                             str(tmp_path / "runs")], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(12)  # the window is up and reading (or hung, which the exit would show)
        assert proc.poll() is None, proc.stderr.read()
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert "leaked" not in err and "Traceback" not in err, err


def test_run_out_dev_full_says_it_is_not_a_folder(capsys):
    import main

    assert main.main(["run", "--preset", "quick", "--out", "/dev/full", "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["gsh-lab: error: /dev/full is not a folder; choose a new or empty folder"]


@pytest.mark.parametrize("damage, message", [
    ("fifo", "not a regular file"),
    ("deep", "nested too deeply"),
    ("dotted", "dotted key"),
    ("outside", "leads outside"),
    ("latin1", "not UTF-8"),
])
def test_a_damaged_sweep_toml_is_one_line(tmp_path, capsys, damage, message):
    import main
    from engine.sweep import SWEEP_TOML, Sweep, make_axis, prepare
    from tests.helpers import tiny_config

    base = tiny_config(**{"train.steps": 10})
    folder = tmp_path / "sweep"
    prepare(folder, Sweep(base, [make_axis("data.theta_scale", "0.5", base)], name="t"))
    stored = folder / SWEEP_TOML
    if damage == "fifo":
        _fifo(stored)
    elif damage == "deep":
        stored.write_text("x = " + "[" * 100_000)
    elif damage == "dotted":
        stored.write_text(".".join(["a"] * 20_000) + " = 1\n")
    elif damage == "outside":
        outside = tmp_path / "elsewhere.toml"
        outside.write_text(stored.read_text())
        stored.unlink()
        stored.symlink_to(outside)
    else:
        stored.write_bytes('name = "caf\xe9"\n'.encode("latin-1"))
    for argv in (["sweep", "--resume", str(folder), "--quiet"], ["open", str(folder)]):
        assert main.main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], (argv, err)


def test_the_sweeps_window_creates_nothing_for_a_scheduler_that_is_not_a_cluster(
        qtbot, tmp_path):
    from app.sweep_view import SweepWindow
    from tests.helpers import tiny_config

    w = SweepWindow(tmp_path / "sweeps")
    qtbot.addWidget(w)
    try:
        w.base = tiny_config(**{"train.steps": 20})
        w.axes.setRowCount(0)
        w.add_axis("data.seen_classes", "6,10")
        w.out.setText(str(tmp_path / "s"))
        w.scheduler.setText("not-an-address")
        w.show()
        assert not w.start()
        assert "not a Dask address" in w.last_error and not (tmp_path / "s").exists()
        assert not w.running
    finally:
        w.close()


if __name__ == "__main__":
    _child(sys.argv[1])
