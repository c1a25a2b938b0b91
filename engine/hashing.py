"""SimHash buckets, class-by-class collision matrices and collision-vs-angle curves.

A SimHash table draws b random hyperplanes; a vector's bucket is the b sign bits of its
projections. Two vectors at angle a collide in one table with probability (1 - a/pi)^b.
Every collision rate GSH Lab reports is that expectation over hyperplanes, in closed
form (`exact_collision_matrix`); drawn tables (`SimHash`) serve the LSH index and the
bucket codes of single points. Vectors are hashed after subtracting a fixed centre, the
mean of the seen classes' rows (`seen_center`), never of the rows being tested.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import numpy as np

from .metrics import Episode, Stopped


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


def seen_center(features: np.ndarray, seen: np.ndarray) -> np.ndarray:
    """The hash's centre: the mean of the seen classes' rows (float32)."""
    f = np.asarray(features, dtype=np.float64)
    return f[np.asarray(seen, dtype=bool)].mean(0).astype(np.float32)


def center_of(embedding: np.ndarray, hash_center: np.ndarray | None) -> np.ndarray:
    """A recorded snapshot's hash centre; records made before it was recorded (schema 1
    and 2) hashed around the mean of all probe rows."""
    if hash_center is not None and np.size(hash_center) == np.shape(embedding)[1]:
        return np.asarray(hash_center, dtype=np.float32)
    return np.asarray(embedding, dtype=np.float32).mean(0)


EXACT_BLOCK_ROWS = 512  # rows per block of the pairwise closed form (memory ~ block x n)


def _unit_rows(features: np.ndarray, center: np.ndarray) -> np.ndarray:
    """Rows minus the centre, scaled to unit length, plus one column that is 1 for a row
    that sits exactly on the centre: the dot product of two rows is then the cosine of
    their angle, 1 for two rows on the centre (every hyperplane gives both the same
    bits: they always collide, as a collapsed network's rows do) and 0 for one row on
    the centre and one off it (each bit agrees with probability 1/2)."""
    f = np.asarray(features, dtype=np.float32) - np.asarray(center, dtype=np.float32)
    norm = np.linalg.norm(f, axis=1, keepdims=True)
    on_center = (norm == 0).astype(np.float32)
    return np.hstack([f / np.maximum(norm, 1e-30), on_center])


def agreement(cos: np.ndarray, bits: int = 1) -> np.ndarray:
    """(1 - angle/pi)^bits from cosines, in place on a float32 array: the probability that
    `bits` random hyperplanes all put the two vectors on the same side."""
    np.clip(cos, -1.0, 1.0, out=cos)
    p = np.arccos(cos, out=cos)
    p *= np.float32(-1.0 / np.pi)
    p += np.float32(1.0)
    out = p.copy() if bits > 1 else p
    for _ in range(bits - 1):
        out *= p
    return out


def exact_collision_matrix(
    features: np.ndarray, center: np.ndarray, class_index: np.ndarray, n_classes: int,
    bits: int,
) -> np.ndarray:
    """The expected SimHash collision rate of one table of `bits` random hyperplanes, for
    every pair of classes: the mean over row pairs (x in class a, x' in class b, x != x')
    of (1 - angle(x - c, x' - c)/pi)^bits, c the hash centre. Averaging over L tables
    leaves the expectation unchanged. Computed in blocks of rows (BLAS)."""
    u = _unit_rows(features, center)
    n = len(u)
    onehot = np.zeros((n, n_classes), dtype=np.float32)
    onehot[np.arange(n), class_index] = 1.0
    hits = np.zeros((n_classes, n_classes))
    for start in range(0, n, EXACT_BLOCK_ROWS):  # the upper block triangle: symmetric
        stop = min(start + EXACT_BLOCK_ROWS, n)
        r = stop - start
        p = agreement(u[start:stop] @ u[start:].T, bits)
        p[np.arange(r), np.arange(r)] = 0.0  # no self-pairs
        hits += onehot[start:stop].T @ (p[:, :r] @ onehot[start:stop])
        if stop < n:
            off = onehot[start:stop].T @ (p[:, r:] @ onehot[stop:])
            hits += off + off.T
    counts = np.bincount(class_index, minlength=n_classes).astype(np.float64)
    pairs = np.outer(counts, counts)
    np.fill_diagonal(pairs, counts * (counts - 1))
    return np.where(pairs > 0, hits / np.maximum(pairs, 1), 0.0)


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
    pair_i: np.ndarray, pair_j: np.ndarray, center: np.ndarray | None = None,
) -> np.ndarray:
    """Angle (radians) between the mean vectors of classes i and j, for each pair.

    Features are centred on the hash centre first (their overall mean when None), as
    SimHash hashes them, so on this axis (1 - angle/pi)^b is SimHash's own prediction for
    the class means."""
    f = np.asarray(features, dtype=np.float64)
    f = f - (f.mean(0) if center is None else np.asarray(center, dtype=np.float64))
    sums = np.zeros((n_classes, f.shape[1]))
    np.add.at(sums, class_index, f)
    means = sums / np.maximum(np.bincount(class_index, minlength=n_classes), 1)[:, None]
    unit = means / np.maximum(np.linalg.norm(means, axis=1, keepdims=True), 1e-12)
    return np.arccos(np.clip((unit[pair_i] * unit[pair_j]).sum(1), -1.0, 1.0))


def lsh_theory(p: np.ndarray, bits: int, tables: int) -> np.ndarray:
    """P[two vectors share a bucket in at least one of L tables of b bits], given the
    probability p that one hyperplane puts them on the same side: 1 - (1 - p^b)^L."""
    return 1.0 - (1.0 - np.asarray(p, dtype=np.float64) ** bits) ** tables


def lsh_pair_index(episodes: Sequence[Episode]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The rows the episodes' query-exemplar pairs touch, and each pair's query and
    exemplar positions among them (fixed per run: lsh_pair_agreements' `index`)."""
    if not len(episodes):
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty
    q = np.concatenate([np.asarray(e[1]) for e in episodes])
    own = np.concatenate([np.asarray(e[0])[np.asarray(e[2])] for e in episodes])
    rows, inverse = np.unique(np.concatenate([q, own]), return_inverse=True)
    return rows, inverse[: len(q)], inverse[len(q):]


def lsh_pair_agreements(
    embedding: np.ndarray, episodes: Sequence[Episode], center: np.ndarray | None = None,
    index: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
) -> np.ndarray:
    """Per query of every episode, p_i = 1 - angle_i/pi between it and its own class's
    exemplar (on the embedding minus `center`; the mean of all rows when None): the
    expected per-bit agreement of the pairs whose recall the LSH index measures.
    `index`, lsh_pair_index(episodes), may be passed when it is already at hand."""
    rows, query, own = lsh_pair_index(episodes) if index is None else index
    if not len(query):
        return np.zeros(0, dtype=np.float32)
    f = np.asarray(embedding, dtype=np.float32)
    c = f.mean(0) if center is None else np.asarray(center, dtype=np.float32)
    unit = _unit_rows(f[rows], c)  # each touched row once
    cos = (unit @ unit.T)[query, own]  # pairs recur: one product
    return agreement(cos.astype(np.float32))


def lsh_theory_over_pairs(p: np.ndarray, bits: int, tables: np.ndarray | Sequence[float]
                          ) -> np.ndarray:
    """The recall expected over hyperplanes of pairs with per-bit agreements p_i: the mean
    over pairs of 1 - (1 - p_i^b)^L, for each L in `tables` (not the theory at the mean p,
    which by Jensen's inequality under-predicts it)."""
    q = 1.0 - np.asarray(p, dtype=np.float64) ** bits
    L = np.atleast_1d(np.asarray(tables, dtype=np.float64))
    if not q.size:
        return np.full(L.shape, np.nan)
    if L.size > 1 and np.all(L == np.round(L)) and 0 <= L.min() and L.max() <= 4 * L.size:
        # whole numbers of tables (a curve over L = 1, 2, ...): q^L by one multiplication
        # per table instead of a power per pair and L (a panel redraws it per snapshot)
        out = np.empty(L.shape)
        power, done = np.ones_like(q), 0
        for i in np.argsort(L, kind="stable"):
            for _ in range(int(L[i]) - done):
                power *= q
            done = int(L[i])
            out[i] = 1.0 - power.mean()
        return out
    return 1.0 - (q[None, :] ** L[:, None]).mean(1)


EPISODE_BATCH_CELLS = 1 << 20  # query-exemplar pairs compared at once by the LSH index


def _episode_batches(support: list[np.ndarray], queries: list[np.ndarray],
                     targets: list[np.ndarray], pos: np.ndarray
                     ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """The episodes as (support, queries, targets) arrays of positions, several equal-sized
    episodes stacked per batch (one at a time when their sizes differ)."""
    same = len({len(q) for q in queries}) == 1 and len({len(x) for x in support}) == 1
    cells = max(1, len(queries[0]) * len(support[0])) if queries else 1
    step = max(1, EPISODE_BATCH_CELLS // cells) if same else 1
    for i in range(0, len(queries), step):
        yield (pos[np.stack(support[i : i + step])], pos[np.stack(queries[i : i + step])],
               np.stack(targets[i : i + step]))


def lsh_index_oneshot(
    embedding: np.ndarray, episodes: Sequence[Episode], bits: int, tables: int, seed: int,
    should_stop: Callable[[], bool] | None = None, center: np.ndarray | None = None,
) -> dict[str, float]:
    """One-shot learning through an LSH index instead of exact nearest neighbours.

    Per episode, each class's one exemplar is stored in L SimHash tables of b bits (on
    the embedding minus `center`, the hash centre; the mean of all rows when None, as
    records before schema 3 did). A query's candidates are the exemplars sharing its
    bucket in any table. Returns, over all queries, for this one draw of hyperplanes:
    recall (its class's exemplar is a candidate), candidates (mean number per query),
    oneshot (the cosine-nearest candidate is of its class; no candidate is a miss) and
    bit_agreement (fraction of hyperplanes on which query and true exemplar agree); and
    recall_theory, the recall expected over hyperplanes: the mean over queries of
    lsh_theory(p) with p = 1 - angle/pi of the query and its true exemplar."""
    f = np.asarray(embedding, dtype=np.float32)
    h = SimHash(f.shape[1], bits, tables, seed)
    support = [np.asarray(e[0]) for e in episodes]
    queries = [np.asarray(e[1]) for e in episodes]
    targets = [np.asarray(e[2]) for e in episodes]
    # only the rows the episodes touch are hashed and compared (the unseen classes')
    rows = np.unique(np.concatenate(support + queries))
    pos = np.full(len(f), -1, dtype=np.int64)
    pos[rows] = np.arange(len(rows))
    c = f.mean(0) if center is None else np.asarray(center, dtype=np.float32)
    signs = h.signs(f[rows] - c)
    codes = (signs.astype(np.int64) * h._weights).sum(-1)  # (r, tables)
    # row-by-row tables of the touched rows, then per episode its exemplars' columns
    n = len(rows)
    codes32 = codes.astype(np.int32)  # bits <= 24
    share = np.zeros((n, n), dtype=bool)  # a bucket in common, in any table
    for table in range(tables):
        share |= codes32[:, table][:, None] == codes32[:, table][None, :]
    unit = f[rows] / np.maximum(np.linalg.norm(f[rows], axis=1, keepdims=True), 1e-12)
    # cosine similarity where the pair shares a bucket, below -2 where it does not: one
    # gather then gives the candidates and the nearest of them
    score = unit @ unit.T
    score[~share] -= np.float32(4.0)
    flat_signs = signs.reshape(n, -1)
    u = _unit_rows(f[rows], c)
    totals = np.zeros(5)
    n_queries = 0
    for k, (s, q, t) in enumerate(_episode_batches(support, queries, targets, pos)):
        if should_stop is not None and k % 16 == 0 and should_stop():
            raise Stopped  # the run is being aborted (window closing)
        picked = score[q[:, :, None], s[:, None, :]]  # (episodes, queries, ways)
        match = picked > -2.0
        true_s = np.take_along_axis(s, t, axis=1)  # each query's own exemplar
        totals += (
            np.take_along_axis(match, t[:, :, None], axis=2).sum(),
            match.sum(),
            (match.any(2) & (np.argmax(picked, axis=2) == t)).sum(),
            (flat_signs[q] == flat_signs[true_s]).mean(2).sum(),  # share of equal sign bits
            # expected over hyperplanes, from each query's angle to its true exemplar
            lsh_theory(agreement((u[q] * u[true_s]).sum(2)), bits, tables).sum(),
        )
        n_queries += q.size
    recall, cands, hits, agree, expected = totals / max(n_queries, 1)
    return {"recall": float(recall), "candidates": float(cands), "oneshot": float(hits),
            "bit_agreement": float(agree), "recall_theory": float(expected)}


SPREAD_DRAWS = 200  # draws of tables behind a sampled LSH figure's 5th-95th percentiles


def lsh_spread(
    embedding: np.ndarray, episodes: Sequence[Episode], bits: int, tables: int, seed: int,
    center: np.ndarray | None = None, draws: int = SPREAD_DRAWS,
    should_stop: Callable[[], bool] | None = None,
) -> dict[str, tuple[float, float]]:
    """5th and 95th percentiles of the LSH index's one-draw figures (recall, candidates
    per query, hash-only one-shot) over `draws` fresh draws of L tables of b bits: how far
    the run's one draw could have landed. All draws are hashed in one product and
    compared episode by episode."""
    f = np.asarray(embedding, dtype=np.float32)
    c = f.mean(0) if center is None else np.asarray(center, dtype=np.float32)
    rows = np.unique(np.concatenate([np.asarray(e[0]) for e in episodes]
                                    + [np.asarray(e[1]) for e in episodes]))
    pos = np.full(len(f), -1, dtype=np.int64)
    pos[rows] = np.arange(len(rows))
    v = f[rows] - c
    rng = np.random.default_rng(seed)
    planes = rng.standard_normal((f.shape[1], draws * tables * bits)).astype(np.float32)
    signs = (v @ planes > 0).reshape(len(rows), draws, tables, bits)
    codes = (signs.astype(np.int64) << np.arange(bits)).sum(-1).astype(np.int32)
    # the nearest candidate by cosine on the embedding itself, as lsh_index_oneshot and
    # one-shot accuracy pick it (the centre only places the hyperplanes)
    unit = f[rows] / np.maximum(np.linalg.norm(f[rows], axis=1, keepdims=True), 1e-12)
    cos = unit @ unit.T
    totals = np.zeros((3, draws))
    n_queries = 0
    for sp, qs, t in episodes:
        if should_stop is not None and should_stop():
            raise Stopped
        s, q, t = pos[np.asarray(sp)], pos[np.asarray(qs)], np.asarray(t)
        match = (codes[q][:, None] == codes[s][None, :]).any(-1)  # (Q, W, draws)
        score = np.where(match, cos[np.ix_(q, s)][:, :, None], -2.0)
        r = np.arange(len(q))
        totals[0] += match[r, t].sum(0)
        totals[1] += match.sum((0, 1))
        totals[2] += (match.any(1) & (np.argmax(score, axis=1) == t[:, None])).sum(0)
        n_queries += len(q)
    figs = totals / max(n_queries, 1)
    lo, hi = np.percentile(figs, [5, 95], axis=1)
    return {k: (float(lo[i]), float(hi[i]))
            for i, k in enumerate(("recall", "candidates", "oneshot"))}


def bucket_mates_spread(
    features: np.ndarray, center: np.ndarray, row: int, bits: int, class_index: np.ndarray,
    seed: int, draws: int = SPREAD_DRAWS,
) -> dict[str, tuple[float, float]]:
    """How many other rows share `row`'s bucket in one table of `bits` hyperplanes, over
    `draws` fresh draws of that table: 5th and 95th percentiles of all of them ("all") and
    of those of its class ("own"), and their expectations over hyperplanes ("expected":
    the sums of (1 - angle/pi)^bits over the other rows)."""
    f = np.asarray(features, dtype=np.float32) - np.asarray(center, dtype=np.float32)
    planes = np.random.default_rng(seed).standard_normal(
        (f.shape[1], draws * bits)).astype(np.float32)
    side = (f @ planes > 0).reshape(len(f), draws, bits)
    same = (side == side[row]).all(-1)  # (n, draws): shares the bucket in that draw
    same[row] = False
    own = np.asarray(class_index) == class_index[row]
    counts = np.stack([same.sum(0), same[own].sum(0)])
    lo, hi = np.percentile(counts, [5, 95], axis=1)
    u = _unit_rows(f, np.zeros(f.shape[1], dtype=np.float32))
    p = agreement(u @ u[row], bits)
    p[row] = 0.0
    return {"all": (float(lo[0]), float(hi[0])), "own": (float(lo[1]), float(hi[1])),
            "expected": (float(p.sum()), float(p[own].sum()))}
