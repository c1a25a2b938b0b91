"""Runs one sweep (engine.sweep.run_sweep) in a Python thread of this process for the
Sweeps window: its events reach the GUI thread as queued `event_arrived` signals, a stop
ends each run at its next snapshot, and the thread never outlives its window."""

from __future__ import annotations

import threading
from pathlib import Path

from PySide6 import QtCore

from engine import sweep
from engine.executors import Executor
from engine.sweep_spec import Sweep


class SweepRunner(QtCore.QObject):
    """start(), stop(), wait(); `result` (engine.sweep.SweepResult) once it ends."""

    event_arrived = QtCore.Signal(object)  # engine.sweep.SweepEvent, from the sweep thread

    def __init__(self, parent: QtCore.QObject | None = None) -> None:
        super().__init__(parent)
        self.result: sweep.SweepResult | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self, folder: Path, definition: Sweep | None, executor: Executor) -> None:
        """Run (or resume, with definition None) the sweep in `folder` through `executor`;
        a failure arrives as an event of kind "failed", never as a traceback."""
        self._stop = threading.Event()
        self.result = None
        stop = self._stop

        def main() -> None:
            try:
                self.result = sweep.run_sweep(folder, definition, executor,
                                              on_event=self.event_arrived.emit, stop=stop)
            except Exception as exc:  # shown in the window
                self.event_arrived.emit(sweep.SweepEvent(kind="failed", error=str(exc)))

        self._thread = threading.Thread(target=main, name="gsh-sweep-view")
        self._thread.start()

    def stop(self) -> None:
        """Each running run stops at its next snapshot (recorded "stopped")."""
        self._stop.set()

    def wait(self, timeout_s: float = 120.0) -> bool:
        """Join the sweep's thread; whether it has ended."""
        if self._thread is not None:
            self._thread.join(timeout_s)
        return not self.running
