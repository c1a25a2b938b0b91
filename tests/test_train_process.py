"""The app trains in a child process (engine.run_process, app.runner): the window gets the
same snapshots as a headless run, in order; abort and close end it on its own, recorded
"stopped"; a killed child fails the run clearly; nothing outlives the window."""

from __future__ import annotations

import math
import multiprocessing
import os
import signal

from app.runner import FAILED, FINISHED, PAUSED, RUNNING, STOPPING
from engine import runs
from engine.record import open_run
from engine.run_process import Died
from engine.snapshot import Snapshot
from tests.helpers import RUN_TIMEOUT_MS, make_window, tiny_config, wait_state

CLOCKS = ("seconds", "steps_per_s")  # wall-clock figures differ run to run


def _same(a: dict, b: dict) -> bool:
    """The same figures (NaN equal to NaN), the clocks aside."""
    return a.keys() == b.keys() and all(
        (isinstance(x, float) and isinstance(y, float) and math.isnan(x) and math.isnan(y))
        or x == y for x, y in ((a[k], b[k]) for k in a if k not in CLOCKS))


def test_the_window_gets_a_headless_runs_snapshots_in_order(window, qtbot):
    cfg = tiny_config()
    arrived: list[Snapshot] = []
    window.runner.snapshot_arrived.connect(arrived.append)
    assert window.start()
    wait_state(qtbot, window, FINISHED, FAILED)
    assert window.runner.state == FINISHED, window.last_error
    headless = [item for item in runs.stream(cfg) if isinstance(item, Snapshot)]
    assert [s.step for s in arrived] == [s.step for s in headless] == [0, 10, 20, 30, 40]
    for got, expected in zip(arrived, headless, strict=True):
        assert _same(got.scalars(), expected.scalars()), got.step
        assert (got.embedding == expected.embedding).all()
    assert list(window.store.steps) == [0, 10, 20, 30, 40]
    assert open_run(window.record_dir).status == runs.FINISHED


def test_closing_mid_run_aborts_the_child_which_records_it_stopped(qtbot, tmp_path):
    w = make_window(tmp_path, tiny_config(**{"train.steps": 1_000_000}))
    assert w.start()
    qtbot.waitUntil(lambda: len(w.store) >= 2, timeout=RUN_TIMEOUT_MS)
    proc = w.runner._proc
    assert proc is not None and w.runner.state == RUNNING
    record = w.record_dir
    w.close()
    # It ended on its own (the abort, not a terminate or kill after CLOSE_RUN_MS).
    assert proc.process.exitcode == 0
    assert not multiprocessing.active_children()
    assert open_run(record).status == runs.STOPPED


def test_pause_then_abort_ends_a_paused_child(window, qtbot):
    window.runner.start(tiny_config(**{"train.steps": 1_000_000}), paused_after_first=True)
    wait_state(qtbot, window, PAUSED)
    assert window.runner.snapshots_received == 1
    proc = window.runner._proc
    window.runner.abort()
    assert window.runner.state == STOPPING
    wait_state(qtbot, window, FINISHED)
    assert proc.process.exitcode == 0 and window.runner.snapshots_received == 1


def test_a_killed_child_fails_the_run_clearly_and_the_app_goes_on(window, qtbot):
    failures: list[str] = []
    window.runner.failed.connect(failures.append)
    window.params.set_value("train.steps", 1_000_000)
    assert window.start()
    qtbot.waitUntil(lambda: len(window.store) >= 1, timeout=RUN_TIMEOUT_MS)
    pid = window.runner._proc.pid
    os.kill(pid, signal.SIGKILL)
    wait_state(qtbot, window, FAILED)
    assert failures == [Died(-signal.SIGKILL).message]
    assert "training process ended unexpectedly (killed by signal 9)" in failures[0]
    assert window.last_error == failures[0]
    assert open_run(window.record_dir).display_status == "did not finish"
    window.params.set_value("train.steps", 40)  # a new run in a new child
    assert window.start()
    wait_state(qtbot, window, FINISHED, FAILED)
    assert window.runner.state == FINISHED, window.last_error


def test_a_diverging_run_fails_with_the_engines_message(window, qtbot):
    failures: list[str] = []
    window.runner.failed.connect(failures.append)
    window.runner.start(tiny_config(**{"train.lr": 1e4, "train.optimizer": "sgd",
                                       "train.steps": 300, "train.snapshot_every": 1}))
    wait_state(qtbot, window, FINISHED, FAILED)
    assert window.runner.state == FAILED and len(failures) == 1
    assert failures[0].startswith("training diverged at step ")  # DivergenceError's own
    assert "lower train.lr" in failures[0]


def test_the_standby_child_is_warm_before_start_and_ended_on_close(qtbot, tmp_path):
    w = make_window(tmp_path)
    assert w.wait_warmed_up()
    standby = w.runner._standby
    assert standby is not None and standby.ready.is_set()
    assert w.runner.child_pids == [standby.pid]
    assert w.start()
    assert w.runner._proc is standby and w.runner._standby is None  # it trains this run
    wait_state(qtbot, w, FINISHED)
    w.close()
    assert standby.process.exitcode == 0
    assert not multiprocessing.active_children() and w.runner.child_pids == []
    w.runner.prepare()  # a closed runner starts no more children
    assert not multiprocessing.active_children()
