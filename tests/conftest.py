"""Test setup: Qt offscreen, and a guard that fails any test leaking a thread, a child
process, a running QThreadPool task or an active QTimer (as napari's conftest does)."""

from __future__ import annotations

import multiprocessing
import os
import sys
import threading
import time
import traceback
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import pytest  # noqa: E402

import engine  # noqa: E402,F401  (thread settings before torch, BLAS, numba load)

GRACE_S = 5.0


def _live_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.is_alive() and not t.daemon}


def _child_pids() -> set[int]:
    """This process's live child processes of any kind (multiprocessing's, and plain
    subprocesses such as a run's measurement process), less multiprocessing's resource
    tracker, which lives as long as the process by design. psutil comes with distributed."""
    import psutil

    out = set()
    for p in psutil.Process().children():
        try:
            if p.status() == psutil.STATUS_ZOMBIE or "resource_tracker" in " ".join(p.cmdline()):
                continue
        except psutil.Error:  # it has just ended
            continue
        out.add(p.pid)
    return out


def _kill(pids: set[int]) -> None:
    import psutil

    for pid in pids:
        try:
            psutil.Process(pid).kill()
        except psutil.Error:
            pass


def _qt_loaded() -> bool:
    return "PySide6.QtCore" in sys.modules


@pytest.fixture
def window(qtbot, tmp_path):
    """The app's window on a tiny config, projection computed in-process (tests.helpers);
    closed after the test."""
    from tests.helpers import make_window

    w = make_window(tmp_path)
    yield w
    w.close()


@pytest.fixture(autouse=True)
def no_leaked_threads_or_processes():
    """A test that leaves a (non-daemon) thread or a child process running fails."""
    before, pids_before = _live_threads(), _child_pids()
    yield
    deadline = time.monotonic() + GRACE_S
    while True:
        threads = _live_threads() - before
        children = multiprocessing.active_children()
        others = _child_pids() - pids_before - {c.pid for c in children}
        if not threads and not children and not others:
            break
        if time.monotonic() > deadline:
            for c in children:
                c.kill()
            _kill(others)
            pytest.fail(
                f"test leaked threads {[t.name for t in threads]} "
                f"or child processes {[c.pid for c in children] + sorted(others)}"
            )
        time.sleep(0.05)


@pytest.fixture(autouse=True)
def no_leaked_qt_workers_or_timers(monkeypatch):
    """A test that leaves a QThreadPool task running (a superqt worker) or a QTimer
    active fails, naming where the timer was started."""
    if not _qt_loaded():
        yield
        return
    import shiboken6
    from PySide6 import QtCore

    started: list[tuple[QtCore.QTimer, str]] = []
    original_start = QtCore.QTimer.start

    def tracking_start(timer, *args):
        where = "".join(traceback.format_stack(limit=4)[:-1])
        started.append((timer, where))
        return original_start(timer, *args)

    monkeypatch.setattr(QtCore.QTimer, "start", tracking_start)
    yield
    monkeypatch.undo()
    pool = QtCore.QThreadPool.globalInstance()
    if not pool.waitForDone(int(GRACE_S * 1000)):
        pytest.fail(f"test leaked {pool.activeThreadCount()} running QThreadPool task(s)")
    app = QtCore.QCoreApplication.instance()
    if app is not None:
        app.processEvents()  # deferred deletions and last single-shots
    active = [where for timer, where in started
              if shiboken6.isValid(timer) and timer.isActive()]
    if active:
        pytest.fail(f"test left {len(active)} QTimer(s) running, started at:\n"
                    + "\n".join(active[:3]))
