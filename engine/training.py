"""The training loop as a generator of Snapshots, and the measurements in each one."""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from threadpoolctl import threadpool_limits
from torch import nn

from . import hashing, metrics
from .config import ExperimentConfig
from .manifolds import ManifoldFamily
from .model import HashNet
from .seeds import stream_seed
from .snapshot import ProbeSet, RunInfo, Snapshot

INVARIANCE_ROWS = 800  # invariance is O(n^2): measured on a fixed subsample of unseen rows
FIT_ROWS = 2400  # the ridge probes' fit rows: about this many samples of seen classes


class DivergenceError(RuntimeError):
    """The training loss became NaN or infinite; earlier snapshots remain valid."""

    def __init__(self, step: int, loss: float):
        super().__init__(
            f"training diverged at step {step}: loss is {loss} "
            "(lower train.lr or switch train.optimizer)"
        )
        self.step = step
        self.loss = loss


@dataclass
class FitRows:
    """Fresh samples of many seen classes (all of them up to FIT_ROWS / 2), 2-5 each: the
    rows the ridge probes are fitted on. Fixed per run, measured at every snapshot."""

    x: np.ndarray  # (m, x_dim) float32
    label: np.ndarray  # (m,) global class id (all seen)
    theta: np.ndarray  # (m, theta_dim)
    gamma: np.ndarray  # (m, gamma_dim) each row's class gamma


def build_fit_rows(cfg: ExperimentConfig, family: ManifoldFamily) -> FitRows:
    seen = cfg.data.seen_classes
    per = max(2, min(5, FIT_ROWS // seen))
    classes = np.unique(np.linspace(0, seen - 1, min(seen, FIT_ROWS // per)).round())
    labels = np.repeat(classes.astype(np.int64), per)
    g = torch.Generator().manual_seed(stream_seed(cfg.seed, "probe_fit"))
    x, theta = family.sample(torch.from_numpy(labels), g)
    return FitRows(
        x=x.numpy().astype(np.float32), label=labels, theta=theta.numpy().astype(np.float32),
        gamma=family.gamma[torch.from_numpy(labels)].numpy().astype(np.float32),
    )


def build_validation(cfg: ExperimentConfig, family: ManifoldFamily) -> ProbeSet | None:
    """The validation classes' rows (None without validation classes): probe.per_class
    fresh samples of each of the data.validation_classes classes that follow the unseen
    ones, poses from their own stream. Neither trained on nor part of the probe set: only
    the validation figures read them. Regenerated from the config, like the fit rows."""
    d, p = cfg.data, cfg.probe
    if d.validation_classes < 1:
        return None
    first = d.seen_classes + d.unseen_classes
    classes = np.arange(first, first + d.validation_classes, dtype=np.int64)
    labels = np.repeat(classes, p.per_class)
    g = torch.Generator().manual_seed(stream_seed(cfg.seed, "validation"))
    x, theta = family.sample(torch.from_numpy(labels), g)
    return ProbeSet(
        x=x.numpy().astype(np.float32), label=labels, seen=np.zeros(len(labels), bool),
        theta=theta.numpy().astype(np.float32), classes=classes,
        class_seen=np.zeros(len(classes), bool),
        gamma=family.gamma[torch.from_numpy(classes)].numpy().astype(np.float32),
        theta_names=list(family.theta_names), image_shape=family.image_shape,
    )


def validation_episodes(cfg: ExperimentConfig, validation: ProbeSet,
                        should_stop: Callable[[], bool] | None = None) -> list:
    """One-shot episodes over the validation classes, drawn as the unseen ones are (ways
    at most the number of validation classes) from their own stream."""
    n = len(validation.classes)
    return metrics.oneshot_episodes(
        validation.class_index, np.arange(n), min(cfg.probe.ways, n), cfg.probe.episodes,
        seed=stream_seed(cfg.seed, "validation_episodes"), should_stop=should_stop)


def probe_episodes(
    cfg: ExperimentConfig, probe: ProbeSet, should_stop: Callable[[], bool] | None = None
) -> list:
    """The run's fixed one-shot episodes over the probe's unseen classes."""
    unseen = np.flatnonzero(~probe.class_seen)
    return metrics.oneshot_episodes(
        probe.class_index, unseen, min(cfg.probe.ways, len(unseen)), cfg.probe.episodes,
        seed=stream_seed(cfg.seed, "episodes"), should_stop=should_stop,
    )


def lsh_figures(snapshot: Snapshot, probe: ProbeSet, cfg: ExperimentConfig, bits: int,
                tables: int) -> dict:
    """LSH-index one-shot figures (hashing.lsh_index_oneshot) of a snapshot's embedding
    and of the raw input for any bits and tables, on the run's own episodes and hyperplane
    seeds: {"trained": {...}, "raw": {...}}. No retraining; about as costly as a snapshot's
    one-shot measurement."""
    episodes = probe_episodes(cfg, probe)
    center = hashing.center_of(snapshot.embedding, snapshot.hash_center)
    raw_center = None if not len(snapshot.hash_center) else hashing.seen_center(
        probe.x, probe.seen)  # a record before schema 3 hashed around the mean of all rows
    return {
        "trained": hashing.lsh_index_oneshot(
            snapshot.embedding, episodes, bits, tables, stream_seed(cfg.seed, "simhash"),
            center=center),
        "raw": hashing.lsh_index_oneshot(
            probe.x, episodes, bits, tables, stream_seed(cfg.seed, "raw_simhash"),
            center=raw_center),
    }


def lsh_spreads(snapshot: Snapshot, probe: ProbeSet, cfg: ExperimentConfig, bits: int,
                tables: int, sides: tuple[str, ...] = ("trained", "raw"),
                should_stop: Callable[[], bool] | None = None) -> dict:
    """Where the LSH index's one draw of tables could have landed: the 5th and 95th
    percentiles of recall, candidates per query and hash-only one-shot over
    hashing.SPREAD_DRAWS fresh draws of `tables` x `bits` (hashing.lsh_spread), on the
    run's episodes and hash centres: {side: {figure: (lo, hi)}}. About a second per side
    on a default run: the app asks for it lazily, in a worker."""
    episodes = probe_episodes(cfg, probe)
    seed = stream_seed(cfg.seed, "lsh_spread")
    out = {}
    if "trained" in sides:
        out["trained"] = hashing.lsh_spread(
            snapshot.embedding, episodes, bits, tables, seed,
            center=hashing.center_of(snapshot.embedding, snapshot.hash_center),
            should_stop=should_stop)
    if "raw" in sides:
        raw_center = None if not len(snapshot.hash_center) else hashing.seen_center(
            probe.x, probe.seen)
        out["raw"] = hashing.lsh_spread(probe.x, episodes, bits, tables, seed + 1,
                                        center=raw_center, should_stop=should_stop)
    return out


def lsh_pairs(snapshot: Snapshot, probe: ProbeSet, cfg: ExperimentConfig,
              episodes: list | None = None, raw: np.ndarray | None = None,
              index: tuple | None = None) -> dict:
    """Per-pair agreements p_i (hashing.lsh_pair_agreements) of each query with its own
    exemplar over the run's episodes, centred as the LSH index hashes them:
    {"trained": p, "raw": p}. From these, hashing.lsh_theory_over_pairs gives the recall
    expected over hyperplanes for any b and L (the mean of 1 - (1 - p_i^b)^L). The raw
    input's p_i are the same for every snapshot of a run: `raw` from an earlier one is
    reused as it is, and so is `index` (hashing.lsh_pair_index of the episodes)."""
    episodes = probe_episodes(cfg, probe) if episodes is None else episodes
    index = hashing.lsh_pair_index(episodes) if index is None else index
    center = hashing.center_of(snapshot.embedding, snapshot.hash_center)
    if raw is None:
        raw_center = None if not len(snapshot.hash_center) else hashing.seen_center(
            probe.x, probe.seen)
        raw = hashing.lsh_pair_agreements(probe.x, episodes, raw_center, index)
    return {"trained": hashing.lsh_pair_agreements(snapshot.embedding, episodes, center,
                                                   index),
            "raw": raw}


class Measurer:
    """Measures one model state on the fixed probe set; the raw-input baselines are
    computed once, here, and the untrained ones at the first measurement."""

    def __init__(
        self, cfg: ExperimentConfig, probe: ProbeSet, embed_dim: int,
        should_abort: Callable[[], bool] | None = None, fit: FitRows | None = None,
        validation: ProbeSet | None = None,
    ):
        self.cfg = cfg
        self.validation = validation
        self.should_abort = should_abort  # polled inside long one-shot measurements
        self.probe = probe
        self.fit = fit
        self.class_index = probe.class_index
        n_classes = len(probe.classes)
        self.episodes = probe_episodes(cfg, probe, should_abort)
        self.ways = min(cfg.probe.ways, int((~probe.class_seen).sum()))
        self.seen_rows = np.flatnonzero(probe.seen)
        self.unseen_rows = np.flatnonzero(~probe.seen)
        self.row_gamma = probe.gamma[self.class_index]
        rng = np.random.default_rng(stream_seed(cfg.seed, "invariance_rows"))
        n = len(self.unseen_rows)  # the claim is about unseen classes
        self.inv_rows = np.sort(self.unseen_rows[
            rng.choice(n, size=min(n, INVARIANCE_ROWS), replace=False)])
        h = cfg.hashing
        self.simhash_seed = stream_seed(cfg.seed, "simhash")
        self.simhash = hashing.SimHash(embed_dim, h.bits, h.tables, seed=self.simhash_seed)
        raw_seed = stream_seed(cfg.seed, "raw_simhash")
        self.angles, pairs = hashing.gamma_pair_angles(probe.gamma)
        self.pair_i, self.pair_j = pairs
        self.unseen_pairs = ~probe.class_seen[self.pair_i] & ~probe.class_seen[self.pair_j]
        self.n_classes = n_classes
        raw = probe.x
        raw_center = hashing.seen_center(raw, probe.seen)
        raw_m = hashing.exact_collision_matrix(raw, raw_center, self.class_index, n_classes,
                                               h.bits)
        self.raw_same, self.raw_diff = hashing.same_and_different(raw_m, self.class_index)
        raw_split = hashing.split_rates(raw_m, self.class_index, probe.class_seen)
        self.raw_pair_collision = raw_m[self.pair_i, self.pair_j]
        self.boot_seed = stream_seed(cfg.seed, "bootstrap")
        self.unseen_classes = np.flatnonzero(~probe.class_seen)
        self.class_counts = np.bincount(self.class_index, minlength=n_classes)
        self.oneshot_raw, raw_ci = self._oneshot(raw)
        self.invariance_raw = metrics.invariance_ratio(
            raw[self.inv_rows], self.class_index[self.inv_rows]
        )
        probes = self._probes(raw, None if fit is None else fit.x)
        linear = self._learned_linear(raw)
        lsh = hashing.lsh_index_oneshot(raw, self.episodes, h.bits, h.tables, raw_seed,
                                        should_stop=should_abort, center=raw_center)
        self.baselines = dict(  # RunInfo's raw-input fields
            oneshot_raw=self.oneshot_raw,
            raw_same_class_collision=self.raw_same,
            raw_different_class_collision=self.raw_diff,
            raw_unseen_same_class_collision=raw_split["unseen_same"],
            raw_unseen_different_class_collision=raw_split["unseen_different"],
            raw_pair_collision=self.raw_pair_collision.astype(np.float32),
            raw_pair_embed_angle=self._pair_embed_angle(raw, raw_center),
            raw_hash_center=raw_center,
            locality_spearman_raw=metrics.spearman(
                self.angles[self.unseen_pairs], self.raw_pair_collision[self.unseen_pairs]
            ),
            gamma_r2_raw=probes["gamma"],
            theta_r2_raw=probes["theta"],
            theta_r2_unseen_raw=probes["theta_unseen"],
            theta_r2_seen_raw=probes["theta_seen"],
            within_share_raw=metrics.within_class_share(raw[self.unseen_rows],
                                                        self.class_index[self.unseen_rows]),
            invariance_raw=self.invariance_raw,
            **{f"lsh_{k}_raw": v for k, v in lsh.items()},
            **linear,
        )
        self.baselines.update(self._validation_baselines(raw))
        self.baseline_ci = {"oneshot_raw": raw_ci, "gamma_r2_raw": probes["gamma_ci"],
                     "oneshot_learned_linear": self.baselines.pop("oneshot_learned_linear_ci")}
        self.untrained: dict[str, Any] = {}  # RunInfo's untrained fields (floats)

    def _validation_baselines(self, raw: np.ndarray) -> dict:
        """The raw input's and the learned linear baseline's one-shot on the validation
        classes (nan without them)."""
        v = self.validation
        if v is None:
            return {}
        self.val_episodes = validation_episodes(self.cfg, v, self.should_abort)
        return dict(
            val_oneshot_raw=metrics.oneshot_accuracy(v.x, self.val_episodes, self.should_abort),
            val_oneshot_learned_linear=metrics.oneshot_accuracy(
                self.linear.transform(v.x), self.val_episodes, self.should_abort),
        )

    def _validation(self, val_embedding: np.ndarray | None, center: np.ndarray) -> dict:
        """The embedding's figures on the validation classes: one-shot on their episodes
        and the expected collision rates hashed around the (seen-class) hash centre."""
        v = self.validation
        if v is None or val_embedding is None:
            return {}
        m = hashing.exact_collision_matrix(val_embedding, center, v.class_index,
                                           len(v.classes), self.cfg.hashing.bits)
        same, diff = hashing.same_and_different(m, v.class_index)
        return dict(
            val_oneshot_trained=metrics.oneshot_accuracy(val_embedding, self.val_episodes,
                                                         self.should_abort),
            val_same_class_collision=same, val_different_class_collision=diff,
        )

    def _oneshot(self, features: np.ndarray) -> tuple[float, tuple[float, float]]:
        """One-shot accuracy on the run's episodes and its 95% bootstrap interval."""
        acc, hits, counts = metrics.oneshot_scores(
            features, self.episodes, self.class_index, self.n_classes, self.should_abort)
        return acc, metrics.bootstrap_ci(hits, counts, self.boot_seed)

    def _learned_linear(self, raw: np.ndarray) -> dict:
        """The learned linear baseline (metrics.LearnedLinear, LDA of the raw input fitted
        on the probe's seen-class rows only, so probe.npz alone reproduces it), scored on
        the same one-shot episodes and expected collision rates as the network."""
        seen = self.seen_rows
        self.linear = metrics.LearnedLinear(raw[seen], self.probe.label[seen])
        z = self.linear.transform(raw)
        m = hashing.exact_collision_matrix(z, hashing.seen_center(z, self.probe.seen),
                                           self.class_index, self.n_classes,
                                           self.cfg.hashing.bits)
        split = hashing.split_rates(m, self.class_index, self.probe.class_seen)
        oneshot, ci = self._oneshot(z)
        return dict(
            oneshot_learned_linear=oneshot,
            oneshot_learned_linear_ci=ci,
            learned_linear_unseen_same_class_collision=split["unseen_same"],
            learned_linear_unseen_different_class_collision=split["unseen_different"],
            invariance_learned_linear=metrics.invariance_ratio(
                z[self.inv_rows], self.class_index[self.inv_rows]),
        )

    def _pair_embed_angle(self, features: np.ndarray, center: np.ndarray) -> np.ndarray:
        return hashing.class_mean_angles(
            features, self.class_index, self.n_classes, self.pair_i, self.pair_j, center
        ).astype(np.float32)

    def _probes(self, features: np.ndarray, fit_features: np.ndarray | None) -> dict:
        """Ridge read-outs of gamma (R^2 on unseen classes, with its 95% interval over
        them) and theta (on all probe rows, unseen rows, seen rows); nan without fit
        rows."""
        nan = float("nan")
        if self.fit is None or fit_features is None:
            return {"gamma": nan, "gamma_ci": (nan, nan), "theta": nan,
                    "theta_unseen": nan, "theta_seen": nan}
        ridge = metrics.RidgeProbe(fit_features, self.fit.label, seed=self.cfg.seed)
        u, s = self.unseen_rows, self.seen_rows
        gamma_pred = ridge.predict(self.fit.gamma, features[u])
        theta_pred = ridge.predict(self.fit.theta, features)
        theta = self.probe.theta
        return {
            "gamma": metrics.r2_score(self.row_gamma[u], gamma_pred),
            "gamma_ci": metrics.r2_ci(self.row_gamma[u], gamma_pred, self.class_index[u],
                                      self.n_classes, self.boot_seed),
            "theta": metrics.r2_score(theta, theta_pred),
            "theta_unseen": metrics.r2_score(theta[u], theta_pred[u]),
            "theta_seen": metrics.r2_score(theta[s], theta_pred[s]),
        }

    def measure(
        self, embedding: np.ndarray, logits_seen: np.ndarray,
        fit_embedding: np.ndarray | None = None, loss: float = float("nan"),
        first_loss: float = float("nan"), val_embedding: np.ndarray | None = None,
    ) -> dict:
        """All per-snapshot figures for one embedding of the probe set (and of the fit
        rows and validation rows)."""
        h = self.cfg.hashing
        center = hashing.seen_center(embedding, self.probe.seen)
        m = hashing.exact_collision_matrix(embedding, center, self.class_index,
                                           self.n_classes, h.bits)
        same, diff = hashing.same_and_different(m, self.class_index)
        split = hashing.split_rates(m, self.class_index, self.probe.class_seen)
        acc = float(np.mean(logits_seen.argmax(1) == self.probe.label[self.seen_rows]))
        oneshot, oneshot_ci = self._oneshot(embedding)
        probes = self._probes(embedding, fit_embedding)
        within = metrics.within_class_share(embedding[self.unseen_rows],
                                            self.class_index[self.unseen_rows])
        val = self._validation(val_embedding, center)
        if not self.untrained:  # the first measurement is of the untrained network
            self.untrained = dict(
                oneshot_untrained=oneshot,
                gamma_r2_untrained=probes["gamma"],
                theta_r2_untrained=probes["theta"],
                theta_r2_unseen_untrained=probes["theta_unseen"],
                theta_r2_seen_untrained=probes["theta_seen"],
                within_share_untrained=within,
                **({"val_oneshot_untrained": val["val_oneshot_trained"]} if val else {}),
            )
            self.baseline_ci.update(oneshot_untrained=oneshot_ci,
                                    gamma_r2_untrained=probes["gamma_ci"])
        u = self.unseen_classes
        coll_ci = metrics.collision_ci(m[np.ix_(u, u)], self.class_counts[u], self.boot_seed)
        lsh = hashing.lsh_index_oneshot(
            embedding, self.episodes, h.bits, h.tables, self.simhash_seed,
            should_stop=self.should_abort, center=center,
        )
        pair_collision = m[self.pair_i, self.pair_j]
        return dict(
            train_accuracy=acc,
            oneshot_trained=oneshot,
            same_class_collision=same,
            different_class_collision=diff,
            seen_same_class_collision=split["seen_same"],
            seen_different_class_collision=split["seen_different"],
            unseen_same_class_collision=split["unseen_same"],
            unseen_different_class_collision=split["unseen_different"],
            collision_matrix=m.astype(np.float32),
            pair_collision=pair_collision.astype(np.float32),
            pair_embed_angle=self._pair_embed_angle(embedding, center),
            hash_center=center,
            locality_spearman_unseen=metrics.spearman(
                self.angles[self.unseen_pairs], pair_collision[self.unseen_pairs]
            ),
            gamma_r2_trained=probes["gamma"],
            theta_r2_trained=probes["theta"],
            theta_r2_unseen_trained=probes["theta_unseen"],
            theta_r2_seen_trained=probes["theta_seen"],
            within_share_trained=within,
            ci95={k: list(v) for k, v in (  # lists: as they read back from the record
                ("oneshot_trained", oneshot_ci), ("gamma_r2_trained", probes["gamma_ci"]),
                ("unseen_same_class_collision", coll_ci["same"]),
                ("unseen_different_class_collision", coll_ci["different"]))},
            invariance_trained=metrics.invariance_ratio(
                embedding[self.inv_rows], self.class_index[self.inv_rows]
            ),
            **{f"lsh_{k}_trained": v for k, v in lsh.items()},
            **val,
            collapsed=metrics.collapse_reason(  # one drawn set of tables: real buckets
                loss, first_loss, embedding, self.simhash.codes(embedding - center)),
        )

    def run_info(self, total_steps: int, device: str) -> RunInfo:
        """The run's fixed part; call after the first (untrained) measurement."""
        h = self.cfg.hashing
        return RunInfo(
            probe=self.probe, total_steps=total_steps, device=device, ways=self.ways,
            episodes=len(self.episodes), bits=h.bits, tables=h.tables,
            pair_angle=self.angles.astype(np.float32), **self.untrained, **self.baselines,
            baseline_ci95={k: list(v) for k, v in self.baseline_ci.items()},
            validation_classes=0 if self.validation is None else len(self.validation.classes),
        )


def warm_up() -> None:
    """Pay torch's one-off optimiser start-up (about 2 s, mostly importing torch._dynamo).

    The first torch.optim constructor in a process runs that import while holding the
    GIL; a GUI calls this at launch so a run's first steps don't freeze its event loop.
    """
    p = nn.Parameter(torch.zeros(1))
    torch.optim.Adam([p]), torch.optim.SGD([p], lr=0.1)


def make_optimizer(cfg: ExperimentConfig, model: nn.Module) -> torch.optim.Optimizer:
    """Adam or SGD (momentum 0.9) over all parameters.

    foreach=True updates every parameter in one call per operation: the same numbers
    and speed, but far fewer GIL hand-offs, which keeps a GUI thread beside it fluid.
    """
    t = cfg.train
    if t.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=t.lr, momentum=0.9, foreach=True)
    return torch.optim.Adam(model.parameters(), lr=t.lr, foreach=True)


MAX_PENDING = 2  # snapshots handed to the measurement thread and not yet yielded


def train(
    cfg: ExperimentConfig,
    family: ManifoldFamily,
    model: HashNet,
    probe: ProbeSet,
    device: torch.device,
    should_stop: Callable[[], bool] = lambda: False,
    should_abort: Callable[[], bool] | None = None,
    on_run_info: Callable[[RunInfo], None] = lambda info: None,
    measure_beside: bool = True,
) -> Iterator[Snapshot]:
    """Train `model` on fresh samples of the seen classes, yielding a Snapshot at step 0,
    every train.snapshot_every steps, and at the end (done=True; also on a stop request).
    The run's RunInfo goes to `on_run_info` once, before the step-0 snapshot is yielded.

    A snapshot's measurements run beside training: at a snapshot step the loop embeds
    the probe and fit rows (its own copies, as numpy arrays) and hands them to one
    measurement thread, then trains on; finished snapshots are yielded in step order
    between steps, at most MAX_PENDING in flight. `measure_beside=False` measures in the
    loop instead (the figures are the same). A snapshot's steps_per_s leaves out time
    spent paused at a yield.

    Raises DivergenceError on a non-finite loss, after yielding the snapshots before it.
    `should_abort` (window closing) ends the run at once, even inside a long measurement,
    without a final snapshot.
    """
    try:
        yield from _train(cfg, family, model, probe, device, should_stop, should_abort,
                          on_run_info, measure_beside)
    except metrics.Stopped:
        return


class _InLine:
    """Runs a measurement at once on the calling thread (a Future-like result)."""

    def __init__(self, fn: Callable[..., Snapshot], *args: Any) -> None:
        self._value = fn(*args)

    def done(self) -> bool:
        return True

    def result(self) -> Snapshot:
        return self._value


def _train(cfg: ExperimentConfig, family: ManifoldFamily, model: HashNet, probe: ProbeSet,
           device: torch.device, should_stop: Callable[[], bool],
           should_abort: Callable[[], bool] | None, on_run_info: Callable[[RunInfo], None],
           measure_beside: bool) -> Iterator[Snapshot]:
    t = cfg.train
    gen = torch.Generator().manual_seed(stream_seed(cfg.seed, "batches"))
    opt = make_optimizer(cfg, model)
    loss_fn = nn.CrossEntropyLoss()
    probe_x = torch.from_numpy(probe.x).to(device)
    seen_rows = torch.from_numpy(np.flatnonzero(probe.seen)).to(device)
    fit = build_fit_rows(cfg, family)
    fit_x = torch.from_numpy(fit.x).to(device)
    validation = build_validation(cfg, family)
    val_x = None if validation is None else torch.from_numpy(validation.x).to(device)
    closing = [False]  # the generator was closed: drop a measurement in progress

    def abort() -> bool:
        return closing[0] or (should_abort is not None and should_abort())

    with threadpool_limits(limits=1, user_api="blas"):
        measurer = Measurer(cfg, probe, model.head.in_features, abort, fit, validation)
    n_seen = cfg.data.seen_classes
    pool = (ThreadPoolExecutor(max_workers=1, thread_name_prefix="gsh-measure")
            if measure_beside else None)
    pending: deque = deque()  # Futures of Snapshots, in step order
    paused = [0.0]  # seconds spent at yields since the last snapshot step
    info_sent = False

    def measure(step: int, loss: float, seconds: float, rate: float, done: bool,
                emb: np.ndarray, logits: np.ndarray, fit_emb: np.ndarray,
                val_emb: np.ndarray | None) -> Snapshot:
        # One BLAS thread: OpenBLAS workers left spinning after a measurement steal the
        # cores from torch's training threads (engine/bare ratio 0.66 -> 0.9 measured).
        with threadpool_limits(limits=1, user_api="blas"):
            figures = measurer.measure(emb, logits, fit_emb, loss, first_loss, val_emb)
        return Snapshot(step=step, seconds=seconds, steps_per_s=rate, loss=loss,
                        embedding=emb, done=done, **figures)

    def hand_over(step: int, loss: float, last: tuple[int, float], done: bool) -> None:
        """Embed the probe now; measure it beside training (or here)."""
        model.eval()
        with torch.no_grad():
            emb_t = model.embed(probe_x)
            logits = model.head(emb_t[seen_rows]).float().cpu().numpy()
            fit_emb = model.embed(fit_x).float().cpu().numpy()
            val_emb = None if val_x is None else model.embed(val_x).float().cpu().numpy()
        model.train()
        emb = emb_t.float().cpu().numpy()
        now = time.perf_counter()
        busy = max(now - last[1] - paused[0], 1e-9)
        rate = (step - last[0]) / busy if step > last[0] else 0.0
        paused[0] = 0.0
        args = (step, loss, now - start, rate, done, emb, logits, fit_emb, val_emb)
        pending.append(pool.submit(measure, *args) if pool else _InLine(measure, *args))

    def deliver(wait: bool, keep: int = 0) -> Iterator[Snapshot]:
        """Yield finished snapshots in order; with `wait`, until `keep` are left."""
        nonlocal info_sent
        while pending and (len(pending) > keep if wait else pending[0].done()):
            snap = pending.popleft().result()
            if not info_sent:  # the first measurement (untrained) fills in the RunInfo
                on_run_info(measurer.run_info(t.steps, str(device)))
                info_sent = True
            t0 = time.perf_counter()
            yield snap
            # Time paused at a yield (Pause, Step) is not training time.
            paused[0] += time.perf_counter() - t0

    def batch() -> tuple[torch.Tensor, torch.Tensor]:
        labels = torch.randint(0, n_seen, (t.batch_size,), generator=gen)
        x, _ = family.sample(labels, gen)
        return x.to(device, non_blocking=True), labels.to(device, non_blocking=True)

    try:
        start = time.perf_counter()
        x, y = batch()
        with torch.no_grad():
            first_loss = float(loss_fn(model(x), y))
        hand_over(0, first_loss, (0, start), done=t.steps == 0)
        if t.steps == 0:
            yield from deliver(wait=True)
            return
        last = (0, time.perf_counter())
        loss_sum = torch.zeros((), device=device)
        since = 0
        for step in range(1, t.steps + 1):
            x, y = batch()
            loss = loss_fn(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss_sum += loss.detach()
            since += 1
            final = step == t.steps or should_stop()
            if step % t.snapshot_every == 0 or final:
                mean_loss = float(loss_sum) / since
                if not math.isfinite(mean_loss):
                    yield from deliver(wait=True)
                    raise DivergenceError(step, mean_loss)
                yield from deliver(wait=True, keep=MAX_PENDING - 1)
                hand_over(step, mean_loss, last, done=final)
                last = (step, time.perf_counter())
                loss_sum.zero_()
                since = 0
                yield from deliver(wait=final)  # measured in line: delivered here
                if final:
                    return
            else:
                if step % 10 == 0 and not math.isfinite(float(loss.detach())):
                    yield from deliver(wait=True)
                    raise DivergenceError(step, float(loss.detach()))
                if pending and pending[0].done():
                    yield from deliver(wait=False)
    finally:
        if pool is not None:
            closing[0] = True
            pool.shutdown(wait=True, cancel_futures=True)
