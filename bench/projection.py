"""Benchmark of the projection service against umap-learn's defaults; prints one JSON object.

Probe sets of 2,000 and 5,000 64-dim embeddings with class structure (40 classes: random
centres plus a curved 4-dim within-class manifold), drifting a little between frames as
they would while a network trains. For each size: median wall seconds per refresh frame
of our service (submit to result in hand), median seconds of `umap.UMAP().fit_transform`
with default settings on the same points, their ratio, and the trustworthiness of both
embeddings; plus the seconds from worker start to its first UMAP frame (2,000 points),
measured twice in fresh worker processes: with an empty numba cache (a brand-new install
that skipped `make`'s compile step) and with the cache that first worker left (every
launch after the install's compile step, the first one included).

    python bench/projection.py [--frames 6] [--default-runs 1]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import engine  # noqa: E402,F401  (thread settings before torch, BLAS, numba load)

# isort: split
import numpy as np  # noqa: E402

from engine import threads  # noqa: E402
from engine.projection import ProjectionService  # noqa: E402

CLASSES = 40
DIM = 64
MANIFOLD_DIM = 4


def probe_frames(n: int, frames: int, seed: int = 0) -> list[np.ndarray]:
    """`frames` versions of one probe set, each a small training step after the last."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0.0, 1.0, size=(CLASSES, DIM)) * 4.0
    lift = rng.normal(0.0, 1.0, size=(CLASSES, MANIFOLD_DIM, DIM)) / np.sqrt(MANIFOLD_DIM)
    label = np.arange(n) % CLASSES
    theta = rng.uniform(-1.5, 1.5, size=(n, MANIFOLD_DIM))
    # A curved within-class manifold (sin of a class-specific linear map), not a blob.
    bend = np.sin(np.einsum("nm,nmd->nd", theta, lift[label]) * 1.5) * 1.5
    x = centres[label] + bend + rng.normal(0.0, 0.1, size=(n, DIM))
    out = []
    for _ in range(frames):
        out.append(x.astype(np.float32))
        # Training moves class centres and points a little between snapshots.
        x = x + rng.normal(0.0, 0.05, size=(CLASSES, DIM))[label] + rng.normal(0.0, 0.03, x.shape)
    return out


def wait(svc: ProjectionService, request_id: int, method: str = "umap", timeout: float = 300):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for r in svc.poll():
            if r.request_id == request_id and r.method == method:
                return r
        time.sleep(0.002)
    raise TimeoutError(f"no {method} result for request {request_id}: {svc.error}")


def first_frame_s(points: np.ndarray, cache_dir: str) -> float:
    """Seconds from a fresh worker's start to its first UMAP frame, numba cache in cache_dir."""
    before = os.environ.get("NUMBA_CACHE_DIR")
    os.environ["NUMBA_CACHE_DIR"] = cache_dir  # the spawned worker inherits it
    try:
        with ProjectionService(method="umap", n_neighbors=15, min_dist=0.1, seed=0) as svc:
            svc.submit(1, points)
            wait(svc, 1)
            return round(time.monotonic() - svc.started_at, 2)
    finally:
        if before is None:
            os.environ.pop("NUMBA_CACHE_DIR", None)
        else:
            os.environ["NUMBA_CACHE_DIR"] = before


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=6, help="refresh frames per size")
    parser.add_argument("--default-runs", type=int, default=1, help="umap default fits per size")
    parser.add_argument("--sizes", type=int, nargs="+", default=[2000, 5000])
    parser.add_argument("--no-first-frame", action="store_true",
                        help="skip the fresh workers' first-frame timings")
    args = parser.parse_args()
    from sklearn.manifold import trustworthiness

    data = {n: probe_frames(n, args.frames + 1, seed=n) for n in args.sizes}
    report: dict[str, object] = {}
    load_before = os.getloadavg()
    rid = 0
    with ProjectionService(method="umap", n_neighbors=15, min_dist=0.1, seed=0) as svc:
        started = svc.started_at
        ours: dict[int, tuple[list[float], np.ndarray]] = {}
        for n in args.sizes:
            svc.reset()  # a new probe set
            rid += 1
            svc.submit(rid, data[n][0])
            wait(svc, rid)  # the cold frame (a PCA stand-in may come first at start-up)
            if "first_umap_frame_s" not in report:
                report["first_umap_frame_s"] = round(time.monotonic() - started, 2)
            walls = []
            for frame in data[n][1:]:
                rid += 1
                t0 = time.perf_counter()
                svc.submit(rid, frame)
                result = wait(svc, rid)
                walls.append(time.perf_counter() - t0)
            ours[n] = (walls, result.coords)

    # Defaults run after the worker is gone so the two never share the 2 cores. Their
    # numba code is compiled first, untimed, so we compare steady states.
    import umap

    warnings.filterwarnings("ignore")
    warm = np.random.default_rng(1).normal(size=(300, DIM)).astype(np.float32)
    umap.UMAP(n_epochs=20).fit_transform(warm)
    umap.UMAP(n_epochs=20, force_approximation_algorithm=True).fit_transform(warm)
    for n in args.sizes:
        last = data[n][-1]
        times = []
        for _ in range(args.default_runs):
            t0 = time.perf_counter()
            default_coords = umap.UMAP().fit_transform(last)
            times.append(time.perf_counter() - t0)
        walls, coords = ours[n]
        ours_s = statistics.median(walls)
        default_s = statistics.median(times)
        report[str(n)] = {
            "ours_s": round(ours_s, 3),
            "default_s": round(default_s, 3),
            "speedup": round(default_s / ours_s, 1),
            "trust_ours": round(float(trustworthiness(last, coords)), 4),
            "trust_default": round(float(trustworthiness(last, default_coords)), 4),
        }
    first = report.pop("first_umap_frame_s")
    report["first_umap_frame_s"] = first  # last, in the key order
    if not args.no_first_frame:
        with tempfile.TemporaryDirectory(prefix="gsh-numba-") as cache_dir:
            points = probe_frames(2000, 1, seed=7)[0]
            report["first_umap_frame_cold_cache_s"] = first_frame_s(points, cache_dir)
            report["first_umap_frame_warm_cache_s"] = first_frame_s(points, cache_dir)
    report.update(threads.conditions(load_before))
    print(json.dumps(report))


if __name__ == "__main__":
    main()
