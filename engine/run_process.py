"""Train one run in a spawned child process, so a GUI beside it keeps its own GIL.

The parent's handle is `RunProcess`. Its child imports torch and pays the optimisers'
warm-up (engine.training.warm_up) at once, says `Ready`, then waits for a `Start` (a
window keeps one such standby, so Start does not wait for torch). The child runs
engine.runs.stream, which records the run, and sends what it yields over a Pipe as plain
picklable objects: `Built` (the device and the probe inputs, instead of the Experiment),
the RunInfo, each Snapshot, RecordingStopped notices, `Paused`/`Resumed`, and finally
`Ended` (the outcome, with the message a user sees on failure). A reader thread in the
parent hands each message to `on_message`; `Died` says the child ended without `Ended`.

Commands go the other way ("pause", "resume", "step", "stop", "abort", "quit"), read by a
thread in the child as soon as they arrive: pause/step take effect after the next
snapshot, stop asks the Experiment for a final snapshot after the current step, abort
ends the run at once, even inside a long measurement (recorded "stopped").
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from . import runs
from .config import ExperimentConfig
from .runs import RecordingStopped
from .snapshot import RunInfo, Snapshot

if TYPE_CHECKING:
    from multiprocessing.context import SpawnProcess

    from .experiment import Experiment

COMMANDS = ("pause", "resume", "step", "stop", "abort", "quit")
CHILDREN_GRACE_S = 0.5  # a leaving child's wait for processes it started itself
EXIT_GRACE_S = 2.0  # after Ended, how long the reader waits for the child's exit


@dataclass(frozen=True)
class Ready:
    """The child has torch and its optimisers loaded and waits for a Start."""

    pid: int


@dataclass(frozen=True)
class Start:
    """Train `config`, recording into `record_dir` (None: unrecorded), with `threads` torch
    threads (None: the process default); `pause_at_next`: pause after the first snapshot."""

    config: ExperimentConfig
    record_dir: Path | None
    threads: int | None
    pause_at_next: bool = False


@dataclass(frozen=True)
class Built:
    """The Experiment is built: what a window needs of it."""

    device: str
    probe_x: np.ndarray


@dataclass(frozen=True)
class Paused:
    """Paused after the snapshot of `step`."""

    step: int


@dataclass(frozen=True)
class Resumed:
    """Training goes on after a pause."""


@dataclass(frozen=True)
class Ended:
    """The run is over and its record closed: its status (engine.runs), and the message
    a user reads when it failed or diverged (None otherwise)."""

    status: str
    error: str | None = None


@dataclass(frozen=True)
class Died:
    """The child ended without saying how its run ended (killed, crashed)."""

    exitcode: int | None

    @property
    def message(self) -> str:
        code = self.exitcode
        how = (f"killed by signal {-code}" if code is not None and code < 0
               else f"exit code {code}" if code is not None else "no exit code")
        return f"the training process ended unexpectedly ({how}); the run is not complete"


Message = Ready | Built | RunInfo | Snapshot | RecordingStopped | Paused | Resumed | Ended | Died


# -- the child -----------------------------------------------------------------------------
class ChildRun:
    """One run as the child trains it: `run()` sends what engine.runs.stream yields through
    `send` and returns how it ended; `command(name)` (from the child's reader thread, or
    from `send` in the same thread) applies a parent's command at once."""

    def __init__(self, start: Start, send: Callable[[Message], object]) -> None:
        self.start = start
        self._send = send
        self.cond = threading.Condition()
        self.pause_at_next = start.pause_at_next
        self.paused = False
        self.stop = False
        self.abort = False
        self.exp: Experiment | None = None

    def command(self, name: str) -> None:
        with self.cond:
            if name == "pause":
                self.pause_at_next = True
            elif name == "resume":
                self.pause_at_next = self.paused = False
            elif name == "step":
                self.pause_at_next, self.paused = True, False
            elif name == "stop":
                self.pause_at_next = self.paused = False
                self.stop = True
                if self.exp is not None:
                    self.exp.request_stop()
            elif name in ("abort", "quit"):
                self.pause_at_next = self.paused = False
                self.stop = self.abort = True
                if self.exp is not None:
                    self.exp.abort()
            self.cond.notify_all()

    def read(self, conn: Connection) -> None:
        """The child's reader thread: commands as they arrive; a parent gone is an abort."""
        while not self.abort:
            try:
                name = conn.recv()
            except (EOFError, OSError):
                name = "abort"
            self.command(name)

    def _on_experiment(self, exp: Experiment) -> None:
        with self.cond:
            self.exp = exp
            if self.stop:  # stopped before it was built: nothing to finish
                exp.abort()

    def _pause_here(self) -> bool:
        """Whether to pause after the snapshot just sent (then paused)."""
        with self.cond:
            if self.pause_at_next and not self.stop:
                self.pause_at_next, self.paused = False, True
                return True
            return False

    def send(self, message: Message) -> None:
        try:
            self._send(message)
        except OSError:  # the parent has gone: nobody to train for
            self.command("abort")

    def run(self) -> Ended:
        start = self.start
        control = runs.RunControl(on_experiment=self._on_experiment)
        items = runs.stream(start.config, start.record_dir, control, threads=start.threads,
                            unrecorded_ok=True)
        try:
            while not self.abort:
                try:
                    item = next(items)
                except StopIteration as end:
                    outcome: runs.RunOutcome = end.value
                    if outcome.status in (runs.DIVERGED, runs.FAILED):
                        return Ended(outcome.status, _failure(outcome.exception, outcome.error))
                    return Ended(outcome.status)
                if isinstance(item, RunInfo | Snapshot | RecordingStopped):
                    self.send(item)
                else:  # the Experiment
                    self.send(Built(str(item.device), item.probe.x))
                if isinstance(item, Snapshot) and self._pause_here():
                    self.send(Paused(item.step))
                    with self.cond:
                        self.cond.wait_for(lambda: not self.paused)
                    self.send(Resumed())
        except Exception as exc:  # the Experiment could not be built (ConfigError, ...)
            return Ended(runs.FAILED, _failure(exc, None))
        finally:
            items.close()  # an aborted run is recorded "stopped"
        return Ended(runs.STOPPED)


def _failure(exc: BaseException | None, error: str | None) -> str | None:
    """What the app says when a run fails: the exception's own message."""
    return str(exc) if exc is not None else error


def child_main(conn: Connection) -> None:
    """The child process: warm up, say Ready, train the one Start it is sent, leave."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    from .training import warm_up

    warm_up()
    try:
        conn.send(Ready(os.getpid()))
        start = conn.recv()
    except (EOFError, OSError):
        start = None
    if isinstance(start, Start):
        run = ChildRun(start, conn.send)
        threading.Thread(target=run.read, args=(conn,), name="gsh-run-commands",
                         daemon=True).start()
        run.send(run.run())
    _leave()


def _leave() -> None:
    """Exit now that the run is recorded and reported: after its own children (if any),
    without the interpreter's teardown, which takes 1.6-1.7 s once torch is loaded."""
    for child in multiprocessing.active_children():
        child.join(CHILDREN_GRACE_S)
        if child.exitcode is None:
            child.terminate()
            child.join(CHILDREN_GRACE_S)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


# -- the parent ----------------------------------------------------------------------------
class RunProcess:
    """One training child and the thread reading its messages (see the module docstring).

    `on_message(message)` is called in the reader thread, in order, ending with Ended or
    Died. Nothing outlives `close()`."""

    def __init__(self, on_message: Callable[[Message], Any]) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.on_message = on_message
        self.ready = threading.Event()
        self.started = False  # a Start was sent
        self.over = threading.Event()  # Ended or Died was handed on
        parent, child = ctx.Pipe(duplex=True)
        # Not a daemon: the child may start processes of its own (a daemon cannot).
        self.process: SpawnProcess = ctx.Process(target=child_main, args=(child,),
                                                 name="gsh-run", daemon=False)
        self.process.start()
        child.close()  # the child's end lives in the child: its exit reads as EOF here
        self.conn = parent
        self._reader = threading.Thread(target=self._read, name="gsh-run-reader",
                                        daemon=True)
        self._reader.start()

    @property
    def pid(self) -> int | None:
        return self.process.pid

    def start(self, start: Start) -> bool:
        """Hand the child its run (queued until it is warm); False if it has gone."""
        self.started = True
        return self._send(start)

    def command(self, name: str) -> bool:
        """Send one of COMMANDS; False if the child has gone."""
        if name not in COMMANDS:
            raise ValueError(f"unknown command {name!r}; one of {', '.join(COMMANDS)}")
        return self._send(name)

    def _send(self, message: object) -> bool:
        try:
            self.conn.send(message)
            return True
        except (OSError, ValueError):  # closed, or the child has gone
            return False

    def _read(self) -> None:
        ended = False
        while True:
            try:
                message = self.conn.recv()
            except (EOFError, OSError):
                break
            if isinstance(message, Ready):
                self.ready.set()
            if isinstance(message, Ended):  # its record is closed: let it exit first
                ended = True
                wait([self.process.sentinel], timeout=EXIT_GRACE_S)
            self._hand_on(message)
        if not ended:  # give the child a moment to be reaped for its exit code
            deadline = time.monotonic() + 1.0
            while self.process.exitcode is None and time.monotonic() < deadline:
                time.sleep(0.01)
            self._hand_on(Died(self.process.exitcode))
        self.over.set()

    def _hand_on(self, message: Message) -> None:
        try:
            self.on_message(message)
        except RuntimeError:  # the receiver has been deleted (a closed window)
            pass

    def wait_ready(self, timeout: float | None = None) -> bool:
        return self.ready.wait(timeout)

    def join(self, timeout: float) -> bool:
        """Wait for the child to exit; True when it has."""
        self.process.join(timeout)
        return self.process.exitcode is not None

    def close(self, timeout: float = 1.0) -> None:
        """End the child: abort its run (or its wait for one), give it `timeout` s to
        record the run "stopped" and exit, then terminate, then kill it."""
        if self.process.exitcode is None:
            self._send("abort" if self.started else "quit")
            if not self.started:  # a standby: nothing to record, no need to wait
                self.process.terminate()
            self.process.join(timeout)
        if self.process.exitcode is None:
            self.process.terminate()
            self.process.join(0.5)
        if self.process.exitcode is None:
            self.process.kill()
            self.process.join(1.0)
        self._reader.join(EXIT_GRACE_S + 1.5)
        with contextlib.suppress(OSError):
            self.conn.close()
