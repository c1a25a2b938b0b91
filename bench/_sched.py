"""Where a thread's wall time went, from Linux's per-thread scheduler statistics
(/proc/thread-self/schedstat): running on a core, waiting for one (runnable but another
program or thread had it), and the rest (asleep: waiting for the GIL, a lock, I/O)."""

from __future__ import annotations

import time


def thread_clock() -> tuple[float, float, float]:
    """(wall, CPU, run-queue wait) seconds of the calling thread so far; on a system
    without schedstat the run-queue wait reads 0 (counted with the rest)."""
    wall = time.perf_counter()
    try:
        with open("/proc/thread-self/schedstat") as f:
            cpu_ns, wait_ns, _ = f.read().split()
        return wall, int(cpu_ns) / 1e9, int(wait_ns) / 1e9
    except (OSError, ValueError):
        return wall, time.thread_time(), 0.0


def split(a: tuple[float, float, float], b: tuple[float, float, float]) -> dict:
    """The time between two thread_clock() readings: wall_s = cpu_s + core_wait_s +
    other_s (seconds, rounded)."""
    wall, cpu, wait = (y - x for x, y in zip(a, b, strict=True))
    return {"wall_s": round(wall, 3), "cpu_s": round(cpu, 3), "core_wait_s": round(wait, 3),
            "other_s": round(wall - cpu - wait, 3)}
