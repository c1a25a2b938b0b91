"""The training loop as a generator of Snapshots, and the measurements in each one."""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch
from threadpoolctl import threadpool_limits
from torch import nn

from . import hashing, metrics
from .config import ExperimentConfig
from .manifolds import ManifoldFamily
from .seeds import stream_seed
from .snapshot import ProbeSet, RunInfo, Snapshot

INVARIANCE_ROWS = 800  # invariance is O(n^2): measured on a fixed subsample of the probe
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
    return {
        "trained": hashing.lsh_index_oneshot(
            snapshot.embedding, episodes, bits, tables, stream_seed(cfg.seed, "simhash")),
        "raw": hashing.lsh_index_oneshot(
            probe.x, episodes, bits, tables, stream_seed(cfg.seed, "raw_simhash")),
    }


class Measurer:
    """Measures one model state on the fixed probe set; the raw-input baselines are
    computed once, here, and the untrained ones at the first measurement."""

    def __init__(
        self, cfg: ExperimentConfig, probe: ProbeSet, embed_dim: int,
        should_abort: Callable[[], bool] | None = None, fit: FitRows | None = None,
    ):
        self.cfg = cfg
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
        n = len(probe)
        self.inv_rows = np.sort(rng.choice(n, size=min(n, INVARIANCE_ROWS), replace=False))
        h = cfg.hashing
        self.simhash_seed = stream_seed(cfg.seed, "simhash")
        self.simhash = hashing.SimHash(embed_dim, h.bits, h.tables, seed=self.simhash_seed)
        raw_seed = stream_seed(cfg.seed, "raw_simhash")
        raw_hash = hashing.SimHash(probe.x.shape[1], h.bits, h.tables, seed=raw_seed)
        self.angles, pairs = hashing.gamma_pair_angles(probe.gamma)
        self.pair_i, self.pair_j = pairs
        self.unseen_pairs = ~probe.class_seen[self.pair_i] & ~probe.class_seen[self.pair_j]
        self.n_classes = n_classes
        raw = probe.x
        raw_codes = raw_hash.codes(raw - raw.mean(0))
        raw_m = hashing.collision_matrix(raw_codes, self.class_index, n_classes)
        self.raw_same, self.raw_diff = hashing.same_and_different(raw_m, self.class_index)
        raw_split = hashing.split_rates(raw_m, self.class_index, probe.class_seen)
        self.raw_pair_collision = raw_m[self.pair_i, self.pair_j]
        self.oneshot_raw = metrics.oneshot_accuracy(raw, self.episodes, should_abort)
        self.invariance_raw = metrics.invariance_ratio(
            raw[self.inv_rows], self.class_index[self.inv_rows]
        )
        probes = self._probes(raw, None if fit is None else fit.x)
        lsh = hashing.lsh_index_oneshot(raw, self.episodes, h.bits, h.tables, raw_seed,
                                        should_stop=should_abort)
        self.baselines = dict(  # RunInfo's raw-input fields
            oneshot_raw=self.oneshot_raw,
            raw_same_class_collision=self.raw_same,
            raw_different_class_collision=self.raw_diff,
            raw_unseen_same_class_collision=raw_split["unseen_same"],
            raw_unseen_different_class_collision=raw_split["unseen_different"],
            raw_pair_collision=self.raw_pair_collision.astype(np.float32),
            raw_pair_embed_angle=self._pair_embed_angle(raw),
            locality_spearman_raw=metrics.spearman(
                self.angles[self.unseen_pairs], self.raw_pair_collision[self.unseen_pairs]
            ),
            gamma_r2_raw=probes["gamma"],
            theta_r2_raw=probes["theta"],
            invariance_raw=self.invariance_raw,
            **{f"lsh_{k}_raw": v for k, v in lsh.items()},
        )
        self.untrained: dict[str, float] = {}

    def _pair_embed_angle(self, features: np.ndarray) -> np.ndarray:
        return hashing.class_mean_angles(
            features, self.class_index, self.n_classes, self.pair_i, self.pair_j
        ).astype(np.float32)

    def _probes(self, features: np.ndarray, fit_features: np.ndarray | None) -> dict:
        """Ridge read-outs of gamma (R^2 on unseen classes) and theta (on all probe rows);
        nan without fit rows."""
        if self.fit is None or fit_features is None:
            return {"gamma": float("nan"), "theta": float("nan")}
        ridge = metrics.RidgeProbe(fit_features, self.fit.label, seed=self.cfg.seed)
        return {
            "gamma": ridge.r2(
                self.fit.gamma, features[self.unseen_rows], self.row_gamma[self.unseen_rows]
            ),
            "theta": ridge.r2(self.fit.theta, features, self.probe.theta),
        }

    def measure(
        self, embedding: np.ndarray, logits_seen: np.ndarray,
        fit_embedding: np.ndarray | None = None, loss: float = float("nan"),
        first_loss: float = float("nan"),
    ) -> dict:
        """All per-snapshot figures for one embedding of the probe set (and fit rows)."""
        codes = self.simhash.codes(embedding - embedding.mean(0))
        m = hashing.collision_matrix(codes, self.class_index, self.n_classes)
        same, diff = hashing.same_and_different(m, self.class_index)
        split = hashing.split_rates(m, self.class_index, self.probe.class_seen)
        acc = float(np.mean(logits_seen.argmax(1) == self.probe.label[self.seen_rows]))
        oneshot = metrics.oneshot_accuracy(embedding, self.episodes, self.should_abort)
        probes = self._probes(embedding, fit_embedding)
        if not self.untrained:  # the first measurement is of the untrained network
            self.untrained = dict(
                oneshot_untrained=oneshot,
                gamma_r2_untrained=probes["gamma"],
                theta_r2_untrained=probes["theta"],
            )
        h = self.cfg.hashing
        lsh = hashing.lsh_index_oneshot(
            embedding, self.episodes, h.bits, h.tables, self.simhash_seed,
            should_stop=self.should_abort,
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
            pair_embed_angle=self._pair_embed_angle(embedding),
            locality_spearman_unseen=metrics.spearman(
                self.angles[self.unseen_pairs], pair_collision[self.unseen_pairs]
            ),
            gamma_r2_trained=probes["gamma"],
            theta_r2_trained=probes["theta"],
            invariance_trained=metrics.invariance_ratio(
                embedding[self.inv_rows], self.class_index[self.inv_rows]
            ),
            **{f"lsh_{k}_trained": v for k, v in lsh.items()},
            collapsed=metrics.collapse_reason(loss, first_loss, embedding, codes),
        )

    def run_info(self, total_steps: int, device: str) -> RunInfo:
        """The run's fixed part; call after the first (untrained) measurement."""
        h = self.cfg.hashing
        return RunInfo(
            probe=self.probe, total_steps=total_steps, device=device, ways=self.ways,
            episodes=len(self.episodes), bits=h.bits, tables=h.tables,
            pair_angle=self.angles.astype(np.float32), **self.untrained, **self.baselines,
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
    model: nn.Module,
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

    def __init__(self, fn, *args):
        self._value = fn(*args)

    def done(self) -> bool:
        return True

    def result(self):
        return self._value


def _train(cfg, family, model, probe, device, should_stop, should_abort,
           on_run_info, measure_beside) -> Iterator[Snapshot]:
    t = cfg.train
    gen = torch.Generator().manual_seed(stream_seed(cfg.seed, "batches"))
    opt = make_optimizer(cfg, model)
    loss_fn = nn.CrossEntropyLoss()
    probe_x = torch.from_numpy(probe.x).to(device)
    seen_rows = torch.from_numpy(np.flatnonzero(probe.seen)).to(device)
    fit = build_fit_rows(cfg, family)
    fit_x = torch.from_numpy(fit.x).to(device)
    closing = [False]  # the generator was closed: drop a measurement in progress

    def abort() -> bool:
        return closing[0] or (should_abort is not None and should_abort())

    with threadpool_limits(limits=1, user_api="blas"):
        measurer = Measurer(cfg, probe, model.head.in_features, abort, fit)
    n_seen = cfg.data.seen_classes
    pool = (ThreadPoolExecutor(max_workers=1, thread_name_prefix="gsh-measure")
            if measure_beside else None)
    pending: deque = deque()  # Futures of Snapshots, in step order
    paused = [0.0]  # seconds spent at yields since the last snapshot step
    info_sent = False

    def measure(step, loss, seconds, rate, done, emb, logits, fit_emb) -> Snapshot:
        # One BLAS thread: OpenBLAS workers left spinning after a measurement steal the
        # cores from torch's training threads (engine/bare ratio 0.66 -> 0.9 measured).
        with threadpool_limits(limits=1, user_api="blas"):
            figures = measurer.measure(emb, logits, fit_emb, loss, first_loss)
        return Snapshot(step=step, seconds=seconds, steps_per_s=rate, loss=loss,
                        embedding=emb, done=done, **figures)

    def hand_over(step: int, loss: float, last: tuple[int, float], done: bool) -> None:
        """Embed the probe now; measure it beside training (or here)."""
        model.eval()
        with torch.no_grad():
            emb_t = model.embed(probe_x)
            logits = model.head(emb_t[seen_rows]).float().cpu().numpy()
            fit_emb = model.embed(fit_x).float().cpu().numpy()
        model.train()
        emb = emb_t.float().cpu().numpy()
        now = time.perf_counter()
        busy = max(now - last[1] - paused[0], 1e-9)
        rate = (step - last[0]) / busy if step > last[0] else 0.0
        paused[0] = 0.0
        args = (step, loss, now - start, rate, done, emb, logits, fit_emb)
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
