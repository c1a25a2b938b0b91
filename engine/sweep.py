"""Running a sweep: its folder, its grid through an executor, progress and a stop.

A sweep folder holds `sweep.toml` (the definition: the fully resolved base config, each
axis's values, the number of seeds; engine.sweep_spec), `runs/<id>/` (one run record per
grid point, see engine.record_format; the id is derived from the point's resolved config, so
running the same sweep again resumes: finished runs are skipped, unfinished ones re-run)
and `summary.csv` (one row per run, rebuilt from the run records; engine.sweep_summary).
`run_sweep` trains the grid through an executor (engine.executors) with progress per
snapshot (SweepEvent) and a cooperative stop. The definition's and summary's public names
are handed on here, so `engine.sweep` is the one import for a sweep.
"""

from __future__ import annotations

import contextlib
import errno
import os
import threading
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from .atomic import LockBusy, atomic_write_text, hold_lock
from .executors import Executor, RunTask, SerialExecutor
from .sweep_spec import (
    LOCK,
    MAX_RUNS,
    RUNS,
    SUMMARY,
    SWEEP_DIR,
    SWEEP_TOML,
    Axis,
    RunPoint,
    Sweep,
    SweepError,
    builtin_sweeps,
    check_runnable_points,
    config_hash,
    find_sweep_file,
    load_sweep,
    make_axis,
    parse_set,
    parse_vary,
    read_sweep_file,
    run_id,
    sweep_from_dict,
)
from .sweep_summary import (
    SUMMARY_FIGURES,
    read_summary,
    summary_columns,
    summary_row,
    summary_text,
)

__all__ = [
    "DONE", "LOCK", "MAX_RUNS", "RUNS", "SUMMARY", "SUMMARY_FIGURES", "SWEEP_DIR",
    "SWEEP_TOML", "Axis", "RunPoint", "Sweep", "SweepError", "SweepEvent", "SweepResult",
    "builtin_sweeps", "config_hash", "find_sweep_file", "load_sweep", "make_axis",
    "parse_set", "parse_vary", "prepare", "read_summary", "read_sweep_file", "run_id",
    "run_sweep", "summary_columns", "summary_row", "summary_text", "sweep_from_dict",
]

DONE = ("finished", "diverged")  # a resumed sweep skips these; the others re-run


@dataclass
class SweepEvent:
    """What a sweep reports: kind "start" (the grid is known), "run_start", "snapshot",
    "run_done" (with the run's status) or "done" (the sweep ended). Every event carries
    the sweep's totals so far: runs_done / runs_total, steps_done / steps_total, eta_s."""

    kind: str
    run_id: str = ""
    step: int = 0
    total_steps: int = 0
    status: str = ""
    error: str | None = None
    figures: dict = field(default_factory=dict)  # loss, one-shot, collisions; baselines
    outcome: dict = field(default_factory=dict)  # run_done: the run's timings (engine.runs)
    runs_done: int = 0
    runs_total: int = 0
    steps_done: int = 0
    steps_total: int = 0
    eta_s: float = float("nan")



def _take_lock(folder: Path) -> TextIO:
    try:
        return hold_lock(folder / LOCK, f"{os.getpid()}\n")
    except LockBusy:
        raise SweepError(f"{folder} is being run by another sweep process") from None
    except OSError as exc:  # a symlink (ELOOP) or a folder in its place
        if exc.errno == errno.EINVAL:
            raise SweepError(f"{folder / LOCK} is not a regular file; remove it") from None
        raise SweepError(f"{folder / LOCK}: {exc.strerror or exc}; remove it") from None


def check_inside(folder: Path, points: list) -> None:
    """SweepError when runs/ or a run's folder in it is a symlink: a sweep writes only
    into its own folder (a link would make it replace an outside run's files)."""
    for path in (folder / RUNS, *(folder / RUNS / p.id for p in points)):
        if path.is_symlink():
            raise SweepError(f"{path} is a symlink: a sweep writes only inside its own "
                             "folder; remove the link")


def prepare(folder: str | os.PathLike, sweep: Sweep | None = None) -> tuple[Sweep, list]:
    """Create or reopen a sweep folder and return (sweep, grid). With `sweep`, a new
    folder (or an empty one) gets its sweep.toml; a folder holding the same sweep is
    resumed; a different sweep or a non-sweep folder with files is refused. Without it,
    the folder's sweep.toml is read (resume). Everything is validated before any run; a
    new sweep's grid must be able to run here (a resumed one is checked by run_sweep, for
    the runs still to do)."""
    folder = Path(folder)
    stored = folder / SWEEP_TOML
    if sweep is None:
        sweep = load_sweep(folder)
        return sweep, sweep.points()
    points = sweep.points()
    if stored.is_file():
        old = read_sweep_file(stored)
        if _definition(old) != _definition(tomllib.loads(sweep.to_toml())):
            raise SweepError(
                f"{folder} holds a different sweep; resume it with --resume {folder}, "
                "or choose another --out"
            )
        if old != tomllib.loads(sweep.to_toml()):  # same grid, new name or limit
            atomic_write_text(stored, sweep.to_toml())
        return sweep, points
    check_runnable_points(points)
    try:
        if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
            raise SweepError(
                f"{folder} is not empty and is not a sweep folder; choose another --out"
            )
        (folder / RUNS).mkdir(parents=True, exist_ok=True)
        atomic_write_text(stored, sweep.to_toml())
    except OSError as exc:
        raise SweepError(f"{exc.filename or folder}: {exc.strerror or exc}") from None
    return sweep, points


def _definition(d: dict) -> dict:
    """What decides a sweep's grid: its base, axes and seeds."""
    return {k: d.get(k) for k in ("base", "axes", "seeds")}


@dataclass
class SweepResult:
    """How a sweep ended: counts per status, its summary rows and wall time."""

    folder: Path
    rows: list[dict]
    counts: dict[str, int]
    skipped: int  # finished before this call (resumed)
    seconds: float
    stopped: bool

    def line(self) -> str:
        parts = [f"{n} {s}" for s, n in sorted(self.counts.items())]
        return (f"{len(self.rows)} runs ({', '.join(parts)}; {self.skipped} done before) in "
                f"{self.seconds:.1f} s; summary in {self.folder / SUMMARY}")


class _Progress:
    """Totals for SweepEvents: runs and steps done, and an ETA from the sweep's rate."""

    def __init__(self, points: list[RunPoint], skipped: set[str]):
        self.total = {p.id: p.config.train.steps for p in points}
        self.step = {p.id: (self.total[p.id] if p.id in skipped else 0) for p in points}
        self.done = set(skipped)
        self.start = time.perf_counter()
        self.base_steps = sum(self.step.values())

    def event(self, **kw: Any) -> SweepEvent:
        steps_done = sum(self.step.values())
        steps_total = sum(self.total.values())
        fresh = steps_done - self.base_steps
        elapsed = time.perf_counter() - self.start
        eta = (steps_total - steps_done) * elapsed / fresh if fresh > 0 else float("nan")
        return SweepEvent(runs_done=len(self.done), runs_total=len(self.total),
                          steps_done=steps_done, steps_total=steps_total, eta_s=eta, **kw)


def run_sweep(folder: str | os.PathLike, sweep: Sweep | None = None,
              executor: Executor | None = None,
              on_event: Callable[[SweepEvent], None] | None = None,
              stop: threading.Event | None = None) -> SweepResult:
    """Run (or resume) the sweep in `folder` and return how it ended.

    `executor`: an engine.executors.Executor (default: SerialExecutor). `on_event` is
    called in this thread with every SweepEvent. Setting `stop` ends each running run at
    its next snapshot (recorded "stopped") and starts no new one; running the sweep
    again resumes it. summary.csv is rewritten after every run and at the end.
    """
    folder = Path(folder).absolute()
    t0 = time.perf_counter()
    sweep, points = prepare(folder, sweep)
    check_inside(folder, points)
    executor = executor or SerialExecutor()
    stop = stop or threading.Event()
    lock = _take_lock(folder)
    try:
        rows = {p.id: summary_row(folder, p) for p in points}
        skipped = {i for i, r in rows.items() if r["status"] in DONE}
        todo = [p for p in points if p.id not in skipped]
        check_runnable_points(todo)
        progress = _Progress(points, skipped)
        columns = summary_columns(sweep)
        by_id = {p.id: p for p in points}

        def write_summary() -> None:
            atomic_write_text(folder / SUMMARY,
                              summary_text([rows[p.id] for p in points], columns))

        def emit(ev: SweepEvent) -> None:
            if on_event is not None:
                on_event(ev)

        def handle(msg: dict) -> None:
            kind, rid = msg["kind"], msg.get("run_id", "")
            if kind == "snapshot":
                progress.step[rid] = msg["step"]
            elif kind == "run_start":
                rows[rid] = {**rows[rid], "status": "running"}
            elif kind == "run_done":
                if msg.get("status") == "skipped":  # stopped before it began: still pending
                    return
                if msg.get("status") != "stopped":
                    progress.done.add(rid)
                    progress.step[rid] = progress.total[rid]
                rows[rid] = summary_row(folder, by_id[rid])
                if rows[rid]["status"] == "pending" and msg.get("error"):
                    rows[rid] = {**rows[rid], "status": "failed", "error": msg["error"]}
                with contextlib.suppress(OSError):
                    write_summary()
            fields = {k: msg[k] for k in ("run_id", "step", "total_steps", "status", "error",
                                         "figures", "outcome") if k in msg}
            emit(progress.event(kind=kind, **fields))

        write_summary()
        emit(progress.event(kind="start"))
        tasks = [RunTask(p.id, p.config.to_dict(), str(folder / RUNS / p.id)) for p in todo]
        if tasks:
            executor.run(tasks, handle, stop)
        rows = {p.id: summary_row(folder, p) for p in points}
        write_summary()
        counts: dict[str, int] = {}
        for r in rows.values():
            counts[r["status"]] = counts.get(r["status"], 0) + 1
        result = SweepResult(folder, [rows[p.id] for p in points], counts, len(skipped),
                             time.perf_counter() - t0, stop.is_set())
        emit(progress.event(kind="done"))
        return result
    finally:
        with contextlib.suppress(OSError):
            (folder / LOCK).unlink()
        lock.close()
