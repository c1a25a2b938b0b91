"""Headless commands behind main.py: `run` (train and write results) and `presets`."""

from __future__ import annotations

import csv
import json
import sys
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from .config import ExperimentConfig, load_preset, preset_names
from .experiment import Experiment
from .snapshot import Snapshot
from .training import DivergenceError


def list_presets() -> int:
    for name in preset_names():
        cfg = load_preset(name)
        print(f"{name:<14} {cfg.description}")
    return 0


def metrics_dict(snap: Snapshot, seconds: float) -> dict:
    """The metrics.json summary of a run's last snapshot."""
    return {
        "steps": snap.step,
        "seconds": round(seconds, 3),
        "device": snap.device,
        "train_accuracy": snap.train_accuracy,
        "loss": snap.loss,
        "oneshot": {
            "trained": snap.oneshot_trained,
            "untrained": snap.oneshot_untrained,
            "raw_input": snap.oneshot_raw,
            "ways": snap.ways,
            "episodes": snap.episodes,
        },
        "collision": {
            "bits": snap.bits,
            "tables": snap.tables,
            "same_class": snap.same_class_collision,
            "different_class": snap.different_class_collision,
            "raw_same_class": snap.raw_same_class_collision,
            "raw_different_class": snap.raw_different_class_collision,
        },
        "invariance": {"trained": snap.invariance_trained, "raw_input": snap.invariance_raw},
    }


def write_history(path: Path, history: list[Snapshot]) -> None:
    with path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(Snapshot.SCALARS))
        w.writeheader()
        for s in history:
            w.writerow(s.scalars())


def write_embeddings(path: Path, snap: Snapshot) -> None:
    p = snap.probe
    np.savez_compressed(
        path,
        embedding=snap.embedding,
        raw=p.x,
        label=p.label,
        seen=p.seen,
        theta=p.theta,
        classes=p.classes,
        class_seen=p.class_seen,
        gamma=p.gamma,
        step=np.int64(snap.step),
    )


def write_results(out: Path, exp: Experiment, seconds: float) -> None:
    """config.toml, history.csv, embeddings.npz and metrics.json for the run so far."""
    out.mkdir(parents=True, exist_ok=True)
    exp.config.save(out / "config.toml")
    write_history(out / "history.csv", exp.history)
    if exp.history:
        last = exp.history[-1]
        write_embeddings(out / "embeddings.npz", last)
        (out / "metrics.json").write_text(json.dumps(metrics_dict(last, seconds), indent=2))


def run_headless(config: ExperimentConfig, out: Path, quiet: bool = False) -> int:
    out.mkdir(parents=True, exist_ok=True)  # fail before training, not after it
    exp = Experiment(config)
    start = time.perf_counter()
    bar = tqdm(total=config.train.steps, unit="step", disable=quiet, file=sys.stderr)
    try:
        for snap in exp.run():
            bar.update(snap.step - bar.n)
            bar.set_postfix(
                loss=f"{snap.loss:.3f}", oneshot=f"{snap.oneshot_trained:.2f}", refresh=False
            )
    except DivergenceError as exc:
        bar.close()
        write_results(out, exp, time.perf_counter() - start)
        print(f"gsh-lab: error: {exc}; {len(exp.history)} snapshots kept in {out}",
              file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        bar.close()
        write_results(out, exp, time.perf_counter() - start)
        print(f"gsh-lab: interrupted; {len(exp.history)} snapshots kept in {out}",
              file=sys.stderr)
        return 130
    bar.close()
    seconds = time.perf_counter() - start
    write_results(out, exp, seconds)
    last = exp.history[-1]
    if not quiet:
        print(
            f"{last.step} steps in {seconds:.1f} s on {last.device}: one-shot "
            f"{last.ways}-way on unseen classes {last.oneshot_trained:.3f} "
            f"(untrained {last.oneshot_untrained:.3f}, raw input {last.oneshot_raw:.3f}); "
            f"{last.bits}-bit collisions same {last.same_class_collision:.3f} / "
            f"different {last.different_class_collision:.3f}. Results in {out}"
        )
    return 0
