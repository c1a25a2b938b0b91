"""Inspector: what the selection is, at the snapshot on screen.

One point: its class (seen or unseen), its theta, its input x (the image for image
families, a bar plot for vector ones), its bucket code in every table with how many
points share it, and its one-shot verdict: in the run's own episodes where it is a query,
the unseen-class exemplar nearest to it (cosine) and whether that is its class. A
rectangle of points: the count per class. A pair of classes (a heatmap cell): their
collision rates. The table choice (any, or one table) decides who counts as a
bucket-mate in every panel.
"""

from __future__ import annotations

import html

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtWidgets

from app.palette import palette
from app.panels.base import PlotPanel
from app.selection import ANY_TABLE, Highlight, Selection
from app.view import View
from engine.snapshot import ProbeSet, RunInfo

NO_SELECTION = "no selection: click a point"


def oneshot_verdict(embedding: np.ndarray, episodes: list, row: int
                    ) -> tuple[int, int, int] | None:
    """(episodes where `row` is a query, how many it gets right, the first one's nearest
    exemplar row), or None when it is never a query (a seen class, or an exemplar)."""
    unit = embedding / np.maximum(np.linalg.norm(embedding, axis=1, keepdims=True), 1e-12)
    n = right = 0
    first = -1
    for support, queries, targets in episodes:
        hit = np.flatnonzero(queries == row)
        if not len(hit):
            continue
        nearest = int(np.argmax(unit[support] @ unit[row]))
        n += 1
        right += int(nearest == targets[hit[0]])
        if first < 0:
            first = int(support[nearest])
    return None if n == 0 else (n, right, first)


class InspectorPanel(PlotPanel):
    name = "inspector"
    title = "Inspector"
    table_chosen = QtCore.Signal(int)  # ANY_TABLE or a table index

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.table_choice = QtWidgets.QComboBox()
        self.table_choice.setToolTip("Bucket-mates share the point's bucket in this table "
                                     "(or in any table)")
        self.table_choice.addItem("any table", ANY_TABLE)
        self.table_choice.currentIndexChanged.connect(
            lambda _i: self.table_chosen.emit(int(self.table_choice.currentData())))
        self.header.addWidget(QtWidgets.QLabel("bucket-mates in"))
        self.header.addWidget(self.table_choice)
        self.text = QtWidgets.QLabel()
        self.text.setWordWrap(True)
        self.text.setTextFormat(QtCore.Qt.TextFormat.RichText)
        self.text.setAlignment(QtCore.Qt.AlignmentFlag.AlignTop)
        self.text.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)
        scroll = QtWidgets.QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(self.text)
        scroll.setMinimumHeight(90)
        self.column.insertWidget(1, scroll, 1)
        self.plot = self.add_plot()
        self.plot.setMenuEnabled(False)
        self.image = pg.ImageItem(axisOrder="row-major")
        self.image.setLookupTable(palette().colormap.getLookupTable(0.0, 1.0, 256))
        self.bars = pg.BarGraphItem(x=[], height=[], width=0.8, brush=palette().class_brushes[0])
        self.plot.addItem(self.image)
        self.plot.addItem(self.bars)
        self.episodes: list = []  # the run's one-shot episodes, made when first needed
        self._episodes_of: RunInfo | None = None  # the RunInfo they belong to
        self._tables = 0
        self.clear()

    def set_tables(self, tables: int) -> None:
        if tables == self._tables:
            return
        self._tables = tables
        current = self.table_choice.currentData()
        with QtCore.QSignalBlocker(self.table_choice):
            self.table_choice.clear()
            self.table_choice.addItem("any table", ANY_TABLE)
            for t in range(tables):
                self.table_choice.addItem(f"table {t + 1}", t)
            i = self.table_choice.findData(current)
            self.table_choice.setCurrentIndex(max(i, 0))

    def clear(self) -> None:
        self.text.setText("<i>Click a point in a projection (shift-drag for a rectangle), or "
                          "a cell of the collision heatmap. Escape clears.</i>")
        self.image.clear()
        self.bars.setOpts(x=[], height=[])
        self._name_input(None)
        self._cleared()
        self.set_empty(True, NO_SELECTION)

    def show_selection(self, selection: Selection, highlight: Highlight, view: View | None,
                       codes: np.ndarray | None) -> None:
        """Describe `selection` (its `highlight` at the View's snapshot) in words and the
        input."""
        if view is None or highlight.empty:
            self.clear()
            return
        snapshot, probe = view.snapshot, view.probe
        self.set_tables(view.run.tables)
        if highlight.point is not None:
            self._show_point(highlight, view, codes)
        elif highlight.classes:
            self._show_pair(highlight, view)
        else:
            self._show_rows(highlight, probe)
        self.set_info(f"step {snapshot.step} · {selection.kind}")
        if highlight.point is None:
            self.image.clear()
            self.bars.setOpts(x=[], height=[])
            self._name_input(None)
        else:
            x = probe.x[highlight.point]
            if probe.image_shape is not None:
                self.bars.setOpts(x=[], height=[])
                self.image.setImage(x.reshape(probe.image_shape), autoLevels=True)
                self.plot.invertY(True)
                self.plot.setAspectLocked(True)
                self._name_input(f"input x of point {highlight.point} (the image)")
            else:
                self.image.clear()
                self.plot.invertY(False)
                self.plot.setAspectLocked(False)
                self.bars.setOpts(x=np.arange(len(x)), height=x, width=0.8)
                self._name_input(f"input x of point {highlight.point}", "input dimension")
            self.plot.autoRange()
        self._changed()
        # a pair of classes or a set of points has no one input: no empty axes under it
        self.graphics.setVisible(highlight.point is not None)

    def _name_input(self, title: str | None, bottom: str | None = None) -> None:
        """Say what the lower plot shows (a bare bar chart read as nothing in particular)."""
        self.plot.setTitle(title, size="8pt")
        self.plot.setLabel("bottom", bottom)
        self.plot.showAxis("bottom", True)

    def _class_words(self, probe: ProbeSet, pos: int) -> str:
        c = int(probe.classes[pos])
        return f"class {c} ({'seen' if probe.class_seen[pos] else 'unseen'})"

    def _run_episodes(self, view: View) -> list:
        """The run's one-shot episodes (engine.measure.probe_episodes), once per run."""
        if self._episodes_of is not view.run:
            from engine.measure import probe_episodes

            self.episodes = probe_episodes(view.config, view.probe)
            self._episodes_of = view.run
        return self.episodes

    def _show_point(self, h: Highlight, view: View, codes: np.ndarray | None) -> None:
        snapshot, probe, row = view.snapshot, view.probe, h.point
        assert row is not None  # a point
        names = list(probe.theta_names) or [f"theta_{k}" for k in range(probe.theta.shape[1])]
        theta = ", ".join(f"{n} = {v:.2f}" for n, v in zip(names, probe.theta[row], strict=False))
        lines = [f"<b>point {row}</b>: {self._class_words(probe, h.classes[0])}",
                 f"theta: {html.escape(theta)}"]
        if codes is not None:
            for t in range(codes.shape[1]):
                mates = np.flatnonzero(codes[:, t] == codes[row, t])
                own = int(np.sum(probe.class_index[mates] == h.classes[0])) - 1
                lines.append(f"table {t + 1}: bucket <tt>{int(codes[row, t]):0{view.run.bits}b}"
                             f"</tt>, shared with {len(mates) - 1} points ({own} of its class)")
            lines.append(self._bucket_spread(view, row))
        own = int(np.sum(probe.class_index[h.mates] == h.classes[0]))
        lines.append(f"bucket-mates ({self.table_choice.currentText()}): {len(h.mates)}, "
                     f"{own} of its own class")
        verdict = oneshot_verdict(snapshot.embedding, self._run_episodes(view), row)
        if verdict is None:
            why = "a seen class" if probe.seen[row] else "an exemplar in every episode"
            lines.append(f"one-shot: not a query ({why})")
        else:
            n, right, nearest = verdict
            guess = self._class_words(probe, int(probe.class_index[nearest]))
            ok = "right" if probe.class_index[nearest] == h.classes[0] else "wrong"
            lines.append(f"one-shot: nearest exemplar is point {nearest}, {guess}: "
                         f"<b>{ok}</b>; right in {right} of {n} episodes")
        self.text.setText("<br>".join(lines))

    @staticmethod
    def _bucket_spread(view: View, row: int) -> str:
        """The bucket counts above are sampled (one draw of each table): their spread over
        200 fresh draws of a table, and their expectation over hyperplanes."""
        from engine.hashing import SPREAD_DRAWS, bucket_mates_spread, center_of
        from engine.seeds import stream_seed

        snap, probe = view.snapshot, view.probe
        s = bucket_mates_spread(snap.embedding, center_of(snap.embedding, snap.hash_center),
                                row, view.run.bits, probe.class_index,
                                stream_seed(view.config.seed, "lsh_spread"))
        (a, b), (c, d), (e, f) = s["all"], s["own"], s["expected"]
        return (f"<i>sampled, one draw per table; 5–95% over {SPREAD_DRAWS} draws: shared "
                f"with {a:.0f}–{b:.0f} points ({c:.0f}–{d:.0f} of its class); expected "
                f"{e:.1f} ({f:.1f} of its class)</i>")

    def _show_pair(self, h: Highlight, view: View) -> None:
        probe, m = view.probe, np.asarray(view.snapshot.collision_matrix)
        a = h.classes[0]
        b = h.classes[-1]
        lines = [f"<b>{self._class_words(probe, a)} and {self._class_words(probe, b)}</b>",
                 f"collision rate between them {m[a, b]:.3f}",
                 f"within {int(probe.classes[a])}: {m[a, a]:.3f}; "
                 f"within {int(probe.classes[b])}: {m[b, b]:.3f}",
                 f"{len(h.class_rows)} points highlighted"]
        self.text.setText("<br>".join(lines))

    def _show_rows(self, h: Highlight, probe: ProbeSet) -> None:
        pos, counts = np.unique(probe.class_index[h.rows], return_counts=True)
        order = np.argsort(-counts)
        lines = [f"<b>{len(h.rows)} points</b> in {len(pos)} classes"]
        lines += [f"{self._class_words(probe, int(pos[i]))}: {int(counts[i])}"
                  for i in order[:30]]
        if len(order) > 30:
            lines.append(f"… and {len(order) - 30} more classes")
        self.text.setText("<br>".join(lines))
