"""The training loop as a generator of Snapshots, and the measurements in each one."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator

import numpy as np
import torch
from threadpoolctl import threadpool_limits
from torch import nn

from . import hashing, metrics
from .config import ExperimentConfig
from .manifolds import ManifoldFamily
from .seeds import stream_seed
from .snapshot import ProbeSet, Snapshot

INVARIANCE_ROWS = 800  # invariance is O(n^2): measured on a fixed subsample of the probe


class DivergenceError(RuntimeError):
    """The training loss became NaN or infinite; earlier snapshots remain valid."""

    def __init__(self, step: int, loss: float):
        super().__init__(
            f"training diverged at step {step}: loss is {loss} "
            "(lower train.lr or switch train.optimizer)"
        )
        self.step = step
        self.loss = loss


class Measurer:
    """Measures one model state on the fixed probe set; baselines are computed once."""

    def __init__(
        self, cfg: ExperimentConfig, probe: ProbeSet, embed_dim: int,
        should_abort: Callable[[], bool] | None = None,
    ):
        self.cfg = cfg
        self.should_abort = should_abort  # polled inside long one-shot measurements
        self.probe = probe
        self.class_index = probe.class_index
        n_classes = len(probe.classes)
        unseen = np.flatnonzero(~probe.class_seen)
        ways = min(cfg.probe.ways, len(unseen))
        self.ways = ways
        self.episodes = metrics.oneshot_episodes(
            self.class_index, unseen, ways, cfg.probe.episodes,
            seed=stream_seed(cfg.seed, "episodes"), should_stop=should_abort,
        )
        self.seen_rows = np.flatnonzero(probe.seen)
        rng = np.random.default_rng(stream_seed(cfg.seed, "invariance_rows"))
        n = len(probe)
        self.inv_rows = np.sort(rng.choice(n, size=min(n, INVARIANCE_ROWS), replace=False))
        h = cfg.hashing
        self.simhash = hashing.SimHash(
            embed_dim, h.bits, h.tables, seed=stream_seed(cfg.seed, "simhash")
        )
        raw_hash = hashing.SimHash(
            probe.x.shape[1], h.bits, h.tables, seed=stream_seed(cfg.seed, "raw_simhash")
        )
        self.angles, pairs = hashing.gamma_pair_angles(probe.gamma)
        self.pair_i, self.pair_j = pairs
        self.n_classes = n_classes
        raw = probe.x
        raw_codes = raw_hash.codes(raw - raw.mean(0))
        raw_m = hashing.collision_matrix(raw_codes, self.class_index, n_classes)
        self.raw_same, self.raw_diff = hashing.same_and_different(raw_m, self.class_index)
        self.oneshot_raw = metrics.oneshot_accuracy(raw, self.episodes, should_abort)
        self.invariance_raw = metrics.invariance_ratio(
            raw[self.inv_rows], self.class_index[self.inv_rows]
        )
        self.oneshot_untrained = float("nan")

    def measure(self, embedding: np.ndarray, logits_seen: np.ndarray) -> dict:
        """All per-snapshot figures for one embedding of the probe set."""
        codes = self.simhash.codes(embedding - embedding.mean(0))
        m = hashing.collision_matrix(codes, self.class_index, self.n_classes)
        same, diff = hashing.same_and_different(m, self.class_index)
        acc = float(np.mean(logits_seen.argmax(1) == self.probe.label[self.seen_rows]))
        return dict(
            train_accuracy=acc,
            oneshot_trained=metrics.oneshot_accuracy(
                embedding, self.episodes, self.should_abort
            ),
            same_class_collision=same,
            different_class_collision=diff,
            collision_matrix=m.astype(np.float32),
            pair_collision=m[self.pair_i, self.pair_j].astype(np.float32),
            invariance_trained=metrics.invariance_ratio(
                embedding[self.inv_rows], self.class_index[self.inv_rows]
            ),
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


def train(
    cfg: ExperimentConfig,
    family: ManifoldFamily,
    model: nn.Module,
    probe: ProbeSet,
    device: torch.device,
    should_stop: Callable[[], bool] = lambda: False,
    measure_every: bool = True,
    should_abort: Callable[[], bool] | None = None,
) -> Iterator[Snapshot]:
    """Train `model` on fresh samples of the seen classes, yielding a Snapshot at step 0,
    every train.snapshot_every steps, and at the end (done=True; also on a stop request).

    Raises DivergenceError on a non-finite loss. `should_abort` (window closing) ends the
    run at once, even inside a long measurement, without a final snapshot.
    """
    try:
        yield from _train(cfg, family, model, probe, device, should_stop, should_abort)
    except metrics.Stopped:
        return


def _train(cfg, family, model, probe, device, should_stop, should_abort) -> Iterator[Snapshot]:
    t = cfg.train
    gen = torch.Generator().manual_seed(stream_seed(cfg.seed, "batches"))
    opt = make_optimizer(cfg, model)
    loss_fn = nn.CrossEntropyLoss()
    probe_x = torch.from_numpy(probe.x).to(device)
    seen_rows = torch.from_numpy(np.flatnonzero(probe.seen)).to(device)
    with threadpool_limits(limits=1, user_api="blas"):
        measurer = Measurer(cfg, probe, model.head.in_features, should_abort)
    n_seen = cfg.data.seen_classes

    def snapshot(step: int, loss: float, start: float, last: tuple[int, float], done: bool):
        model.eval()
        with torch.no_grad():
            emb_t = model.embed(probe_x)
            logits = model.head(emb_t[seen_rows])
        model.train()
        emb = emb_t.float().cpu().numpy()
        # One BLAS thread: OpenBLAS workers left spinning after a measurement steal the
        # cores from torch's training threads (engine/bare ratio 0.66 -> 0.9 measured).
        with threadpool_limits(limits=1, user_api="blas"):
            if step == 0 and math.isnan(measurer.oneshot_untrained):
                measurer.oneshot_untrained = metrics.oneshot_accuracy(
                    emb, measurer.episodes, should_abort
                )
            figures = measurer.measure(emb, logits.float().cpu().numpy())
        now = time.perf_counter()
        rate = (step - last[0]) / max(now - last[1], 1e-9) if step > last[0] else 0.0
        return Snapshot(
            step=step,
            total_steps=t.steps,
            seconds=now - start,
            steps_per_s=rate,
            device=str(device),
            loss=loss,
            oneshot_untrained=measurer.oneshot_untrained,
            oneshot_raw=measurer.oneshot_raw,
            ways=measurer.ways,
            episodes=len(measurer.episodes),
            bits=cfg.hashing.bits,
            tables=cfg.hashing.tables,
            raw_same_class_collision=measurer.raw_same,
            raw_different_class_collision=measurer.raw_diff,
            pair_angle=measurer.angles.astype(np.float32),
            invariance_raw=measurer.invariance_raw,
            embedding=emb,
            probe=probe,
            done=done,
            **figures,
        )

    def batch() -> tuple[torch.Tensor, torch.Tensor]:
        labels = torch.randint(0, n_seen, (t.batch_size,), generator=gen)
        x, _ = family.sample(labels, gen)
        return x.to(device, non_blocking=True), labels.to(device, non_blocking=True)

    start = time.perf_counter()
    x, y = batch()
    with torch.no_grad():
        first_loss = float(loss_fn(model(x), y))
    yield snapshot(0, first_loss, start, (0, start), done=t.steps == 0)
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
                raise DivergenceError(step, mean_loss)
            snap = snapshot(step, mean_loss, start, last, done=final)
            last = (step, time.perf_counter())
            loss_sum.zero_()
            since = 0
            yield snap
            if final:
                return
        elif step % 10 == 0 and not math.isfinite(float(loss.detach())):
            raise DivergenceError(step, float(loss.detach()))
