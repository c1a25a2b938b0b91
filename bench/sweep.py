"""Sweep throughput: the same 8 runs (default preset, 600 steps, seeds 0-7) one after
another in this process with torch's default threads, against a sweep on a LocalCluster
of 2 workers (one torch thread each), wall time including the cluster's start.

Both legs start from this process with torch and the engine imported; each pays the
optimiser's one-off import (torch._dynamo) once: the serial leg in its first run, the
workers while warming up. Prints one JSON line: serial_s, sweep_s, speedup (serial_s /
sweep_s), cluster_start_s (workers spawned and warmed: torch and the engine imported),
cluster_close_s, per_run_overhead_s (what the executor adds per run once the workers are
up: workers x wall time between the start and the close,
less the time the runs spent inside engine.runs.train, over the number of runs: scheduling,
(de)serialisation, idle workers, per-snapshot progress and stop messages; of which
progress_s_per_run and task_setup_s_per_run are measured inside the task), run_s means
and the load average before and after (the machine is shared: read the figures with it).
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

from engine import runs  # noqa: E402
from engine import sweep as S  # noqa: E402
from engine.config import load_preset  # noqa: E402
from engine.executors import DaskExecutor  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=8)
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    import torch

    base = load_preset("default").replace(**{"train.steps": args.steps})
    sweep = S.Sweep(base, [], seeds=args.runs, name="bench")
    points = sweep.points()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="gsh-bench-sweep-") as tmp:
        t0 = time.perf_counter()
        serial_runs = [runs.train(p.config, Path(tmp) / "serial" / p.id).seconds
                       for p in points]
        serial_s = time.perf_counter() - t0

        ex = DaskExecutor(workers=args.workers)
        done = []
        t0 = time.perf_counter()
        result = S.run_sweep(Path(tmp) / "sweep", sweep, ex,
                             on_event=lambda e: e.kind == "run_done" and done.append(e))
        sweep_s = time.perf_counter() - t0
        assert result.counts == {"finished": args.runs}, result.counts
        inside = [e.outcome["seconds"] - e.outcome["callback_s"] for e in done]
        after_start = sweep_s - ex.started_s - ex.close_s
        overhead = (ex.n_workers * after_start - sum(inside)) / args.runs
    print(json.dumps({
        "runs": args.runs, "steps": args.steps, "workers": ex.n_workers,
        "serial_s": round(serial_s, 2), "sweep_s": round(sweep_s, 2),
        "speedup": round(serial_s / sweep_s, 3),
        "cluster_start_s": round(ex.started_s, 2),
        "cluster_close_s": round(ex.close_s, 2),
        "per_run_overhead_s": round(overhead, 3),
        "progress_s_per_run": round(statistics.mean(e.outcome["callback_s"] for e in done), 3),
        "task_setup_s_per_run": round(statistics.mean(
            e.outcome["task_s"] - e.outcome["seconds"] for e in done), 3),
        "serial_run_s": round(statistics.mean(serial_runs), 2),
        "sweep_run_s": round(statistics.mean(inside), 2),
        "torch_threads_serial": torch.get_num_threads(),
        "cores": os.cpu_count(),
        "load_before": [round(x, 2) for x in load_before],
        "load_after": [round(x, 2) for x in os.getloadavg()],
    }))


if __name__ == "__main__":
    main()
