"""The app's memory over a long run: RSS of the main process after 250 and 1,000 snapshots.

Offscreen, default preset, a snapshot every 10 steps for 10,000 steps (1,001 snapshots),
recorded into a throw-away runs folder as the app records every run; the projection
worker runs in its own process and is not counted. Prints one JSON object:
{"snapshots", "rss_mb_start", "rss_mb_250", "rss_mb_1000", "growth_mb_250_to_1000",
"store_snapshots_in_memory"}; target: rss_mb_1000 <= 1500.

    python bench/app_memory.py [--steps 10000] [--every 10]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from _app import bench_window  # noqa: E402


def rss_mb() -> float:
    """Resident set size of this process in MB (Linux /proc)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10_000)
    parser.add_argument("--every", type=int, default=10)
    args = parser.parse_args()
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

    from app.qtapp import wait_until
    from app.runner import FAILED, FINISHED
    from engine.config import default_config

    cfg = default_config().replace(**{"train.steps": args.steps,
                                        "train.snapshot_every": args.every})
    marks: dict[int, float] = {}
    with bench_window(cfg) as (app, window):
        start = rss_mb()

        def on_snapshot(_snap) -> None:
            n = window.runner.snapshots_received
            if n in (250, 1000):
                marks[n] = rss_mb()

        window.runner.snapshot_arrived.connect(on_snapshot)
        window.start()
        wait_until(app, lambda: window.runner.state in (FINISHED, FAILED), 3600)
        wait_until(app, lambda: False, 1.0)  # last redraws
        if window.runner.state == FAILED:
            print(f"training failed: {window.last_error}", file=sys.stderr)
            return 1
        result = {
            "snapshots": window.runner.snapshots_received,
            "rss_mb_start": round(start, 1),
            "rss_mb_250": round(marks.get(250, float("nan")), 1),
            "rss_mb_1000": round(marks.get(1000, float("nan")), 1),
            "growth_mb_250_to_1000": round(marks.get(1000, 0) - marks.get(250, 0), 1),
            "store_snapshots_in_memory": len(window.store._cache),
        }
        print(json.dumps(result))
        return 0


if __name__ == "__main__":
    sys.exit(main())
