"""Trains a run in a child process (engine.run_process) and reports back through Qt signals.

The child runs engine.runs' run loop, which records every snapshot to the run's folder
(engine.record_writer), and sends what it yields over a pipe: the built Experiment's
device and probe inputs (engine.run_process.Built), the run's RunInfo, then Snapshots,
and RecordingStopped notices if the record cannot be written (training goes on
unrecorded). A reader thread receives them (waiting without the GIL) and hands them to
this object on the GUI thread as a queued signal, so neither training nor the snapshot
measurements share this process's GIL with the event loop.

Starting a child costs seconds (torch and the optimisers' warm-up), so one warmed standby
child waits for a config (`prepare()`, called once the window shows). A child whose run
ended stays and is the next standby, so a Start right after a run does not wait for
torch either; when it leaves instead (an aborted run, a failure short of memory, see
engine.run_process) or dies, a fresh standby starts a moment later. Commands go to the
child at once: pause/step land after the next snapshot, stop asks for a final snapshot
after the current step, abort (window closing) ends the run even inside a measurement,
recorded "stopped". A run that fails (a bad config, a diverged loss, out of memory) or
a child that dies reaches `failed` with its message.
"""

from __future__ import annotations

from pathlib import Path

from PySide6 import QtCore

from engine.config import ExperimentConfig
from engine.run_process import (
    Built,
    Died,
    Ended,
    Message,
    Paused,
    Ready,
    Resumed,
    RunProcess,
    Start,
)
from engine.runs import DIVERGED, RecordingStopped
from engine.runs import FAILED as RUN_FAILED
from engine.snapshot import RunInfo
from engine.threads import training_threads

IDLE, STARTING, RUNNING, PAUSING, PAUSED, STOPPING, FINISHED, FAILED = (
    "idle", "starting", "running", "pausing", "paused", "stopping", "finished", "failed",
)
ACTIVE = (STARTING, RUNNING, PAUSING, PAUSED, STOPPING)
NEXT_STANDBY_MS = 1000  # a fresh standby child starts this long after the last one left


class _Relay(QtCore.QObject):
    """Carries a child's messages from its reader thread to the GUI thread (queued)."""

    arrived = QtCore.Signal(object, object)  # (the RunProcess, its message)


class Runner(QtCore.QObject):
    """Start/pause/resume/step/stop one training run at a time, in a child process."""

    state_changed = QtCore.Signal(str)
    experiment_ready = QtCore.Signal(object)  # engine.run_process.Built: device, probe_x
    run_info_ready = QtCore.Signal(object)  # engine.snapshot.RunInfo, before the first snapshot
    snapshot_arrived = QtCore.Signal(object)
    failed = QtCore.Signal(str)
    recording_stopped = QtCore.Signal(str)
    finished = QtCore.Signal()

    def __init__(self, parent: QtCore.QObject | None = None) -> None:
        super().__init__(parent)
        self.state = IDLE
        self.experiment: Built | None = None
        self.snapshots_received = 0
        self._proc: RunProcess | None = None  # the run's child
        self._standby: RunProcess | None = None  # a warmed child waiting for a config
        self._closed = False
        self._relay = _Relay(self)
        self._relay.arrived.connect(self._on_message)
        self._next_standby = QtCore.QTimer(self)
        self._next_standby.setSingleShot(True)
        self._next_standby.setInterval(NEXT_STANDBY_MS)
        self._next_standby.timeout.connect(self.prepare)

    # -- the standby child ------------------------------------------------------------
    def prepare(self) -> None:
        """Start the standby child (torch and the optimisers load there), unless one is
        there, a run is active or this runner is closed."""
        if self._standby is None and self._proc is None and not self._closed:
            self._standby = self._spawn()

    @property
    def loading(self) -> bool:
        """Whether the child that trains the next (or current) run is still loading torch."""
        if self._closed:
            return False
        proc = self._proc or self._standby
        return proc is None or not proc.ready.is_set()

    def wait_ready(self, timeout_s: float = 60) -> bool:
        """Start the standby if need be and block until it is warm; False on timeout."""
        self.prepare()
        proc = self._proc or self._standby
        return proc is None or proc.wait_ready(timeout_s)

    @property
    def child_pids(self) -> list[int]:
        """The children alive now (the run's, the standby's)."""
        return [p.pid for p in (self._proc, self._standby)
                if p is not None and p.pid is not None and p.process.exitcode is None]

    def _spawn(self) -> RunProcess:
        relay = self._relay

        def on_message(message: Message) -> None:  # the reader thread
            relay.arrived.emit(proc, message)

        proc = RunProcess(on_message)
        return proc

    # -- commands ------------------------------------------------------------------
    def start(self, config: ExperimentConfig, paused_after_first: bool = False,
              record_dir: Path | None = None) -> None:
        """Train `config` in the standby child; record it into `record_dir` when given."""
        if self.state in ACTIVE:
            raise RuntimeError(f"a run is already {self.state}")
        if self._closed:
            raise RuntimeError("the runner is closed")
        self._next_standby.stop()
        proc, self._standby = self._standby, None
        if proc is None or proc.over.is_set() or not proc.process.is_alive():
            if proc is not None:
                proc.close(timeout=0)
            proc = self._spawn()
        # The UMAP worker process takes one core (engine.threads has the rule).
        threads = training_threads(reserve=1) if config.projection.method == "umap" else None
        self._proc = proc
        self.experiment = None
        self.snapshots_received = 0
        self._set_state(STARTING)
        proc.start(Start(config, record_dir, threads, paused_after_first))

    def _command(self, name: str) -> None:
        if self._proc is not None:
            self._proc.command(name)

    def pause(self) -> None:
        if self.state in (STARTING, RUNNING):
            self._command("pause")
            self._set_state(PAUSING)

    def resume(self) -> None:
        if self.state == PAUSING:
            self._command("resume")
            self._set_state(RUNNING if self.experiment is not None else STARTING)
        elif self.state == PAUSED:
            self._command("resume")  # RUNNING once the child says Resumed

    def toggle_pause(self) -> None:
        if self.state in (PAUSING, PAUSED):
            self.resume()
        else:
            self.pause()

    def step(self) -> None:
        """Run one snapshot interval, then pause."""
        if self.state not in (PAUSED, PAUSING, RUNNING, STARTING):
            return
        self._command("step")
        if self.state != PAUSED:
            self._set_state(PAUSING)

    def stop(self) -> None:
        """Finish after the current step; the engine yields a final snapshot."""
        if self.state in ACTIVE:
            self._command("stop")
            self._set_state(STOPPING)

    def abort(self) -> None:
        """Stop without waiting for a final snapshot (window closing), even mid-measurement."""
        if self.state in ACTIVE:
            self._command("abort")
            self._set_state(STOPPING)

    def reset(self, timeout_ms: int = 10_000) -> bool:
        """Abort any run, wait up to `timeout_ms` for its child to record it and exit
        (then end it), forget it (its queued messages are ignored). False on a timeout."""
        self.abort()
        proc, self._proc = self._proc, None
        ok = True
        if proc is not None:
            ok = proc.join(timeout_ms / 1000)
            proc.close(timeout=0)
            if not self._closed and self._standby is None:
                self._next_standby.start()
        self.experiment = None
        self.snapshots_received = 0
        self._set_state(IDLE)
        return ok

    def close(self, timeout_ms: int = 1500) -> bool:
        """End everything: the run (as reset), the standby, no new ones."""
        self._closed = True
        self._next_standby.stop()
        ok = self.reset(timeout_ms)
        standby, self._standby = self._standby, None
        if standby is not None:
            standby.close(timeout=0)
        return ok

    @property
    def is_active(self) -> bool:
        return self.state in ACTIVE

    # -- the child's messages (GUI thread) ----------------------------------------------
    def _on_message(self, proc: RunProcess, message: Message) -> None:
        if proc is not self._proc:
            if proc is self._standby and isinstance(message, Died):  # a standby lost
                self._standby = None
                proc.close(timeout=0)
                if proc.ready.is_set() and not self._closed:  # it had worked: replace it
                    self._next_standby.start()
            return
        if isinstance(message, RecordingStopped):
            self.recording_stopped.emit(message.message)
        elif isinstance(message, RunInfo):
            self.run_info_ready.emit(message)
        elif isinstance(message, Built):
            self.experiment = message
            if self.state == STARTING:
                self._set_state(RUNNING)
            self.experiment_ready.emit(message)
        elif isinstance(message, Paused):
            if self.state in (PAUSING, RUNNING, STARTING):
                self._set_state(PAUSED)
        elif isinstance(message, Resumed):
            if self.state == PAUSED:
                self._set_state(RUNNING)
        elif isinstance(message, Ended | Died):
            self._end(proc, message)
        elif not isinstance(message, Ready):
            self.snapshots_received += 1
            self.snapshot_arrived.emit(message)

    def _end(self, proc: RunProcess, message: Ended | Died) -> None:
        self._proc = None
        if isinstance(message, Ended) and message.stays and not self._closed:
            self._standby = proc  # it trains the next run
        else:
            proc.close(timeout=0)  # it has exited (the reader waits for that), or ends now
        error: str | None
        if isinstance(message, Died):
            error = message.message
        else:
            error = message.error if message.status in (DIVERGED, RUN_FAILED) else None
        if error is not None:
            self._set_state(FAILED)
            self.failed.emit(error)
        else:
            self._set_state(FINISHED)
        if not self._closed and self._standby is None:
            self._next_standby.start()
        self.finished.emit()

    def _set_state(self, state: str) -> None:
        if state != self.state:
            self.state = state
            self.state_changed.emit(state)
