"""The projection's numerics: PCA, exact kNN, UMAP with a precomputed kNN and warm
start, Procrustes alignment between frames. Pure functions, used by the projection worker
(engine.projection_worker) and importable for tests and benchmarks."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

METHODS = ("umap", "pca")
METRICS = ("euclidean", "cosine")
# Exact kNN is O(n^2) (one thread, 64 dims, load 2: 0.03 s at 2k, 0.15 s at 5k, 2.3 s at
# 20k points), while NN-descent is ~0.2 s at 10k but first costs every fresh worker ~60 s
# of numba compiling that its disk cache does not save. So exact up to here, approximate
# only beyond.
EXACT_KNN_MAX = 20_000
# A layout started from the previous snapshot's (a movie's frames, engine.animation) needs
# a few tens of epochs; a cold frame (the first one, or after a reset) starts from a
# spectral layout and needs more.
WARM_EPOCHS = 30
COLD_EPOCHS = 150
# A streamed refresh frame (engine.projection_worker) starts from the previous frame's
# layout, which is close to converged: it takes smaller steps (umap's learning rate, 1.0
# for a spectral start) over fewer epochs. A layout epoch costs O(n): beyond WARM_FULL_N
# points its base epochs shrink in proportion (to at least MIN_WARM_EPOCHS). Measured with
# bench/projection.py's data (6 refresh frames, trustworthiness of the last; umap-learn's
# defaults 0.997-0.998): 30 epochs (10 beyond 6,000 points) at rate 1.0 gave 0.995,
# 0.991 and 0.988 at 2k, 5k and 20k points; 20 (8) at 0.25 give 0.996, 0.996 and 0.996,
# and a third fewer epochs at 5k.
REFRESH_EPOCHS = 20
REFRESH_LEARNING_RATE = 0.25
WARM_FULL_N = 2000
MIN_WARM_EPOCHS = 8
# Bounds the memory of one kNN distance block (rows x n float32).
_KNN_BLOCK_BYTES = 64 << 20
# Columns per group of the kNN's two-stage selection (exact_knn).
_KNN_GROUP = 32


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
    # Columns in groups of _KNN_GROUP: padded with points infinitely far away.
    grouped = n >= 8 * _KNN_GROUP * k
    cols, col_sq = x, sq
    if grouped:
        pad = -n % _KNN_GROUP
        cols = torch.cat([x, x.new_zeros((pad, x.shape[1]))])
        col_sq = torch.cat([sq, sq.new_full((pad,), float("inf"))])
    n_cols = cols.shape[0]
    # Blocks of at most 1024 rows keep topk cache-friendly (2x faster than big blocks).
    rows = max(1, min(1024, _KNN_BLOCK_BYTES // (4 * max(n_cols, 1))))
    idx = np.empty((n, k), dtype=np.int32)
    dist = np.empty((n, k), dtype=np.float32)
    with torch.no_grad():
        for start in range(0, n, rows):
            block = x[start : start + rows]
            r = block.shape[0]
            # |b|^2 - 2ab in one addmm; the row's own |a|^2 cannot change its ranking, so
            # it is added to the k survivors only, as is the square root.
            d = torch.addmm(col_sq[None, :], block, cols.T, alpha=-2.0)
            local = torch.arange(r)
            # Rounding can leave a twin point closer than self; umap wants self first.
            d[local, local + start] = -float("inf")
            if grouped:
                # The k nearest lie in the k groups with the smallest minima (any other
                # group's every point is at least as far as the k-th of those minima):
                # topk over the group minima, then over those groups' points, instead
                # of over all n (the costliest part at 5,000 points).
                groups = d.view(r, -1, _KNN_GROUP)
                _, best = torch.topk(groups.amin(2), k, dim=1, largest=False, sorted=False)
                near = groups.gather(1, best[:, :, None].expand(-1, -1, _KNN_GROUP))
                vals, pos = torch.topk(near.reshape(r, -1), k, dim=1, largest=False,
                                       sorted=True)
                ind = (best[:, :, None] * _KNN_GROUP + torch.arange(_KNN_GROUP)).reshape(
                    r, -1).gather(1, pos)
            else:
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
    return max(MIN_WARM_EPOCHS, round(REFRESH_EPOCHS * min(1.0, WARM_FULL_N / max(n, 1))))


def _knn_overlap(a: np.ndarray, b: np.ndarray) -> float:
    """Mean fraction of shared neighbours between two kNN index tables of equal shape
    (a row's neighbours are distinct, as a kNN table's are)."""
    if a.shape != b.shape or a.size == 0:
        return 0.0
    # Row by row, which of a's neighbours are among b's: n x k x k comparisons (k is
    # n_neighbors), 20x faster than a sorted set intersection of all edges at 5k points.
    shared = 0
    for start in range(0, len(a), 4096):
        ra, rb = a[start : start + 4096], b[start : start + 4096]
        shared += int((ra[:, :, None] == rb[:, None, :]).any(2).sum())
    return shared / float(a.size)


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
    learning_rate: float = 1.0,
) -> np.ndarray:
    """One UMAP layout. knn: precomputed (indices, distances) or None for umap's own;
    learning_rate: the layout's initial step (umap's default 1.0)."""
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
        learning_rate=learning_rate,
        verbose=False,
        **kwargs,
    )
    coords = reducer.fit_transform(np.asarray(points, dtype=np.float32))
    return np.asarray(coords, dtype=np.float32)
