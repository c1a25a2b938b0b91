"""The engine's output contract: ProbeSet (fixed per run) and Snapshot (one per interval).

Both are plain dataclasses of numpy arrays, floats and strings: no torch, no Qt. The
GUI, the CLI, tests and benchmarks all consume exactly these.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

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
class Snapshot:
    """Everything measured from the model at one training step."""

    step: int
    total_steps: int
    seconds: float  # wall time since training started
    steps_per_s: float  # over the last interval
    device: str
    loss: float  # mean training loss over the last interval (at step 0: first batch)
    train_accuracy: float  # head accuracy on probe seen classes, fresh theta
    # N-way one-shot accuracy on unseen classes (cosine nearest neighbour to one exemplar)
    oneshot_trained: float
    oneshot_untrained: float
    oneshot_raw: float
    ways: int
    episodes: int
    # SimHash collision probabilities P[h(x) = h(x')], self-pairs excluded
    bits: int
    tables: int
    same_class_collision: float
    different_class_collision: float
    raw_same_class_collision: float
    raw_different_class_collision: float
    collision_matrix: np.ndarray  # (C, C), probe classes in ProbeSet.classes order
    pair_angle: np.ndarray  # (P,) angle (radians) between the gammas of class pairs i<j
    pair_collision: np.ndarray  # (P,) their collision rate
    # theta-invariance: mean within-class / mean between-class distance (lower = invariant)
    invariance_trained: float
    invariance_raw: float
    embedding: np.ndarray  # (n, embed_dim) float32, rows as in ProbeSet
    probe: ProbeSet | None = None  # the run's probe set (shared, not copied)
    done: bool = False  # last snapshot of the run
    # Collision rates among seen classes only and among unseen classes only (the ones
    # above pool all probe classes); pair-weighted, self-pairs excluded.
    seen_same_class_collision: float = NAN
    seen_different_class_collision: float = NAN
    unseen_same_class_collision: float = NAN
    unseen_different_class_collision: float = NAN
    raw_unseen_same_class_collision: float = NAN
    raw_unseen_different_class_collision: float = NAN
    # Linear probes (ridge, penalty by class-held-out CV), R^2 (1 = exact, <= 0 = none):
    # gamma fitted on a few samples of many seen classes, scored on the unseen classes'
    # probe rows; theta fitted on the same rows, scored on every probe row.
    gamma_r2_trained: float = NAN
    gamma_r2_untrained: float = NAN
    gamma_r2_raw: float = NAN
    theta_r2_trained: float = NAN
    theta_r2_untrained: float = NAN
    theta_r2_raw: float = NAN
    # Locality, per class pair in pair_angle's order (i<j over ProbeSet.classes): the angle
    # between the two classes' mean centred embeddings / raw inputs, and the raw input's
    # collision rate; Spearman rank correlation of gamma angle with collision rate over
    # unseen-unseen pairs (negative = collisions fall as gammas part: LSH-like).
    pair_embed_angle: np.ndarray = field(default_factory=_empty)
    raw_pair_embed_angle: np.ndarray = field(default_factory=_empty)
    raw_pair_collision: np.ndarray = field(default_factory=_empty)
    locality_spearman_unseen: float = NAN
    locality_spearman_raw: float = NAN
    # One-shot through an LSH index (hashing.lsh_index_oneshot, bits x tables as above):
    # recall = the true exemplar shares a bucket, candidates per query, hash-only one-shot
    # accuracy (no candidate = miss), mean per-bit agreement with the true exemplar.
    lsh_recall_trained: float = NAN
    lsh_candidates_trained: float = NAN
    lsh_oneshot_trained: float = NAN
    lsh_bit_agreement_trained: float = NAN
    lsh_recall_raw: float = NAN
    lsh_candidates_raw: float = NAN
    lsh_oneshot_raw: float = NAN
    lsh_bit_agreement_raw: float = NAN
    collapsed: str = ""  # "" when healthy, else why training has collapsed (metrics.py)

    SCALARS = (
        "step",
        "seconds",
        "steps_per_s",
        "loss",
        "train_accuracy",
        "oneshot_trained",
        "oneshot_untrained",
        "oneshot_raw",
        "same_class_collision",
        "different_class_collision",
        "raw_same_class_collision",
        "raw_different_class_collision",
        "invariance_trained",
        "invariance_raw",
        "seen_same_class_collision",
        "seen_different_class_collision",
        "unseen_same_class_collision",
        "unseen_different_class_collision",
        "raw_unseen_same_class_collision",
        "raw_unseen_different_class_collision",
        "gamma_r2_trained",
        "gamma_r2_untrained",
        "gamma_r2_raw",
        "theta_r2_trained",
        "theta_r2_untrained",
        "theta_r2_raw",
        "locality_spearman_unseen",
        "locality_spearman_raw",
        "lsh_recall_trained",
        "lsh_candidates_trained",
        "lsh_oneshot_trained",
        "lsh_bit_agreement_trained",
        "lsh_recall_raw",
        "lsh_candidates_raw",
        "lsh_oneshot_raw",
        "lsh_bit_agreement_raw",
        "collapsed",
    )

    def scalars(self) -> dict[str, float | str]:
        """One history row: the snapshot's scalar measurements."""
        return {k: getattr(self, k) for k in self.SCALARS}
