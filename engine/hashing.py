"""SimHash buckets, class-by-class collision matrices and collision-vs-angle curves.

A SimHash table draws b random hyperplanes; a vector's bucket is the b sign bits of its
projections. Two vectors at angle a collide in one table with probability (1 - a/pi)^b.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .metrics import Stopped


class SimHash:
    """L independent tables of b random hyperplanes through the origin."""

    def __init__(self, dim: int, bits: int, tables: int, seed: int):
        rng = np.random.default_rng(seed)
        self.bits, self.tables = bits, tables
        self.planes = rng.standard_normal((tables, dim, bits)).astype(np.float32)
        self._weights = (1 << np.arange(bits, dtype=np.int64))

    def signs(self, v: np.ndarray) -> np.ndarray:
        """Which side of each hyperplane, shape (n, tables, bits)."""
        v = np.asarray(v, dtype=np.float32)
        flat = self.planes.transpose(1, 0, 2).reshape(v.shape[1], -1)
        return (v @ flat > 0).reshape(len(v), self.tables, self.bits)

    def codes(self, v: np.ndarray) -> np.ndarray:
        """Bucket codes, shape (n, tables), each in [0, 2**bits)."""
        return (self.signs(v).astype(np.int64) * self._weights).sum(-1)


def collision_matrix(codes: np.ndarray, class_index: np.ndarray, n_classes: int) -> np.ndarray:
    """P[h(x) = h(x')] for x in class a, x' in class b, averaged over tables.

    Self-pairs (x with itself) are excluded from the diagonal. Counted per bucket, so
    the cost is linear in the number of points.
    """
    n, tables = codes.shape
    counts = np.bincount(class_index, minlength=n_classes).astype(np.float64)
    hits = np.zeros((n_classes, n_classes))
    for t in range(tables):
        _, bucket = np.unique(codes[:, t], return_inverse=True)
        hist = np.zeros((n_classes, bucket.max() + 1))
        np.add.at(hist, (class_index, bucket), 1.0)
        hits += hist @ hist.T
    hits /= tables
    pairs = np.outer(counts, counts)
    np.fill_diagonal(hits, np.diag(hits) - counts)  # drop self-pairs
    np.fill_diagonal(pairs, counts * (counts - 1))
    with np.errstate(invalid="ignore", divide="ignore"):
        m = np.where(pairs > 0, hits / np.maximum(pairs, 1), 0.0)
    return m


def same_and_different(matrix: np.ndarray, class_index: np.ndarray) -> tuple[float, float]:
    """Pair-weighted same-class and different-class collision rates from a matrix."""
    counts = np.bincount(class_index, minlength=len(matrix)).astype(np.float64)
    pairs = np.outer(counts, counts)
    np.fill_diagonal(pairs, counts * (counts - 1))
    diag = np.eye(len(matrix), dtype=bool)
    same = (matrix[diag] * pairs[diag]).sum() / max(pairs[diag].sum(), 1)
    diff = (matrix[~diag] * pairs[~diag]).sum() / max(pairs[~diag].sum(), 1)
    return float(same), float(diff)


def gamma_pair_angles(gamma: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Angles between class gammas for all pairs i<j, and the (i, j) index arrays."""
    g = gamma / np.linalg.norm(gamma, axis=1, keepdims=True)
    i, j = np.triu_indices(len(g), k=1)
    cos = np.clip((g[i] * g[j]).sum(1), -1.0, 1.0)
    return np.arccos(cos), np.stack([i, j])


def theory_curve(angle: np.ndarray, bits: int) -> np.ndarray:
    """SimHash's collision probability for two vectors at this angle: (1 - angle/pi)^b."""
    return (1.0 - np.asarray(angle) / np.pi) ** bits


def split_rates(
    matrix: np.ndarray, class_index: np.ndarray, class_seen: np.ndarray
) -> dict[str, float]:
    """Same- and different-class collision rates among seen classes only (seen-seen pairs)
    and among unseen classes only (unseen-unseen pairs), pair-weighted as in
    same_and_different. Keys: seen_same, seen_different, unseen_same, unseen_different."""
    out = {}
    for name, flag in (("seen", True), ("unseen", False)):
        keep = np.flatnonzero(np.asarray(class_seen) == flag)
        rows = np.isin(class_index, keep)
        remap = np.full(len(matrix), -1, dtype=np.int64)
        remap[keep] = np.arange(len(keep))
        sub = matrix[np.ix_(keep, keep)]
        same, diff = (same_and_different(sub, remap[class_index[rows]]) if len(keep)
                      else (float("nan"), float("nan")))
        out[f"{name}_same"], out[f"{name}_different"] = same, diff
    return out


def class_mean_angles(
    features: np.ndarray, class_index: np.ndarray, n_classes: int,
    pair_i: np.ndarray, pair_j: np.ndarray,
) -> np.ndarray:
    """Angle (radians) between the mean vectors of classes i and j, for each pair.

    Features are centred on their overall mean first, as SimHash hashes them, so on this
    axis (1 - angle/pi)^b is SimHash's own prediction for the class means."""
    f = np.asarray(features, dtype=np.float64)
    f = f - f.mean(0)
    sums = np.zeros((n_classes, f.shape[1]))
    np.add.at(sums, class_index, f)
    means = sums / np.maximum(np.bincount(class_index, minlength=n_classes), 1)[:, None]
    unit = means / np.maximum(np.linalg.norm(means, axis=1, keepdims=True), 1e-12)
    return np.arccos(np.clip((unit[pair_i] * unit[pair_j]).sum(1), -1.0, 1.0))


def lsh_theory(p: np.ndarray, bits: int, tables: int) -> np.ndarray:
    """P[two vectors share a bucket in at least one of L tables of b bits], given the
    probability p that one hyperplane puts them on the same side: 1 - (1 - p^b)^L."""
    return 1.0 - (1.0 - np.asarray(p, dtype=np.float64) ** bits) ** tables


def lsh_index_oneshot(
    embedding: np.ndarray, episodes, bits: int, tables: int, seed: int,
    should_stop: Callable[[], bool] | None = None,
) -> dict[str, float]:
    """One-shot learning through an LSH index instead of exact nearest neighbours.

    Per episode, each class's one exemplar is stored in L SimHash tables of b bits (on
    the embedding centred on its mean over all rows, as the collision figures hash it).
    A query's candidates are the exemplars sharing its bucket in any table. Returns, over
    all queries: recall (its class's exemplar is a candidate), candidates (mean number per
    query), oneshot (the cosine-nearest candidate is of its class; no candidate is a miss)
    and bit_agreement (fraction of hyperplanes on which query and true exemplar agree: the
    p of lsh_theory)."""
    f = np.asarray(embedding, dtype=np.float32)
    h = SimHash(f.shape[1], bits, tables, seed)
    support = [np.asarray(e[0]) for e in episodes]
    queries = [np.asarray(e[1]) for e in episodes]
    targets = [np.asarray(e[2]) for e in episodes]
    # only the rows the episodes touch are hashed and compared (the unseen classes')
    rows = np.unique(np.concatenate(support + queries))
    pos = np.full(len(f), -1, dtype=np.int64)
    pos[rows] = np.arange(len(rows))
    signs = h.signs(f[rows] - f.mean(0))
    codes = (signs.astype(np.int64) * h._weights).sum(-1)  # (r, tables)
    # row-by-row tables of the touched rows, then per episode its exemplars' columns
    n = len(rows)
    codes32 = codes.astype(np.int32)  # bits <= 24
    share = np.zeros((n, n), dtype=bool)  # a bucket in common, in any table
    for t in range(tables):
        share |= codes32[:, t][:, None] == codes32[:, t][None, :]
    unit = f[rows] / np.maximum(np.linalg.norm(f[rows], axis=1, keepdims=True), 1e-12)
    # cosine similarity where the pair shares a bucket, below -2 where it does not: one
    # gather then gives the candidates and the nearest of them
    score = unit @ unit.T
    score[~share] -= np.float32(4.0)
    pm = np.where(signs.reshape(n, -1), 1.0, -1.0).astype(np.float32)
    agreement = (pm @ pm.T + pm.shape[1]) / (2 * pm.shape[1])  # share of equal sign bits
    totals = np.zeros(4)
    n_queries = 0
    for k, (sp, qs, t) in enumerate(zip(support, queries, targets, strict=True)):
        if should_stop is not None and k % 1024 == 0 and should_stop():
            raise Stopped  # the run is being aborted (window closing)
        s, q = pos[sp], pos[qs]
        picked = score[:, s][q]  # (queries, ways): exemplar columns, then query rows
        match = picked > -2.0
        r = np.arange(len(q))
        totals += (
            match[r, t].sum(),
            match.sum(),
            (match.any(1) & (np.argmax(picked, axis=1) == t)).sum(),
            agreement[q, s[t]].sum(),
        )
        n_queries += len(q)
    recall, cands, hits, agree = totals / max(n_queries, 1)
    return {"recall": float(recall), "candidates": float(cands), "oneshot": float(hits),
            "bit_agreement": float(agree)}
