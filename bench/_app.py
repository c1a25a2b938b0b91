"""The app's window for benchmarks: offscreen, throw-away settings and runs folder, and
an event loop that runs as the app's own does."""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from collections.abc import Callable


@contextlib.contextmanager
def bench_window(config, size=(1600, 1000)):
    """Yield (QApplication, MainWindow) showing `config`; closed and cleaned up after."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from app.qtapp import application, fresh_settings
    from app.window import MainWindow

    app = application()
    # The app records every run, as a user's would be (into a throw-away runs folder).
    with tempfile.TemporaryDirectory(prefix="gsh-bench-runs-") as runs:
        window = MainWindow.offscreen(config, size, settings=fresh_settings("gsh-lab-bench"),
                                      runs_dir=runs)
        try:
            # The window's standby training child loads torch and its optimisers for a
            # few seconds after launch (while a user reads it): not beside a measurement.
            window.wait_warmed_up()
            yield app, window
        finally:
            window.close()


def run_until(app, predicate: Callable[[], object], timeout_s: float) -> bool:
    """Run a real Qt event loop (asleep in the event dispatcher between events, as
    app.exec() is in the app) until predicate() holds or the timeout passes; the
    predicate is checked every 20 ms. app.qtapp.wait_until polls processEvents() with a
    10 ms sleep between turns, which a timer in the loop would read as 10 ms late."""
    from PySide6 import QtCore

    deadline = time.monotonic() + timeout_s
    if predicate():
        return True
    loop = QtCore.QEventLoop()
    check = QtCore.QTimer()
    check.setInterval(20)

    def _check() -> None:
        if predicate() or time.monotonic() > deadline:
            loop.quit()

    check.timeout.connect(_check)
    check.start()
    try:
        loop.exec()
    finally:
        check.stop()
        check.deleteLater()
    return bool(predicate())
