"""SimHash buckets, class-by-class collision matrices and collision-vs-angle curves.

A SimHash table draws b random hyperplanes; a vector's bucket is the b sign bits of its
projections. Two vectors at angle a collide in one table with probability (1 - a/pi)^b.
"""

from __future__ import annotations

import numpy as np


class SimHash:
    """L independent tables of b random hyperplanes through the origin."""

    def __init__(self, dim: int, bits: int, tables: int, seed: int):
        rng = np.random.default_rng(seed)
        self.bits, self.tables = bits, tables
        self.planes = rng.standard_normal((tables, dim, bits)).astype(np.float32)
        self._weights = (1 << np.arange(bits, dtype=np.int64))

    def codes(self, v: np.ndarray) -> np.ndarray:
        """Bucket codes, shape (n, tables), each in [0, 2**bits)."""
        v = np.asarray(v, dtype=np.float32)
        flat = self.planes.transpose(1, 0, 2).reshape(v.shape[1], -1)
        signs = (v @ flat > 0).reshape(len(v), self.tables, self.bits)
        return (signs.astype(np.int64) * self._weights).sum(-1)


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
