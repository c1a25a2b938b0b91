"""A run beside another busy program: the default preset headless, quiet and with one
competing busy-loop process (started and stopped here), with the thread settings a user
gets (engine.threads). Quiet and loaded runs alternate for --repeats rounds.

With --app the same run trains in the app's window (offscreen, the UMAP projection
worker on, as a user's run), timed from Start to the final snapshot on the GUI thread.

Prints one JSON object: quiet_s and loaded_s (median wall time of Experiment.run()),
ratio (quiet_s / loaded_s; 0.5 is a fair share of 2 cores), worst_interval_s (the longest
gap between two snapshots in any loaded run), load averages and the thread settings.
Targets: ratio >= 0.45, worst_interval_s <= 1.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import engine  # noqa: E402,F401  (fixes the thread settings before torch loads)
from engine import threads  # noqa: E402
from engine.config import load_preset  # noqa: E402
from engine.experiment import Experiment  # noqa: E402

BUSY = "while True: pass"


def timed_run(cfg) -> tuple[float, float]:
    """Wall time of one run and its longest gap between snapshots."""
    t0 = last = time.perf_counter()
    worst = 0.0
    for _ in Experiment(cfg).run():
        now = time.perf_counter()
        worst = max(worst, now - last)
        last = now
    return time.perf_counter() - t0, worst


def app_timer(window):
    """timed_run for a run in the app's window: Start to the final snapshot's arrival."""
    from PySide6 import QtWidgets

    from app.cli import wait_until
    from app.runner import FAILED, FINISHED

    qapp = QtWidgets.QApplication.instance()
    arrivals: list[float] = []
    window.runner.snapshot_arrived.connect(lambda *_: arrivals.append(time.perf_counter()))

    def run(cfg) -> tuple[float, float]:
        window.params.set_config(cfg)
        arrivals.clear()
        t0 = time.perf_counter()
        window.start()
        wait_until(qapp, lambda: window.runner.state in (FINISHED, FAILED), 3600)
        if window.runner.state == FAILED:
            raise RuntimeError(f"training failed: {window.last_error}")
        gaps = [b - a for a, b in zip([t0, *arrivals], arrivals, strict=False)]
        return arrivals[-1] - t0, max(gaps)

    return run


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="default")
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--app", action="store_true",
                    help="train in the app's window, projection worker on")
    args = ap.parse_args()
    cfg = load_preset(args.preset).replace(**{"train.steps": args.steps})
    if args.app:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from _app import bench_window

        from app.cli import wait_until

        with bench_window(cfg) as (qapp, window):
            if cfg.projection.method == "umap":  # a user starts once the app is up
                wait_until(qapp, lambda: window.projector.umap_ready, 180)
            measure(args, cfg, app_timer(window))
        return
    measure(args, cfg, timed_run)


def measure(args, cfg, timed_run) -> None:
    timed_run(cfg.replace(**{"train.steps": 100}))  # warm up kernels and allocator
    load_before = os.getloadavg()
    quiet, loaded, worst_quiet, worst_loaded = [], [], 0.0, 0.0
    for _ in range(args.repeats):
        q, wq = timed_run(cfg)
        quiet.append(q)
        worst_quiet = max(worst_quiet, wq)
        busy = subprocess.Popen([sys.executable, "-c", BUSY])
        try:
            time.sleep(0.5)  # let it take its core
            s, w = timed_run(cfg)
        finally:
            busy.kill()
            busy.wait()
        loaded.append(s)
        worst_loaded = max(worst_loaded, w)
    q, s = statistics.median(quiet), statistics.median(loaded)
    print(json.dumps({
        "quiet_s": round(q, 2),
        "loaded_s": round(s, 2),
        "ratio": round(q / s, 3),
        "worst_interval_s": round(worst_loaded, 2),
        "worst_interval_quiet_s": round(worst_quiet, 2),
        "quiet_runs_s": [round(x, 2) for x in quiet],
        "loaded_runs_s": [round(x, 2) for x in loaded],
        "preset": args.preset,
        "steps": args.steps,
        "app": args.app,
        "loadavg_before": [round(x, 2) for x in load_before],
        "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        "threads": threads.settings(),
    }))


if __name__ == "__main__":
    main()
