"""Runs an Experiment in a superqt generator worker and reports back through Qt signals.

The worker thread runs engine.runs' run loop: it builds the Experiment and records every
snapshot to the run's folder (engine.record_writer) before handing it on, so disk writes never
stall the GUI. It yields plain objects (the Experiment once, the run's RunInfo once, then
Snapshots, and a RecordingStopped notice if the record cannot be written) that reach the
GUI thread as queued `yielded` signals; training goes on without a record then.

Errors are caught inside the generator, recorded in the run's status and reported by
`failed` after the worker finishes, rather than through superqt's `errored` signal:
superqt treats a RuntimeError (what torch raises, out-of-memory included) as "worker
deleted" and then emits neither `errored` nor `finished`. Commands go the other way: pause/step
are honoured at snapshot boundaries (the generator asks superqt to pause right after
yielding), stop asks the engine to finish after the current step with a final snapshot.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Generator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6 import QtCore
from superqt.utils import GeneratorWorker, create_worker

from engine import runs
from engine.config import ExperimentConfig
from engine.runs import RecordingStopped, RunOutcome
from engine.snapshot import RunInfo, Snapshot
from engine.threads import training_threads

if TYPE_CHECKING:
    from engine.experiment import Experiment

IDLE, STARTING, RUNNING, PAUSING, PAUSED, STOPPING, FINISHED, FAILED = (
    "idle", "starting", "running", "pausing", "paused", "stopping", "finished", "failed",
)
ACTIVE = (STARTING, RUNNING, PAUSING, PAUSED, STOPPING)


class _Control:
    """Shared between the GUI and worker threads; plain flags under a lock."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.pause_at_next = False
        self.worker: GeneratorWorker | None = None
        self.experiment: Experiment | None = None
        self.error: BaseException | None = None

    def take_pause(self) -> bool:
        with self.lock:
            flag, self.pause_at_next = self.pause_at_next, False
            return flag


def _stream(config: ExperimentConfig, control: _Control, record_dir: Path | None = None
            ) -> Generator[RecordingStopped | Experiment | RunInfo | Snapshot, None, None]:
    """The worker's generator: engine.runs' run loop, relayed; a pause asked for lands
    right after the snapshot it follows (superqt pauses after the next yield)."""

    def pause_here(_snap: Snapshot, _info: RunInfo) -> None:
        if control.take_pause() and control.worker is not None:
            control.worker.pause()

    # The UMAP worker process takes one core (engine.threads has the rule).
    threads = training_threads(reserve=1) if config.projection.method == "umap" else None
    run = runs.RunControl(on_snapshot=pause_here,
                     on_experiment=lambda exp: setattr(control, "experiment", exp))
    outcome: RunOutcome
    try:
        outcome = yield from runs.stream(config, record_dir, run, threads=threads,
                                         unrecorded_ok=True)
    except Exception as exc:  # the Experiment could not be built (ConfigError, …)
        control.error = exc
        return
    if outcome.status in (runs.DIVERGED, runs.FAILED):
        control.error = outcome.exception or RuntimeError(outcome.error)


def _close(worker: GeneratorWorker) -> None:
    """Close a finished worker's generator: superqt leaves a quit worker's generator
    suspended, and closing it ends engine.runs' loop now, which records the run
    "stopped", instead of at garbage collection (never, when the app leaves at once)."""
    gen = getattr(worker, "_gen", None)
    if gen is not None:
        try:
            gen.close()
        except Exception:  # the run loop records its own errors; nothing to report here
            pass


class Runner(QtCore.QObject):
    """Start/pause/resume/step/stop one training run at a time."""

    state_changed = QtCore.Signal(str)
    experiment_ready = QtCore.Signal(object)
    run_info_ready = QtCore.Signal(object)  # engine.snapshot.RunInfo, before the first snapshot
    snapshot_arrived = QtCore.Signal(object)
    failed = QtCore.Signal(str)
    recording_stopped = QtCore.Signal(str)
    finished = QtCore.Signal()

    def __init__(self, parent: QtCore.QObject | None = None) -> None:
        super().__init__(parent)
        self.state = IDLE
        self.experiment: Experiment | None = None
        self._detached: list[GeneratorWorker] = []
        self._control: _Control | None = None
        self._worker: GeneratorWorker | None = None
        self.snapshots_received = 0

    # -- commands ------------------------------------------------------------------
    def start(self, config: ExperimentConfig, paused_after_first: bool = False,
              record_dir: Path | None = None) -> None:
        """Train `config` in the worker; record it into `record_dir` when given."""
        if self.state in ACTIVE:
            raise RuntimeError(f"a run is already {self.state}")
        control = _Control()
        control.pause_at_next = paused_after_first
        worker = create_worker(_stream, config, control, record_dir, _start_thread=False)
        control.worker = worker
        worker.yielded.connect(self._on_yielded)
        # superqt types its signals without arguments as signals of one None argument
        worker.paused.connect(self._on_paused)  # type: ignore[arg-type]
        worker.resumed.connect(self._on_resumed)  # type: ignore[arg-type]
        worker.finished.connect(self._on_finished)  # type: ignore[arg-type]
        self._control, self._worker = control, worker
        self.experiment = None
        self.snapshots_received = 0
        self._set_state(STARTING)
        worker.start()

    def pause(self) -> None:
        if self.state in (STARTING, RUNNING) and self._control is not None:
            with self._control.lock:
                self._control.pause_at_next = True
            self._set_state(PAUSING)

    def resume(self) -> None:
        if self._control is None or self._worker is None:
            return
        if self.state == PAUSING:
            with self._control.lock:
                self._control.pause_at_next = False
            self._set_state(RUNNING if self.experiment is not None else STARTING)
        elif self.state == PAUSED:
            self._worker.resume()

    def toggle_pause(self) -> None:
        if self.state in (PAUSING, PAUSED):
            self.resume()
        else:
            self.pause()

    def step(self) -> None:
        """Run one snapshot interval, then pause."""
        if (self._control is None or self._worker is None
                or self.state not in (PAUSED, PAUSING, RUNNING, STARTING)):
            return
        with self._control.lock:
            self._control.pause_at_next = True
        if self.state == PAUSED:
            self._worker.resume()
        else:
            self._set_state(PAUSING)

    def stop(self) -> None:
        """Finish after the current step; the engine yields a final snapshot."""
        if self.state not in ACTIVE or self._control is None or self._worker is None:
            return
        with self._control.lock:
            self._control.pause_at_next = False
        exp = self._control.experiment
        if exp is not None:
            exp.request_stop()
        else:
            self._worker.quit()
        if self.state == PAUSED:
            self._worker.resume()
        self._set_state(STOPPING)

    def abort(self) -> None:
        """Stop without waiting for a final snapshot (window closing), even mid-measurement."""
        if self._control is None or self._worker is None or self.state not in ACTIVE:
            return
        if self._control.experiment is not None:
            self._control.experiment.abort()
        self._worker.quit()
        self._set_state(STOPPING)

    def reset(self, timeout_ms: int = 10_000) -> bool:
        """Abort any run, wait for its thread, forget it (its queued signals are ignored).

        A worker still busy after `timeout_ms` is detached: its signals are disconnected
        from this object, so it can finish later without touching a deleted runner.
        """
        self.abort()
        ok = self.wait(timeout_ms)
        if not ok and self._worker is not None:
            self._detach(self._worker)
        elif self._worker is not None:
            _close(self._worker)
        self._worker = None
        self._control = None
        self.experiment = None
        self.snapshots_received = 0
        self._set_state(IDLE)
        return ok

    def close_detached(self) -> None:
        """End the run loops of detached workers whose threads have finished since (call
        after waiting for the thread pool, before the process leaves)."""
        for worker in self._detached:
            _close(worker)
        self._detached.clear()

    def _detach(self, worker: GeneratorWorker) -> None:
        self._detached.append(worker)
        pairs: tuple[tuple[Any, Callable[..., None]], ...] = (
            (worker.yielded, self._on_yielded), (worker.paused, self._on_paused),
            (worker.resumed, self._on_resumed), (worker.finished, self._on_finished))
        for signal, slot in pairs:
            try:
                signal.disconnect(slot)
            except (RuntimeError, TypeError):
                pass

    def wait(self, timeout_ms: int = 10_000) -> bool:
        """Block until the worker thread has returned (processing no events)."""
        if self._worker is None:
            return True
        return QtCore.QThreadPool.globalInstance().waitForDone(timeout_ms)

    @property
    def is_active(self) -> bool:
        return self.state in ACTIVE

    # -- worker signals (GUI thread) -------------------------------------------------
    def _current(self) -> bool:
        """Whether the signal being handled comes from the current worker (not a stale one)."""
        return self._worker is not None and self.sender() is self._worker.signals

    def _on_yielded(self, item: RecordingStopped | Experiment | RunInfo | Snapshot) -> None:
        if not self._current():
            return
        if isinstance(item, RecordingStopped):
            self.recording_stopped.emit(item.message)
            return
        if isinstance(item, RunInfo):
            self.run_info_ready.emit(item)
            return
        if not hasattr(item, "step"):
            self.experiment = item
            if self.state == STARTING:
                self._set_state(RUNNING)
            self.experiment_ready.emit(item)
            return
        self.snapshots_received += 1
        self.snapshot_arrived.emit(item)

    def _on_paused(self) -> None:
        if self._current() and self.state in (PAUSING, RUNNING, STARTING):
            self._set_state(PAUSED)

    def _on_resumed(self) -> None:
        if self._current() and self.state == PAUSED:
            self._set_state(RUNNING)

    def _on_finished(self) -> None:
        if not self._current():
            return
        control = self._control
        error = control.error if control is not None else None
        self._worker = None
        self._control = None
        if error is not None:
            self._set_state(FAILED)
            self.failed.emit(str(error))
        else:
            self._set_state(FINISHED)
        self.finished.emit()

    def _set_state(self, state: str) -> None:
        if state != self.state:
            self.state = state
            self.state_changed.emit(state)
