"""Test setup: Qt offscreen, and a guard that fails any test leaking threads or processes."""

from __future__ import annotations

import multiprocessing
import os
import sys
import threading
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import pytest  # noqa: E402


def _live_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.is_alive() and not t.daemon}


@pytest.fixture(autouse=True)
def no_leaked_threads_or_processes():
    """A test that leaves a (non-daemon) thread or a child process running fails."""
    before = _live_threads()
    yield
    deadline = time.monotonic() + 5.0
    while True:
        threads = _live_threads() - before
        children = multiprocessing.active_children()
        if not threads and not children:
            break
        if time.monotonic() > deadline:
            for c in children:
                c.kill()
            pytest.fail(
                f"test leaked threads {[t.name for t in threads]} "
                f"or child processes {[c.pid for c in children]}"
            )
        time.sleep(0.05)
