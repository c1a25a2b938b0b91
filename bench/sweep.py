"""Sweep throughput: the same runs (default preset, --steps steps, seeds 0..--runs-1) one
after another in this process, each with all the cores (engine.threads' training count),
against sweeps on LocalClusters of N workers (one torch thread each) for each N in
--workers, wall time including the cluster's start.

All legs start from this process with torch and the engine imported; each pays the
optimiser's one-off import (torch._dynamo) once: the serial leg before it is timed, the
workers while warming up. Prints one JSON line: serial_s and serial_runs_per_min, and per
N: sweep_s, runs_per_min (cluster start included), speedup (serial_s / sweep_s),
cluster_start_s (workers spawned and warmed), cluster_close_s, per_run_overhead_s (what
the executor adds per run once the workers are up: N x wall time between start and
close, less the time the runs spent inside engine.runs.train, over the number of runs:
scheduling, (de)serialisation, idle workers, progress and stop messages) and the load
average around each leg; the thread settings. The machine is shared: read the figures
with the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine import runs, threads  # noqa: E402
from engine.config import load_preset  # noqa: E402
from engine.executors import DaskExecutor  # noqa: E402
from engine.sweep import Sweep, run_sweep  # noqa: E402


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def cluster_leg(folder: Path, sweep, n: int, n_runs: int, serial_s: float) -> dict:
    ex = DaskExecutor(workers=n)
    done = []
    before = load()
    t0 = time.perf_counter()
    result = run_sweep(folder, sweep, ex,
                         on_event=lambda e: e.kind == "run_done" and done.append(e))
    sweep_s = time.perf_counter() - t0
    assert result.counts == {"finished": n_runs}, result.counts
    inside = [e.outcome["seconds"] - e.outcome["callback_s"] for e in done]
    after_start = sweep_s - ex.started_s - ex.close_s
    return {
        "workers": ex.n_workers, "sweep_s": round(sweep_s, 2),
        "runs_per_min": round(60 * n_runs / sweep_s, 2),
        "runs_per_min_after_start": round(60 * n_runs / (sweep_s - ex.started_s), 2),
        "speedup": round(serial_s / sweep_s, 3),
        "cluster_start_s": round(ex.started_s, 2),
        "cluster_close_s": round(ex.close_s, 2),
        "per_run_overhead_s": round((ex.n_workers * after_start - sum(inside)) / n_runs, 3),
        "run_s": round(statistics.mean(inside), 2),
        "load_before": before, "load_after": load(),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=8)
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--workers", default="1,2,4", help="cluster sizes, comma-separated")
    args = ap.parse_args()
    import torch

    base = load_preset("default").replace(**{"train.steps": args.steps})
    sweep = Sweep(base, [], seeds=args.runs, name="bench")
    points = sweep.points()
    serial_threads = threads.training_threads()
    out: dict = {"runs": args.runs, "steps": args.steps}
    with tempfile.TemporaryDirectory(prefix="gsh-bench-sweep-") as tmp:
        runs.train(base.replace(**{"train.steps": 50}), None, threads=serial_threads)
        before = load()
        t0 = time.perf_counter()
        serial_runs = [runs.train(p.config, Path(tmp) / "serial" / p.id,
                                  threads=serial_threads).seconds for p in points]
        serial_s = time.perf_counter() - t0
        out.update(serial_s=round(serial_s, 2),
                   serial_runs_per_min=round(60 * args.runs / serial_s, 2),
                   serial_run_s=round(statistics.mean(serial_runs), 2),
                   serial_torch_threads=serial_threads,
                   serial_load=[before, load()])
        out["clusters"] = [
            cluster_leg(Path(tmp) / f"sweep{n}", sweep, int(n), args.runs, serial_s)
            for n in args.workers.split(",")]
    out["threads"] = threads.settings() | {"torch_threads": str(torch.get_num_threads())}
    out["cores"] = threads.available_cores()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
