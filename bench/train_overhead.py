"""What a snapshot's measurements cost training: engine steps/s with a snapshot every
train.snapshot_every steps, measured beside training (the default: in the run's
measurement process, engine.measure) and in the loop, against the same engine loop with
no snapshot between the first and the last (beside training too, so both sides start a
measurement process and measure the untrained network in it).

All three sides run Experiment.run() in this process with the same data pipeline, model,
optimiser and thread settings (engine.threads); they alternate for --repeats rounds
(order rotated each round) so drift in machine load hits each alike. A side's rate is
steps over the time from the step-0 snapshot's hand-over to the final one's
(Snapshot.seconds), so the final measurement, which training no longer waits for, is
left out of all three. Also times one snapshot's measurements (probe embedding, then
Measurer.measure) per preset in --cost-presets.

Prints one JSON object: engine_steps_per_s (beside), in_line_steps_per_s,
no_snapshot_steps_per_s, ratio (beside / no snapshots; target >= 0.95), ratio_in_line,
cpu_ratio and ratio_own_core (the same without the training thread's waits for a core:
what a machine with a core to spare for the measurement process would read), measure_ms
per preset, every round, load averages and thread settings.
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
sys.path.insert(0, str(Path(__file__).resolve().parent))

import engine  # noqa: E402,F401  (thread settings before torch, BLAS, numba load)

# isort: split
import numpy as np  # noqa: E402
import torch  # noqa: E402
from _sched import split, thread_clock  # noqa: E402

from engine import threads  # noqa: E402
from engine.config import load_preset, preset_names  # noqa: E402
from engine.experiment import Experiment  # noqa: E402
from engine.measure import Measurer  # noqa: E402
from engine.training import build_fit_rows  # noqa: E402


def steps_per_s(cfg, measure_beside: bool = True) -> tuple[float, float, float]:
    """(steps per wall second, steps per CPU second of the training thread, steps per
    second of wall time less the training thread's wait for a core)."""
    snaps = [(s.step, s.seconds, thread_clock())
             for s in Experiment(cfg).run(measure_beside=measure_beside)]
    (s0, t0, c0), (s1, t1, c1) = snaps[0], snaps[-1]
    used = split(c0, c1)
    steps = s1 - s0
    return (steps / (t1 - t0), steps / max(used["cpu_s"], 1e-9),
            steps / max(used["wall_s"] - used["core_wait_s"], 1e-9))


def measure_cost(preset: str, repeats: int = 5) -> dict:
    """Median ms of one snapshot's probe embedding and of its measurements (untrained net)."""
    cfg = load_preset(preset)
    exp = Experiment(cfg)
    fit = build_fit_rows(cfg, exp.family)
    measurer = Measurer(cfg, exp.probe, exp.model.head.in_features, None, fit)
    probe_x, fit_x = torch.from_numpy(exp.probe.x), torch.from_numpy(fit.x)
    seen = torch.from_numpy(np.flatnonzero(exp.probe.seen))
    embed, measure = [], []
    for _ in range(repeats + 1):
        t0 = time.perf_counter()
        with torch.no_grad():
            emb = exp.model.embed(probe_x)
            logits = exp.model.head(emb[seen]).numpy()
            fit_emb = exp.model.embed(fit_x).numpy()
        t1 = time.perf_counter()
        measurer.measure(emb.numpy(), logits, fit_emb, 1.0, 1.0)
        embed.append(t1 - t0)
        measure.append(time.perf_counter() - t1)
    return {"embed_ms": round(1000 * statistics.median(embed[1:]), 1),
            "measure_ms": round(1000 * statistics.median(measure[1:]), 1),
            "probe_rows": len(exp.probe)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="default")
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--cost-presets", default="all",
                    help="comma-separated presets to time a snapshot's measurements for "
                         "(all, or none)")
    args = ap.parse_args()
    cfg = load_preset(args.preset).replace(**{"train.steps": args.steps})
    none = cfg.replace(**{"train.snapshot_every": args.steps})
    steps_per_s(cfg.replace(**{"train.steps": 100}))  # warm up allocator and kernels
    load_before = os.getloadavg()
    sides = {
        "beside": lambda: steps_per_s(cfg),
        "in_line": lambda: steps_per_s(cfg, measure_beside=False),
        "none": lambda: steps_per_s(none),
    }
    rounds: dict[str, list[float]] = {k: [] for k in sides}
    cpu: dict[str, list[float]] = {k: [] for k in sides}
    own: dict[str, list[float]] = {k: [] for k in sides}
    order = list(sides)
    for _ in range(args.repeats):
        for name in order:
            wall, per_cpu, per_own = sides[name]()
            rounds[name].append(wall)
            cpu[name].append(per_cpu)
            own[name].append(per_own)
        order = order[1:] + order[:1]
    med = {k: statistics.median(v) for k, v in rounds.items()}
    med_cpu = {k: statistics.median(v) for k, v in cpu.items()}
    med_own = {k: statistics.median(v) for k, v in own.items()}
    names = {"all": preset_names(), "none": []}.get(args.cost_presets)
    costs = {p: measure_cost(p) for p in (names if names is not None
                                          else args.cost_presets.split(","))}
    print(json.dumps({
        "engine_steps_per_s": round(med["beside"], 1),
        "in_line_steps_per_s": round(med["in_line"], 1),
        "no_snapshot_steps_per_s": round(med["none"], 1),
        "ratio": round(med["beside"] / med["none"], 3),
        "ratio_in_line": round(med["in_line"] / med["none"], 3),
        # Training-thread CPU per step: what a snapshot adds to the loop itself, whatever
        # else the machine runs (waiting for a core or the GIL is not counted).
        "cpu_ratio": round(med_cpu["beside"] / med_cpu["none"], 3),
        "cpu_ratio_in_line": round(med_cpu["in_line"] / med_cpu["none"], 3),
        # Wall time less the training thread's wait for a core (bench/_sched.py): the
        # ratio were the measurement process (and everything else) on another core, as
        # on an idle machine with 2 cores; what remains is the loop's own work for a
        # snapshot (probe embedding, hand-over) and its waits for the GIL.
        "ratio_own_core": round(med_own["beside"] / med_own["none"], 3),
        "ratio_own_core_in_line": round(med_own["in_line"] / med_own["none"], 3),
        "rounds": {k: [round(x, 1) for x in v] for k, v in rounds.items()},
        "snapshot_cost": costs,
        "preset": args.preset,
        "steps": args.steps,
        "snapshot_every": cfg.train.snapshot_every,
        "repeats": args.repeats,
        **threads.conditions(load_before),
    }))


if __name__ == "__main__":
    main()
