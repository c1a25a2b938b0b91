"""Train runs in a spawned child process, so a GUI beside it keeps its own GIL.

The parent's handle is `RunProcess`. Its child imports torch and pays the optimisers'
warm-up (engine.training.warm_up) at once, says `Ready`, then waits for a `Start` (a
window keeps one such standby, so Start does not wait for torch). The child runs
engine.runs.stream, which records the run, and sends what it yields over a Pipe as plain
picklable objects: `Built` (the device and the probe inputs, instead of the Experiment),
the RunInfo, each Snapshot, RecordingStopped notices, `Paused`/`Resumed`, and finally
`Ended` (the outcome, with the message a user sees on failure). A reader thread in the
parent hands each message to `on_message`; `Died` says the child ended without `Ended`.

After `Ended` the child stays for the next run (`Ended.stays`: it says `Ready` again and
waits for the next Start; each run builds its own Experiment, seeds and measurement
process) unless the run was aborted, failed short of memory, or left a thread or process
of its own behind: then it leaves, at once (see `_leave`).

Commands go the other way ("pause", "resume", "step", "stop", "abort", "quit"), read by a
thread in the child as soon as they arrive: pause/step take effect after the next
snapshot, stop asks the Experiment for a final snapshot after the current step, abort
ends the run at once, even inside a long measurement (recorded "stopped"), and the
child; quit ends a child waiting for a Start. Commands between runs are ignored.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import multiprocessing
import os
import queue
import signal
import sys
import threading
import time
import traceback
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
EXIT_GRACE_S = 2.0  # after an Ended that leaves, how long the reader waits for the exit
QUIT_GRACE_S = 0.2  # closing a child that waits for a Start: its wait to leave on its own


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
    """The run is over and its record closed: its status (engine.runs), the message a
    user reads when it failed or diverged (None otherwise), and whether the child stays
    for another Start (else it exits now)."""

    status: str
    error: str | None = None
    stays: bool = False


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
        self.failure: BaseException | None = None  # what failed the run

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
                        self.failure = outcome.exception
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
            self.failure = exc
            return Ended(runs.FAILED, _failure(exc, None))
        finally:
            items.close()  # an aborted run is recorded "stopped"
        return Ended(runs.STOPPED)


def _failure(exc: BaseException | None, error: str | None) -> str | None:
    """What the app says when a run fails: the exception's own message."""
    return str(exc) if exc is not None else error


class _Child:
    """The child's end of the pipe for its whole life. A thread (`read`) takes the
    parent's messages as they arrive: a Start becomes the run in progress and is queued
    for the main thread (`next_run`); commands go to the run in progress (between runs
    they are ignored); "abort", "quit" or the parent gone end the child."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.lock = threading.Lock()
        self.run: ChildRun | None = None  # the run in progress
        self.leaving = False
        self._runs: queue.SimpleQueue[ChildRun | None] = queue.SimpleQueue()
        self.reader = threading.Thread(target=self.read, name="gsh-run-commands",
                                       daemon=True)
        self.reader.start()
        # what lives for the child's whole life: a run may leave nothing beside these
        self._threads = {*threading.enumerate(), self.reader}
        self._children = set(multiprocessing.active_children())

    def read(self) -> None:
        while True:
            try:
                message = self.conn.recv()
            except (EOFError, OSError):  # the parent has gone: nobody to train for
                message = "abort"
            with self.lock:
                if isinstance(message, Start):
                    self.run = ChildRun(message, self.conn.send)
                    self._runs.put(self.run)
                    continue
                run = self.run
                self.leaving = message in ("abort", "quit")
            if run is not None:
                run.command(message)
            if self.leaving:
                self._runs.put(None)
                return

    def send(self, message: Message) -> bool:
        try:
            self.conn.send(message)
            return True
        except (OSError, ValueError):  # the parent has gone
            return False

    def next_run(self) -> ChildRun | None:
        """The next Start's run, or None when the child is to leave."""
        return self._runs.get()

    def ended(self, run: ChildRun) -> bool:
        """The run in progress is over: whether this child may train another."""
        with self.lock:
            self.run = None
            if self.leaving or run.abort:
                return False
        if _short_of_memory(run.failure):  # its memory may be left in any state
            return False
        gc.collect()  # a generator in a reference cycle still holding a run's resources
        # The measurement process's threads end with it (engine.measure): none may be left.
        left = [t for t in threading.enumerate() if t not in self._threads and t.is_alive()]
        return not left and not set(multiprocessing.active_children()) - self._children


def _short_of_memory(exc: BaseException | None) -> bool:
    """Whether `exc` says memory ran out: Python's, a torch device's, torch's CPU
    allocator's (a RuntimeError saying "can't allocate memory")."""
    from torch.cuda import OutOfMemoryError

    return (isinstance(exc, MemoryError | OutOfMemoryError)
            or (isinstance(exc, RuntimeError) and "can't allocate memory" in str(exc)))


def child_main(conn: Connection) -> None:
    """The child process: warm up, then say Ready and train each Start it is sent, until
    a run ends it (see the module docstring) or it is told to leave."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    try:
        from .training import warm_up

        warm_up()
        child = _Child(conn)
        while child.send(Ready(os.getpid())) and (run := child.next_run()) is not None:
            ended = run.run()
            stays = child.ended(run)
            if not child.send(dataclasses.replace(ended, stays=stays)) or not stays:
                break
    except BaseException:  # reported as Died (its exit code) if a run was in progress
        traceback.print_exc()
        _leave(1)
    _leave(0)


def _leave(code: int) -> None:
    """Exit now that the last run is recorded and reported: after the child's own
    children (if any), without the interpreter's teardown, which takes 1.6-1.7 s once
    torch is loaded (a window closing mid-run would otherwise have to terminate it)."""
    for child in multiprocessing.active_children():
        child.join(CHILDREN_GRACE_S)
        if child.exitcode is None:
            child.terminate()
            child.join(CHILDREN_GRACE_S)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


# -- the parent ----------------------------------------------------------------------------
class RunProcess:
    """One training child and the thread reading its messages (see the module docstring).

    `on_message(message)` is called in the reader thread, in order; each run's messages
    end with Ended or Died, and the child's last message is an Ended that does not stay
    or Died (also when a child waiting for a Start dies, unless `close()` ended it).
    Nothing outlives `close()`."""

    def __init__(self, on_message: Callable[[Message], Any]) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.on_message = on_message
        self.ready = threading.Event()
        self.running = False  # a Start was sent and its Ended has not come back
        self.over = threading.Event()  # the child has gone: its last message handed on
        self._closing = False  # close() ends it: its exit is no death
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
        self.running = True
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
        left = False  # the child said it leaves
        while True:
            try:
                message = self.conn.recv()
            except (EOFError, OSError):
                break
            if isinstance(message, Ready):
                self.ready.set()
            if isinstance(message, Ended):
                self.running = False
                if not message.stays:  # its record is closed: let it exit first
                    left = True
                    wait([self.process.sentinel], timeout=EXIT_GRACE_S)
            self._hand_on(message)
        if not left and (self.running or not self._closing):
            # give the child a moment to be reaped for its exit code
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
        """End the child: abort its run and give it `timeout` s to record the run
        "stopped" and exit; a child waiting for a Start gets QUIT_GRACE_S (at least) to
        leave, one still loading torch none; then terminate, then kill it."""
        self._closing = True
        if self.process.exitcode is None:
            if self.running:
                self._send("abort")
                self.process.join(timeout)
            elif self.ready.is_set():  # its command thread reads "quit" at once
                self._send("quit")
                self.process.join(max(timeout, QUIT_GRACE_S))
        if self.process.exitcode is None:
            self.process.terminate()
            self.process.join(0.5)
        if self.process.exitcode is None:
            self.process.kill()
            self.process.join(1.0)
        self._reader.join(EXIT_GRACE_S + 1.5)
        with contextlib.suppress(OSError):
            self.conn.close()
