"""Headless commands behind main.py: `run` (train while writing the run record) and `presets`."""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path

from tqdm import tqdm

from .config import ExperimentConfig, load_preset, preset_names
from .record import check_output
from .runs import DIVERGED, FAILED, RunControl, stream


def list_presets() -> int:
    for name in preset_names():
        cfg = load_preset(name)
        print(f"{name:<14} {cfg.description}")
    return 0


class _Signals:
    """SIGINT and SIGTERM while training: the first asks the run to stop after the current
    step (a final snapshot, status "stopped"); a second one interrupts at once."""

    def __init__(self) -> None:
        self.received: int | None = None
        self.exp = None  # the Experiment to stop
        self._old: dict[int, object] = {}

    def __enter__(self) -> _Signals:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, _frame) -> None:
        if self.received is not None:
            raise KeyboardInterrupt
        self.received = signum
        if self.exp is not None:
            self.exp.request_stop()

    def __exit__(self, *exc) -> None:
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
    signals = _Signals()
    bar = tqdm(total=config.train.steps, unit="step", disable=quiet, file=sys.stderr)

    def on_snapshot(snap, _info) -> None:
        if signals.received is not None:
            signals.exp.request_stop()
        bar.update(snap.step - bar.n)
        bar.set_postfix(loss=f"{snap.loss:.3f}", oneshot=f"{snap.oneshot_trained:.2f}",
                        refresh=False)

    control = RunControl(on_snapshot=on_snapshot,
                         on_experiment=lambda exp: setattr(signals, "exp", exp))
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
    kept = f"{outcome.snapshots} snapshots kept in {out}"
    if outcome.write_error is not None:
        print(f"gsh-lab: error: {outcome.error}; recording stopped after {kept}",
              file=sys.stderr)
        return 1
    if outcome.status == FAILED:
        raise outcome.exception
    if outcome.status == DIVERGED:
        print(f"gsh-lab: error: {outcome.error}; {kept}", file=sys.stderr)
        return 1
    if signals.received is not None:
        name = signal.Signals(signals.received).name
        print(f"gsh-lab: stopped by {name}; {kept}", file=sys.stderr)
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
