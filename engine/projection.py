"""The projection service: 2-D UMAP/PCA of probe embeddings in a long-lived worker process.

The numerics are engine.projection_maths', the worker process engine.projection_worker's;
this parent side owns the worker's life (start, numba warm-up, death and replacement, shutdown), the
latest-wins request policy per key, the exact torch kNN handed to umap-learn, warm starts
from the previous frame, Procrustes alignment between frames, and the content-hash cache
for the raw-input projection. Qt-free: the GUI polls it from a timer, the CLI and the
benchmarks call it directly.

Why a process: umap-learn spends 10-50 s compiling numba code on its first fit and holds
the GIL for much of a layout, so neither may run in the GUI's or the trainer's
interpreter (shared/STACK.md). Why not umap's defaults: for n < 4096 they compute all
pairwise distances through a Python-called numba metric, about 15x slower than a torch
kNN passed as precomputed_knn.
"""

from __future__ import annotations

import hashlib
import multiprocessing as mp
import queue
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np

from .projection_maths import (
    METHODS,
    METRICS,
    exact_knn,
    pca_2d,
    procrustes_align,
    umap_2d,
)
from .projection_worker import (
    Done,
    Failed,
    Hello,
    Job,
    Ready,
    Stop,
    _worker_main,
    compile_kernels,
)

# Keys whose points are fixed per dataset: their UMAP results are cached by content.
CACHED_KEYS = frozenset({"raw"})
_CACHE_SIZE = 8
# A dead worker is replaced after RESTART_DELAY_S, doubling per failure up to
# RESTART_DELAY_MAX_S; after MAX_FAILURES deaths within FAILURE_WINDOW_S the service
# gives up (PCA is then computed in the caller's process) until retry().
RESTART_DELAY_S = 0.5
RESTART_DELAY_MAX_S = 8.0
MAX_FAILURES = 4
FAILURE_WINDOW_S = 60.0


@dataclass
class ProjectionResult:
    """One 2-D frame: coords row i belongs to the submitted point i."""

    request_id: int
    key: str
    coords: np.ndarray  # (n, 2) float32
    method: str  # "umap" or "pca": which method actually produced this frame
    seconds: float  # compute time in the worker
    full: bool


def _send_loop(conn: Any, outbox: queue.SimpleQueue[Job | Stop | None],
               failed: threading.Event) -> None:
    """Send the outbox's messages to the worker in order, until None or a broken pipe."""
    while (msg := outbox.get()) is not None:
        try:
            conn.send(msg)
        except (OSError, ValueError):
            failed.set()
            return


@dataclass
class _Job:
    seq: int
    request_id: int
    key: str
    points: np.ndarray
    full: bool
    attempts: int = 0
    cache_key: str | None = None


class ProjectionService:
    """Asynchronous 2-D projector: submit() and poll() never block on the computation.

    Only one job is in the worker at a time; per key only the newest not-yet-started
    request is kept (latest wins). A worker that dies is replaced with exponential
    backoff; after MAX_FAILURES deaths within FAILURE_WINDOW_S the service gives up
    (`failed` is set, requests are answered with PCA computed in the caller's process)
    until retry(). Jobs are handed to the worker from submit() and poll(),
    so call poll() regularly (the GUI does it from a timer). A request that UMAP could not
    serve yet (worker still compiling) is answered with PCA at once and re-run with UMAP
    once the worker is warm, unless a newer request for that key came in meanwhile.
    """

    worker_main = staticmethod(_worker_main)  # the worker process's entry point

    def __init__(
        self,
        method: str = "umap",
        n_neighbors: int = 15,
        min_dist: float = 0.1,
        metric: str = "euclidean",
        seed: int | None = 0,
    ) -> None:
        self._params: dict[str, Any] = {}
        self._generation = 0
        self._set(method, n_neighbors, min_dist, metric, seed)
        self._ctx = mp.get_context("spawn")
        self._proc: Any = None
        self._conn: Any = None
        self._seq = 0
        self._pending: OrderedDict[str, _Job] = OrderedDict()
        self._inflight: _Job | None = None
        self._results: dict[str, ProjectionResult] = {}
        self._delivered: dict[str, int] = {}  # key -> seq of the newest result handed out
        self._stand_in: dict[str, _Job] = {}  # key -> job answered by PCA in lieu of UMAP
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._umap_ready = False
        self._closed = False
        self.restarts = 0
        self.error: str | None = None
        self.failed: str | None = None  # why the service gave up; None while it tries
        self._failures: list[float] = []  # monotonic times of recent worker deaths
        self._restart_at: float | None = None
        self.started_at = 0.0
        self._start_worker()

    # -- public API --------------------------------------------------------------------

    @property
    def umap_ready(self) -> bool:
        """True once the current worker has compiled umap-learn's numba code."""
        self._pump()
        return self._umap_ready

    @property
    def pid(self) -> int | None:
        """The worker's process id (None after shutdown)."""
        return None if self._proc is None else self._proc.pid

    def submit(
        self, request_id: int, points: np.ndarray, key: str = "embedding", full: bool = False
    ) -> None:
        """Queue a projection of `points` (n, d). Replaces a pending request for `key`."""
        if self._closed:
            raise RuntimeError("ProjectionService is shut down")
        points = np.ascontiguousarray(points, dtype=np.float32)
        if points.ndim != 2:
            raise ValueError(f"points must be (n, d), got shape {points.shape}")
        self._seq += 1
        job = _Job(self._seq, int(request_id), key, points, bool(full))
        self._stand_in.pop(key, None)
        if key in CACHED_KEYS and self._params["method"] == "umap":
            job.cache_key = self._content_key(points, full)
            hit = self._cache.get(job.cache_key)
            if hit is not None:
                self._pending.pop(key, None)
                self._deliver(job, hit.copy(), "umap", 0.0)
                return
        self._pending[key] = job  # replaces an older pending job, keeping its turn
        self._pump()

    def poll(self) -> list[ProjectionResult]:
        """Results that arrived since the last poll: at most the newest per key."""
        self._pump()
        out = list(self._results.values())
        self._results.clear()
        return out

    def set_params(
        self,
        method: str | None = None,
        n_neighbors: int | None = None,
        min_dist: float | None = None,
        metric: str | None = None,
        seed: int | None = None,
    ) -> None:
        """Change projection parameters for the next requests (forgets warm starts)."""
        p = self._params
        self._set(
            p["method"] if method is None else method,
            p["n_neighbors"] if n_neighbors is None else n_neighbors,
            p["min_dist"] if min_dist is None else min_dist,
            p["metric"] if metric is None else metric,
            p["seed"] if seed is None else seed,
        )

    def retry(self) -> None:
        """Start a fresh worker now after the service gave up (or while it waits to)."""
        if self._closed:
            raise RuntimeError("ProjectionService is shut down")
        self.failed = None
        self._failures.clear()
        self._restart_at = None
        if self._proc is None:
            self._start_worker()
        self._pump()

    def reset(self) -> None:
        """Forget warm-start and alignment state (new run or new probe set)."""
        self._generation += 1
        self._stand_in.clear()

    def shutdown(self, timeout: float = 5.0) -> None:
        """Stop and join the worker. Idempotent; leaves no child process behind."""
        if self._closed:
            return
        self._closed = True
        self._pending.clear()
        self._stand_in.clear()
        self._stop_worker(timeout)

    def __enter__(self) -> ProjectionService:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

    def __del__(self) -> None:  # a forgotten service must not leave its worker running
        try:
            if not self._closed and self._proc is not None:
                self.shutdown(timeout=1.0)
        except Exception:
            pass

    # -- internals ---------------------------------------------------------------------

    def _set(self, method: str, n_neighbors: int, min_dist: float, metric: str,
             seed: int | None) -> None:
        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {method!r}")
        if metric not in METRICS:
            raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
        if int(n_neighbors) < 2:
            raise ValueError("n_neighbors must be >= 2")
        if not 0.0 <= float(min_dist) <= 1.0:
            raise ValueError("min_dist must be in [0, 1]")
        new = {
            "method": method,
            "n_neighbors": int(n_neighbors),
            "min_dist": float(min_dist),
            "metric": metric,
            "seed": None if seed is None else int(seed),
        }
        if new != self._params:
            self._params = new
            self._generation += 1

    def _content_key(self, points: np.ndarray, full: bool) -> str:
        h = hashlib.blake2b(digest_size=16)
        h.update(repr((points.shape, sorted(self._params.items()), full)).encode())
        h.update(points.tobytes())
        return h.hexdigest()

    def _start_worker(self) -> None:
        parent, child = self._ctx.Pipe(duplex=True)
        proc = self._ctx.Process(
            target=self.worker_main,
            args=(child, dict(self._params)),
            name="gsh-projection",
            daemon=True,  # dies with us even if shutdown() is never called
        )
        proc.start()
        child.close()  # so the parent sees EOF when the worker dies
        self._proc, self._conn = proc, parent
        # Jobs go out through a sender thread: a job bigger than the pipe's buffer
        # blocks send() until the worker reads it, and a worker compiling numba (which
        # holds its GIL) can take seconds to: the caller (the GUI thread) must not wait.
        self._outbox: queue.SimpleQueue[Job | Stop | None] = queue.SimpleQueue()
        self._send_failed = threading.Event()
        self._sender = threading.Thread(
            target=_send_loop, args=(parent, self._outbox, self._send_failed),
            name="gsh-projection-send", daemon=True)
        self._sender.start()
        self._umap_ready = False
        # Until the worker says hello it cannot read, and a job bigger than the pipe's
        # buffer would block send() in the caller's thread for the whole spawn.
        self._worker_up = False
        self.started_at = time.monotonic()

    def _stop_worker(self, timeout: float) -> None:
        proc, conn = self._proc, self._conn
        self._proc, self._conn, self._inflight = None, None, None
        self._worker_up = False
        if proc is None:
            return
        if proc.is_alive():
            self._outbox.put(Stop())
        self._outbox.put(None)  # the sender ends after what it has queued
        proc.join(timeout)
        if proc.is_alive():
            proc.terminate()  # busy in a long fit: it cannot read "stop" until done
            proc.join(1.0)
        if proc.is_alive():
            proc.kill()
            proc.join(1.0)
        self._sender.join(1.0)  # a send to a dead worker fails at once
        conn.close()
        proc.close()

    def _worker_died(self, why: str) -> None:
        code = None if self._proc is None else self._proc.exitcode
        lost = self._inflight
        self._stop_worker(0.5)
        now = time.monotonic()
        self._failures = [t for t in self._failures if now - t < FAILURE_WINDOW_S] + [now]
        n = len(self._failures)
        if n >= MAX_FAILURES:
            self.failed = (f"the projection worker died {n} times within "
                           f"{FAILURE_WINDOW_S:.0f} s ({why}, exit code {code}); "
                           "gave up: showing PCA until you retry")
            self.error = self.failed
            self._restart_at = None
        else:
            delay = min(RESTART_DELAY_S * 2 ** (n - 1), RESTART_DELAY_MAX_S)
            self.error = (f"projection worker died ({why}, exit code {code}); "
                          f"restarting in {delay:.1f} s")
            self._restart_at = now + delay
        # Re-send the request it was working on unless a newer one for that key waits, and
        # give up on a request that has now killed two workers in a row.
        if lost is not None and lost.key not in self._pending:
            lost.attempts += 1
            if lost.attempts < 2:
                self._pending[lost.key] = lost
                self._pending.move_to_end(lost.key, last=False)
            else:
                self.error += f"; dropped request {lost.request_id} ({lost.key})"

    def _drain(self) -> None:
        """Read everything the worker sent; detect its death."""
        if self._closed or self._proc is None:
            return
        while True:
            try:
                if not self._conn.poll(0):
                    break
                msg = self._conn.recv()
            except (EOFError, OSError):
                self._worker_died("connection lost")
                return
            self._handle(msg)
        if not self._proc.is_alive():
            self._worker_died("process exited")

    def _handle(self, msg: Hello | Ready | Done | Failed) -> None:
        if isinstance(msg, Hello):
            self._worker_up = True
            return
        if isinstance(msg, Ready):
            self._umap_ready = bool(msg.umap_ok)
            if msg.error:
                self.error = msg.error
            if self._umap_ready:
                # Upgrade the PCA stand-ins to real UMAP frames.
                for key, waiting in self._stand_in.items():
                    if key not in self._pending and (
                        self._inflight is None or self._inflight.key != key
                    ):
                        self._pending[key] = waiting
                self._stand_in.clear()
            return
        job = self._inflight
        if job is None or job.seq != msg.seq:
            return  # cannot happen with one job in flight; ignore defensively
        self._inflight = None
        if isinstance(msg, Failed):
            self.error = (f"projection of request {job.request_id} ({job.key}) failed: "
                          f"{msg.message}")
            return
        coords, method, seconds = msg.coords, msg.method, msg.seconds
        if method == "umap" and job.cache_key is not None:
            self._cache[job.cache_key] = coords
            while len(self._cache) > _CACHE_SIZE:
                self._cache.popitem(last=False)
        if method == "pca" and self._params["method"] == "umap" and not self._umap_ready:
            if job.key not in self._pending:
                self._stand_in[job.key] = job
        self._deliver(job, coords, method, seconds)

    def _serve_inline(self) -> None:
        """Without a worker (given up): answer pending requests with PCA, here and now."""
        while self._pending:
            _, job = self._pending.popitem(last=False)
            t0 = time.perf_counter()
            coords = pca_2d(job.points)
            self._deliver(job, coords, "pca", time.perf_counter() - t0)

    def _deliver(self, job: _Job, coords: np.ndarray, method: str, seconds: float) -> None:
        if job.seq < self._delivered.get(job.key, 0):
            return  # a newer request for this key was already answered (from the cache)
        self._delivered[job.key] = job.seq
        self._results[job.key] = ProjectionResult(
            request_id=job.request_id,
            key=job.key,
            coords=np.asarray(coords, dtype=np.float32),
            method=method,
            seconds=float(seconds),
            full=job.full,
        )

    def _pump(self) -> None:
        """Drain results, then hand the next pending job to an idle worker."""
        if self._closed:
            return
        if self._proc is None:
            if self.failed is not None:
                self._serve_inline()
                return
            if self._restart_at is None or time.monotonic() < self._restart_at:
                return
            self._restart_at = None
            self.restarts += 1
            self._start_worker()
        if self._send_failed.is_set():
            self._worker_died("send failed")
            return
        self._drain()
        if (self._proc is None or self._inflight is not None or not self._pending
                or not self._worker_up):
            return
        key, job = self._pending.popitem(last=False)
        self._inflight = job
        self._outbox.put(Job(job.seq, key, job.points, job.full, dict(self._params),
                             self._generation))


__all__ = [
    "METHODS",
    "METRICS",
    "ProjectionResult",
    "ProjectionService",
    "compile_kernels",
    "exact_knn",
    "pca_2d",
    "procrustes_align",
    "umap_2d",
]
