"""The training loop as a generator of Snapshots; each snapshot's measurements run in
engine.measure, beside it. Also the rows the measurements need (fit, validation)."""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from concurrent.futures import wait as futures_wait
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from threadpoolctl import threadpool_limits
from torch import nn

from . import metrics
from .config import ExperimentConfig
from .manifolds import ManifoldFamily
from .measure import FitRows, Measured, MeasureProcess, Measurer, measure_with
from .model import HashNet
from .seeds import stream_seed
from .snapshot import ProbeSet, RunInfo, Snapshot

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


MAX_PENDING = 2  # snapshots handed to the measurement process and not yet yielded
ABORT_POLL_S = 0.05  # how often a wait for a measurement checks should_abort


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

    A snapshot's measurements run beside training, in a measurement process started for
    the run (engine.measure.MeasureProcess): at a snapshot step the loop embeds the
    probe, fit and validation rows (numpy copies) and hands them over, then trains on;
    finished snapshots are yielded in step order between steps, at most MAX_PENDING in
    flight. The process has its own interpreter, so measuring does not hold up
    training's Python (a thread beside it did, through the GIL). `measure_beside=False`
    measures in the loop instead (the figures are the same). A snapshot's steps_per_s
    leaves out time spent paused at a yield. An exception raised while measuring is
    raised here.

    Raises DivergenceError on a non-finite loss, after yielding the snapshots before it.
    `should_abort` (window closing) ends the run at once, even inside a long measurement,
    without a final snapshot; the measurement process has ended when this returns.
    """
    try:
        yield from _train(cfg, family, model, probe, device, should_stop, should_abort,
                          on_run_info, measure_beside)
    except metrics.Stopped:
        return


class _InLine:
    """A measurement made at once, in the loop (a Future's done() and result())."""

    def __init__(self, value: Measured) -> None:
        self._value = value

    def done(self) -> bool:
        return True

    def result(self) -> Measured:
        return self._value


@dataclass
class _Handed:
    """A snapshot handed over for measurement: its Future and the loop's own fields."""

    future: Future[Measured] | _InLine
    fields: dict[str, Any]  # Snapshot's step, seconds, steps_per_s, loss, embedding, done


def _train(cfg: ExperimentConfig, family: ManifoldFamily, model: HashNet, probe: ProbeSet,
           device: torch.device, should_stop: Callable[[], bool],
           should_abort: Callable[[], bool] | None, on_run_info: Callable[[RunInfo], None],
           measure_beside: bool) -> Iterator[Snapshot]:
    # Started first, so the process starts up while the loop gets ready.
    beside = MeasureProcess() if measure_beside else None
    try:
        yield from _loop(cfg, family, model, probe, device, should_stop, should_abort,
                         on_run_info, beside)
    finally:
        if beside is not None:  # measurements still in progress are no longer wanted
            beside.close(kill=True)


def _loop(cfg: ExperimentConfig, family: ManifoldFamily, model: HashNet, probe: ProbeSet,
          device: torch.device, should_stop: Callable[[], bool],
          should_abort: Callable[[], bool] | None, on_run_info: Callable[[RunInfo], None],
          beside: MeasureProcess | None) -> Iterator[Snapshot]:
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

    embed_dim = model.head.in_features
    measurer: Measurer | None = None
    if beside is not None:  # the raw-input baselines are measured there, as training starts
        beside.setup(cfg, probe, embed_dim, fit, validation)
    else:
        with threadpool_limits(limits=1, user_api="blas"):
            measurer = Measurer(cfg, probe, embed_dim, abort, fit, validation)
    n_seen = cfg.data.seen_classes
    pending: deque[_Handed] = deque()  # in step order
    paused = [0.0]  # seconds spent at yields since the last snapshot step
    info_sent = False

    def hand_over(step: int, loss: float, last: tuple[int, float], done: bool) -> None:
        """Embed the probe now; measure it beside training (or here)."""
        if abort():
            raise metrics.Stopped
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
        args = (emb, logits, fit_emb, loss, first_loss, val_emb)
        pending.append(_Handed(
            beside.submit(*args) if beside is not None
            else _InLine(measure_with(measurer, *args)),  # type: ignore[arg-type]
            dict(step=step, seconds=now - start, steps_per_s=rate, loss=loss, embedding=emb,
                 done=done)))

    def result(handed: _Handed) -> Measured:
        """The measurement's result, raising what it raised; while waiting for it, polls
        should_abort (the process is then killed, in `finally`)."""
        future = handed.future
        while isinstance(future, Future) and not future.done():
            if abort():
                raise metrics.Stopped
            futures_wait([future], timeout=ABORT_POLL_S)
        return future.result()

    def deliver(wait: bool, keep: int = 0) -> Iterator[Snapshot]:
        """Yield finished snapshots in order; with `wait`, until `keep` are left."""
        nonlocal info_sent
        while pending and (len(pending) > keep if wait else pending[0].future.done()):
            handed = pending.popleft()
            figures, fixed = result(handed)
            if not info_sent:  # the first measurement (untrained) fills in the RunInfo
                assert fixed is not None
                on_run_info(RunInfo(probe=probe, total_steps=t.steps, device=str(device),
                                    **fixed))
                info_sent = True
            t0 = time.perf_counter()
            yield Snapshot(**handed.fields, **figures)
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
                if pending and pending[0].future.done():
                    yield from deliver(wait=False)
    finally:
        closing[0] = True
