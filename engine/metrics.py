"""One-shot accuracy on unseen classes, theta-invariance and the baselines they are read against."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

# One-shot scoring gathers episodes in batches of about this many bytes, checking for an
# abort between batches (engine/resources.py counts on this bound).
ONESHOT_BATCH_BYTES = 64 << 20


class Stopped(Exception):
    """A long measurement was abandoned because its run is being aborted."""


def _check(should_stop: Callable[[], bool] | None) -> None:
    if should_stop is not None and should_stop():
        raise Stopped


def oneshot_episodes(
    class_index: np.ndarray, classes: np.ndarray, ways: int, episodes: int, seed: int,
    should_stop: Callable[[], bool] | None = None,
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Fixed N-way one-shot episodes: (support rows, query rows, query targets 0..ways-1).

    Each episode picks `ways` of the given classes and one exemplar of each; every other
    probe row of those classes is a query. Drawn once, so every representation (trained,
    untrained, raw input) is scored on the very same episodes.
    """
    rng = np.random.default_rng(seed)
    rows_by_class = {c: np.flatnonzero(class_index == c) for c in classes}
    out = []
    for i in range(episodes):
        if i % 256 == 0:
            _check(should_stop)
        chosen = rng.choice(classes, size=ways, replace=False)
        support, queries, targets = [], [], []
        for k, c in enumerate(chosen):
            rows = rows_by_class[c]
            s = rng.choice(rows)
            support.append(s)
            q = rows[rows != s]
            queries.append(q)
            targets.append(np.full(len(q), k))
        out.append((np.array(support), np.concatenate(queries), np.concatenate(targets)))
    return out


def _unit(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, dtype=np.float64)
    return v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)


def oneshot_accuracy(
    features: np.ndarray, episodes, should_stop: Callable[[], bool] | None = None
) -> float:
    """Mean accuracy of cosine nearest-exemplar classification over the episodes.

    `should_stop` is polled between batches of episodes; when it returns True the
    measurement raises Stopped (memory per batch is bounded by ONESHOT_BATCH_BYTES).
    """
    f = _unit(features).astype(np.float32)
    support = [e[0] for e in episodes]
    queries = [e[1] for e in episodes]
    targets = [e[2] for e in episodes]
    if len({len(q) for q in queries}) == 1 and len({len(s) for s in support}) == 1:
        # equal-sized episodes (the usual probe): one gather per batch of episodes
        n_ep = len(episodes)
        b = max(1, ONESHOT_BATCH_BYTES // (4 * max(len(queries[0]) * len(support[0]), 1)))
        rows = np.unique(np.concatenate([
            np.unique(np.concatenate([*support[i : i + b], *queries[i : i + b]]))
            for i in range(0, n_ep, b)
        ]))
        pos = np.full(len(f), -1, dtype=np.int64)
        pos[rows] = np.arange(len(rows))
        _check(should_stop)
        sims = f[rows] @ f[rows].T
        per_episode = []
        for i in range(0, n_ep, b):
            _check(should_stop)
            q, s = pos[np.stack(queries[i : i + b])], pos[np.stack(support[i : i + b])]
            picked = sims[q[:, :, None], s[:, None, :]]  # (episodes, queries, ways)
            hits = np.argmax(picked, axis=2) == np.stack(targets[i : i + b])
            per_episode.append(hits.mean(axis=1))
        return float(np.concatenate(per_episode).mean())
    accs = []
    for k, (s, q, t) in enumerate(zip(support, queries, targets, strict=True)):
        if k % 256 == 0:
            _check(should_stop)
        accs.append(np.mean(np.argmax(f[q] @ f[s].T, axis=1) == t))
    return float(np.mean(accs))


def invariance_ratio(features: np.ndarray, class_index: np.ndarray) -> float:
    """Mean within-class distance over mean between-class-pair distance (0 = theta-blind).

    Features are scaled to unit mean norm first, so the ratio compares geometry only.
    """
    f = np.asarray(features, dtype=np.float32)
    f = f - f.mean(0)
    f = f / max(np.linalg.norm(f, axis=1).mean(), 1e-12)
    sq = (f**2).sum(1)
    d = np.sqrt(np.maximum(sq[:, None] + sq[None, :] - 2 * f @ f.T, 0.0))
    same = class_index[:, None] == class_index[None, :]
    np.fill_diagonal(same, False)
    diff = class_index[:, None] != class_index[None, :]
    return float(d[same].mean() / max(d[diff].mean(), 1e-12))
