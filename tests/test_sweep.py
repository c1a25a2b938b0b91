"""Sweeps: grid, validation, run folders and summary.csv; resume and cooperative stop;
the serial executor, a 2-worker LocalCluster and a Dask scheduler started here give the
same figures as each config trained alone; the `sweep` command."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

import main
from engine.executors import DaskExecutor, SerialExecutor
from engine.experiment import Experiment
from engine.record import open_run
from engine.seeds import axis_roles
from engine.sweep import (
    RUNS,
    SUMMARY,
    Sweep,
    SweepError,
    SweepEvent,
    builtin_sweeps,
    find_sweep_file,
    load_sweep,
    make_axis,
    prepare,
    run_sweep,
    summary_row,
)
from tests.helpers import tiny_config

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
COMPARED = ("oneshot_trained", "same_class_collision", "different_class_collision",
            "invariance_trained", "loss", "train_accuracy")
COMPARED_BASELINES = ("oneshot_untrained", "oneshot_raw")


def small_sweep(**kw) -> Sweep:
    base = tiny_config(**{"train.steps": 20})
    axes = [make_axis("data.theta_scale", "0.5,2", base)]
    return Sweep(base, axes, seeds=kw.pop("seeds", 2), name="t", **kw)


def summary(folder: Path) -> list[dict]:
    with open(folder / SUMMARY, newline="") as fh:
        return list(csv.DictReader(fh))


def alone(config) -> dict:
    """The final figures of `config` trained by itself in this process (one torch thread,
    as every sweep executor uses)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        exp = Experiment(config)
        last = list(exp.run())[-1]
    finally:
        torch.set_num_threads(before)
    return {**{k: getattr(last, k) for k in COMPARED},
            **{k: getattr(exp.info, k) for k in COMPARED_BASELINES}}


def assert_figures(rows: list[dict], expected: dict[str, dict]) -> None:
    assert {r["run"] for r in rows} == set(expected)
    for r in rows:
        assert r["status"] == "finished", r
        for k, v in expected[r["run"]].items():
            assert float(r[k]) == pytest.approx(v, rel=1e-6, abs=1e-9), (r["run"], k)


@pytest.fixture(scope="module")
def reference() -> dict[str, dict]:
    """Each grid point of small_sweep trained alone."""
    return {p.id: alone(p.config) for p in small_sweep().points()}


# ---------------------------------------------------------------------------------------
# Axes and validation (nothing trains)


def test_axes_lists_and_ranges():
    base = tiny_config()
    assert make_axis("data.theta_scale", "0.5:3:6", base).values == (
        0.5, 1.0, 1.5, 2.0, 2.5, 3.0)
    assert make_axis("data.seen_classes", "2:100:5:log", base).values == (
        2, 5, 14, 38, 100)
    assert make_axis("model.depth", "1:3:7", base).values == (1, 2, 3)  # ints, deduped
    assert make_axis("data.theta_scale", [1, 2], base).values == (1.0, 2.0)
    assert make_axis("model.activation", "relu,tanh", base).values == ("relu", "tanh")
    sw = Sweep(base, [make_axis("data.theta_scale", "1,2", base),
                        make_axis("model.depth", "1,2,3", base)], seeds=2)
    points = sw.points()
    assert len(points) == sw.size == 12
    assert len({p.id for p in points}) == 12
    assert {p.seed for p in points} == {base.seed, base.seed + 1}
    p = points[-1]
    assert p.config.data.theta_scale == 2.0 and p.config.model.depth == 3
    assert p.id.startswith("theta_scale-2_depth-3_seed-1_")
    # the id is derived from the resolved config: the same point, the same id
    assert [q.id for q in sw.points()] == [q.id for q in points]


@pytest.mark.parametrize("axis, values, message", [
    ("data.seen_clases", "2,5", "axis data.seen_clases: unknown setting (did you mean "
     "data.seen_classes?)"),
    ("data.theta_scale", "0.5:300:3", "axis data.theta_scale = 150.25: data.theta_scale: "
     "must be in [0, 100]"),
    ("data.theta_scale", [], "axis data.theta_scale: no values"),
    ("data.theta_scale", "", "axis data.theta_scale: no values"),
    ("data.theta_scale", "1,,2", "axis data.theta_scale: empty value"),
    ("model.activation", "relu,swish", "axis model.activation = swish: model.activation: "
     "must be one of"),
    ("model.depth", "1.5,2", "axis model.depth = 1.5: model.depth: must be an integer"),
    ("data.seen_classes", "2,10", "axis data.seen_classes = 2: probe.seen_classes: must be "
     "in [1, data.seen_classes=2]"),
    ("data.theta_scale", "0:1:3:log", "axis data.theta_scale: a log range needs lo and hi > 0"),
    ("model.activation", "1:2:3", "axis model.activation: a range needs a numeric setting"),
    ("data", "1,2", "axis data: is a section"),
])
def test_bad_axes_are_named(axis, values, message):
    base = tiny_config()
    with pytest.raises(SweepError) as err:
        Sweep(base, [make_axis(axis, values, base)]).points()
    assert str(err.value).startswith(message), str(err.value)
    assert "\n" not in str(err.value)


def test_grid_limit_and_raising_it():
    base = tiny_config()
    axes = [make_axis("data.theta_scale", "0.1:3:30", base),
            make_axis("model.depth", "1,2,3", base)]
    with pytest.raises(SweepError, match=r"grid of 270 runs .* over the limit of 200; "
                       r"raise it with --max-runs 270"):
        Sweep(base, axes, seeds=3).points()
    assert len(Sweep(base, axes, seeds=3, max_runs=270).points()) == 270


def test_cli_bad_axis_exits_2_with_one_line_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "sw"
    code = main.main(["sweep", "--preset", "default", "--vary", "data.theta_scale=1,500",
                      "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err == ("gsh-lab: error: axis data.theta_scale = 500: data.theta_scale: must be in "
                   "[0, 100], got 500.0")
    assert not out.exists()
    assert main.main(["sweep", "--preset", "default", "--vary", "nope=1",
                      "--out", str(out)]) == 2
    assert "axis nope: unknown setting" in capsys.readouterr().err


def test_builtin_sweeps_are_valid():
    names = builtin_sweeps()
    assert {"seen_classes", "theta_scale", "depth", "bits"} <= set(names)
    for name in names:
        sw = load_sweep(find_sweep_file(name))
        points = sw.points()
        assert len(sw.axes) == 1 and 2 <= len(points) <= sw.max_runs, name


# ---------------------------------------------------------------------------------------
# Running sweeps


def test_serial_sweep_writes_grid_summary_and_figures_of_each_run_alone(tmp_path, reference):
    folder = tmp_path / "sw"
    events: list[SweepEvent] = []
    result = run_sweep(folder, small_sweep(), SerialExecutor(threads=1), events.append)
    assert result.counts == {"finished": 4} and result.skipped == 0
    assert sorted(p.name for p in (folder / RUNS).iterdir()) == sorted(reference)
    assert load_sweep(folder).to_dict() == small_sweep().to_dict()
    rows = summary(folder)
    assert_figures(rows, reference)
    assert [r["data.theta_scale"] for r in rows] == ["0.5", "0.5", "2.0", "2.0"]
    assert [r["seed"] for r in rows] == ["0", "1", "0", "1"]
    r = rows[0]
    assert float(r["collision_ratio"]) == pytest.approx(  # the claim's: unseen classes
        float(r["unseen_same_class_collision"]) / float(r["unseen_different_class_collision"]))
    assert float(r["collision_ratio_all"]) == pytest.approx(
        float(r["same_class_collision"]) / float(r["different_class_collision"]))
    # progress per snapshot, not only per run: 3 snapshots (steps 0, 10, 20) per run
    kinds = [e.kind for e in events]
    assert kinds[0] == "start" and kinds[-1] == "done"
    assert kinds.count("snapshot") == 4 * 3 and kinds.count("run_done") == 4
    snap = next(e for e in events if e.kind == "snapshot" and e.step == 20)
    assert snap.figures["oneshot_trained"] == reference[snap.run_id]["oneshot_trained"]
    # the run's baselines travel with its progress: a live sweep draws them before its end
    assert snap.figures["oneshot_raw"] == reference[snap.run_id]["oneshot_raw"]
    assert events[-1].runs_done == 4 and events[-1].steps_done == events[-1].steps_total == 80

    # resume: finished runs are skipped; an unfinished one re-runs
    stamp = {p: (p / "run.json").stat().st_mtime_ns for p in (folder / RUNS).iterdir()}
    victim = folder / RUNS / rows[1]["run"]
    info = json.loads((victim / "run.json").read_text())
    (victim / "run.json").write_text(json.dumps({**info, "status": "stopped"}))
    events.clear()
    again = run_sweep(folder, small_sweep(), SerialExecutor(threads=1), events.append)
    assert again.skipped == 3 and again.counts == {"finished": 4}
    assert [e.run_id for e in events if e.kind == "run_start"] == [victim.name]
    for p, t in stamp.items():
        assert ((p / "run.json").stat().st_mtime_ns == t) == (p != victim), p.name
    assert_figures(summary(folder), reference)


def test_stop_records_stopped_runs_and_resume_finishes(tmp_path, reference):
    folder = tmp_path / "sw"
    stop = threading.Event()

    def on_event(ev):
        if ev.kind == "snapshot" and ev.step == 10:
            stop.set()

    result = run_sweep(folder, small_sweep(), SerialExecutor(threads=1), on_event, stop)
    assert result.stopped and result.counts == {"stopped": 1, "pending": 3}
    rows = summary(folder)
    assert [r["status"] for r in rows] == ["stopped", "pending", "pending", "pending"]
    run = open_run(folder / RUNS / rows[0]["run"])
    assert run.status == "stopped" and run.steps == [0, 10]
    assert len(list((folder / RUNS).iterdir())) == 1  # runs not begun write nothing
    again = run_sweep(folder, None, SerialExecutor(threads=1))
    assert again.counts == {"finished": 4} and again.skipped == 0
    assert_figures(summary(folder), reference)


def test_a_folder_holding_another_sweep_is_refused(tmp_path):
    prepare(tmp_path / "sw", small_sweep())
    with pytest.raises(SweepError, match="holds a different sweep"):
        prepare(tmp_path / "sw", small_sweep(seeds=3))


def test_local_cluster_of_two_workers_gives_the_same_figures(tmp_path, reference):
    folder = tmp_path / "sw"
    events: list[SweepEvent] = []
    ex = DaskExecutor(workers=2)
    result = run_sweep(folder, small_sweep(), ex, events.append)
    assert ex.n_workers == 2
    assert result.counts == {"finished": 4}
    assert_figures(summary(folder), reference)
    assert [e.kind for e in events].count("snapshot") == 4 * 3


@pytest.fixture
def dask_cluster(tmp_path):
    """A Dask scheduler and two 1-thread workers on loopback, as separate processes."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    file = tmp_path / "scheduler.json"
    procs = [subprocess.Popen(
        [str(BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port", "0",
         "--no-dashboard", "--scheduler-file", str(file)],
        env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    try:
        deadline = time.monotonic() + 60
        while not file.exists() or not file.read_text().strip():
            assert time.monotonic() < deadline and procs[0].poll() is None, "no scheduler"
            time.sleep(0.1)
        address = json.loads(file.read_text())["address"]
        for _ in range(2):
            procs.append(subprocess.Popen(
                [str(BIN / "dask"), "worker", address, "--nthreads", "1", "--no-nanny",
                 "--no-dashboard", "--host", "127.0.0.1"],
                env=env, cwd=tmp_path, stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL))
        yield address
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in reversed(procs):
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def test_scheduler_address_gives_the_same_figures_and_stops(tmp_path, reference, dask_cluster):
    # workers write into the sweep folder, a path they share with the client
    shared = tmp_path / "shared"
    result = run_sweep(shared / "sw", small_sweep(), DaskExecutor(scheduler=dask_cluster))
    assert result.counts == {"finished": 4}
    assert_figures(summary(shared / "sw"), reference)

    # stop: long runs (one per worker, a third waiting) end at their next snapshot
    base = tiny_config(**{"train.steps": 100000, "train.snapshot_every": 10})
    long = Sweep(base, [make_axis("data.theta_scale", "0.5,1,2", base)], name="long")
    stop = threading.Event()
    started = set()

    def on_event(ev):
        if ev.kind == "snapshot" and ev.step >= 10:
            started.add(ev.run_id)
            if len(started) == 2:
                stop.set()

    ex = DaskExecutor(scheduler=dask_cluster)
    stopped = run_sweep(shared / "long", long, ex, on_event, stop)
    assert ex.n_workers == 2
    assert stopped.stopped and stopped.counts == {"stopped": 2, "pending": 1}
    for r in summary(shared / "long"):
        if r["status"] == "stopped":
            run = open_run(shared / "long" / RUNS / r["run"])
            assert run.status == "stopped" and 10 <= run.steps[-1] < 100000


def test_cli_sweep_runs_and_resumes(tmp_path, capsys):
    conf = tmp_path / "tiny.toml"
    tiny_config(**{"train.steps": 20}).save(conf)
    out = tmp_path / "sw"
    args = ["sweep", "--config", str(conf), "--vary", "data.theta_scale=0.5:2:2",
            "--seeds", "2", "--workers", "1", "--out", str(out), "--quiet"]
    assert main.main(args) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith("4 runs (4 finished; 0 done before)")
    assert [r["status"] for r in summary(out)] == ["finished"] * 4
    assert main.main(["sweep", "--resume", str(out), "--quiet"]) == 0
    assert capsys.readouterr().out.startswith("4 runs (4 finished; 4 done before)")
    assert main.main(args) == 0  # the same sweep again: resumes too
    assert "4 done before" in capsys.readouterr().out
    assert main.main(["sweep", "--resume", str(out)]) == 0  # not quiet: the start line
    err = capsys.readouterr().err  # says which random roles each axis changes
    assert "sweep of 4 runs (0 to run)" in err
    assert f"data.theta_scale: {axis_roles('data.theta_scale')}" in err
    assert "seed: every random role" in err
    assert main.main([*args[:-3], "--seeds", "3", "--out", str(out)]) == 2
    assert "holds a different sweep" in capsys.readouterr().err


def test_ctrl_c_stops_the_cli_sweep_cleanly(tmp_path):
    conf = tmp_path / "long.toml"
    tiny_config(**{"train.steps": 100000, "train.snapshot_every": 10}).save(conf)
    out = tmp_path / "sw"
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "main.py"), "sweep", "--config", str(conf), "--vary",
         "data.theta_scale=0.5,2", "--workers", "1", "--out", str(out), "--quiet"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not list(out.glob("runs/*/snapshots/10.npz")):
            assert time.monotonic() < deadline and proc.poll() is None, proc.stderr.read()
            time.sleep(0.1)
        os.killpg(proc.pid, signal.SIGINT)  # as a terminal's Ctrl-C: the whole group
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, stderr
    assert "sweep stopped; resume with: main.py sweep --resume" in stderr
    assert "Traceback" not in stderr
    assert [r["status"] for r in summary(out)] == ["stopped", "pending"]


def test_a_damaged_probe_file_is_named_in_the_summary_row(tmp_path):
    base = tiny_config(**{"train.steps": 10})
    sweep = Sweep(base, [make_axis("data.theta_scale", "1.0", base)], seeds=1, name="t")
    run_sweep(tmp_path / "sw", sweep, SerialExecutor(threads=1))
    point = sweep.points()[0]
    probe = tmp_path / "sw" / RUNS / point.id / "probe.npz"
    assert summary_row(tmp_path / "sw", point)["oneshot_raw"] == pytest.approx(
        open_run(probe.parent).run_info.oneshot_raw)
    probe.write_bytes(probe.read_bytes()[:100])  # truncated: its baselines are unreadable
    row = summary_row(tmp_path / "sw", point)
    assert row["status"] == "finished" and "oneshot_raw" not in row
    assert "no baselines" in row["error"] and "probe.npz" in row["error"]
