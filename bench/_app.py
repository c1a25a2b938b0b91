"""The app's window for benchmarks: offscreen, throw-away settings and runs folder."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile


@contextlib.contextmanager
def bench_window(config, size=(1600, 1000)):
    """Yield (QApplication, MainWindow) showing `config`; closed and cleaned up after."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6 import QtCore, QtWidgets

    from app.window import MainWindow

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication(sys.argv[:1])
    settings = QtCore.QSettings(QtCore.QSettings.Format.IniFormat,
                                QtCore.QSettings.Scope.UserScope, "GSH Lab", "gsh-lab-bench")
    settings.clear()
    # The app records every run, as a user's would be (into a throw-away runs folder).
    with tempfile.TemporaryDirectory(prefix="gsh-bench-runs-") as runs:
        window = MainWindow(config, settings=settings, runs_dir=runs)
        try:
            window.resize(*size)
            window.show()
            # The window imports torch's optimiser machinery in a background thread for
            # about 2 s after launch (while a user reads it); measured alongside, its GIL
            # hand-offs made every GUI figure noisy (a selection took 30 to 97 ms).
            window.wait_warmed_up()
            yield app, window
        finally:
            window.close()
