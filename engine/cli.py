"""Headless commands behind main.py: `run` (train while writing the run record), `sweep`
(a grid of runs into a sweep folder) and `presets`."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from tqdm import tqdm

from .config import ConfigError, ExperimentConfig, load_preset, preset_names
from .executors import DaskExecutor, choose_executor
from .record_writer import check_output
from .runs import DIVERGED, FAILED, RunControl, stream
from .sweep import (
    DONE,
    SWEEP_TOML,
    Sweep,
    SweepError,
    SweepEvent,
    find_sweep_file,
    load_sweep,
    parse_set,
    prepare,
    read_summary,
    read_sweep_file,
    run_sweep,
    summary_row,
    sweep_from_dict,
)
from .threads import training_threads

if TYPE_CHECKING:
    from .experiment import Experiment
    from .snapshot import RunInfo, Snapshot

# what signal.signal takes and returns
_Handler = Callable[[int, FrameType | None], Any] | int | signal.Handlers | None


def list_presets() -> int:
    for name in preset_names():
        cfg = load_preset(name)
        print(f"{name:<14} {cfg.description}")
    return 0


class StopOnSignal:
    """SIGINT and SIGTERM while training: the first calls `on_first(signum)` (a run stops
    after its current step, a sweep's runs at their next snapshot); a second one
    interrupts at once (KeyboardInterrupt)."""

    def __init__(self, on_first: Callable[[int], None]) -> None:
        self.on_first = on_first
        self.received: int | None = None
        self._old: dict[int, _Handler] = {}

    def __enter__(self) -> StopOnSignal:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        if self.received is not None:
            raise KeyboardInterrupt
        self.received = signum
        self.on_first(signum)

    def __exit__(self, *exc: object) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)


def run_headless(config: ExperimentConfig, out: Path, quiet: bool = False,
                 force: bool = False) -> int:
    """Train `config`, recording the run into `out` as it goes (see engine.runs).

    Exit status: 0 finished; 1 diverged, collapsed or a write failed; 2 `out` is not
    empty (without force); 128 + signal number when stopped by SIGINT or SIGTERM.
    """
    from .model import pick_device  # torch: imported only to train (not for `presets`)

    device = str(pick_device(config.model.device))
    config = config.replace(**{"model.device": device})
    check_output(out, force)  # a non-empty folder is refused before anything is built
    experiment: list[Experiment] = []  # the Experiment, once built

    def stop(_sig: int) -> None:
        if experiment:
            experiment[0].request_stop()

    signals = StopOnSignal(stop)
    # The bar starts once the run is built and its record opened (a refusal prints alone).
    bar = tqdm(total=config.train.steps, unit="step", disable=True, file=sys.stderr)

    def on_experiment(exp: Experiment) -> None:
        nonlocal bar
        experiment.append(exp)
        bar = tqdm(total=config.train.steps, unit="step", disable=quiet, file=sys.stderr)

    def on_snapshot(snap: Snapshot, _info: RunInfo) -> None:
        if signals.received is not None:
            experiment[0].request_stop()
        # The figures first: update() draws the bar, which then names this snapshot's.
        bar.set_postfix(loss=f"{snap.loss:.3f}", oneshot=f"{snap.oneshot_trained:.2f}",
                        refresh=False)
        bar.update(snap.step - bar.n)

    control = RunControl(on_snapshot=on_snapshot, on_experiment=on_experiment)
    kept = 0
    try:
        with signals:
            # The record opens once the Experiment is built: a config that cannot run here
            # writes nothing, and `out` that cannot be written fails before any training.
            items = stream(config, out, control, force=force)
            while True:
                try:
                    kept += hasattr(next(items), "step")
                except StopIteration as end:
                    outcome = end.value
                    break
    except KeyboardInterrupt:  # a second signal: recorded stopped by the run loop
        bar.close()
        received = signals.received or signal.SIGINT
        print(f"gsh-lab: stopped by {signal.Signals(received).name}; {kept} snapshots kept "
              f"in {out}", file=sys.stderr)
        return 128 + received
    finally:
        bar.close()
    kept_in = f"{outcome.snapshots} snapshots kept in {out}"
    if outcome.write_error is not None:
        print(f"gsh-lab: error: {outcome.error}; recording stopped after {kept_in}",
              file=sys.stderr)
        return 1
    if outcome.status == FAILED:
        raise outcome.exception
    if outcome.status == DIVERGED:
        print(f"gsh-lab: error: {outcome.error}; {kept_in}", file=sys.stderr)
        return 1
    if signals.received is not None:
        name = signal.Signals(signals.received).name
        print(f"gsh-lab: stopped by {name}; {kept_in}", file=sys.stderr)
        return outcome.exit_code(signals.received)
    last, run = outcome.last, outcome.info
    if not quiet:
        print(
            f"{last.step} steps in {outcome.seconds:.1f} s on {run.device}: one-shot "
            f"{run.ways}-way on unseen classes {last.oneshot_trained:.3f} "
            f"(untrained {run.oneshot_untrained:.3f}, raw input {run.oneshot_raw:.3f}); "
            f"{run.bits}-bit collisions among unseen classes same "
            f"{last.unseen_same_class_collision:.3f} / different "
            f"{last.unseen_different_class_collision:.3f} (all classes "
            f"{last.same_class_collision:.3f} / {last.different_class_collision:.3f}). "
            f"Run recorded in {out}"
        )
    if last.collapsed:
        print(f"gsh-lab: warning: the network collapsed ({last.collapsed}); its figures do "
              f"not show a hash. Run recorded in {out}", file=sys.stderr)
    return outcome.exit_code()


# -- `main.py sweep` ----------------------------------------------------------------


def sweep_from_args(args: argparse.Namespace) -> tuple[Path, Sweep | None]:
    """The sweep folder and definition from `main.py sweep` arguments (None: resume)."""
    given = [f"--{n.replace('_', '-')}" for n in ("preset", "config", "steps", "seed", "seeds",
                                                   "sweep")
             if getattr(args, n, None) is not None] + (["--vary"] if args.vary else []) + (
        ["--set"] if args.set else [])
    if args.resume is not None:
        if given:
            raise SweepError(f"--resume runs the sweep as stored; {given[0]} cannot change it")
        if args.out is not None:
            raise SweepError("give either --resume FOLDER or --out FOLDER, not both")
        if not os.path.lexists(Path(args.resume) / SWEEP_TOML):
            raise SweepError(f"--resume {args.resume}: not a sweep folder (no {SWEEP_TOML})")
        return args.resume, None
    if args.out is None:
        raise SweepError("--out FOLDER is required (or --resume FOLDER)")
    d, where = {}, None
    if args.sweep is not None:
        where = find_sweep_file(args.sweep)
        d = read_sweep_file(where)
    sets = [parse_set(s) for s in args.set]
    if args.steps is not None:
        sets.append(("train.steps", args.steps))
    if args.seed is not None:
        sets.append(("seed", args.seed))
    sweep = sweep_from_dict(d, where, preset=args.preset, config=args.config, sets=sets,
                            vary=args.vary, seeds=args.seeds, max_runs=args.max_runs)
    if args.sweep is None:
        sweep.name = Path(args.out).name[:80] or "sweep"
    return args.out, sweep


def sweep_main(args: argparse.Namespace) -> int:
    """`main.py sweep`: exit 0 when every run finished, 1 when one failed, diverged or did
    not finish, 2 for bad input (one line), 128 + signal when stopped by SIGINT/SIGTERM."""
    def fail(msg: str) -> int:
        print(f"gsh-lab: error: {msg}", file=sys.stderr)
        return 2

    try:
        folder, sweep = sweep_from_args(args)
        if args.scheduler:  # before anything is created: a cluster that answers
            DaskExecutor(scheduler=args.scheduler).check_scheduler()
        if sweep is None and args.max_runs is not None:
            sweep = load_sweep(folder, max_runs=args.max_runs)
        sweep, points = prepare(folder, sweep)
    except (SweepError, ConfigError) as exc:
        return fail(str(exc))
    todo = sum(1 for p in points if summary_row(Path(folder), p)["status"] not in DONE)
    try:
        executor = choose_executor(args.workers, args.scheduler, todo, training_threads(),
                                   dashboard=getattr(args, "dashboard", False))
    except SweepError as exc:
        return fail(str(exc))
    if not args.quiet:  # what each axis changes among the random roles
        print(f"gsh-lab: sweep of {len(points)} runs ({todo} to run); "
              + "; ".join(sweep.roles()), file=sys.stderr)
    bar = tqdm(total=1, unit="step", disable=args.quiet, file=sys.stderr,
               bar_format="{desc} {percentage:3.0f}%|{bar}| {elapsed}<{remaining}")
    stop = threading.Event()
    local_dask = isinstance(executor, DaskExecutor) and not args.scheduler
    waiting = {"first": True}  # the bar's clock starts with the first run, not with Dask
    if local_dask and todo:
        bar.set_description_str("starting the Dask workers…")
        bar.write("gsh-lab: starting a local Dask cluster (worker processes load torch: "
                  "about 10-30 s)…", file=sys.stderr)

    def on_event(ev: SweepEvent) -> None:
        if ev.kind == "start":
            bar.reset(total=max(ev.steps_total, 1))
        elif waiting["first"] and ev.kind in ("run_start", "snapshot"):
            waiting["first"] = False
            bar.reset(total=max(ev.steps_total, bar.total or 1))
        bar.n = ev.steps_done
        bar.set_description_str(f"runs {ev.runs_done}/{ev.runs_total}", refresh=False)
        bar.refresh()
        if ev.kind == "run_done" and ev.status not in ("finished", "stopped", "skipped"):
            bar.write(f"run {ev.run_id}: {ev.status}" + (f": {ev.error}" if ev.error else ""),
                      file=sys.stderr)

    def stopping(_signum: int) -> None:
        stop.set()
        bar.write("gsh-lab: stopping: each run ends at its next snapshot (again to abort at "
                  "once)", file=sys.stderr)

    signals = StopOnSignal(stopping)
    try:
        with signals:
            result = run_sweep(folder, sweep, executor, on_event, stop)
    except SweepError as exc:
        bar.close()
        return fail(str(exc))
    except KeyboardInterrupt:
        bar.close()
        with contextlib.suppress(Exception):
            read_summary(folder)
        print(f"gsh-lab: sweep aborted; unfinished runs re-run with: main.py sweep --resume "
              f"{folder}", file=sys.stderr)
        return 130
    bar.close()
    print(result.line())
    if signals.received is not None:
        print(f"gsh-lab: sweep stopped; resume with: main.py sweep --resume {folder}",
              file=sys.stderr)
        return 128 + signals.received
    return 0 if set(result.counts) <= {"finished"} else 1
