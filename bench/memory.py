"""Memory of a long headless run: does RSS stay flat while the run is recorded?

Trains the default preset for 20,000 steps (a snapshot every 100), recording it exactly
as `main.py run` does (Experiment + RunWriter), and samples this process's resident set
size. Prints one JSON object: rss_mb at the quarter mark and at the end, the growth
between them (target <= 80 MB), the peak, and RSS every tenth of the run.
(The app's RSS after 1,000 snapshots is measured by the app's own benchmark.)
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import engine  # noqa: E402,F401  (thread settings before torch, BLAS, numba load)

# isort: split
import torch  # noqa: E402

from engine.config import load_preset  # noqa: E402
from engine.experiment import Experiment  # noqa: E402
from engine.record_writer import RunWriter  # noqa: E402


def rss_mb() -> float:
    """Current resident set size (Linux /proc), else the peak from getrusage."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024 if sys.platform == "darwin" else 1024)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="default")
    ap.add_argument("--steps", type=int, default=20_000)
    ap.add_argument("--snapshot-every", type=int, default=100)
    ap.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = load_preset(args.preset).replace(
        **{"train.steps": args.steps, "train.snapshot_every": args.snapshot_every}
    )
    quarter = args.steps // 4
    marks = {round(args.steps * k / 10 / args.snapshot_every) * args.snapshot_every
             for k in range(1, 11)}
    samples: dict[int, float] = {}
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="gsh-bench-memory-") as tmp:
        exp = Experiment(cfg)
        with RunWriter(Path(tmp) / "run", cfg, device=str(exp.device)) as writer:
            for snap in exp.run():
                writer.append(snap, exp.info)
                if snap.step in marks or snap.step == quarter or snap.done:
                    samples[snap.step] = round(rss_mb(), 1)
        snapshots = writer.count
        record_mb = sum(f.stat().st_size for f in Path(tmp).rglob("*") if f.is_file()) / 2**20
    seconds = time.perf_counter() - start
    gc.collect()
    end = samples[max(samples)]
    print(json.dumps({
        "rss_quarter_mb": samples[quarter],
        "rss_end_mb": end,
        "growth_quarter_to_end_mb": round(end - samples[quarter], 1),
        "rss_peak_mb": max(samples.values()),
        "rss_by_step_mb": {str(k): v for k, v in sorted(samples.items())},
        "snapshots": snapshots,
        "history_rows_in_memory": len(exp.history),
        "record_mb": round(record_mb, 1),
        "seconds": round(seconds, 1),
        "torch_threads": torch.get_num_threads(),
        "preset": args.preset,
        "steps": args.steps,
        "snapshot_every": args.snapshot_every,
    }))


if __name__ == "__main__":
    main()
