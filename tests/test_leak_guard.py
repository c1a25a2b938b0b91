"""The leak guard itself can fail: a test that leaves a QTimer running, a QThreadPool task
busy, a thread or a child process (the app trains in one) alive is reported as failed."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

pytest_plugins = ["pytester"]

LEAKS = '''
import multiprocessing, threading, time
from PySide6 import QtCore, QtWidgets

def test_timer(qtbot):
    timer = QtCore.QTimer()
    timer.start(1000)
    test_timer.keep = timer

def test_pool_task(qtbot):
    class Slow(QtCore.QRunnable):
        def run(self):
            time.sleep(8)
    QtCore.QThreadPool.globalInstance().start(Slow())

def test_thread():
    threading.Thread(target=time.sleep, args=(8,)).start()

def test_child_process():
    multiprocessing.get_context("spawn").Process(target=time.sleep, args=(8,)).start()

def test_subprocess():
    import subprocess, sys
    test_subprocess.keep = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(8)"])

def test_clean(qtbot):
    timer = QtCore.QTimer()
    timer.start(1000)
    timer.stop()
'''


def test_guard_fails_leaking_tests(pytester):
    shutil.copy(Path(__file__).with_name("conftest.py"), pytester.path / "conftest.py")
    pytester.makepyfile(test_leaks=LEAKS)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q")
    outcomes = result.parseoutcomes()
    text = result.stdout.str()
    assert "QTimer(s) running" in text and "QThreadPool task" in text
    assert "leaked threads" in text
    assert re.search(r"leaked threads \[\] or child processes \[\d+\]", text)
    assert outcomes.get("passed") == 6 and outcomes.get("errors") == 5, outcomes
