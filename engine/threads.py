"""The one rule for threads: how many cores this process may use, and how its thread pools
(torch's OpenMP, BLAS, numba) wait for them.

Importing `engine` calls `configure()` before torch, numpy's BLAS or numba load, so every
entry point (the app, `run`, `screenshot`, `animate`, sweep workers, the projection
worker, benchmarks, tests) gets the same settings:

- Waiting is passive (OMP_WAIT_POLICY=PASSIVE, KMP_BLOCKTIME=0): a thread that waits for
  a core sleeps instead of spinning. With torch's default active wait, one other busy
  program beside a 2-thread run made it 10x slower (shared/STACK.md).
- The budget is the cores this process may actually run on: its CPU affinity
  (os.sched_getaffinity), capped by a cgroup CPU quota (cgroup v2 cpu.max or v1
  cpu.cfs_quota_us). `GSH_THREADS` overrides it.
- Training (torch's intra-op threads) gets the budget minus one core for the run's
  measurement process that measures its snapshots beside it (engine.measure; one BLAS
  thread, no torch), minus the cores the app's other processes use: the UMAP projection
  worker takes one
  (`training_threads(reserve=1)`); never fewer than one. On 2 cores that is one torch
  thread, headless and in the app. Measured on this 2-core machine under load (load
  average 7-8), one torch thread trained the default preset at 43-50 steps/s against
  34-49 with two (deep 44-46 vs 32-41, quick 83-89 vs 46-74): these small networks gain
  little from a second thread and lose more when it waits for a taken core.
- Helper processes yield: the UMAP projection worker and a run's measurement process
  lower their own priority (`lower_priority()`, nice +10; `GSH_HELPER_NICENESS` sets it,
  0 keeps them at the caller's). Their work may lag by a frame or a snapshot; the GUI
  thread and training may not. Measured on this 2-core machine (the default preset in
  the app): the GUI thread waited 0.9-1.5 s for a core per run at equal priority,
  0.2-0.4 s with the helpers at +10; headless beside one busy program the ratio was
  0.80-0.85 against 0.81-0.82 (bench/contention.py).
- torch starts with the lower of OMP_NUM_THREADS and MKL_NUM_THREADS (its own MKL; MKL=1
  left training on one thread whatever OMP said), so both carry the training count.
  numpy's BLAS (OpenBLAS) and numba get one thread per process: their work is small next
  to torch's and would otherwise multiply the thread count by the number of processes.

A variable already set in the environment is respected, so a user can still choose.
"""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path

_configured = False


def _cgroup_quota() -> float | None:
    """Cores allowed by a cgroup CPU quota, or None when there is none."""
    try:
        text = Path("/sys/fs/cgroup/cpu.max").read_text().split()
        if text and text[0] != "max":
            return int(text[0]) / int(text[1])
    except (OSError, ValueError, IndexError, ZeroDivisionError):
        pass
    try:
        quota = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us").read_text())
        period = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us").read_text())
        if quota > 0 and period > 0:
            return quota / period
    except (OSError, ValueError):
        pass
    return None


def available_cores() -> int:
    """The cores this process may use: affinity, capped by a cgroup quota, or GSH_THREADS."""
    override = os.environ.get("GSH_THREADS", "").strip()
    if override:
        try:
            return max(1, int(override))
        except ValueError:
            pass
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    quota = _cgroup_quota()
    if quota is not None:
        cores = min(cores, max(1, math.ceil(quota)))
    return max(1, cores)


MEASUREMENT_CORES = 1  # the run's measurement process beside training (engine.measure)


def training_threads(reserve: int = 0) -> int:
    """torch threads for training: the budget less the measurement process's core and the
    `reserve` cores this app's other processes use (at least one)."""
    return max(1, available_cores() - MEASUREMENT_CORES - max(0, reserve))


HELPER_NICENESS = 10  # how much a helper process lowers its priority (lower_priority)


def helper_niceness() -> int:
    """The niceness a helper process adds to its own: GSH_HELPER_NICENESS, else 10."""
    try:
        return max(0, min(19, int(os.environ.get("GSH_HELPER_NICENESS", HELPER_NICENESS))))
    except ValueError:
        return HELPER_NICENESS


def lower_priority() -> None:
    """Called first thing in a helper process (the projection worker, a run's
    measurement process): lower its own priority by helper_niceness(), so the GUI
    thread, training and the user's other programs get a core first (POSIX only; a
    process may always lower its own priority)."""
    step = helper_niceness()
    if step and hasattr(os, "nice"):
        try:
            os.nice(step)
        except OSError:
            pass


def configure() -> dict[str, str]:
    """Set the waiting policy and pool sizes before torch, BLAS or numba load (idempotent).

    Returns the settings in force, for benchmarks to record."""
    global _configured
    if not _configured:
        _configured = True
        train = str(training_threads())
        for var, value in (
            ("OMP_WAIT_POLICY", "PASSIVE"),
            ("KMP_BLOCKTIME", "0"),
            ("OMP_NUM_THREADS", train),
            ("MKL_NUM_THREADS", train),
            ("OPENBLAS_NUM_THREADS", "1"),
            ("NUMBA_NUM_THREADS", "1"),
        ):
            os.environ.setdefault(var, value)
        # Loaded before us, a library no longer reads the environment: set what still can be.
        if "torch" in sys.modules:
            sys.modules["torch"].set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
        if "numpy" in sys.modules:
            from threadpoolctl import threadpool_limits

            threadpool_limits(limits=1, user_api="blas")
    return settings()


def settings() -> dict[str, str]:
    """The thread settings in force (for a benchmark's JSON line)."""
    keys = ("OMP_WAIT_POLICY", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
            "NUMBA_NUM_THREADS", "GSH_THREADS", "GSH_HELPER_NICENESS")
    out = {k: os.environ[k] for k in keys if k in os.environ}
    out["available_cores"] = str(available_cores())
    out["helper_niceness"] = str(helper_niceness())
    if "torch" in sys.modules:
        out["torch_threads"] = str(sys.modules["torch"].get_num_threads())
    return out


def conditions(load_before: tuple[float, ...]) -> dict[str, object]:
    """What every benchmark's JSON line records about how it ran: the load average
    before it (`load_before`, os.getloadavg()) and now, and the thread settings."""
    return {
        "loadavg_before": [round(x, 2) for x in load_before],
        "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        "threads": settings(),
    }
