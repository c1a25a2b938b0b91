"""Runs an Experiment in a superqt generator worker and reports back through Qt signals.

The worker thread builds the Experiment, iterates `exp.run()` and records every snapshot
to the run's folder (engine.record) before handing it on, so disk writes never stall the
GUI. It yields plain objects (the Experiment once, the run's RunInfo once, then
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
from dataclasses import dataclass

from PySide6 import QtCore
from superqt.utils import GeneratorWorker, create_worker

from engine.snapshot import RunInfo
from engine.threads import training_threads

IDLE, STARTING, RUNNING, PAUSING, PAUSED, STOPPING, FINISHED, FAILED = (
    "idle", "starting", "running", "pausing", "paused", "stopping", "finished", "failed",
)
ACTIVE = (STARTING, RUNNING, PAUSING, PAUSED, STOPPING)


@dataclass
class RecordingStopped:
    """The run record could not be written (folder not writable, disk full): why."""

    message: str


class _Control:
    """Shared between the GUI and worker threads; plain flags under a lock."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.pause_at_next = False
        self.worker: GeneratorWorker | None = None
        self.experiment = None
        self.error: BaseException | None = None

    def take_pause(self) -> bool:
        with self.lock:
            flag, self.pause_at_next = self.pause_at_next, False
            return flag


def _open_record(record_dir, config, exp):
    """A RunWriter for this run, or (None, why not)."""
    from engine.record import RunRecordError, RunWriter

    try:
        return RunWriter(record_dir, config, device=str(exp.device)), None
    except (OSError, RunRecordError) as exc:
        return None, f"this run is not being recorded: {_why(exc)}"


def _why(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.filename:
        return f"{exc.strerror or exc} ({exc.filename})"
    return str(exc)


def _stream(config, control: _Control, record_dir=None):
    """The worker's generator: build the experiment, then record and relay its snapshots."""
    import torch  # loaded here, not at launch: the window shows first

    from engine.experiment import Experiment
    from engine.training import DivergenceError

    threads = torch.get_num_threads()
    if config.projection.method == "umap":
        # The UMAP worker process takes one core (engine.threads has the rule).
        torch.set_num_threads(training_threads(reserve=1))
    writer = None
    status, error = "stopped", None
    try:
        exp = Experiment(config)
        control.experiment = exp
        if record_dir is not None:
            writer, why = _open_record(record_dir, config, exp)
            if why:
                yield RecordingStopped(why)
        yield exp
        last = None
        for snap in exp.run():
            if last is None:
                yield exp.info
            last = snap
            if writer is not None:
                try:
                    writer.append(snap, exp.info)
                except OSError as exc:
                    writer.abandon()
                    writer = None
                    yield RecordingStopped(f"recording stopped at step {snap.step}: "
                                           f"{_why(exc)}; training goes on unrecorded")
            # Requesting the pause before yielding makes superqt stop right after this
            # snapshot, so Pause and Step land exactly on snapshot boundaries.
            if control.take_pause():
                control.worker.pause()
            yield snap
        if last is not None and last.step >= config.train.steps:
            status = "finished"
    except DivergenceError as exc:
        control.error = exc
        status, error = "diverged", str(exc)
    except Exception as exc:  # ConfigError, …: reported to the GUI
        control.error = exc
        status, error = "failed", f"{type(exc).__name__}: {exc}"
    finally:
        torch.set_num_threads(threads)
        if writer is not None:
            try:
                writer.finish(status, error=error)
            except OSError:
                writer.abandon()


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
        self.experiment = None
        self._control: _Control | None = None
        self._worker: GeneratorWorker | None = None
        self.snapshots_received = 0

    # -- commands ------------------------------------------------------------------
    def start(self, config, paused_after_first: bool = False, record_dir=None) -> None:
        """Train `config` in the worker; record it into `record_dir` when given."""
        if self.state in ACTIVE:
            raise RuntimeError(f"a run is already {self.state}")
        control = _Control()
        control.pause_at_next = paused_after_first
        worker = create_worker(_stream, config, control, record_dir, _start_thread=False)
        control.worker = worker
        worker.yielded.connect(self._on_yielded)
        worker.paused.connect(self._on_paused)
        worker.resumed.connect(self._on_resumed)
        worker.finished.connect(self._on_finished)
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
        if self._control is None:
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
        if self._control is None or self.state not in (PAUSED, PAUSING, RUNNING, STARTING):
            return
        with self._control.lock:
            self._control.pause_at_next = True
        if self.state == PAUSED:
            self._worker.resume()
        else:
            self._set_state(PAUSING)

    def stop(self) -> None:
        """Finish after the current step; the engine yields a final snapshot."""
        if self.state not in ACTIVE or self._control is None:
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
        if self._control is None or self.state not in ACTIVE:
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
        self._worker = None
        self._control = None
        self.experiment = None
        self.snapshots_received = 0
        self._set_state(IDLE)
        return ok

    def _detach(self, worker: GeneratorWorker) -> None:
        for signal, slot in ((worker.yielded, self._on_yielded), (worker.paused, self._on_paused),
                             (worker.resumed, self._on_resumed),
                             (worker.finished, self._on_finished)):
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

    def _on_yielded(self, item) -> None:
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
