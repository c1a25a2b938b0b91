"""Calibrates engine/resources.py: estimated vs measured memory and time of first snapshots.

Each config runs in a fresh process: build the Experiment, then train up to the second
snapshot; the peak RSS above the process's baseline (torch imported) is the measured
memory. Prints one JSON line: per config, estimate and measurement.

    .venv/bin/python bench/resources.py            # the presets and a few heavier configs
    .venv/bin/python bench/resources.py quick      # only the named cases

Each case's result also goes to stderr as soon as it is measured.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

CASES = {
    "default": ("default", {}),
    "quick": ("quick", {}),
    "image_pose": ("image_pose", {}),
    "quick_episodes_20k": ("quick", {"probe.episodes": 20000}),
    "quick_big_probe": ("quick", {"data.unseen_classes": 50, "probe.per_class": 300,
                                  "probe.ways": 50, "probe.episodes": 200}),
    "quick_wide_net": ("quick", {"model.width": 2048, "model.depth": 4,
                                 "train.batch_size": 4096}),
}


def _rss_peak() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB


def _measure(preset: str, changes: dict, out) -> None:
    import torch

    from engine import resources
    from engine.config import load_preset
    from engine.experiment import Experiment

    torch.set_num_threads(1)
    os.environ[resources.ENV_LIMIT] = "1000T"
    cfg = load_preset(preset).replace(**{**changes, "projection.method": "pca",
                                           "model.device": "cpu"})
    est = resources.estimate(cfg)
    base = _rss_peak()
    t0 = time.perf_counter()
    exp = Experiment(cfg)
    first = second = None
    for _snap in exp.run():
        if first is None:
            first = time.perf_counter() - t0
            t1 = time.perf_counter()
        else:
            second = time.perf_counter() - t1
            break
    out.send({
        "estimate_mb": round(est.total_bytes / 2**20, 1),
        "measured_mb": round((_rss_peak() - base) / 2**20, 1),
        "estimate_first_s": round(est.first_snapshot_s, 2),
        "measured_first_s": round(first, 2),
        "estimate_interval_s": round(est.interval_s, 2),
        "measured_interval_s": round(second, 2) if second is not None else None,
        "largest": {p.name: round(p.bytes / 2**20, 1) for p in est.largest(3)},
    })


def main(names: list[str]) -> None:
    ctx = mp.get_context("spawn")
    results = {}
    for name in names or list(CASES):
        preset, changes = CASES[name]
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=_measure, args=(preset, changes, child))
        proc.start()
        results[name] = parent.recv()
        proc.join()
        print(name, json.dumps(results[name]), file=sys.stderr, flush=True)
    print(json.dumps({"bench": "resources", "cases": results}))


if __name__ == "__main__":
    main(sys.argv[1:])
