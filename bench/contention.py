"""A run beside another busy program: the default preset headless, quiet and with one
competing busy-loop process (started and stopped here), with the thread settings a user
gets (engine.threads). Quiet and loaded runs alternate for --repeats rounds.

With --app the same run trains in the app's window (offscreen, the UMAP projection
worker on, as a user's run), timed from Start (once the window's standby training child
has loaded torch) to the final snapshot on the GUI thread; and, apart, Start pressed the
moment a short run ends (--restarts rounds): restart_to_first_snapshot_s, the longest
wait from that Start to the step-0 snapshot on the GUI thread (restart_runs_s: each).

Prints one JSON object: quiet_s and loaded_s (median wall time of Experiment.run()),
ratio (quiet_s / loaded_s; 0.5 is a fair share of 2 cores), worst_interval_s (the longest
gap between two snapshots, train.snapshot_every steps apart, in any loaded run),
first_snapshot_s (the longest wait from the run's start to its step-0 snapshot: building
the Experiment, starting the measurement process, measuring the untrained network; not a
training interval, so quoted apart), load averages and the thread settings.
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


def timed_run(cfg) -> tuple[float, list[dict]]:
    """Wall time of one run and every gap before a snapshot, with its split (the
    training thread is this one: Experiment.run() trains between yields); the first gap
    is the run's start to its step-0 snapshot."""
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
    return time.perf_counter() - t0, gaps


def app_timer(window):
    """timed_run for a run in the app's window: Start to the final snapshot's arrival."""
    from PySide6 import QtWidgets

    from app.cli import wait_until
    from app.runner import FAILED, FINISHED

    qapp = QtWidgets.QApplication.instance()
    arrivals: list[tuple[float, int]] = []
    window.runner.snapshot_arrived.connect(
        lambda snap: arrivals.append((time.perf_counter(), snap.step)))

    def run(cfg) -> tuple[float, list[dict]]:
        window.params.set_config(cfg)
        # A user's Start finds the training child warm (torch loaded): the last run's
        # child stays for the next; the first one loads at launch (waited for here).
        window.runner.wait_ready(120)
        arrivals.clear()
        t0 = time.perf_counter()
        window.start()
        wait_until(qapp, lambda: window.runner.state in (FINISHED, FAILED), 3600)
        if window.runner.state == FAILED:
            raise RuntimeError(f"training failed: {window.last_error}")
        times = [t0] + [t for t, _ in arrivals]
        gaps = [{"step": step, "wall_s": b - a}
                for a, b, (_, step) in zip(times[:-1], times[1:], arrivals, strict=True)]
        return arrivals[-1][0] - t0, gaps

    return run


def restart_to_first_snapshot(window, cfg, rounds: int) -> list[float]:
    """Seconds from Start, pressed as soon as a short run has ended, to the step-0
    snapshot's arrival on the GUI thread, for each of `rounds` such Starts."""
    from PySide6 import QtWidgets

    from app.cli import wait_until
    from app.runner import FINISHED

    qapp = QtWidgets.QApplication.instance()
    arrived: list[float] = []

    def on_snapshot(snap) -> None:
        arrived.append(time.perf_counter())

    window.runner.snapshot_arrived.connect(on_snapshot)
    window.params.set_config(cfg.replace(**{"train.steps": cfg.train.snapshot_every}))
    window.runner.wait_ready(120)

    def run_to_end() -> None:
        window.start()
        wait_until(qapp, lambda: window.runner.state == FINISHED, 600)

    run_to_end()
    waits = []
    for _ in range(rounds):
        arrived.clear()
        t0 = time.perf_counter()
        window.start()  # the moment the last run has ended
        wait_until(qapp, lambda: arrived, 600)
        waits.append(arrived[0] - t0)
        wait_until(qapp, lambda: window.runner.state == FINISHED, 600)
    window.runner.snapshot_arrived.disconnect(on_snapshot)
    return waits


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="default")
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--app", action="store_true",
                    help="train in the app's window, projection worker on")
    ap.add_argument("--restarts", type=int, default=3,
                    help="with --app: Starts pressed as a run ends, timed to step 0")
    args = ap.parse_args()
    cfg = load_preset(args.preset).replace(**{"train.steps": args.steps})
    if args.app:
        from _app import bench_window

        from app.cli import wait_until

        with bench_window(cfg) as (qapp, window):
            if cfg.projection.method == "umap":  # a user starts once the app is up
                wait_until(qapp, lambda: window.projector.umap_ready, 180)
            load_before = os.getloadavg()
            restarts = restart_to_first_snapshot(window, cfg, args.restarts)
            measure(args, cfg, app_timer(window), {
                "restart_to_first_snapshot_s": round(max(restarts), 2),
                "restart_runs_s": [round(x, 2) for x in restarts],
                "restart_loadavg_before": [round(x, 2) for x in load_before],
            })
        return
    measure(args, cfg, timed_run)


def measure(args, cfg, timed_run, extra: dict | None = None) -> None:
    timed_run(cfg.replace(**{"train.steps": 100}))  # warm up kernels and allocator
    load_before = os.getloadavg()
    quiet, loaded = [], []
    quiet_gaps: list[dict] = []
    loaded_gaps: list[dict] = []
    for _ in range(args.repeats):
        q, gaps = timed_run(cfg)
        quiet.append(q)
        quiet_gaps += gaps
        busy = subprocess.Popen([sys.executable, "-c", BUSY])
        try:
            time.sleep(0.5)  # let it take its core
            s, gaps = timed_run(cfg)
        finally:
            busy.kill()
            busy.wait()
        loaded.append(s)
        loaded_gaps += gaps
    q, s = statistics.median(quiet), statistics.median(loaded)

    def worst(gaps: list[dict], first: bool) -> float:
        return max(g["wall_s"] for g in gaps if (g["step"] == 0) == first)

    detail = {}
    if "cpu_s" in loaded_gaps[0]:
        keys = ("wall_s", "cpu_s", "core_wait_s", "other_s", "measure_cpu_s")
        detail = {
            "worst_interval_detail": max((g for g in loaded_gaps if g["step"]),
                                         key=lambda g: g["wall_s"]),
            "first_snapshot_detail": max((g for g in loaded_gaps if not g["step"]),
                                         key=lambda g: g["wall_s"]),
            "loaded_split": {k: round(sum(g[k] for g in loaded_gaps), 2) for k in keys},
        }
    print(json.dumps({
        "quiet_s": round(q, 2),
        "loaded_s": round(s, 2),
        "ratio": round(q / s, 3),
        "worst_interval_s": round(worst(loaded_gaps, False), 2),
        "worst_interval_quiet_s": round(worst(quiet_gaps, False), 2),
        "first_snapshot_s": round(worst(loaded_gaps, True), 2),
        "first_snapshot_quiet_s": round(worst(quiet_gaps, True), 2),
        **detail,
        **(extra or {}),
        "quiet_runs_s": [round(x, 2) for x in quiet],
        "loaded_runs_s": [round(x, 2) for x in loaded],
        "preset": args.preset,
        "steps": args.steps,
        "app": args.app,
        **threads.conditions(load_before),
    }))


if __name__ == "__main__":
    main()
