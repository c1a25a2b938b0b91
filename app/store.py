"""The GUI's memory of the current run: snapshots (bounded), history rows, projection frames.

Every snapshot's scalar row is kept (it is small) for the curves and the CSV export.
Whole snapshots (embeddings included) are kept up to `capacity`; beyond that the older
half is thinned to every second snapshot, so the timeline keeps covering the whole run
with memory bounded by about `capacity` embeddings.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DEFAULT_CAPACITY = 200


@dataclass
class Frame:
    """A 2-D projection of the probe points: of the embedding at `step`, or of raw x."""

    key: str  # "embedding" or "raw"
    step: int | None  # snapshot step (None for the raw input space)
    coords: np.ndarray
    method: str


class SnapshotStore:
    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        self.capacity = max(int(capacity), 4)
        self.clear()

    def clear(self) -> None:
        self.snapshots: list = []
        self.rows: list[dict] = []
        self.frames: dict[int, Frame] = {}  # embedding frames by step
        self.raw_frame: Frame | None = None
        self.probe = None

    def __len__(self) -> int:
        return len(self.snapshots)

    @property
    def latest(self):
        return self.snapshots[-1] if self.snapshots else None

    @property
    def steps(self) -> list[int]:
        return [s.step for s in self.snapshots]

    def add(self, snapshot) -> None:
        if snapshot.probe is not None:
            self.probe = snapshot.probe
        self.rows.append(snapshot.scalars())
        self.snapshots.append(snapshot)
        if len(self.snapshots) > self.capacity:
            self._thin()

    def _thin(self) -> None:
        half = len(self.snapshots) // 2
        older, newer = self.snapshots[:half], self.snapshots[half:]
        kept = older[::2] + newer
        kept_steps = {s.step for s in kept}
        for step in [s for s in self.frames if s not in kept_steps]:
            del self.frames[step]
        self.snapshots = kept

    def index_of(self, step: int) -> int | None:
        for i, s in enumerate(self.snapshots):
            if s.step == step:
                return i
        return None

    def by_step(self, step: int):
        i = self.index_of(step)
        return None if i is None else self.snapshots[i]

    def set_frame(self, frame: Frame) -> None:
        if frame.key == "raw":
            self.raw_frame = frame
        elif frame.step is not None and self.index_of(frame.step) is not None:
            self.frames[frame.step] = frame

    def frame_for(self, step: int) -> Frame | None:
        """The embedding frame of `step`, else the newest earlier one, else the oldest later."""
        if step in self.frames:
            return self.frames[step]
        if not self.frames:
            return None
        earlier = [s for s in self.frames if s <= step]
        return self.frames[max(earlier) if earlier else min(self.frames)]
