"""The projection worker process: it warms up UMAP (numba compiles, cached on disk), then
serves one Job at a time with PCA until UMAP is ready, remembering each key's previous
frame for warm starts and alignment. It talks to engine.projection's service through the
typed messages below, over a multiprocessing pipe."""

from __future__ import annotations

import os
import signal
import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import threads
from .projection_maths import (
    COLD_EPOCHS,
    EXACT_KNN_MAX,
    METRICS,
    REFRESH_LEARNING_RATE,
    _knn_overlap,
    _quiet,
    exact_knn,
    pca_2d,
    procrustes_align,
    umap_2d,
    warm_epochs,
)


@dataclass
class Job:
    """Parent -> worker: project `points` (the newest request for `key`)."""

    seq: int
    key: str
    points: np.ndarray
    full: bool  # a full-quality re-fit (umap's own epochs, spectral start)
    params: dict  # method, n_neighbors, min_dist, metric, seed
    generation: int  # a new generation forgets the previous frames (warm starts)


@dataclass
class Stop:
    """Parent -> worker: exit."""


@dataclass
class Hello:
    """Worker -> parent: the worker reads its pipe now."""


@dataclass
class Ready:
    """Worker -> parent: the UMAP warm-up ended (`umap_ok`), or failed with `error`."""

    umap_ok: bool
    error: str | None


@dataclass
class Done:
    """Worker -> parent: job `seq`'s frame and which method made it."""

    seq: int
    coords: np.ndarray
    method: str
    seconds: float


@dataclass
class Failed:
    """Worker -> parent: job `seq` raised."""

    seq: int
    message: str


class _Projector:
    """The worker's per-key memory: previous frame and kNN, for warm starts and alignment."""

    def __init__(self) -> None:
        self.generation = -1
        self.prev: dict[str, dict[str, Any]] = {}

    def run(self, job: Job, umap_ready: bool) -> tuple[np.ndarray, str]:
        if job.generation != self.generation:
            self.generation = job.generation
            self.prev.clear()
        params = job.params
        key = job.key
        points = np.asarray(job.points, dtype=np.float32)
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
                not job.full
                and prev is not None
                and prev["method"] == "umap"
                and prev["params"] == params
            )
            rate = 1.0
            if job.full:
                n_epochs, init = None, "spectral"  # umap's own defaults: 500 / 200 epochs
            elif warm and prev is not None:
                # The more the neighbourhood graph moved since the last frame, the further
                # the layout must travel: scale epochs from WARM up to COLD, and the
                # learning rate from a refresh frame's up to a cold frame's.
                overlap = 1.0
                if knn is not None and prev["knn"] is not None:
                    overlap = _knn_overlap(knn[0], prev["knn"])
                frac = min(1.0, max(0.0, (0.6 - overlap) / 0.6))
                n_epochs = int(warm_epochs(n) + frac * (COLD_EPOCHS - warm_epochs(n)))
                rate = REFRESH_LEARNING_RATE + frac * (1.0 - REFRESH_LEARNING_RATE)
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
                learning_rate=rate,
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


def thread_lock_for_progress_bars() -> None:
    """umap's progress bars (tqdm) would make a multiprocessing lock: a named semaphore
    that the worker cannot release when it leaves mid-warm-up with os._exit, so the
    resource tracker warned of a leak as the app exited. A thread lock will do."""
    from tqdm import tqdm

    tqdm.set_lock(threading.RLock())


def _worker_main(conn: Any, params: dict[str, Any]) -> None:
    """Worker loop: warm up in a thread, serve jobs one at a time, PCA until warm."""
    # Ctrl-C in a terminal reaches the whole process group; the parent decides our fate.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threads.lower_priority()  # a frame may lag; the GUI thread and training may not
    # One core for projection, the rest for training: thread pools that oversubscribe
    # the cores spin against torch's training threads (set before torch/numba load).
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                "NUMBA_NUM_THREADS"):
        os.environ[var] = "1"
    _quiet()
    thread_lock_for_progress_bars()
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
    conn.send(Hello())
    while True:
        if ready.is_set() and not announced:
            announced = True
            umap_ok = not warm_error
            conn.send(Ready(umap_ok, warm_error[0] if warm_error else None))
        try:
            if not conn.poll(0.05):
                continue
            msg = conn.recv()
        except (EOFError, OSError):
            break  # the parent is gone
        if not isinstance(msg, Job):  # Stop
            break
        if msg.params["method"] == "umap":
            start_warm_up(msg.params)
        t0 = time.perf_counter()
        try:
            coords, method = projector.run(msg, umap_ok)
        except Exception as exc:
            conn.send(Failed(msg.seq, f"{type(exc).__name__}: {exc}"))
            continue
        conn.send(Done(msg.seq, coords, method, time.perf_counter() - t0))
    conn.close()
    if warm_thread is not None and not ready.is_set():
        # The warm-up thread is still inside an import or a numba compile; interpreter
        # teardown around it is slow and can be noisy, so leave at once.
        os._exit(0)
    # Otherwise a normal exit, so the semaphores that umap's imports created are released
    # (skipping that makes multiprocessing's resource tracker warn about leaks).
