"""The projection service: 2-D UMAP/PCA of probe embeddings in a long-lived worker process.

It owns the worker's life (start, numba warm-up, death and replacement, shutdown), the
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
import os
import queue
import signal
import threading
import time
import warnings
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np

METHODS = ("umap", "pca")
METRICS = ("euclidean", "cosine")
# Exact kNN is O(n^2) (here 0.08 s at 2k, 0.35 s at 5k, 1.2 s at 10k points), while
# NN-descent is ~0.2 s at 10k but first costs every fresh worker ~60 s of numba compiling
# that its disk cache does not save. So exact up to here, approximate only beyond.
EXACT_KNN_MAX = 20_000
# A refresh frame starts from the previous layout, so a few tens of epochs suffice; a
# cold frame (first one, or after a reset) starts from a spectral layout and needs more.
WARM_EPOCHS = 30
COLD_EPOCHS = 150
# A layout epoch costs O(n): beyond WARM_FULL_N points a refresh frame's base epochs shrink
# in proportion (to at least MIN_WARM_EPOCHS), so 5,000 points stream at about the cost of
# 2,000; the warm start carries the layout, and bench/projection.py checks the trust.
WARM_FULL_N = 2000
MIN_WARM_EPOCHS = 10
# Keys whose points are fixed per dataset: their UMAP results are cached by content.
CACHED_KEYS = frozenset({"raw"})
_CACHE_SIZE = 8
# Bounds the memory of one kNN distance block (rows x n float32).
_KNN_BLOCK_BYTES = 64 << 20
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


# --------------------------------------------------------------------------------------
# Numerics (pure functions; used by the worker, importable for tests and benchmarks)


def procrustes_align(coords: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Map `coords` onto `reference` by the best rotation/reflection, scale and shift.

    Orthogonal Procrustes: with both centred, R = U V^T from the SVD of coords^T reference,
    and s = trace(S) / |coords|^2. Reflections are allowed on purpose: UMAP's layout has
    no handedness, and a mirrored frame is exactly the jump we want to remove.
    """
    x = np.asarray(coords, dtype=np.float64)
    y = np.asarray(reference, dtype=np.float64)
    if x.shape != y.shape or len(x) < 3:
        return np.asarray(coords, dtype=np.float32)
    mx, my = x.mean(0), y.mean(0)
    xc, yc = x - mx, y - my
    norm = float((xc**2).sum())
    if norm <= 1e-12 or not np.isfinite(norm):
        return np.asarray(coords, dtype=np.float32)
    u, s, vt = np.linalg.svd(xc.T @ yc)
    rot = u @ vt
    scale = float(s.sum()) / norm
    return (scale * xc @ rot + my).astype(np.float32)


def pca_2d(points: np.ndarray) -> np.ndarray:
    """First two principal components (numpy only, milliseconds at probe-set sizes)."""
    x = np.asarray(points, dtype=np.float64)
    n = len(x)
    out = np.zeros((n, 2), dtype=np.float32)
    if n < 2:
        return out
    xc = x - x.mean(0)
    _, _, vt = np.linalg.svd(xc, full_matrices=False)
    comps = vt[:2]
    # Fix the SVD's arbitrary sign so identical inputs give identical frames.
    signs = np.sign(comps[np.arange(len(comps)), np.abs(comps).argmax(1)])
    signs[signs == 0] = 1.0
    proj = xc @ (comps * signs[:, None]).T
    out[:, : proj.shape[1]] = proj
    return out


def exact_knn(
    points: np.ndarray, k: int, metric: str = "euclidean"
) -> tuple[np.ndarray, np.ndarray]:
    """Exact k nearest neighbours (self first, as umap's precomputed_knn expects).

    torch matmul distances + topk over row blocks so memory stays bounded by _KNN_BLOCK_BYTES
    whatever n is. Returns (indices int32 (n, k), distances float32 (n, k)).
    """
    import torch

    x = torch.from_numpy(np.ascontiguousarray(points, dtype=np.float32))
    n = x.shape[0]
    k = min(k, n)
    if metric == "cosine":
        x = torch.nn.functional.normalize(x, dim=1)
    sq = (x * x).sum(1)
    # Blocks of at most 1024 rows keep topk cache-friendly (2x faster than big blocks).
    rows = max(1, min(1024, _KNN_BLOCK_BYTES // (4 * max(n, 1))))
    idx = np.empty((n, k), dtype=np.int32)
    dist = np.empty((n, k), dtype=np.float32)
    with torch.no_grad():
        for start in range(0, n, rows):
            block = x[start : start + rows]
            # |b|^2 - 2ab in one addmm; the row's own |a|^2 cannot change its ranking, so
            # it is added to the k survivors only, as is the square root.
            d = torch.addmm(sq[None, :], block, x.T, alpha=-2.0)
            local = torch.arange(block.shape[0])
            # Rounding can leave a twin point closer than self; umap wants self first.
            d[local, local + start] = -float("inf")
            vals, ind = torch.topk(d, k, dim=1, largest=False, sorted=True)
            vals = (vals + sq[start : start + rows, None]).clamp_min_(0.0)
            # On unit rows the cosine distance is half the squared euclidean one.
            vals = vals * 0.5 if metric == "cosine" else vals.sqrt_()
            vals[:, 0] = 0.0
            idx[start : start + rows] = ind.numpy()
            dist[start : start + rows] = vals.numpy()
    return idx, dist


def warm_epochs(n: int) -> int:
    """A refresh frame's epochs when the neighbourhood graph barely moved."""
    return max(MIN_WARM_EPOCHS, round(WARM_EPOCHS * min(1.0, WARM_FULL_N / max(n, 1))))


def _knn_overlap(a: np.ndarray, b: np.ndarray) -> float:
    """Mean fraction of shared neighbours between two kNN index tables of equal shape."""
    if a.shape != b.shape or a.size == 0:
        return 0.0
    k = a.shape[1]
    n = a.shape[0]
    # Encode (row, neighbour) pairs as int64 so one intersect1d counts shared edges.
    rows = np.repeat(np.arange(n, dtype=np.int64), k) * n
    ea = rows + a.reshape(-1).astype(np.int64)
    eb = rows + b.reshape(-1).astype(np.int64)
    return len(np.intersect1d(ea, eb, assume_unique=False)) / float(n * k)


def _quiet() -> None:
    """umap warns about n_jobs with random_state, precomputed kNN, spectral fallbacks."""
    warnings.filterwarnings("ignore", module="umap")
    warnings.filterwarnings("ignore", category=UserWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    try:
        from numba.core.errors import NumbaWarning

        warnings.filterwarnings("ignore", category=NumbaWarning)
    except ImportError:  # pragma: no cover - numba is a umap dependency
        pass


def umap_2d(
    points: np.ndarray,
    *,
    n_neighbors: int = 15,
    min_dist: float = 0.1,
    metric: str = "euclidean",
    seed: int | None = 0,
    n_epochs: int | None = None,
    init: Any = "spectral",
    knn: tuple[np.ndarray, np.ndarray] | None = None,
) -> np.ndarray:
    """One UMAP layout. knn: precomputed (indices, distances) or None for umap's own."""
    import umap

    n = len(points)
    nn = max(2, min(n_neighbors, n - 1))
    kwargs: dict[str, Any] = {}
    if knn is not None:
        kwargs["precomputed_knn"] = (knn[0][:, :nn], knn[1][:, :nn])
    reducer = umap.UMAP(
        n_neighbors=nn,
        min_dist=min_dist,
        metric=metric,
        random_state=seed,
        n_jobs=1 if seed is not None else -1,
        n_epochs=n_epochs,
        init=init,
        verbose=False,
        **kwargs,
    )
    coords = reducer.fit_transform(np.asarray(points, dtype=np.float32))
    return np.asarray(coords, dtype=np.float32)


# --------------------------------------------------------------------------------------
# Worker process


class _Projector:
    """The worker's per-key memory: previous frame and kNN, for warm starts and alignment."""

    def __init__(self) -> None:
        self.generation = -1
        self.prev: dict[str, dict[str, Any]] = {}

    def run(self, job: dict[str, Any], umap_ready: bool) -> tuple[np.ndarray, str]:
        if job["generation"] != self.generation:
            self.generation = job["generation"]
            self.prev.clear()
        params = job["params"]
        key = job["key"]
        points = np.asarray(job["points"], dtype=np.float32)
        n = len(points)
        prev = self.prev.get(key)
        if prev is not None and prev["coords"].shape[0] != n:
            prev = None  # a different point set: nothing to warm-start or align from
        use_umap = params["method"] == "umap" and umap_ready and n >= 4
        if not use_umap:
            coords, method, knn = pca_2d(points), "pca", None
        else:
            k = max(2, min(params["n_neighbors"], n - 1))
            knn = exact_knn(points, k, params["metric"]) if n <= EXACT_KNN_MAX else None
            warm = (
                not job["full"]
                and prev is not None
                and prev["method"] == "umap"
                and prev["params"] == params
            )
            if job["full"]:
                n_epochs, init = None, "spectral"  # umap's own defaults: 500 / 200 epochs
            elif warm:
                # The more the neighbourhood graph moved since the last frame, the further
                # the layout must travel: scale epochs from WARM up to COLD.
                overlap = 1.0
                if knn is not None and prev["knn"] is not None:
                    overlap = _knn_overlap(knn[0], prev["knn"])
                frac = min(1.0, max(0.0, (0.6 - overlap) / 0.6))
                n_epochs = int(warm_epochs(n) + frac * (COLD_EPOCHS - warm_epochs(n)))
                init = prev["coords"]
            else:
                n_epochs, init = COLD_EPOCHS, "spectral"
            coords = umap_2d(
                points,
                n_neighbors=params["n_neighbors"],
                min_dist=params["min_dist"],
                metric=params["metric"],
                seed=params["seed"],
                n_epochs=n_epochs,
                init=init,
                knn=knn,
            )
            method = "umap"
        if prev is not None:
            coords = procrustes_align(coords, prev["coords"])
        self.prev[key] = {
            "coords": coords,
            "method": method,
            "params": dict(params),
            "knn": None if knn is None else knn[0],
        }
        return coords, method


# umap-learn jit-compiles these without cache=True, so every fresh worker paid ~10 s for
# them. Their compiled code does not depend on our data beyond dtypes, so caching it on
# disk is safe. The parallel layout variant is left alone: it shares its Python function
# (and so its cache file) with the serial one, and numba's cache key ignores `parallel`.
_NUMBA_CACHEABLE = {
    "umap.umap_": ("smooth_knn_dist", "compute_membership_strengths"),
    "umap.layouts": ("_nb_optimize_layout_euclidean_single_epoch", "clip", "tau_rand_int"),
    "umap.utils": ("tau_rand_int", "tau_rand"),
}


def _enable_numba_cache() -> None:
    import importlib

    for module_name, names in _NUMBA_CACHEABLE.items():
        module = importlib.import_module(module_name)
        for name in names:
            fn = getattr(module, name, None)
            if fn is None or not hasattr(fn, "enable_caching") or fn.signatures:
                continue
            try:
                fn.enable_caching()
            except Exception:  # no writable cache location: just compile as before
                pass


def _warm_up(params: dict[str, Any]) -> None:
    """Compile umap's numba paths on tiny data, like the real frames will use them.

    Three separated clusters so the spectral init takes the multi-component path too;
    both a cold (spectral) and a warm (array init) fit.
    """
    _quiet()
    _enable_numba_cache()
    rng = np.random.default_rng(0)
    centres = rng.normal(0.0, 20.0, size=(3, 8))
    pts = (centres[rng.integers(0, 3, 240)] + rng.normal(size=(240, 8))).astype(np.float32)
    metric = params.get("metric", "euclidean")
    seed = params.get("seed", 0)
    knn = exact_knn(pts, 10, metric)
    coords = umap_2d(pts, n_neighbors=10, metric=metric, seed=seed, n_epochs=20, knn=knn)
    umap_2d(pts, n_neighbors=10, metric=metric, seed=seed, n_epochs=20, init=coords, knn=knn)


def compile_kernels() -> None:
    """Compile and cache umap's numba kernels for both metrics (run once per install),
    so even the first launch's worker finds them on disk instead of compiling for ~50 s."""
    for metric in METRICS:
        _warm_up({"metric": metric, "seed": 0})


def _worker_main(conn: Any, params: dict[str, Any]) -> None:
    """Worker loop: warm up in a thread, serve jobs one at a time, PCA until warm."""
    # Ctrl-C in a terminal reaches the whole process group; the parent decides our fate.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # One core for projection, the rest for training: thread pools that oversubscribe
    # the cores spin against torch's training threads (set before torch/numba load).
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                "NUMBA_NUM_THREADS"):
        os.environ[var] = "1"
    _quiet()
    ready = threading.Event()
    warm_error: list[str] = []
    warm_thread: threading.Thread | None = None

    def warm(warm_params: dict[str, Any]) -> None:
        try:
            _warm_up(warm_params)
        except Exception as exc:  # reported to the parent; PCA keeps being served
            warm_error.append(f"UMAP warm-up failed: {exc!r}")
        finally:
            ready.set()

    def start_warm_up(warm_params: dict[str, Any]) -> None:
        nonlocal warm_thread
        if warm_thread is None:
            warm_thread = threading.Thread(
                target=warm, args=(warm_params,), name="umap-warm-up", daemon=True
            )
            warm_thread.start()

    # A PCA-only service never pays for importing torch and umap.
    if params["method"] == "umap":
        start_warm_up(params)
    projector = _Projector()
    announced = False
    umap_ok = False
    conn.send(("hello",))
    while True:
        if ready.is_set() and not announced:
            announced = True
            umap_ok = not warm_error
            conn.send(("ready", umap_ok, warm_error[0] if warm_error else None))
        try:
            if not conn.poll(0.05):
                continue
            msg = conn.recv()
        except (EOFError, OSError):
            break  # the parent is gone
        if msg[0] == "stop":
            break
        job = msg[1]
        if job["params"]["method"] == "umap":
            start_warm_up(job["params"])
        t0 = time.perf_counter()
        try:
            coords, method = projector.run(job, umap_ok)
        except Exception as exc:
            conn.send(("error", job["seq"], f"{type(exc).__name__}: {exc}"))
            continue
        conn.send(("result", job["seq"], coords, method, time.perf_counter() - t0))
    conn.close()
    if warm_thread is not None and not ready.is_set():
        # The warm-up thread is still inside an import or a numba compile; interpreter
        # teardown around it is slow and can be noisy, so leave at once.
        os._exit(0)
    # Otherwise a normal exit, so the semaphores that umap's imports created are released
    # (skipping that makes multiprocessing's resource tracker warn about leaks).


# --------------------------------------------------------------------------------------
# Parent side


def _send_loop(conn: Any, outbox: queue.SimpleQueue, failed: threading.Event) -> None:
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

    def _set(self, method, n_neighbors, min_dist, metric, seed) -> None:
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
        self._outbox, self._send_failed = queue.SimpleQueue(), threading.Event()
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
            self._outbox.put(("stop",))
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

    def _handle(self, msg: tuple) -> None:
        kind = msg[0]
        if kind == "hello":
            self._worker_up = True
            return
        if kind == "ready":
            self._umap_ready = bool(msg[1])
            if msg[2]:
                self.error = msg[2]
            if self._umap_ready:
                # Upgrade the PCA stand-ins to real UMAP frames.
                for key, job in self._stand_in.items():
                    if key not in self._pending and (
                        self._inflight is None or self._inflight.key != key
                    ):
                        self._pending[key] = job
                self._stand_in.clear()
            return
        job = self._inflight
        if job is None or job.seq != msg[1]:
            return  # cannot happen with one job in flight; ignore defensively
        self._inflight = None
        if kind == "error":
            self.error = f"projection of request {job.request_id} ({job.key}) failed: {msg[2]}"
            return
        _, _, coords, method, seconds = msg
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
        payload = {
            "seq": job.seq,
            "key": key,
            "points": job.points,
            "full": job.full,
            "params": dict(self._params),
            "generation": self._generation,
        }
        self._inflight = job
        self._outbox.put(("job", payload))


__all__ = [
    "ProjectionResult",
    "ProjectionService",
    "exact_knn",
    "pca_2d",
    "procrustes_align",
    "umap_2d",
]
