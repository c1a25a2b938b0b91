"""The window's memory of one run: every step and scalar row, a few whole snapshots, frames.

Scalar rows are small and kept for the whole run (curves, CSV), and so is every step.
Whole snapshots (each holds a probe embedding) are kept for at most `capacity` steps,
newest and most recently viewed first; any other step is read back from the run record
(engine.record) when the timeline asks for it, so memory stays flat however long the
run. Without a record (recording off or failed) older snapshots are thinned instead, and
the timeline offers only the steps still in memory.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from engine.snapshot import Snapshot

if TYPE_CHECKING:
    from engine.record import RunReader

DEFAULT_CAPACITY = 32
FRAME_CAPACITY = 256


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
        self.reader: RunReader | None = None  # this run's record, when it is recorded
        self.rows: list[dict[str, Any]] = []
        self.steps: list[int] = []
        self._index: dict[int, int] = {}
        self._cache: OrderedDict[int, Snapshot] = OrderedDict()
        self.frames: OrderedDict[int, Frame] = OrderedDict()  # embedding frames by step
        self.raw_frame: Frame | None = None
        self.latest: Snapshot | None = None

    def __len__(self) -> int:
        return len(self.steps)

    # -- filling -----------------------------------------------------------------------
    def attach(self, reader: RunReader) -> None:
        """Read evicted snapshots and cached frames back from this run record."""
        self.reader = reader

    def load(self, reader: RunReader) -> None:
        """Show a recorded run: its rows and steps now, its snapshots on demand."""
        self.clear()
        self.reader = reader
        latest = reader.latest()  # the last snapshot that opens (damaged ones are dropped)
        self.rows = list(reader.rows)
        self.steps = sorted(int(s) for s in reader.steps)
        self._index = {s: i for i, s in enumerate(self.steps)}
        if latest is not None:
            self._remember(latest)
        self.latest = latest
        raw = reader.read_frame("raw", None)
        if raw is not None:
            self.raw_frame = Frame("raw", None, raw[0], raw[1])

    def extend(self, reader: RunReader) -> list[int]:
        """Take up the steps another process's writer added to this run's record since
        it was loaded (app.follow); returns them."""
        new = sorted(int(s) for s in reader.steps if int(s) not in self._index)
        if not new:
            return []
        self.rows = list(reader.rows)
        for s in new:
            self._index[s] = len(self.steps)
            self.steps.append(s)
        if self.steps != sorted(self.steps):
            self.steps.sort()
            self._index = {s: i for i, s in enumerate(self.steps)}
        self.latest = self.by_step(self.steps[-1]) or self.latest
        return new

    def add(self, snapshot: Snapshot) -> None:
        self.rows.append(snapshot.scalars())
        if snapshot.step not in self._index:
            self._index[snapshot.step] = len(self.steps)
            self.steps.append(snapshot.step)
        self.latest = snapshot
        self._remember(snapshot)

    def _remember(self, snapshot: Snapshot) -> None:
        self._cache[snapshot.step] = snapshot
        self._cache.move_to_end(snapshot.step)
        while len(self._cache) > self.capacity:
            if self.reader is not None:
                oldest = next(iter(self._cache))
                if oldest == getattr(self.latest, "step", None):
                    self._cache.move_to_end(oldest)
                    oldest = next(iter(self._cache))
                del self._cache[oldest]
            else:
                self._thin()

    def _thin(self) -> None:
        """No record to read back from: drop every second snapshot of the older half (the
        curves keep every row; the timeline offers the steps still in memory)."""
        kept = sorted(self._cache)
        half = len(kept) // 2
        drop = set(kept[:half][1::2])
        for step in drop:
            del self._cache[step]
            self.frames.pop(step, None)
        self.steps = [s for s in self.steps if s not in drop]
        self._index = {s: i for i, s in enumerate(self.steps)}

    # -- reading -----------------------------------------------------------------------
    def index_of(self, step: int) -> int | None:
        return self._index.get(step)

    def at(self, index: int) -> Snapshot | None:
        """The snapshot at timeline position `index` (clamped), from memory or the record."""
        if not self.steps:
            return None
        return self.by_step(self.steps[min(max(int(index), 0), len(self.steps) - 1)])

    def by_step(self, step: int) -> Snapshot | None:
        """The whole snapshot at `step`, or None when it is neither in memory nor on disk."""
        snap = self._cache.get(step)
        if snap is not None:
            self._cache.move_to_end(step)
            return snap
        if self.reader is None or step not in self._index:
            return None
        from engine.record_format import RunRecordError

        try:
            snap = self.reader.snapshot(step)
        except RunRecordError:
            return None
        self._remember(snap)
        return snap

    # -- frames ------------------------------------------------------------------------
    def set_frame(self, frame: Frame) -> None:
        if frame.key == "raw":
            self.raw_frame = frame
        elif frame.step is not None and frame.step in self._index:
            self.frames[frame.step] = frame
            self.frames.move_to_end(frame.step)
            while len(self.frames) > FRAME_CAPACITY:
                self.frames.popitem(last=False)

    def recorded_frame(self, step: int) -> Frame | None:
        """The frame of `step` from memory, else from the record's frame cache."""
        frame = self.frames.get(step)
        if frame is None and self.reader is not None and step in self._index:
            found = self.reader.read_frame("embedding", step)
            if found is not None:
                frame = Frame("embedding", step, found[0], found[1])
                self.set_frame(frame)
        return frame

    def frame_for(self, step: int) -> Frame | None:
        """The embedding frame of `step`, else the newest earlier one, else the oldest later."""
        exact = self.recorded_frame(step)
        if exact is not None:
            return exact
        if not self.frames:
            return None
        earlier = [s for s in self.frames if s <= step]
        return self.frames[max(earlier) if earlier else min(self.frames)]
