"""The engine's output contract: ProbeSet and RunInfo (fixed per run) and Snapshot (one
per interval).

All three are plain dataclasses of numpy arrays, floats and strings: no torch, no Qt. The
GUI, the CLI, tests and benchmarks all consume exactly these.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from .figures import RUN_FIGURES, SNAPSHOT_FIGURES, ci_row

NAN = float("nan")


def _empty() -> np.ndarray:
    return np.zeros(0, dtype=np.float32)


@dataclass
class ProbeSet:
    """Fixed points measured at every snapshot: some seen classes and all unseen ones.

    Rows are grouped by class; `label` is the global class id (seen classes are
    0..seen_classes-1, unseen ones follow). `classes` lists the probe's classes in
    matrix order (seen first), `class_seen` flags them, `gamma` holds their gammas.
    """

    x: np.ndarray  # (n, x_dim) float32 raw inputs
    label: np.ndarray  # (n,) int64 global class id
    seen: np.ndarray  # (n,) bool
    theta: np.ndarray  # (n, theta_dim) float32
    classes: np.ndarray  # (C,) int64 global class ids, seen first
    class_seen: np.ndarray  # (C,) bool
    gamma: np.ndarray  # (C, gamma_dim) float32
    theta_names: list[str] = field(default_factory=list)
    image_shape: tuple[int, int] | None = None  # set for image families

    @cached_property
    def class_index(self) -> np.ndarray:
        """Row -> position of its class in `classes` (0..C-1); computed once per probe."""
        classes = np.asarray(self.classes)
        order = np.argsort(classes, kind="stable")
        pos = np.searchsorted(classes[order], np.asarray(self.label))
        return order[np.clip(pos, 0, len(order) - 1)].astype(np.int64)

    def __len__(self) -> int:
        return len(self.label)


@dataclass
class RunInfo:
    """What is fixed for a run and measured once: its probe set, the sizes of its
    measurements, and the baselines every snapshot is compared with: the untrained
    network (measured at step 0) and the raw input."""

    probe: ProbeSet
    total_steps: int
    device: str
    ways: int  # N of the N-way one-shot episodes
    episodes: int
    bits: int  # SimHash bits per table
    tables: int
    pair_angle: np.ndarray  # (P,) angle (radians) between the gammas of class pairs i<j
    # The untrained network's figures (the step-0 snapshot's)
    oneshot_untrained: float = NAN
    gamma_r2_untrained: float = NAN
    theta_r2_untrained: float = NAN
    # The raw input's figures, on the same probe, episodes and hashing sizes
    oneshot_raw: float = NAN
    raw_same_class_collision: float = NAN
    raw_different_class_collision: float = NAN
    raw_unseen_same_class_collision: float = NAN
    raw_unseen_different_class_collision: float = NAN
    invariance_raw: float = NAN
    gamma_r2_raw: float = NAN
    theta_r2_raw: float = NAN
    locality_spearman_raw: float = NAN
    lsh_recall_raw: float = NAN
    lsh_candidates_raw: float = NAN
    lsh_oneshot_raw: float = NAN
    lsh_bit_agreement_raw: float = NAN
    lsh_recall_theory_raw: float = NAN
    theta_r2_unseen_untrained: float = NAN
    theta_r2_seen_untrained: float = NAN
    within_share_untrained: float = NAN
    theta_r2_unseen_raw: float = NAN
    theta_r2_seen_raw: float = NAN
    within_share_raw: float = NAN
    # The learned linear baseline (LDA of the raw input fitted on seen classes only,
    # metrics.LearnedLinear), on the same episodes and rates
    oneshot_learned_linear: float = NAN
    learned_linear_unseen_same_class_collision: float = NAN
    learned_linear_unseen_different_class_collision: float = NAN
    invariance_learned_linear: float = NAN
    raw_hash_center: np.ndarray = field(default_factory=_empty)  # mean of seen-class x
    # 95% bootstrap intervals of the baselines that carry one (engine/figures.py): name ->
    # [lo, hi]
    baseline_ci95: dict = field(default_factory=dict)
    # One-shot on the validation classes (nan without them, as in runs recorded before)
    validation_classes: int = 0
    val_oneshot_untrained: float = NAN
    val_oneshot_raw: float = NAN
    val_oneshot_learned_linear: float = NAN
    raw_pair_collision: np.ndarray = field(default_factory=_empty)  # (P,) as pair_angle
    raw_pair_embed_angle: np.ndarray = field(default_factory=_empty)  # class-mean angles

    BASELINES = tuple(f.name for f in RUN_FIGURES)  # engine/figures.py

    def baselines(self) -> dict[str, float]:
        """The scalar baselines by name (as in metrics.json and a sweep's summary)."""
        return {k: getattr(self, k) for k in self.BASELINES}


@dataclass
class Snapshot:
    """Everything measured from the model at one training step (what is fixed for the
    run, and the baselines, are in its RunInfo)."""

    step: int
    seconds: float  # wall time since training started
    steps_per_s: float  # over the last interval
    loss: float  # mean training loss over the last interval (at step 0: first batch)
    train_accuracy: float  # head accuracy on probe seen classes, fresh theta
    # N-way one-shot accuracy on unseen classes (cosine nearest neighbour to one exemplar)
    oneshot_trained: float
    # SimHash collision probabilities P[h(x) = h(x')], expected over random hyperplanes
    # (closed form, hashing.exact_collision_matrix), self-pairs excluded
    same_class_collision: float
    different_class_collision: float
    collision_matrix: np.ndarray  # (C, C), probe classes in ProbeSet.classes order
    pair_collision: np.ndarray  # (P,) collision rate of class pairs i<j (RunInfo.pair_angle)
    # theta-invariance on unseen classes (a fixed subsample of their rows): mean
    # within-class / mean between-class distance (lower = invariant)
    invariance_trained: float
    embedding: np.ndarray  # (n, embed_dim) float32, rows as in ProbeSet
    done: bool = False  # last snapshot of the run
    # Collision rates among seen classes only and among unseen classes only (the ones
    # above pool all probe classes); pair-weighted, self-pairs excluded.
    seen_same_class_collision: float = NAN
    seen_different_class_collision: float = NAN
    unseen_same_class_collision: float = NAN
    unseen_different_class_collision: float = NAN
    # Linear probes (ridge, penalty by class-held-out CV), R^2 (1 = exact, <= 0 = none):
    # gamma fitted on a few samples of many seen classes, scored on the unseen classes'
    # probe rows; theta fitted on the same rows, scored on every probe row.
    gamma_r2_trained: float = NAN
    theta_r2_trained: float = NAN
    # theta read both ways: R^2 on unseen rows and on seen rows; and the share of the
    # embedding's variance within classes, over unseen rows (metrics.within_class_share)
    theta_r2_unseen_trained: float = NAN
    theta_r2_seen_trained: float = NAN
    within_share_trained: float = NAN
    # Locality, per class pair in pair_angle's order: the angle between the two classes'
    # mean centred embeddings; Spearman rank correlation of gamma angle with collision
    # rate over unseen-unseen pairs (negative = collisions fall as gammas part: LSH-like).
    pair_embed_angle: np.ndarray = field(default_factory=_empty)
    locality_spearman_unseen: float = NAN
    # One-shot through an LSH index (hashing.lsh_index_oneshot, RunInfo's bits x tables):
    # recall = the true exemplar shares a bucket, candidates per query, hash-only one-shot
    # accuracy (no candidate = miss), mean per-bit agreement with the true exemplar.
    lsh_recall_trained: float = NAN
    lsh_candidates_trained: float = NAN
    lsh_oneshot_trained: float = NAN
    lsh_bit_agreement_trained: float = NAN
    # recall expected over hyperplanes: mean over queries of 1 - (1 - p^b)^L, p = 1 - a/pi
    lsh_recall_theory_trained: float = NAN
    # the hash's centre, subtracted before hashing: the mean embedding of seen-class rows
    hash_center: np.ndarray = field(default_factory=_empty)
    # 95% bootstrap intervals (over unseen classes, and episodes for one-shot) of the
    # figures that carry one (engine/figures.py): name -> [lo, hi]
    ci95: dict = field(default_factory=dict)
    collapsed: str = ""  # "" when healthy, else why training has collapsed (metrics.py)
    # The validation classes (data.validation_classes; nan without them): one-shot on
    # their own episodes and expected collision rates around hash_center. For choosing
    # presets and targets; never reported as unseen.
    val_oneshot_trained: float = NAN
    val_same_class_collision: float = NAN
    val_different_class_collision: float = NAN

    # history.csv's columns (engine/figures.py declares the figures)
    SCALARS = ("step", "seconds", "steps_per_s", *(f.name for f in SNAPSHOT_FIGURES),
               "collapsed", *(c for f in SNAPSHOT_FIGURES for c in f.ci_columns))
    _N_CI = sum(len(f.ci_columns) for f in SNAPSHOT_FIGURES)

    def scalars(self) -> dict[str, float | str]:
        """One history row: the snapshot's scalar measurements."""
        row = {k: getattr(self, k) for k in self.SCALARS[: len(self.SCALARS) - self._N_CI]}
        row.update(ci_row(self.ci95, SNAPSHOT_FIGURES))
        return row
