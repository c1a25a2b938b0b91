"""A run beside another busy program: the default preset headless, quiet and with one
competing busy-loop process (started and stopped here), with the thread settings a user
gets (engine.threads). Quiet and loaded runs alternate for --repeats rounds.

With --app the same run trains in the app's window (offscreen, the UMAP projection
worker on, as a user's run), timed from Start to the final snapshot on the GUI thread.

Prints one JSON object: quiet_s and loaded_s (median wall time of Experiment.run()),
ratio (quiet_s / loaded_s; 0.5 is a fair share of 2 cores), worst_interval_s (the longest
gap between two snapshots in any loaded run), load averages and the thread settings.
Targets: ratio >= 0.45, worst_interval_s <= 1. Headless, it also says where the worst
loaded interval's time went (worst_interval_detail: the training thread's CPU, its wait
for a core, its other waits such as the GIL, and the measurement process's CPU; from
bench/_sched.py) and the same split summed over all loaded intervals (loaded_split).
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
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _sched import split, thread_clock  # noqa: E402

import engine  # noqa: E402,F401  (fixes the thread settings before torch loads)
from engine import threads  # noqa: E402
from engine.config import load_preset  # noqa: E402
from engine.experiment import Experiment  # noqa: E402

BUSY = "while True: pass"


def cpu_with_children() -> float:
    """CPU seconds of this process and its live children (the run's measurement process)."""
    import psutil

    total = time.process_time()
    for child in psutil.Process().children():
        try:
            t = child.cpu_times()
            total += t.user + t.system
        except psutil.Error:
            pass
    return total


def timed_run(cfg) -> tuple[float, float, list[dict]]:
    """Wall time of one run, its longest gap between snapshots and every gap's split
    (the training thread is this one: Experiment.run() trains between yields)."""
    t0 = time.perf_counter()
    last, last_proc = thread_clock(), cpu_with_children()
    gaps = []
    for snap in Experiment(cfg).run():
        now, proc = thread_clock(), cpu_with_children()
        gap = {"step": snap.step, **split(last, now)}
        # the CPU of the rest: the measurement process (and torch's threads, when > 1)
        gap["measure_cpu_s"] = round(proc - last_proc - gap["cpu_s"], 3)
        gaps.append(gap)
        last, last_proc = now, proc
    return time.perf_counter() - t0, max(g["wall_s"] for g in gaps), gaps


def app_timer(window):
    """timed_run for a run in the app's window: Start to the final snapshot's arrival."""
    from PySide6 import QtWidgets

    from app.cli import wait_until
    from app.runner import FAILED, FINISHED

    qapp = QtWidgets.QApplication.instance()
    arrivals: list[float] = []
    window.runner.snapshot_arrived.connect(lambda *_: arrivals.append(time.perf_counter()))

    def run(cfg) -> tuple[float, float, list]:
        window.params.set_config(cfg)
        arrivals.clear()
        t0 = time.perf_counter()
        window.start()
        wait_until(qapp, lambda: window.runner.state in (FINISHED, FAILED), 3600)
        if window.runner.state == FAILED:
            raise RuntimeError(f"training failed: {window.last_error}")
        gaps = [b - a for a, b in zip([t0, *arrivals], arrivals, strict=False)]
        return arrivals[-1] - t0, max(gaps), []

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
    loaded_gaps: list[dict] = []
    for _ in range(args.repeats):
        q, wq, _gaps = timed_run(cfg)
        quiet.append(q)
        worst_quiet = max(worst_quiet, wq)
        busy = subprocess.Popen([sys.executable, "-c", BUSY])
        try:
            time.sleep(0.5)  # let it take its core
            s, w, gaps = timed_run(cfg)
        finally:
            busy.kill()
            busy.wait()
        loaded.append(s)
        worst_loaded = max(worst_loaded, w)
        loaded_gaps += gaps
    q, s = statistics.median(quiet), statistics.median(loaded)
    detail = {}
    if loaded_gaps:
        keys = ("wall_s", "cpu_s", "core_wait_s", "other_s", "measure_cpu_s")
        detail = {
            "worst_interval_detail": max(loaded_gaps, key=lambda g: g["wall_s"]),
            "loaded_split": {k: round(sum(g[k] for g in loaded_gaps), 2) for k in keys},
        }
    print(json.dumps({
        "quiet_s": round(q, 2),
        "loaded_s": round(s, 2),
        "ratio": round(q / s, 3),
        "worst_interval_s": round(worst_loaded, 2),
        "worst_interval_quiet_s": round(worst_quiet, 2),
        **detail,
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
