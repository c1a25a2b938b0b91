"""The app trains in a child process (engine.run_process, app.runner): the window gets the
same snapshots as a headless run, in order; the child stays for the next run, which
starts without a new process and gets the same figures; abort and close end it on its
own, recorded "stopped"; a killed child fails the run clearly, or is replaced between
runs; nothing outlives the window."""

from __future__ import annotations

import math
import multiprocessing
import os
import signal
import threading

import numpy as np
import psutil
import torch

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


def test_two_runs_back_to_back_train_in_one_child_alike(window, qtbot, tmp_path):
    cfg = tiny_config()
    headless = [item for item in runs.stream(cfg) if isinstance(item, Snapshot)]
    assert window.wait_warmed_up()
    spawned = []
    real_spawn = window.runner._spawn
    window.runner._spawn = lambda: spawned.append(1) or real_spawn()
    pids, records = [], []
    for _ in range(2):  # the second Start comes the moment the first run has ended
        assert window.start()
        pids.append(window.runner._proc.pid)
        records.append(window.record_dir)
        wait_state(qtbot, window, FINISHED, FAILED)
        assert window.runner.state == FINISHED, window.last_error
        # The child stays, a standby again, its run's measurement process gone.
        assert window.runner.child_pids == [pids[0]]
        assert psutil.Process(pids[0]).children() == []
    assert pids[0] == pids[1] and spawned == []
    for record in records:
        reader = open_run(record)
        assert reader.status == runs.FINISHED and reader.steps == [0, 10, 20, 30, 40]
        for expected in headless:
            got = reader.snapshot(expected.step)
            assert _same(got.scalars(), expected.scalars()), (record, expected.step)
            # the record keeps embeddings at float16
            half = expected.embedding.astype(np.float16).astype(np.float32)
            assert (got.embedding == half).all(), (record, expected.step)


def test_a_child_killed_between_runs_is_replaced(window, qtbot):
    failures: list[str] = []
    window.runner.failed.connect(failures.append)
    assert window.start()
    wait_state(qtbot, window, FINISHED, FAILED)
    standby = window.runner._standby
    assert standby is not None and window.runner._proc is None
    os.kill(standby.pid, signal.SIGKILL)
    qtbot.waitUntil(lambda: window.runner._standby not in (None, standby),
                    timeout=RUN_TIMEOUT_MS)
    assert window.runner.wait_ready(60) and standby.process.exitcode == -signal.SIGKILL
    fresh = window.runner._standby
    assert window.start() and window.runner._proc is fresh
    wait_state(qtbot, window, FINISHED, FAILED)
    assert window.runner.state == FINISHED and failures == []  # no run was lost


def test_closing_right_after_a_run_ends_its_child(qtbot, tmp_path):
    w = make_window(tmp_path)
    assert w.start()
    proc = w.runner._proc
    wait_state(qtbot, w, FINISHED, FAILED)
    assert w.runner._standby is proc and proc.process.exitcode is None
    w.close()
    assert proc.process.exitcode == 0  # it left when told, not terminated
    assert not multiprocessing.active_children() and w.runner.child_pids == []


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
    assert window.start() and window.runner._proc.pid != pid
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
    standby = window.runner._standby  # an ordinary failure: the child trains the next run
    assert standby is not None and standby.process.exitcode is None


def test_the_standby_child_is_warm_before_start_and_ended_on_close(qtbot, tmp_path):
    w = make_window(tmp_path)
    assert w.wait_warmed_up()
    standby = w.runner._standby
    assert standby is not None and standby.ready.is_set()
    assert w.runner.child_pids == [standby.pid]
    assert w.start()
    assert w.runner._proc is standby and w.runner._standby is None  # it trains this run
    wait_state(qtbot, w, FINISHED)
    assert w.runner._standby is standby  # the standby again
    w.close()
    assert standby.process.exitcode == 0
    assert not multiprocessing.active_children() and w.runner.child_pids == []
    w.runner.prepare()  # a closed runner starts no more children
    assert not multiprocessing.active_children()


def test_a_child_leaves_after_a_run_that_leaves_a_thread_or_runs_short_of_memory():
    """engine.run_process._Child.ended, in this process: a run whose end is clean keeps
    the child; a thread left behind, a MemoryError or an abort ends it."""
    from engine.run_process import ChildRun, Start, _Child

    # A thread older than the child (this test process has some) is not the run's.
    lifelong = threading.Event()
    before = threading.Thread(target=lifelong.wait)
    before.start()
    try:
        parent, end = multiprocessing.Pipe()
        child = _Child(end)
        run = ChildRun(Start(tiny_config(), None, None), end.send)
        assert child.ended(run)
    finally:
        lifelong.set()
        before.join()
    left_behind = threading.Event()
    thread = threading.Thread(target=left_behind.wait)
    thread.start()
    try:
        assert not child.ended(run)
    finally:
        left_behind.set()
        thread.join()
    assert child.ended(run)
    for short in (MemoryError(), torch.cuda.OutOfMemoryError("CUDA out of memory"),
                  RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried...")):
        run.failure = short
        assert not child.ended(run)
    run.failure = ValueError("an ordinary failure")
    assert child.ended(run)
    run.failure = None
    run.command("abort")
    assert not child.ended(run)
    parent.send("quit")
    assert child.next_run() is None  # told to leave
    child.reader.join(5)
    parent.close()
    end.close()
