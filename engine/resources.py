"""What a config will cost before anything is allocated: memory by part, time per snapshot.

`estimate(cfg)` models the engine's own allocations (probe set, one-shot episodes,
collision matrices, model with optimiser state, a training batch's activations,
invariance, the snapshots a run keeps) from the config alone; `check_resources` refuses
a config whose estimate exceeds the memory limit, naming the fields that drive it.
`check_runnable` is what every place that starts a run asks (Experiment, the parameter
panel, a sweep's grid): the memory check and the digits_pose split. Readers of recorded
runs never ask it, so a run recorded on a bigger machine opens on a smaller one.
The limit is half the machine's memory (or its cgroup limit), or GSH_MEMORY_LIMIT
(bytes, or with a K/M/G/T suffix). The byte counts follow the code in engine/training.py,
metrics.py, hashing.py and experiment.py; bench/resources.py compares them with measured
peaks and times.
"""

from __future__ import annotations

import functools
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from .config import FAMILY, ConfigError
from .digits import check_digits

if TYPE_CHECKING:
    from .config import ExperimentConfig

INVARIANCE_ROWS = 800  # engine.measure.INVARIANCE_ROWS (a test keeps them equal)
ONESHOT_BATCH_BYTES = 64 << 20  # engine.metrics gathers one-shot episodes in such batches
# hashing.lsh_index_oneshot holds row-by-row tables of the rows the episodes touch: a
# shared-bucket mask and a per-table comparison (bool), bit agreement and cosine
# similarities (float32); bench/resources.py measured about 10 bytes per row pair.
LSH_ROW_PAIR_BYTES = 1 + 1 + 4 + 4
IMAGE_BLOBS = 5  # engine.manifolds.ImagePose.blobs
FIT_ROWS = 2400  # engine.training.FIT_ROWS: rows the ridge probes are fitted on
RIDGE_SVDS = 6  # metrics.RidgeProbe: one SVD per cross-validation fold, plus one on all rows
# Calibrated on this project's 2-core machine with bench/resources.py; rough on purpose.
SNAPSHOTS_IN_MEMORY = 33  # app.store.DEFAULT_CAPACITY whole snapshots + the newest
ROW_BYTES = 4 << 10  # one snapshot's scalar row as a Python dict (history, curves)
RUNTIME_BYTES = 150 << 20  # what a run's first steps add beyond its arrays (lazy imports)
START_S = 1.0  # building an Experiment and the first steps, whatever the size
TRAIN_FLOPS = 6e10  # torch training step, floating-point operations per second
FLOPS = 1e10  # numpy float32 matmul in a measurement (one BLAS thread)
GATHER_BYTES = 2e8  # one-shot scoring: gathered similarities per second
EPISODE_DRAW_S = 3e-5  # drawing one class of one one-shot episode (a Python loop)
ENV_LIMIT = "GSH_MEMORY_LIMIT"
_UNITS = {"": 1, "B": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


@dataclass
class Part:
    """One consumer of memory and the settings that size it."""

    name: str
    bytes: float
    fields: tuple[str, ...]


@dataclass
class Estimate:
    parts: list[Part] = field(default_factory=list)
    first_snapshot_s: float = 0.0  # building the probe, episodes and baselines, step 0
    interval_s: float = 0.0  # train.snapshot_every steps plus one measurement

    @property
    def total_bytes(self) -> float:
        return sum(p.bytes for p in self.parts)

    def largest(self, n: int = 2) -> list[Part]:
        return sorted(self.parts, key=lambda p: -p.bytes)[:n]

    @property
    def fixed_bytes(self) -> float:
        """What no setting lowers (the runtime)."""
        return sum(p.bytes for p in self.parts if not p.fields)

    def drivers(self) -> list[str]:
        """The fields behind the largest part that settings size (and the next one when
        it is comparable)."""
        sized = sorted((p for p in self.parts if p.fields), key=lambda p: -p.bytes)[:2]
        if not sized:
            return []
        first, *rest = sized
        out = list(first.fields)
        for p in rest:
            if p.bytes >= first.bytes / 4:
                out += [f for f in p.fields if f not in out]
        return out

    def summary(self) -> str:
        return (f"about {human_bytes(self.total_bytes)}; first snapshot in "
                f"{human_seconds(self.first_snapshot_s)}, then "
                f"{human_seconds(self.interval_s)} per snapshot")


def human_bytes(n: float) -> str:
    for unit, size in (("TB", 1 << 40), ("GB", 1 << 30), ("MB", 1 << 20)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{max(n, 0) / 1024:.0f} KB"


def human_seconds(s: float) -> str:
    if s < 1:
        return "under 1 s"
    if s < 120:
        return f"about {s:.0f} s"
    if s < 7200:
        return f"about {s / 60:.0f} min"
    return f"about {s / 3600:.0f} h"


@functools.cache
def physical_memory() -> int:
    """The machine's memory in bytes, capped by a cgroup (container) limit if lower."""
    total = 8 << 30  # a fallback where sysconf is missing (Windows)
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        pass
    for cg in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = Path(cg).read_text().strip()
        except OSError:
            continue
        if text.isdigit() and 0 < int(text) < total:
            total = int(text)
    return total


def parse_bytes(text: str) -> int:
    """'12G', '512M', '1.5G' or a plain byte count."""
    t = text.strip().upper().removesuffix("IB").removesuffix("B")
    unit = t[-1:] if t[-1:] in _UNITS and t[-1:].isalpha() else ""
    try:
        value = float(t[: len(t) - len(unit)])
    except ValueError:
        value = -1.0
    if not (value > 0 and math.isfinite(value * _UNITS[unit])):
        raise ConfigError(ENV_LIMIT, f"must be a size such as 8G or 512M, got {text!r}")
    return int(value * _UNITS[unit])


def memory_limit() -> int:
    """GSH_MEMORY_LIMIT if set, else half the machine's memory."""
    env = os.environ.get(ENV_LIMIT, "").strip()
    return parse_bytes(env) if env else physical_memory() // 2


def estimate(cfg: ExperimentConfig) -> Estimate:
    """Memory and time a run of `cfg` will need (cfg must pass its range checks)."""
    d, m, t, h, p = cfg.data, cfg.model, cfg.train, cfg.hashing, cfg.probe
    f32, f64, i64 = 4, 8, 8
    x_dim, e, w = d.x_dim, m.embed_dim, m.width
    classes = min(p.seen_classes, d.seen_classes) + d.unseen_classes
    n = classes * p.per_class
    n_val = d.validation_classes * p.per_class
    family = FAMILY[d.family]
    image = family.image
    # Floats per sample the generator holds at once besides x (hidden layer / image maps).
    if image:
        gen_floats = IMAGE_BLOBS * d.image_size**2 * 2
    elif "generator_width" in family.fields:  # a generator network's hidden layers
        gen_floats = d.gamma_dim + d.theta_dim + d.generator_width * d.generator_depth
    else:
        gen_floats = d.gamma_dim + d.theta_dim
    body = x_dim * w + w + (m.depth - 1) * (w * w + w) + w * e + e
    params = body + e * d.seen_classes + d.seen_classes
    pairs = classes * (classes - 1) // 2
    ways = min(p.ways, d.unseen_classes)
    queries = ways * (p.per_class - 1)  # per episode
    e_rows = p.episodes * queries  # query rows over all episodes
    r = min(d.unseen_classes, p.episodes * ways) * p.per_class  # rows the episodes touch
    codes = n * h.tables * h.bits
    buckets = min(n, 2**h.bits)
    inv = min(n, INVARIANCE_ROWS)
    k_fit = min(FIT_ROWS, x_dim)  # rank of the ridge probes' SVDs on the raw input
    n_snap = t.steps // t.snapshot_every + 2
    per_snapshot = n * e * f32 + classes * classes * f32 + 2 * pairs * f32 + 512
    # Whole snapshots in memory are bounded (the app's store keeps SNAPSHOTS_IN_MEMORY,
    # the rest is read back from the run record); every snapshot keeps its scalar row.
    kept = min(n_snap, SNAPSHOTS_IN_MEMORY) * per_snapshot + n_snap * ROW_BYTES

    probe_fields = ("probe.per_class", "probe.seen_classes", "data.unseen_classes")
    x_field = "data.image_size" if image else "data.input_dim"
    parts = [
        Part("probe set", n * (3 * x_dim + gen_floats + 2 * w + e) * f32 + n * 4 * i64,
             (*probe_fields, x_field)),
        Part("one-shot episodes",
             2 * e_rows * i64 + r * r * LSH_ROW_PAIR_BYTES
             + 5 * min(ONESHOT_BATCH_BYTES, e_rows * ways * f32)
             + n * x_dim * (f64 + f32),
             ("probe.episodes", "probe.ways", "probe.per_class", "data.unseen_classes")),
        Part("collision matrices",
             codes * (f32 + 2 * i64 + 1) + classes * buckets * f64 + 5 * classes**2 * f64
             + 6 * pairs * f64,
             ("probe.seen_classes", "data.unseen_classes", "probe.per_class",
              "hashing.bits", "hashing.tables")),
        Part("model and optimiser",
             params * f32 * (6 if t.optimizer == "adam" else 4),
             ("model.width", "model.depth", x_field, "data.seen_classes")),
        Part("training batch",
             t.batch_size * (2 * x_dim + gen_floats + 2 * m.depth * w + 2 * e
                             + 3 * d.seen_classes) * f32 * 1.5,
             ("train.batch_size", "model.width", "model.depth")),
        Part("invariance", inv * inv * 8 * f32, ("probe.per_class",)),
        Part("ridge probes",
             RIDGE_SVDS * (FIT_ROWS * k_fit + k_fit * x_dim) * f64 + 3 * FIT_ROWS * x_dim * f64,
             (x_field,)),
        Part("snapshots kept", kept,
             ("probe.per_class", "model.embed_dim", "train.steps", "train.snapshot_every")),
        Part("validation rows",
             n_val * (3 * x_dim + gen_floats + 2 * w + e) * f32 + 3 * n_val**2 * f64,
             ("data.validation_classes", "probe.per_class", x_field)),
        Part("runtime", RUNTIME_BYTES, ()),
    ]

    def measure_s(dim: int) -> float:
        oneshot = 2 * r * r * dim / FLOPS + e_rows * ways * f32 / GATHER_BYTES
        lsh = (2 * r * r * (dim + h.tables * h.bits) / FLOPS
               + e_rows * ways * (1 + 2 * f32) / GATHER_BYTES)
        return (oneshot + lsh + 2 * n * dim * h.tables * h.bits / FLOPS
                + 2 * inv * inv * dim / FLOPS)

    step_s = (6 * t.batch_size * params + t.batch_size * gen_floats * 4) / TRAIN_FLOPS
    probe_forward = 2 * n * body / TRAIN_FLOPS
    first = (START_S + n * gen_floats * 4 / TRAIN_FLOPS + p.episodes * ways * EPISODE_DRAW_S
             + measure_s(x_dim) + 2 * measure_s(e) + probe_forward)
    interval = t.snapshot_every * step_s + measure_s(e) + probe_forward
    return Estimate(parts, first_snapshot_s=first, interval_s=interval)


def check_resources(cfg: ExperimentConfig, limit_bytes: int | None = None) -> Estimate:
    """The estimate, or ConfigError('resources', ...) when it exceeds the memory limit."""
    limit = memory_limit() if limit_bytes is None else int(limit_bytes)
    est = estimate(cfg)
    if est.total_bytes > limit:
        top = est.largest()
        parts = ", ".join(f"{p.name} {human_bytes(p.bytes)}" for p in top)
        source = f"{ENV_LIMIT}" if os.environ.get(ENV_LIMIT) and limit_bytes is None else (
            "half this machine's memory; set GSH_MEMORY_LIMIT to change it"
            if limit_bytes is None else "the given limit")
        drivers = est.drivers()
        if drivers and est.fixed_bytes < limit:
            advice = f"lower {', '.join(drivers)}"
        else:  # no setting can bring it under the limit
            advice = f"raise the limit (a run needs {human_bytes(est.fixed_bytes)} whatever " \
                     "its settings)"
        raise ConfigError(
            "resources",
            f"needs about {human_bytes(est.total_bytes)} of memory, over the limit of "
            f"{human_bytes(limit)} ({source}): mostly {parts}; {advice}",
        )
    return est


def check_runnable(cfg: ExperimentConfig, limit_bytes: int | None = None) -> Estimate:
    """Whether a validated `cfg` can run on this machine: the bundled digits hold its
    digits_pose split and its memory estimate is under the limit (ConfigError naming the
    field otherwise). Asked where a run starts, never when a recorded run is read."""
    if cfg.data.family == "digits_pose":
        check_digits(cfg.data)
    return check_resources(cfg, limit_bytes)
