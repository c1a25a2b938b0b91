"""Where a snapshot's cost to training comes from: the default preset, 1,000 steps, a
snapshot every 100, measured beside training, against the same loop with each
measurement replaced by a GIL-free sleep of the measurement's median length, and against
no snapshots. Interleaved rounds, one process, the thread settings of engine.threads.

If the sleep side keeps pace with no snapshots while real measurements do not, what
costs training is the measurement's work in the training process (the GIL and a shared
core), not the hand-over. Prints one JSON line: ratio_real, ratio_gil_free_sleep, each
round's steps/s, measure_ms_median, the load average and thread settings.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import engine  # noqa: E402,F401  (thread settings before torch, BLAS, numba load)

# isort: split
from engine import threads, training  # noqa: E402
from engine.config import load_preset  # noqa: E402
from engine.experiment import Experiment  # noqa: E402

REAL = training.Measurer.measure


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    cost: list[float] = []
    first: dict = {}

    def timed(self, *a, **k):
        t0 = time.perf_counter()
        figures = REAL(self, *a, **k)
        cost.append(time.perf_counter() - t0)
        return figures

    def sleep(self, *a, **k):
        if not first:  # the untrained measurement fills in the run's baselines
            first.update(REAL(self, *a, **k))
        time.sleep(statistics.median(cost))  # releases the GIL
        return dict(first)

    def rate(cfg) -> float:
        s = [(x.step, x.seconds) for x in Experiment(cfg).run(measure_beside=True)]
        return (s[-1][0] - s[0][0]) / (s[-1][1] - s[0][1])

    cfg = load_preset("default").replace(**{"train.steps": args.steps,
                                            "train.snapshot_every": 100})
    none = cfg.replace(**{"train.snapshot_every": args.steps})
    rounds: dict[str, list[float]] = {"real": [], "sleep": [], "none": []}
    load_before = os.getloadavg()
    rate(none)  # warm-up
    try:
        for _ in range(args.repeats):
            training.Measurer.measure = timed
            rounds["real"].append(rate(cfg))
            training.Measurer.measure = sleep
            rounds["sleep"].append(rate(cfg))
            training.Measurer.measure = REAL
            rounds["none"].append(rate(none))
    finally:
        training.Measurer.measure = REAL
    med = {k: statistics.median(v) for k, v in rounds.items()}
    print(json.dumps({
        "ratio_real": round(med["real"] / med["none"], 3),
        "ratio_gil_free_sleep": round(med["sleep"] / med["none"], 3),
        "rounds": {k: [round(x, 1) for x in v] for k, v in rounds.items()},
        "measure_ms_median": round(1000 * statistics.median(cost), 1),
        "steps": args.steps, "loadavg_before": [round(x, 2) for x in load_before],
        "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        "threads": threads.settings(),
    }))


if __name__ == "__main__":
    main()
