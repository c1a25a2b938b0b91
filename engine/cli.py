"""Headless commands behind main.py: `run` (train while writing the run record) and `presets`."""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
import time
from pathlib import Path

from tqdm import tqdm

from .config import ExperimentConfig, load_preset, preset_names
from .record import RunWriter, check_output


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
    """Train `config`, recording the run into `out` as it goes (see engine.record).

    Exit status: 0 finished; 1 diverged, collapsed or a write failed; 2 `out` is not
    empty (without force); 128 + signal number when stopped by SIGINT or SIGTERM.
    """
    from .experiment import Experiment  # torch: imported only to train (not for `presets`)
    from .model import pick_device
    from .training import DivergenceError

    device = str(pick_device(config.model.device))
    config = config.replace(**{"model.device": device})
    check_output(out, force)  # a non-empty folder is refused before anything is built
    exp = Experiment(config)
    # Fails here, before any training, when `out` cannot be written.
    writer = RunWriter(out, config, device=device, force=force)
    signals = _Signals()
    signals.exp = exp
    start = time.perf_counter()
    bar = tqdm(total=config.train.steps, unit="step", disable=quiet, file=sys.stderr)
    status, error = "finished", None
    try:
        with signals:
            for snap in exp.run():
                writer.append(snap, exp.info)
                if signals.received is not None:
                    exp.request_stop()
                bar.update(snap.step - bar.n)
                bar.set_postfix(
                    loss=f"{snap.loss:.3f}", oneshot=f"{snap.oneshot_trained:.2f}",
                    refresh=False,
                )
            if signals.received is not None:
                status = "stopped"
    except DivergenceError as exc:
        status, error = "diverged", str(exc)
    except KeyboardInterrupt:
        status = "stopped"
        signals.received = signals.received or signal.SIGINT
    except OSError as exc:  # the record itself cannot be written (full disk, ...)
        bar.close()
        with contextlib.suppress(Exception):
            writer.finish("failed", error=f"{exc.strerror or exc} ({exc.filename})")
        where = f" ({exc.filename})" if exc.filename else ""
        print(f"gsh-lab: error: {exc.strerror or exc}{where}; recording stopped after "
              f"{writer.count} snapshots in {out}", file=sys.stderr)
        return 1
    except BaseException as exc:
        bar.close()
        with contextlib.suppress(Exception):
            writer.finish("failed", error=f"{type(exc).__name__}: {exc}")
        raise
    bar.close()
    seconds = time.perf_counter() - start
    writer.finish(status, error=error, seconds=seconds)
    kept = f"{writer.count} snapshots kept in {out}"
    if status == "diverged":
        print(f"gsh-lab: error: {error}; {kept}", file=sys.stderr)
        return 1
    if status == "stopped":
        name = signal.Signals(signals.received).name
        print(f"gsh-lab: stopped by {name}; {kept}", file=sys.stderr)
        return 128 + signals.received
    last, run = writer.last, writer.run_info
    collapsed = last.collapsed
    if not quiet:
        print(
            f"{last.step} steps in {seconds:.1f} s on {run.device}: one-shot "
            f"{run.ways}-way on unseen classes {last.oneshot_trained:.3f} "
            f"(untrained {run.oneshot_untrained:.3f}, raw input {run.oneshot_raw:.3f}); "
            f"{run.bits}-bit collisions among unseen classes same "
            f"{last.unseen_same_class_collision:.3f} / different "
            f"{last.unseen_different_class_collision:.3f} (all classes "
            f"{last.same_class_collision:.3f} / {last.different_class_collision:.3f}). "
            f"Run recorded in {out}"
        )
    if collapsed:
        print(f"gsh-lab: warning: the network collapsed ({collapsed}); its figures do not "
              f"show a hash. Run recorded in {out}", file=sys.stderr)
        return 1
    return 0
