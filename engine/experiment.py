"""Wires the engine together: config in, Snapshots out. Used by the GUI, CLI and benches."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch

from .config import ExperimentConfig
from .manifolds import ManifoldFamily, make_family
from .model import HashNet, pick_device
from .resources import check_runnable
from .seeds import stream_seed
from .snapshot import ProbeSet, RunInfo, Snapshot
from .training import train


def build_probe(cfg: ExperimentConfig, family: ManifoldFamily) -> ProbeSet:
    """The fixed probe set: probe.seen_classes seen classes spread over the seen range,
    plus every unseen class, probe.per_class fresh samples each, grouped by class. The
    unseen rows' poses come from their own stream, so they do not depend on the seen
    classes."""
    d, p = cfg.data, cfg.probe
    seen = np.unique(np.linspace(0, d.seen_classes - 1, p.seen_classes).round().astype(np.int64))
    unseen = np.arange(d.seen_classes, d.seen_classes + d.unseen_classes, dtype=np.int64)
    classes = np.concatenate([seen, unseen])
    labels = np.repeat(classes, p.per_class)
    parts = [
        family.sample(torch.from_numpy(np.repeat(ids, p.per_class)),
                      torch.Generator().manual_seed(stream_seed(cfg.seed, stream)))
        for ids, stream in ((seen, "probe"), (unseen, "probe_unseen"))
    ]
    x = torch.cat([parts[0][0], parts[1][0]])
    theta = torch.cat([parts[0][1], parts[1][1]])
    return ProbeSet(
        x=x.numpy().astype(np.float32),
        label=labels,
        seen=labels < d.seen_classes,
        theta=theta.numpy().astype(np.float32),
        classes=classes,
        class_seen=classes < d.seen_classes,
        gamma=family.gamma[torch.from_numpy(classes)].numpy().astype(np.float32),
        theta_names=list(family.theta_names),
        image_shape=family.image_shape,
    )


class Experiment:
    """One run: data, probe set and model built from a validated config (refused with a
    ConfigError when it cannot run here, see engine.resources.check_runnable).

    `run()` is a generator of Snapshots (see engine.training.train); `info`, the run's
    RunInfo (probe set, sizes, baselines), is set before the first one is yielded. Memory
    stays flat however long the run: `history` keeps one scalar row per snapshot (as in
    history.csv) and `last` the latest snapshot; earlier arrays live in the run record.
    """

    def __init__(self, config: ExperimentConfig):
        self.config = config.validate()
        check_runnable(self.config)
        self.device = pick_device(config.model.device)
        self.family = make_family(config.data, seed=stream_seed(config.seed, "family"))
        self.probe = build_probe(config, self.family)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(stream_seed(config.seed, "model_init"))
            self.model = HashNet(
                config.data.x_dim, config.data.seen_classes, config.model
            ).to(self.device)
        self.info: RunInfo | None = None
        self.history: list[dict] = []
        self.last: Snapshot | None = None
        self._stop = False
        self._abort = False

    def request_stop(self) -> None:
        """Ask run() to finish after the current step with a final snapshot."""
        self._stop = True

    def abort(self) -> None:
        """Ask run() to end as soon as possible, even inside a measurement (no final snapshot)."""
        self._stop = self._abort = True

    def run(self, measure_beside: bool = True) -> Iterator[Snapshot]:
        """Train, yielding Snapshots; `measure_beside=False` measures them inside the
        training loop instead of in a measurement process beside it (same figures, slower)."""
        self._stop = False
        for snap in train(
            self.config,
            self.family,
            self.model,
            self.probe,
            self.device,
            should_stop=lambda: self._stop,
            should_abort=lambda: self._abort,
            on_run_info=self._set_info,
            measure_beside=measure_beside,
        ):
            self.history.append(snap.scalars())
            self.last = snap
            yield snap

    def _set_info(self, info: RunInfo) -> None:
        self.info = info

    def samples(
        self, class_ids: Sequence[int], per_class: int, seed: int = 0
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Fresh (x, theta, label) for the given classes, e.g. for a gallery of poses."""
        labels = np.repeat(np.asarray(class_ids, dtype=np.int64), per_class)
        g = torch.Generator().manual_seed(stream_seed(self.config.seed, "samples") + seed)
        x, theta = self.family.sample(torch.from_numpy(labels), g)
        return x.numpy().astype(np.float32), theta.numpy().astype(np.float32), labels
