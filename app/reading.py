"""Reading a run folder off the GUI thread: the read runs in a worker thread while the
window keeps handling events; after a moment a progress dialog offers Cancel, and a read
that passes its time limit (a hung network file system, say) is given up with one line.

The read itself is the guarded reader (engine.record), bounded in size, so a cancelled or
abandoned read ends on its own; its result is then dropped. No Qt object is touched from
the worker.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from PySide6 import QtCore, QtWidgets

OPEN_LIMIT_S = 60.0  # a run's open is a few KB to a few MB: far longer means a stuck disk
DIALOG_AFTER_S = 0.3  # a quick read shows no dialog at all


class ReadTimeout(OSError):
    """A read that passed its time limit (str: one line naming what and how long)."""


def read_off_thread(parent: QtWidgets.QWidget, read: Callable[[], Any], label: str,
                    limit_s: float | None = None) -> tuple[bool, Any]:
    """Run `read()` in a worker thread, processing the window's events meanwhile.
    Returns (True, value); (False, None) when the user pressed Cancel; re-raises the
    read's exception; raises ReadTimeout past `limit_s` (default OPEN_LIMIT_S)."""
    limit_s = OPEN_LIMIT_S if limit_s is None else limit_s
    out: dict[str, Any] = {}
    done = threading.Event()

    def work() -> None:
        try:
            out["value"] = read()
        except BaseException as exc:  # handed to the GUI thread
            out["error"] = exc
        finally:
            done.set()

    threading.Thread(target=work, name="gsh-read-run", daemon=True).start()
    cancelled = False
    if not done.wait(DIALOG_AFTER_S):
        cancelled = _wait_with_dialog(parent, done, label, limit_s)
    if not done.is_set():
        if cancelled:
            return False, None
        raise ReadTimeout(f"{label.rstrip('…')}: no answer within {limit_s:g} s "
                          "(a slow or hung disk?); given up")
    if "error" in out:
        raise out["error"]
    return True, out["value"]


def _wait_with_dialog(parent: QtWidgets.QWidget, done: threading.Event, label: str,
                      limit_s: float) -> bool:
    """Events flow while the read runs; True when Cancel was pressed."""
    dialog = QtWidgets.QProgressDialog(label, "Cancel", 0, 0, parent)
    dialog.setWindowModality(QtCore.Qt.WindowModality.WindowModal)
    dialog.setMinimumDuration(0)
    dialog.setObjectName("reading-run")
    dialog.show()
    loop = QtCore.QEventLoop()
    deadline = time.monotonic() + limit_s - DIALOG_AFTER_S
    state = {"cancelled": False}

    def check() -> None:
        if dialog.wasCanceled():
            state["cancelled"] = True
        if done.is_set() or state["cancelled"] or time.monotonic() > deadline:
            loop.quit()

    timer = QtCore.QTimer()
    timer.setInterval(30)
    timer.timeout.connect(check)
    timer.start()
    try:
        loop.exec()
    finally:
        timer.stop()
        dialog.close()
        dialog.deleteLater()
    return state["cancelled"]
