"""The engine's output contract: ProbeSet (fixed per run) and Snapshot (one per interval).

Both are plain dataclasses of numpy arrays, floats and strings: no torch, no Qt. The
GUI, the CLI, tests and benchmarks all consume exactly these.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


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

    @property
    def class_index(self) -> np.ndarray:
        """Row -> position of its class in `classes` (0..C-1)."""
        lookup = {int(c): i for i, c in enumerate(self.classes)}
        return np.array([lookup[int(c)] for c in self.label], dtype=np.int64)

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
    )

    def scalars(self) -> dict[str, float]:
        """One history row: the snapshot's scalar measurements."""
        return {k: getattr(self, k) for k in self.SCALARS}
