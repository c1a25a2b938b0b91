"""engine.background: jobs in a spawned process, cancelled by a later cancel(), nothing
left running after shutdown()."""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Callable

import pytest

from engine.background import BackgroundProcess


def _until_stopped(should_stop: Callable[[], bool]) -> str:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if should_stop():
            return "stopped"
        time.sleep(0.005)
    return "never stopped"


def _pid_and(value: int, should_stop: Callable[[], bool]) -> tuple[int, int, bool]:
    return os.getpid(), value, should_stop()


def test_jobs_run_in_one_other_process_and_stop_when_cancelled():
    bg = BackgroundProcess()
    assert not bg.started  # lazy: no process before the first job
    try:
        pid, value, stopped = bg.submit(_pid_and, 7).result(timeout=60)
        assert pid != os.getpid() and value == 7 and not stopped
        running = bg.submit(_until_stopped)
        queued = bg.submit(_pid_and, 8)
        time.sleep(0.2)
        bg.cancel()
        assert running.result(timeout=30) == "stopped"
        assert queued.result(timeout=30) == (pid, 8, True)  # submitted before the cancel
        assert bg.submit(_pid_and, 9).result(timeout=30) == (pid, 9, False)  # one process
    finally:
        bg.shutdown()
    assert not multiprocessing.active_children()
    bg.shutdown()  # twice is fine
    with pytest.raises(RuntimeError, match="shut down"):
        bg.submit(_pid_and, 1)


def test_shutdown_stops_a_running_job():
    bg = BackgroundProcess()
    job = bg.submit(_until_stopped)
    time.sleep(0.2)
    bg.shutdown()
    assert job.result(timeout=1) == "stopped"  # not its own 60 s later
    assert not multiprocessing.active_children()
