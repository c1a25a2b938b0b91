"""What every window and offscreen command shares: the one QApplication, pyqtgraph's
options, waiting on the event loop, throw-away settings, `--size WxH` and fitting a
window to its screen."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

from engine.config import ConfigError

WINDOW_SIZES = ((320, 240), (8000, 8000))  # a window or figure, WxH from .. to


def application() -> QtWidgets.QApplication:
    """This process's QApplication, made (named GSH Lab) on first use."""
    app = QtWidgets.QApplication.instance()
    if isinstance(app, QtWidgets.QApplication):
        return app
    if app is not None:
        raise RuntimeError("this process runs a QCoreApplication: the window needs a "
                           "QApplication")
    QtCore.qInstallMessageHandler(_qt_message)
    app = QtWidgets.QApplication(sys.argv[:1])
    app.setApplicationName("GSH Lab")
    app.setOrganizationName("GSH Lab")
    return app


def _qt_message(_kind: QtCore.QtMsgType, _context: QtCore.QMessageLogContext,
                message: str) -> None:
    """Qt's own messages to stderr, less one that says nothing to a user: offscreen (and
    some X servers) cannot propagate size hints, once per window shown."""
    if "propagateSizeHints" not in message:
        print(message, file=sys.stderr)


def configure_pyqtgraph() -> None:
    pg.setConfigOptions(background="w", foreground=(40, 40, 40), antialias=False)


def wait_until(app: QtCore.QCoreApplication, predicate: Callable[[], object],
               timeout_s: float) -> bool:
    """Process Qt events until predicate() holds or the timeout passes."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            return False
        app.processEvents()
        time.sleep(0.01)
    return True


def fresh_settings(name: str) -> QtCore.QSettings:
    """Empty INI settings under `name`, never the user's saved layout: reproducible figures."""
    settings = QtCore.QSettings(QtCore.QSettings.Format.IniFormat,
                                QtCore.QSettings.Scope.UserScope, "GSH Lab", name)
    settings.clear()
    return settings


def parse_size(text: str, sizes: tuple[tuple[int, int], tuple[int, int]] = WINDOW_SIZES
               ) -> tuple[int, int]:
    """'WxH' -> (w, h) within `sizes` (smallest, largest); ConfigError names --size."""
    (wlo, hlo), (whi, hhi) = sizes
    rule = f"must be WxH within {wlo}x{hlo} .. {whi}x{hhi}"
    try:
        w, h = (int(v) for v in str(text).lower().split("x"))
    except ValueError:
        raise ConfigError("--size", f"{rule}, got {text!r}") from None
    if not (wlo <= w <= whi and hlo <= h <= hhi):
        raise ConfigError("--size", f"{rule}, got {text!r}")
    return w, h


def fit_to_screen(window: QtWidgets.QWidget, width: int, height: int) -> None:
    """At most `width` x `height`, and never more than the screen shows (a window
    manager's frame included): at 1366x768 every part is on screen. Placed before the
    window is shown, the position is the frame's."""
    screen = window.screen() or QtGui.QGuiApplication.primaryScreen()
    if screen is None:
        window.resize(width, height)
        return
    area = screen.availableGeometry()
    frame_w = max(window.frameGeometry().width() - window.geometry().width(), 0)
    frame_h = max(window.frameGeometry().height() - window.geometry().height(), 0)
    if QtGui.QGuiApplication.platformName() != "offscreen":
        frame_w, frame_h = max(frame_w, 16), max(frame_h, 48)
    w = min(width, area.width() - frame_w)
    h = min(height, area.height() - frame_h)
    window.resize(w, h)
    window.move(area.x() + (area.width() - w - frame_w) // 2,
                area.y() + (area.height() - h - frame_h) // 2)
