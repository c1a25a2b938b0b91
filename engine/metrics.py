"""One-shot accuracy on unseen classes, theta-invariance, the linear gamma and theta
probes, locality's rank correlation, the collapse check, and the baselines they are read
against."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence

import numpy as np

# One-shot scoring gathers episodes in batches of about this many bytes, checking for an
# abort between batches (engine/resources.py counts on this bound).
ONESHOT_BATCH_BYTES = 64 << 20


class Stopped(Exception):
    """A long measurement was abandoned because its run is being aborted."""


# One N-way one-shot episode: (support rows, query rows, query targets 0..ways-1)
Episode = tuple[np.ndarray, np.ndarray, np.ndarray]


def _check(should_stop: Callable[[], bool] | None) -> None:
    if should_stop is not None and should_stop():
        raise Stopped


def oneshot_episodes(
    class_index: np.ndarray, classes: np.ndarray, ways: int, episodes: int, seed: int,
    should_stop: Callable[[], bool] | None = None,
) -> list[Episode]:
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
    features: np.ndarray, episodes: Sequence[Episode],
    should_stop: Callable[[], bool] | None = None,
) -> float:
    """Mean accuracy of cosine nearest-exemplar classification over the episodes.

    `should_stop` is polled between batches of episodes; when it returns True the
    measurement raises Stopped (memory per batch is bounded by ONESHOT_BATCH_BYTES).
    """
    return oneshot_scores(features, episodes, should_stop=should_stop)[0]


def oneshot_scores(
    features: np.ndarray, episodes: Sequence[Episode], class_index: np.ndarray | None = None,
    n_classes: int = 0, should_stop: Callable[[], bool] | None = None,
) -> tuple[float, np.ndarray, np.ndarray]:
    """oneshot_accuracy, and (with class_index) its hits and query counts per episode and
    query class, (episodes, n_classes) arrays: what bootstrap_ci resamples."""
    f = _unit(features).astype(np.float32)
    support = [e[0] for e in episodes]
    queries = [e[1] for e in episodes]
    targets = [e[2] for e in episodes]
    n_ep = len(episodes)
    table = class_index is not None and n_classes > 0
    hits_t = np.zeros((n_ep, n_classes if table else 0))
    counts_t = np.zeros_like(hits_t)

    def tally(first: int, q_rows: np.ndarray, hits: np.ndarray) -> None:
        if table and class_index is not None:
            ep = np.arange(first, first + len(q_rows))[:, None]
            cell = (ep * n_classes + class_index[q_rows]).ravel()
            size = hits_t.size
            hits_t.ravel()[:] += np.bincount(cell, weights=hits.ravel(), minlength=size)
            counts_t.ravel()[:] += np.bincount(cell, minlength=size)

    if len({len(q) for q in queries}) == 1 and len({len(s) for s in support}) == 1:
        # equal-sized episodes (the usual probe): one gather per batch of episodes
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
            q_rows = np.stack(queries[i : i + b])
            q, s = pos[q_rows], pos[np.stack(support[i : i + b])]
            picked = sims[q[:, :, None], s[:, None, :]]  # (episodes, queries, ways)
            hits = np.argmax(picked, axis=2) == np.stack(targets[i : i + b])
            per_episode.append(hits.mean(axis=1))
            tally(i, q_rows, hits)
        return float(np.concatenate(per_episode).mean()), hits_t, counts_t
    accs = []
    for k, (s, q, t) in enumerate(zip(support, queries, targets, strict=True)):
        if k % 256 == 0:
            _check(should_stop)
        hits = np.argmax(f[q] @ f[s].T, axis=1) == t
        accs.append(np.mean(hits))
        tally(k, np.asarray(q)[None, :], hits[None, :])
    return float(np.mean(accs)), hits_t, counts_t


CI_DRAWS = 1000  # bootstrap resamples behind every 95% interval
CI_LEVEL = 0.95


def bootstrap_weights(counts: np.ndarray, seed: int = 0, draws: int = CI_DRAWS
                      ) -> tuple[np.ndarray, np.ndarray] | None:
    """(draws, episodes) and (draws, classes) multiplicities of bootstrap resamples of a
    one-shot tally's episodes and queried classes (with replacement, independently);
    None when there is nothing to resample."""
    counts = np.asarray(counts, dtype=np.float64)
    if counts.ndim != 2 or counts.size == 0:
        return None
    present = np.flatnonzero(counts.sum(0) > 0)
    if not len(present):
        return None
    rng = np.random.default_rng(seed)
    n_ep = len(counts)
    ep_w = rng.multinomial(n_ep, np.full(n_ep, 1.0 / n_ep), size=draws).astype(np.float64)
    cls_w = np.zeros((draws, counts.shape[1]))
    cls_w[:, present] = rng.multinomial(len(present), np.full(len(present), 1.0 / len(present)),
                                        size=draws)
    return ep_w, cls_w


def bootstrap_accuracies(hits: np.ndarray, counts: np.ndarray,
                         weights: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """The accuracy of each bootstrap resample (bootstrap_weights) of a one-shot tally."""
    ep_w, cls_w = weights
    hits, counts = np.asarray(hits, dtype=np.float64), np.asarray(counts, dtype=np.float64)
    h = ((ep_w @ hits) * cls_w).sum(1)
    n = ((ep_w @ counts) * cls_w).sum(1)
    return h / np.maximum(n, 1e-300)


def bootstrap_ci(
    hits: np.ndarray, counts: np.ndarray, seed: int = 0, draws: int = CI_DRAWS,
) -> tuple[float, float]:
    """95% percentile interval of an accuracy from its (episodes, classes) hits and query
    counts, resampling episodes and the classes queried (with replacement, independently):
    the spread a new draw of unseen classes and episodes would give. (nan, nan) when
    there is nothing to resample."""
    weights = bootstrap_weights(counts, seed, draws)
    if weights is None or np.asarray(hits).size == 0:
        return NAN_PAIR
    return percentile_ci(bootstrap_accuracies(hits, counts, weights))


NAN_PAIR = (float("nan"), float("nan"))

# Student's t 0.975 quantiles by degrees of freedom (scipy.stats.t.ppf; importing scipy
# costs seconds): 95% intervals of a mean over a few seeds.
_T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306,
         9: 2.262, 10: 2.228, 12: 2.179, 15: 2.131, 20: 2.086, 30: 2.042, 60: 2.000,
         120: 1.980}


def mean_ci(values: Iterable[float]) -> tuple[float, float, float]:
    """Mean of a few values (seeds) and its 95% t-interval (lo, hi); the interval is nan
    for fewer than two values."""
    v = np.asarray([x for x in values if np.isfinite(x)], dtype=np.float64)
    if not len(v):
        return float("nan"), float("nan"), float("nan")
    m = float(v.mean())
    if len(v) < 2:
        return m, float("nan"), float("nan")
    df = len(v) - 1
    t = _T975[max(k for k in _T975 if k <= df)] if df <= 120 else 1.960
    half = t * float(v.std(ddof=1)) / np.sqrt(len(v))
    return m, m - half, m + half


def class_weights(n_classes: int, seed: int, draws: int = CI_DRAWS) -> np.ndarray:
    """(draws, n_classes) multiplicities of bootstrap resamples of the classes."""
    rng = np.random.default_rng(seed)
    return rng.multinomial(n_classes, np.full(n_classes, 1.0 / n_classes),
                           size=draws).astype(np.float64)


def percentile_ci(values: np.ndarray) -> tuple[float, float]:
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if not len(v):
        return NAN_PAIR
    tail = 100 * (1 - CI_LEVEL) / 2
    lo, hi = np.percentile(v, [tail, 100 - tail])
    return float(lo), float(hi)


def collision_ci(
    matrix: np.ndarray, counts: np.ndarray, seed: int = 0, draws: int = CI_DRAWS,
) -> dict[str, tuple[float, float]]:
    """95% intervals of the pair-weighted same- and different-class rates of a (C, C)
    class matrix (as hashing.same_and_different), resampling its classes."""
    m = np.asarray(matrix, dtype=np.float64)
    c = len(m)
    if c < 2:
        return {"same": NAN_PAIR, "different": NAN_PAIR}
    counts = np.asarray(counts, dtype=np.float64)
    pairs = np.outer(counts, counts)
    np.fill_diagonal(pairs, counts * (counts - 1))
    w = class_weights(c, seed, draws)
    diag_p, diag_mp = np.diag(pairs), np.diag(m * pairs)
    same = (w @ diag_mp) / np.maximum(w @ diag_p, 1e-300)
    off = ~np.eye(c, dtype=bool)
    diff = (((w @ np.where(off, m * pairs, 0.0)) * w).sum(1)
            / np.maximum(((w @ np.where(off, pairs, 0.0)) * w).sum(1), 1e-300))
    return {"same": percentile_ci(same), "different": percentile_ci(diff)}


def r2_ci(
    y: np.ndarray, pred: np.ndarray, row_class: np.ndarray, n_classes: int, seed: int = 0,
    draws: int = CI_DRAWS,
) -> tuple[float, float]:
    """95% interval of R^2 (1 - SSE / SS about the mean, summed over components),
    resampling the classes of the rows (with replacement)."""
    y = np.asarray(y, dtype=np.float64).reshape(len(y), -1)
    err = ((y - np.asarray(pred, dtype=np.float64).reshape(y.shape)) ** 2).sum(1)
    y = y - y.mean(0)  # the sums below then lose no digits to the targets' offset
    onehot = np.zeros((len(y), n_classes))
    onehot[np.arange(len(y)), row_class] = 1.0
    present = np.flatnonzero(onehot.sum(0) > 0)
    if len(present) < 2:
        return NAN_PAIR
    per = onehot[:, present]
    n_c, sse_c = per.sum(0), err @ per
    sy_c, syy_c = y.T @ per, (y**2).sum(1) @ per  # (k, C), (C,)
    w = class_weights(len(present), seed, draws)
    n, sse, syy = w @ n_c, w @ sse_c, w @ syy_c
    sy = w @ sy_c.T  # (draws, k)
    sst = syy - (sy**2).sum(1) / np.maximum(n, 1e-300)
    return percentile_ci(_r2(sse, sst, syy))


# Targets whose sum of squares about their mean is at most this share of their plain sum
# of squares do not spread: what is left is rounding (about 1e-16 of it), e.g. gamma,
# constant within a class, in a resample that drew one class.
SPREAD_TOLERANCE = 1e-12


def _r2(sse: np.ndarray, sst: np.ndarray, syy: np.ndarray) -> np.ndarray:
    """1 - sse / sst where the targets spread (sst beyond rounding of syy, their sum of
    squares), else NaN: R^2 is undefined without spread. The rounding left in sst once
    gave an interval reaching -8.6e15."""
    sse, sst, syy = (np.asarray(a, dtype=np.float64) for a in (sse, sst, syy))
    spread = sst > SPREAD_TOLERANCE * np.maximum(syy, 0.0)
    return np.where(spread, 1 - sse / np.where(spread, sst, 1.0), np.nan)


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


# The within-class covariance's shrinkage, chosen on validation classes only
# (bench/choose.py --lda: the highest mean validation one-shot over every preset and three
# seeds among 0.001-0.3 and Ledoit-Wolf; docs/figures.md quotes the numbers).
LDA_SHRINKAGE = 0.1


class LearnedLinear:
    """The learned linear baseline: linear discriminant analysis (scikit-learn's eigen
    solver, within-class covariance shrunk by LDA_SHRINKAGE) fitted on seen-class rows
    only, keeping every discriminant (up to classes - 1), centred on the fit rows' mean.
    What a linear map learned from the same seen classes achieves.

    Computed as scikit-learn's LinearDiscriminantAnalysis(solver="eigen",
    shrinkage=s).fit(x, label).transform computes it, step for step and bit for bit (a
    test compares them), with scipy.linalg alone: importing scikit-learn costs about 1.7
    s, paid by every run's measurement process. A string shrinkage ("auto") uses
    scikit-learn itself."""

    def __init__(self, x: np.ndarray, label: np.ndarray,
                 shrinkage: float | str = LDA_SHRINKAGE):
        x = np.asarray(x, dtype=np.float64)
        if isinstance(shrinkage, str):
            from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

            lda = LinearDiscriminantAnalysis(solver="eigen", shrinkage=shrinkage).fit(x, label)
            self.scalings, self.components = lda.scalings_, lda._max_components
        else:
            from scipy.linalg import eigh

            label = np.asarray(label)
            classes, counts = np.unique(label, return_counts=True)
            priors = counts.astype(np.float64) / float(x.shape[0])
            within = np.zeros((x.shape[1], x.shape[1]))
            for i, k in enumerate(classes):
                within += priors[i] * np.atleast_2d(_shrunk_cov(x[label == k, :], shrinkage))
            between = _shrunk_cov(x, shrinkage) - within
            evals, evecs = eigh(between, within)
            self.scalings = evecs[:, np.argsort(evals)[::-1]]
            self.components = min(len(classes) - 1, x.shape[1])
        self.mean = self._discriminants(x).mean(0)

    def _discriminants(self, x: np.ndarray) -> np.ndarray:
        return (x @ self.scalings)[:, :self.components]

    def transform(self, x: np.ndarray) -> np.ndarray:
        z = self._discriminants(np.asarray(x, dtype=np.float64)) - self.mean
        return z.astype(np.float32)


def _shrunk_cov(x: np.ndarray, shrinkage: float) -> np.ndarray:
    """scikit-learn's shrunk_covariance(empirical_covariance(x), shrinkage)."""
    emp = np.cov(x.T, bias=True)
    if emp.ndim == 0:
        emp = np.array([[emp]])
    n = emp.shape[-1]
    out = (1.0 - shrinkage) * emp
    mu = np.trace(emp, axis1=-2, axis2=-1) / n
    out += shrinkage * mu * np.eye(n)
    return out


RIDGE_ALPHAS = 10.0 ** np.arange(-3.0, 4.0)  # per fit row, on standardised features
RIDGE_FOLDS = 3


# a centred SVD of fit rows: (mean, u, s, vt, rows)
_Decomposition = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]


class RidgeProbe:
    """Linear read-out of targets from features: ridge regression fitted on fixed rows.

    Features are standardised on the fit rows; the penalty is chosen among RIDGE_ALPHAS
    by cross-validation that holds out whole groups (classes), since the probes ask how
    well the read-out carries over to rows it was not fitted on. One SVD per fold serves
    every target set, so the gamma and theta probes share the work.
    """

    def __init__(self, x_fit: np.ndarray, groups: np.ndarray, seed: int = 0):
        x = np.asarray(x_fit, dtype=np.float64)
        self.mean = x.mean(0)
        sd = x.std(0)
        self.scale = np.where(sd > 1e-12 * max(float(sd.max(initial=0.0)), 1e-300), sd, np.inf)
        self.x = (x - self.mean) / self.scale
        rng = np.random.default_rng(seed)
        ids = np.unique(groups)
        fold_of = dict(zip(rng.permutation(ids), np.arange(len(ids)) % RIDGE_FOLDS, strict=True))
        fold = np.array([fold_of[g] for g in groups])
        self.folds = [(fold != k, fold == k) for k in range(min(RIDGE_FOLDS, len(ids)))
                      if (fold != k).any() and (fold == k).any()]
        self._svd = {k: self._decompose(self.x[tr]) for k, (tr, _) in enumerate(self.folds)}
        self._svd[-1] = self._decompose(self.x)

    @staticmethod
    def _decompose(x: np.ndarray) -> _Decomposition:
        mu = x.mean(0)
        u, s, vt = np.linalg.svd(x - mu, full_matrices=False)
        return mu, u, s, vt, len(x)

    @staticmethod
    def _solve(dec: _Decomposition, y: np.ndarray, alpha: float
               ) -> Callable[[np.ndarray], np.ndarray]:
        mu, u, s, vt, n = dec
        ym = y.mean(0)
        coef = vt.T @ ((s / (s**2 + alpha * n))[:, None] * (u.T @ (y - ym)))
        return lambda x: (x - mu) @ coef + ym

    def _alpha(self, y: np.ndarray) -> float:
        if not self.folds:
            return float(RIDGE_ALPHAS[len(RIDGE_ALPHAS) // 2])
        errors = []
        for alpha in RIDGE_ALPHAS:
            sse = 0.0
            for k, (tr, te) in enumerate(self.folds):
                pred = self._solve(self._svd[k], y[tr], alpha)(self.x[te])
                sse += float(((y[te] - pred) ** 2).sum())
            errors.append(sse)
        return float(RIDGE_ALPHAS[int(np.argmin(errors))])

    def predict(self, y_fit: np.ndarray, x_test: np.ndarray) -> np.ndarray:
        """The read-out fitted to y_fit (penalty by cross-validation) at the test rows."""
        y = np.asarray(y_fit, dtype=np.float64)
        y = y.reshape(len(y), -1)
        xt = (np.asarray(x_test, dtype=np.float64) - self.mean) / self.scale
        return self._solve(self._svd[-1], y, self._alpha(y))(xt)

    def r2(self, y_fit: np.ndarray, x_test: np.ndarray, y_test: np.ndarray) -> float:
        """R^2 of the read-out on the test rows: 1 - SSE / SS about the test targets' mean,
        summed over target components (1 = exact linear read-out, <= 0 = none)."""
        return r2_score(y_test, self.predict(y_fit, x_test))


def r2_score(y: np.ndarray, pred: np.ndarray) -> float:
    """1 - SSE / SS about the targets' mean, summed over target components."""
    y = np.asarray(y, dtype=np.float64).reshape(len(y), -1)
    pred = np.asarray(pred, dtype=np.float64).reshape(y.shape)
    return float(_r2(((y - pred) ** 2).sum(), ((y - y.mean(0)) ** 2).sum(), (y**2).sum()))


def within_class_share(features: np.ndarray, class_index: np.ndarray) -> float:
    """Share of the features' variance that lies within classes: sum of squared distances
    to each row's class mean over sum of squared distances to the overall mean (0 = every
    class one point; scale-aware, unlike R^2 on standardised features)."""
    f = np.asarray(features, dtype=np.float64)
    _, inverse = np.unique(class_index, return_inverse=True)
    sums = np.zeros((inverse.max() + 1, f.shape[1]))
    np.add.at(sums, inverse, f)
    means = sums / np.bincount(inverse)[:, None]
    total = float(((f - f.mean(0)) ** 2).sum())
    return float(((f - means[inverse]) ** 2).sum()) / total if total > 0 else float("nan")


def _ranks(a: np.ndarray) -> np.ndarray:
    """1-based ranks, ties sharing their mean rank."""
    _, inverse, counts = np.unique(a, return_inverse=True, return_counts=True)
    return (np.cumsum(counts) - (counts - 1) / 2.0)[inverse]


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation (ties share their mean rank); nan if either is constant.

    By hand with numpy: importing scipy.stats costs about 2 s at a run's start."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if len(a) < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    ra, rb = _ranks(a) - (len(a) + 1) / 2.0, _ranks(b) - (len(b) + 1) / 2.0
    return float((ra * rb).sum() / np.sqrt((ra**2).sum() * (rb**2).sum()))


COLLAPSE_LOSS_FACTOR = 10.0  # mean loss this many times its step-0 value: diverging
COLLAPSE_BUCKET_SHARE = 0.9  # this share of probe points in one bucket in every table
COLLAPSE_SPREAD = 1e-4  # embedding spread (relative to its norm) below this: a point


def collapse_reason(
    loss: float, first_loss: float, embedding: np.ndarray, codes: np.ndarray
) -> str:
    """'' for a healthy model, else why it has collapsed: the training loss far above its
    step-0 value, or the probe's embedding gone to (nearly) one point or one bucket."""
    if math.isfinite(first_loss) and loss > COLLAPSE_LOSS_FACTOR * max(first_loss, 1e-12):
        return (f"loss {loss:.3g} is over {COLLAPSE_LOSS_FACTOR:g}x "
                f"its step-0 value {first_loss:.3g}")
    e = np.asarray(embedding, dtype=np.float64)
    if not np.isfinite(e).all():
        return "embedding is not finite"
    spread = np.linalg.norm(e - e.mean(0), axis=1).mean()
    if spread <= COLLAPSE_SPREAD * max(np.linalg.norm(e, axis=1).mean(), 1e-30):
        return f"embedding collapsed to a point (spread {spread:.2g})"
    shares = [np.unique(codes[:, t], return_counts=True)[1].max() / len(codes)
              for t in range(codes.shape[1])]
    if min(shares) >= COLLAPSE_BUCKET_SHARE:
        return f"embedding collapsed: {min(shares):.0%} or more of probe points in one bucket"
    return ""
