"""The one run loop: train a config into its run record, for the CLI, sweeps and the app.

`stream(config, record_dir, control)` builds the Experiment, records every snapshot
(engine.record_writer) and hands on, in order: a RecordingStopped notice when the record cannot
be opened (only with `unrecorded_ok`), the Experiment, the run's RunInfo, then each
Snapshot (and a RecordingStopped notice if recording fails later). It returns a
RunOutcome; `train()` drains it for callers that want only the outcome.

The control protocol (RunControl), asked at snapshot boundaries:
- `on_experiment(exp)` once it is built: a caller may later call exp.request_stop()
  (a final snapshot after the current step) or exp.abort();
- `on_snapshot(snapshot, run_info)` after each snapshot is recorded: progress, and where
  the app pauses its worker;
- `stop_requested()` then: true ends the run at that snapshot.

A run ends "finished" when its last snapshot reaches train.steps, else "stopped";
"diverged" on a non-finite loss; "failed" on any other error or when the record cannot
be written (unless `unrecorded_ok`: the app trains on unrecorded). KeyboardInterrupt and
GeneratorExit record "stopped" and propagate. RunOutcome.exit_code is the CLI's status.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .config import ExperimentConfig
from .snapshot import RunInfo, Snapshot

if TYPE_CHECKING:
    from .experiment import Experiment

FINISHED, STOPPED, DIVERGED, FAILED = "finished", "stopped", "diverged", "failed"


def _never() -> bool:
    return False


@dataclass
class RunControl:
    """What the caller of a run asks and is told; see the module docstring."""

    stop_requested: Callable[[], bool] = _never
    on_snapshot: Callable[[Snapshot, RunInfo], None] | None = None
    on_experiment: Callable[[Experiment], None] | None = None


@dataclass
class RecordingStopped:
    """The run record could not be written (folder not writable, disk full): why."""

    message: str


@dataclass
class RunOutcome:
    """How a run ended, and what it cost."""

    status: str = STOPPED
    error: str | None = None
    steps: int = 0  # the last snapshot's step
    snapshots: int = 0  # snapshots recorded
    seconds: float = 0.0  # wall time of the whole call
    train_s: float = 0.0  # inside the training loop, callbacks excluded
    callback_s: float = 0.0  # inside on_snapshot and stop_requested
    last: Snapshot | None = None
    info: RunInfo | None = None
    exception: BaseException | None = field(default=None, repr=False)
    write_error: OSError | None = field(default=None, repr=False)  # the record failed

    def fail(self, exc: BaseException) -> None:
        from .training import DivergenceError

        self.exception = exc
        if isinstance(exc, DivergenceError):
            self.status, self.error = DIVERGED, str(exc)
        else:
            self.status, self.error = FAILED, f"{type(exc).__name__}: {exc}"

    def fail_to_write(self, exc: OSError) -> None:
        self.status, self.error, self.write_error = FAILED, why(exc), exc

    def exit_code(self, signal: int | None = None) -> int:
        """The CLI's exit status: 0 finished, 1 diverged, failed or collapsed,
        128 + the signal that stopped it."""
        if signal is not None:
            return 128 + signal
        if self.status != FINISHED:
            return 1
        return 1 if self.last is not None and self.last.collapsed else 0

    def as_dict(self) -> dict:
        """The plain, picklable summary a sweep's executor sends back."""
        return {"status": self.status, "error": self.error, "steps": self.steps,
                "seconds": self.seconds, "train_s": self.train_s,
                "callback_s": self.callback_s}


def why(exc: BaseException) -> str:
    """An OSError as "reason (file)"; anything else as its message."""
    if isinstance(exc, OSError):
        return f"{exc.strerror or exc}" + (f" ({exc.filename})" if exc.filename else "")
    return str(exc)


def stream(config: ExperimentConfig, record_dir: str | Path | None = None,
           control: RunControl | None = None, *, force: bool = False,
           threads: int | None = None, record_from_start: bool = False,
           unrecorded_ok: bool = False
           ) -> Generator[RecordingStopped | Experiment | RunInfo | Snapshot, None, RunOutcome]:
    """Train `config`, recording into `record_dir` (None: unrecorded); see the module
    docstring. `force` replaces a record already there. `threads`: torch's threads for
    the run (restored after). `record_from_start`: open the record before building the
    Experiment, so a run that cannot be built is recorded failed (a sweep's grid point);
    otherwise that error propagates and nothing is written."""
    import torch

    control = control or RunControl()
    out = RunOutcome()
    t0 = time.perf_counter()
    previous = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        return (yield from _stream(config, record_dir, control, out, force, record_from_start,
                                   unrecorded_ok))
    finally:
        torch.set_num_threads(previous)
        out.seconds = time.perf_counter() - t0


def train(config: ExperimentConfig, record_dir: str | Path | None = None,
          control: RunControl | None = None, **options: Any) -> RunOutcome:
    """stream() to its end; only the outcome."""
    items = stream(config, record_dir, control, **options)
    while True:
        try:
            next(items)
        except StopIteration as end:
            return end.value


def _stream(config: ExperimentConfig, record_dir: str | Path | None, control: RunControl,
            out: RunOutcome, force: bool, record_from_start: bool, unrecorded_ok: bool
            ) -> Generator[RecordingStopped | Experiment | RunInfo | Snapshot, None, RunOutcome]:
    from .experiment import Experiment
    from .model import pick_device
    from .record_format import RunRecordError
    from .record_writer import RunWriter

    writer: RunWriter | None = None
    exp: Experiment | None = None
    if record_dir is not None and record_from_start:
        writer = RunWriter(record_dir, config, device=str(pick_device(config.model.device)),
                           force=force)
        config = writer.config
    try:
        exp = Experiment(config)
    except Exception as exc:
        if writer is None:
            raise
        out.fail(exc)
    if exp is not None and writer is None and record_dir is not None:
        try:
            writer = RunWriter(record_dir, config, device=str(exp.device), force=force)
        except (OSError, RunRecordError) as exc:
            if not unrecorded_ok:
                raise
            yield RecordingStopped(f"this run is not being recorded: {why(exc)}")
    try:
        if exp is not None:
            if control.on_experiment is not None:
                control.on_experiment(exp)
            yield exp
            t_train = time.perf_counter()
            for snap in exp.run():
                info = exp.info
                assert info is not None  # measured before the first snapshot
                if out.last is None:
                    out.info = info
                    yield info
                out.last, out.steps = snap, snap.step
                if writer is not None:
                    try:
                        writer.append(snap, info)
                    except OSError as exc:
                        if not unrecorded_ok:  # finish() below records it failed
                            out.fail_to_write(exc)
                            break
                        writer.abandon()
                        writer = None
                        yield RecordingStopped(f"recording stopped at step {snap.step}: "
                                               f"{why(exc)}; training goes on unrecorded")
                    else:
                        out.snapshots += 1
                tc = time.perf_counter()
                if control.on_snapshot is not None:
                    control.on_snapshot(snap, info)
                stop = not snap.done and control.stop_requested()
                out.callback_s += time.perf_counter() - tc
                yield snap
                if stop:
                    break
            else:
                out.status = FINISHED if out.steps >= config.train.steps else STOPPED
            out.train_s = time.perf_counter() - t_train - out.callback_s
    except Exception as exc:  # recorded, not raised: the caller reads the outcome
        out.fail(exc)
    except BaseException:  # KeyboardInterrupt, GeneratorExit (the app's worker quit)
        if writer is not None:
            with contextlib.suppress(Exception):
                writer.finish(STOPPED)
        raise
    if writer is not None:
        try:
            writer.finish(out.status, error=out.error)
        except OSError as exc:
            writer.abandon()
            if out.write_error is None:
                out.fail_to_write(exc)
    return out
