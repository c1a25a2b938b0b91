"""The selection shared by every panel, and what it highlights at a snapshot.

A selection is one probe point, a set of points (a rectangle drawn in a projection) or
a pair of classes (a heatmap cell). It holds probe rows and class positions, never
coordinates, so it survives a timeline scrub: at every snapshot its bucket-mates are
recomputed from that snapshot's embedding, hashed exactly as the engine hashes it (the
run's SimHash hyperplanes, on the embedding minus the snapshot's hash centre), so a user
can watch one point's bucket-mates change from strangers to its own class.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
from PySide6 import QtCore

from engine.hashing import SimHash, center_of
from engine.seeds import stream_seed
from engine.snapshot import ProbeSet, RunInfo, Snapshot

ANY_TABLE = -1


class Shown(Protocol):
    """What a selection reads of the View on screen (app.view, a sibling module)."""

    @property
    def probe(self) -> ProbeSet: ...


def bucket_codes(snapshot: Snapshot, run: RunInfo, seed: int) -> np.ndarray:
    """(rows, tables) bucket codes of the snapshot's embedding, hashed as the engine hashed
    it for its figures (the run's bits and tables, its hyperplane seed)."""
    emb = np.asarray(snapshot.embedding, dtype=np.float32)
    h = SimHash(emb.shape[1], run.bits, run.tables, stream_seed(seed, "simhash"))
    return h.codes(emb - center_of(emb, getattr(snapshot, "hash_center", None)))


def bucket_mates(codes: np.ndarray, row: int, table: int = ANY_TABLE) -> np.ndarray:
    """Rows sharing `row`'s bucket in `table` (or in any table), `row` itself excluded."""
    same = codes == codes[row]
    hit = same.any(1) if table == ANY_TABLE else same[:, table]
    hit[row] = False
    return np.flatnonzero(hit)


@dataclass
class Highlight:
    """What a selection marks at one snapshot (rows of the probe set)."""

    point: int | None = None
    mates: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    class_rows: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    rows: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    classes: tuple[int, ...] = ()  # class positions (probe.classes order)

    @property
    def empty(self) -> bool:
        return self.point is None and not len(self.rows) and not self.classes


class Selection(QtCore.QObject):
    """The user's selection; `changed` fires on every change."""

    changed = QtCore.Signal()

    def __init__(self, parent: QtCore.QObject | None = None) -> None:
        super().__init__(parent)
        self.row: int | None = None
        self.rows = np.zeros(0, np.int64)
        self.pair: tuple[int, int] | None = None  # class positions
        self.table = ANY_TABLE

    @property
    def kind(self) -> str:
        if self.row is not None:
            return "point"
        if self.pair is not None:
            return "pair"
        return "rows" if len(self.rows) else "none"

    def select_point(self, row: int) -> None:
        self.row, self.rows, self.pair = int(row), np.zeros(0, np.int64), None
        self.changed.emit()

    def select_rows(self, rows: np.ndarray | list[int]) -> None:
        rows = np.unique(np.asarray(rows, dtype=np.int64))
        self.row, self.rows, self.pair = None, rows, None
        self.changed.emit()

    def select_pair(self, a: int, b: int) -> None:
        self.row, self.rows, self.pair = None, np.zeros(0, np.int64), (int(a), int(b))
        self.changed.emit()

    def set_table(self, table: int) -> None:
        self.table = int(table)
        self.changed.emit()

    def clear(self) -> None:
        if self.kind != "none":
            self.row, self.rows, self.pair = None, np.zeros(0, np.int64), None
            self.changed.emit()

    def highlight(self, view: Shown | None, codes: np.ndarray | None) -> Highlight:
        """The rows and classes this selection marks at the View's snapshot."""
        probe = view.probe if view is not None else None
        if probe is None or self.kind == "none":
            return Highlight()
        class_index = probe.class_index
        if self.row is not None:  # a point
            if self.row >= len(probe):
                return Highlight()
            c = int(class_index[self.row])
            mates = (bucket_mates(codes, self.row, self.table) if codes is not None
                     else np.zeros(0, np.int64))
            return Highlight(point=self.row, mates=mates,
                             class_rows=np.flatnonzero(class_index == c), classes=(c,))
        if self.pair is not None:
            a, b = self.pair
            rows = np.flatnonzero((class_index == a) | (class_index == b))
            return Highlight(class_rows=rows, classes=(a, b) if a != b else (a,))
        rows = self.rows[self.rows < len(probe)]
        return Highlight(rows=rows)
