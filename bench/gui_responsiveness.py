"""GUI responsiveness: event-loop stalls and training throughput, app vs headless engine.

Offscreen (or on the display QT_QPA_PLATFORM names), default preset, projection service
on. A 10 ms heartbeat QTimer measures how late the event loop runs while the app
trains; the same config is also trained headless (Experiment.run() in this process) for
the throughput ratio, alternating with the app runs for --rounds rounds (median round
per side, every round listed). Prints one JSON object: {"max_stall_ms", "p99_stall_ms",
"frames", "steps_per_s_app", "steps_per_s_headless", "ratio"}, the GUI thread's time
split (bench/_sched.py), the load average and the thread settings; targets: max <= 50, p99 <= 16,
frames >= 5, ratio >= 0.9. Both sides train with the app's torch thread count
(engine.threads.training_threads with the UMAP worker's core reserved).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import engine  # noqa: E402,F401  (thread settings before torch, BLAS, numba load)

# isort: split
from _app import bench_window, run_until  # noqa: E402
from _sched import split, thread_clock  # noqa: E402
from PySide6 import QtCore  # noqa: E402

HEARTBEAT_MS = 10


def headless_steps_per_s(config) -> float:
    import torch

    from engine.experiment import Experiment
    from engine.threads import training_threads

    before = torch.get_num_threads()
    # the app's count: its UMAP worker takes a core (app.runner, engine.runs)
    torch.set_num_threads(training_threads(reserve=1 if config.projection.method == "umap"
                                           else 0))
    try:
        t0 = time.perf_counter()
        step = 0
        for snap in Experiment(config).run():
            step = snap.step
        return step / (time.perf_counter() - t0)
    finally:
        torch.set_num_threads(before)


def _cpu_seconds(pid) -> float:
    """User+system CPU seconds of a process (Linux /proc; 0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return 0.0


class StackSampler:
    """With --stall-stacks: the GUI thread's innermost frames every 5 ms (a thread beside
    it, so it perturbs what it measures a little), to say what the longest stalls were."""

    def __init__(self):
        import threading

        self.gui = threading.main_thread().ident
        self.schedstat = f"/proc/self/task/{threading.main_thread().native_id}/schedstat"
        self.samples: list[tuple[float, str]] = []
        self.clock: list[tuple[float, float, float]] = []  # (time, CPU s, core wait s)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="stall-sampler", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        import traceback

        while not self._stop.wait(0.005):
            frame = sys._current_frames().get(self.gui)
            if frame is None:
                continue
            try:
                with open(self.schedstat) as f:
                    cpu_ns, wait_ns, _ = f.read().split()
                self.clock.append((time.perf_counter(), int(cpu_ns) / 1e9, int(wait_ns) / 1e9))
            except (OSError, ValueError):
                pass
            stack = traceback.extract_stack(frame)[::-1]
            ours = [f"{Path(f.filename).parent.name}/{Path(f.filename).name}:{f.lineno} "
                    f"{f.name}" for f in stack
                    if "/app/" in f.filename or "/engine/" in f.filename
                    or "pyqtgraph" in f.filename][:3]
            self.samples.append((time.perf_counter(), " < ".join(ours) or stack[0].name))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def during(self, start: float, end: float) -> list[tuple[str, int]]:
        from collections import Counter

        return Counter(s for t, s in self.samples if start <= t <= end).most_common(3)

    def split(self, start: float, end: float) -> str:
        """The GUI thread's CPU and core-wait ms between two times (5 ms resolution)."""
        inside = [c for c in self.clock if start - 0.005 <= c[0] <= end + 0.005]
        if len(inside) < 2:
            return "cpu ? ms"
        (_, c0, w0), (_, c1, w1) = inside[0], inside[-1]
        return f"cpu {1000 * (c1 - c0):.0f} ms, waiting for a core {1000 * (w1 - w0):.0f} ms"


def app_run(app, window, np, stall_stacks=False):
    """Train once in the window with a heartbeat running; (steps/s, stalls in ms)."""
    from app.runner import FAILED, FINISHED

    beats: list[float] = []
    heartbeat = QtCore.QTimer()
    heartbeat.setTimerType(QtCore.Qt.TimerType.PreciseTimer)
    heartbeat.setInterval(HEARTBEAT_MS)
    heartbeat.timeout.connect(lambda: beats.append(time.perf_counter()))
    heartbeat.start()
    sampler = StackSampler() if stall_stacks else None
    t0 = time.perf_counter()
    gui0 = thread_clock()
    proj_cpu0 = _cpu_seconds(window.projector.service.pid)
    window.start()
    run_until(app, lambda: window.runner.state in (FINISHED, FAILED), 3600)
    seconds = time.perf_counter() - t0
    final = window.store.latest
    # keep beating until the final frame is on screen (the user is still watching)
    run_until(app, lambda: final is not None and final.step in window.store.frames, 60)
    heartbeat.stop()
    gui = split(gui0, thread_clock())
    if sampler is not None:
        sampler.stop()
    print(
        f"app run: {seconds:.1f} s wall, GUI thread {gui['cpu_s']:.1f} s CPU, "
        f"{gui['core_wait_s']:.1f} s waiting for a core, "
        f"projection worker {_cpu_seconds(window.projector.service.pid) - proj_cpu0:.1f} s CPU",
        file=sys.stderr,
    )
    gaps = np.diff(np.array(beats)) * 1000.0 - HEARTBEAT_MS
    worst = np.argsort(gaps)[-3:][::-1]
    print("worst stalls: " + ", ".join(
        f"{gaps[i]:.0f} ms at {beats[i] - t0:.2f} s" for i in worst), file=sys.stderr)
    if sampler is not None:
        for i in np.argsort(gaps)[-8:][::-1]:
            print(f"  {gaps[i]:.0f} ms at {beats[i] - t0:.2f} s: "
                  f"{sampler.split(beats[i], beats[i + 1])}; "
                  f"{sampler.during(beats[i], beats[i + 1])}", file=sys.stderr)
    return (final.step if final else 0) / seconds, np.clip(gaps, 0.0, None), gui


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default=None, help="preset (default: the default preset)")
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--rounds", type=int, default=5, help="headless/app pairs")
    parser.add_argument("--stall-stacks", action="store_true",
                        help="print what the GUI thread was doing in the longest stalls")
    args = parser.parse_args()
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

    import numpy as np

    from app.runner import FAILED
    from engine import threads
    from engine.config import default_config, load_preset

    cfg = load_preset(args.preset) if args.preset else default_config()
    if args.steps:
        cfg = cfg.replace(**{"train.steps": args.steps})
    with bench_window(cfg) as (app, window):
        window.reset_layout()
        # A user starts training after the app is up: let the projection worker compile
        # umap's numba code first (it runs in its own process either way).
        if cfg.projection.method == "umap":
            run_until(app, lambda: window.projector.umap_ready, 180)

        # Pay torch's one-off start-up costs before timing either side.
        headless_steps_per_s(cfg.replace(**{"train.steps": cfg.train.snapshot_every}))

        frames: list[tuple[int, int]] = []  # (round, step) of each embedding frame
        window.projector.frame_ready.connect(
            lambda key, step, *_: frames.append((rounds_done[0], step))
            if key == "embedding" else None
        )
        rounds_done = [0]
        stalls, app_rates, headless_rates, gui_split = [], [], [], []
        load_before = os.getloadavg()
        # Headless and app runs alternate so that a change in machine load (other jobs)
        # affects both sides alike; each side reports its median round (every round is
        # listed too): single rounds on 2 cores vary by +-20% even on a quiet machine.
        for _ in range(args.rounds):
            # The app's next training child loads torch after each run: not beside a timing.
            window.wait_warmed_up()
            headless_rates.append(headless_steps_per_s(cfg))
            print(f"headless: {headless_rates[-1]:.1f} steps/s", file=sys.stderr)
            rate, gaps, gui = app_run(app, window, np, args.stall_stacks)
            gui_split.append(gui)
            app_rates.append(rate)
            stalls.append(gaps)
            rounds_done[0] += 1
        if window.runner.state == FAILED:
            print(f"training failed: {window.last_error}", file=sys.stderr)
            return 1
        stalls = np.concatenate(stalls)
        per_round = [len({s for r, s in frames if r == k}) for k in range(args.rounds)]
        app_rate = float(np.median(app_rates))
        headless = float(np.median(headless_rates))
        result = {
            "max_stall_ms": round(float(stalls.max()), 1),
            "p99_stall_ms": round(float(np.percentile(stalls, 99)), 1),
            "frames": min(per_round),
            "steps_per_s_app": round(app_rate, 1),
            "steps_per_s_headless": round(headless, 1),
            "ratio": round(app_rate / headless, 3),
            "rounds_app": [round(r, 1) for r in app_rates],
            # the GUI thread's time per app round: on a core, waiting for one, the rest
            # (idle in the event loop, or waiting for the GIL)
            "gui_thread": gui_split,
            "rounds_headless": [round(r, 1) for r in headless_rates],
            **threads.conditions(load_before),
        }
        print(json.dumps(result))
        return 0


if __name__ == "__main__":
    sys.exit(main())
