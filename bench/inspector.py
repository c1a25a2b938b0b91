"""Highlight latency of a selection on 5,000 probe points: the time from a click on a point
(Selection.select_point) until every panel has marked it and its bucket-mates and the
window has repainted. Offscreen, a hand-made run of 5,000 points (100 classes x 50) with
a 64-dim embedding; prints one JSON object {"points", "median_ms", "max_ms", "rounds"};
target: median <= 50 ms.

    python bench/inspector.py [--rounds 30]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import engine  # noqa: E402,F401  (thread settings before torch, BLAS, numba load)

# isort: split
import numpy as np  # noqa: E402
from _app import bench_window  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

    from engine.config import default_config
    from engine.projection import pca_2d
    from engine.snapshot import ProbeSet, RunInfo, Snapshot

    rng = np.random.default_rng(0)
    classes = np.arange(100)
    label = np.repeat(classes, 50)
    n = len(label)
    centres = rng.normal(size=(100, 64)) * 3
    emb = (centres[label] + rng.normal(size=(n, 64))).astype(np.float32)
    probe = ProbeSet(x=rng.normal(size=(n, 64)).astype(np.float32), label=label,
                     seen=label < 80, theta=rng.normal(size=(n, 4)).astype(np.float32),
                     classes=classes, class_seen=classes < 80,
                     gamma=rng.normal(size=(100, 8)).astype(np.float32))
    i, j = np.triu_indices(100, 1)
    run = RunInfo(probe=probe, total_steps=100, device="cpu", ways=20, episodes=10, bits=8,
                  tables=4, pair_angle=rng.uniform(0, 3, len(i)).astype(np.float32),
                  oneshot_untrained=0.1, oneshot_raw=0.1, raw_same_class_collision=0.01,
                  raw_different_class_collision=0.01, invariance_raw=0.9)
    snap = Snapshot(step=100, seconds=1.0, steps_per_s=1.0, loss=1.0, train_accuracy=0.5,
                    oneshot_trained=0.5, same_class_collision=0.3,
                    different_class_collision=0.01,
                    collision_matrix=rng.uniform(size=(100, 100)).astype(np.float32),
                    pair_collision=rng.uniform(size=len(i)).astype(np.float32),
                    invariance_trained=0.5, embedding=emb)
    with bench_window(default_config()) as (app, window):
        window.session.config = default_config()
        window.session.run_info = run
        window.store.add(snap)
        window.refresh()
        window._on_frame("embedding", 100, pca_2d(emb), "pca")
        window._on_frame("raw", None, pca_2d(probe.x), "pca")
        app.processEvents()
        times = []
        for k in range(args.rounds):
            row = int(rng.integers(n))
            t0 = time.perf_counter()
            window.selection.select_point(row)
            app.processEvents()  # paint every panel's marks
            times.append((time.perf_counter() - t0) * 1000)
            if k == 0:
                times.pop()  # the first selection also computes the bucket codes once
        print(json.dumps({"points": n, "median_ms": round(statistics.median(times), 1),
                          "max_ms": round(max(times), 1), "rounds": len(times)}))
        return 0


if __name__ == "__main__":
    sys.exit(main())
