"""The app's window for benchmarks: offscreen, throw-away settings and runs folder."""

from __future__ import annotations

import contextlib
import os
import tempfile


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
