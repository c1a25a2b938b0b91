"""Samples of the manifolds x = f(gamma, theta): one row per class, columns are poses.

For image_pose the rows are images of one class under different poses theta; for vector
families each class is a block of sample vectors drawn as a heatmap (rows = samples,
columns = input dimensions). Rows are labelled with the class and whether the network is
trained on it; the colour bar gives the value scale.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtWidgets

from app.palette import palette
from app.panels.base import PlotPanel
from app.selection import Highlight
from app.view import View
from engine.snapshot import ProbeSet

MAX_SEEN = 4
MAX_UNSEEN = 4
PER_CLASS = 8
# Images need room to be read in a narrow dock: fewer rows and poses, no colour bar.
IMAGE_ROWS = 3  # seen and unseen classes each
IMAGE_POSES = 5


def pick_classes(classes: np.ndarray, class_seen: np.ndarray, per_kind: int = MAX_SEEN,
                 selected: Sequence[int] = ()) -> list[tuple[int, bool]]:
    """A few seen and a few unseen probe classes, in probe order; a `selected` class
    (a label) is always among them, in place of the last of its kind."""
    pairs = list(zip((int(c) for c in classes), (bool(s) for s in class_seen), strict=True))
    rows = []
    for kind in (True, False):
        mine = [c for c, s in pairs if s == kind]
        pick = mine[:per_kind]
        for c in selected:
            if c in mine and c not in pick:
                pick = [*pick[:-1], c] if len(pick) >= per_kind else [*pick, c]
        rows += [(c, kind) for c in pick]
    return rows


class SamplesPanel(PlotPanel):
    name = "samples"
    title = "Samples"

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.plot = self.add_plot()
        self.plot.invertY(True)
        self.plot.getViewBox().setDefaultPadding(0.0)
        self.plot.hideAxis("bottom")
        self.plot.setLabel("left", "class (seen = trained on)")
        self.image = pg.ImageItem(axisOrder="row-major")
        self.image.setLookupTable(palette().colormap.getLookupTable(0.0, 1.0, 256))
        self.plot.addItem(self.image)
        self.colorbar = pg.ColorBarItem(
            values=(0.0, 1.0), colorMap=palette().colormap, interactive=False, width=10,
            label="value of x",
        )
        self.graphics.addItem(self.colorbar, row=0, col=1)
        self.mosaic: np.ndarray | None = None
        self._source: ProbeSet | None = None
        self._selected: tuple[int, ...] = ()  # labels of the selected classes
        self._rows: list[tuple[int, bool, np.ndarray]] = []  # (class, seen, its rows of x)
        self._row_span: list[tuple[float, float]] = []  # (top, height) of each class row
        self.marks: list[QtWidgets.QGraphicsRectItem] = []

    def set_view(self, view: View) -> None:
        """Probe rows of a few seen and unseen classes: the same for a live run and a
        reopened one (drawn once per run)."""
        probe = view.probe
        if probe is self._source:
            return
        self._source = probe
        self._draw_probe(probe)

    def _draw_probe(self, probe: ProbeSet) -> None:
        x, label = probe.x, probe.label
        image = probe.image_shape is not None
        per_kind, per = (IMAGE_ROWS, IMAGE_POSES) if image else (MAX_SEEN, PER_CLASS)
        rows = [(c, s, x[label == c][:per])
                for c, s in pick_classes(probe.classes, probe.class_seen, per_kind,
                                         self._selected)]
        self._rows = rows
        self._draw(rows, probe.image_shape)
        self._draw_marks()

    def set_highlight(self, highlight: Highlight | None) -> None:
        """Outline the selected classes' rows (a selected class not shown is brought in)."""
        probe = self._source
        selected: tuple[int, ...] = ()
        if highlight is not None and probe is not None:
            selected = tuple(int(probe.classes[k]) for k in highlight.classes
                             if k < len(probe.classes))
        if selected == self._selected:
            return
        self._selected = selected
        if probe is None:
            return
        shown = {c for c, _s, _x in self._rows}
        if set(selected) <= shown:
            self._draw_marks()
        else:
            self._draw_probe(probe)

    def _draw_marks(self) -> None:
        for mark in self.marks:
            self.plot.removeItem(mark)
        self.marks = []
        width = self.mosaic.shape[1] if self.mosaic is not None else 0
        for i, (c, _seen, _xs) in enumerate(self._rows):
            if c in self._selected and i < len(self._row_span):
                top, height = self._row_span[i]
                mark = QtWidgets.QGraphicsRectItem(QtCore.QRectF(-0.5, top - 0.5, width + 1,
                                                                 height + 1))
                mark.setPen(pg.mkPen(0, 0, 0, width=3, cosmetic=True))
                self.plot.addItem(mark)
                self.marks.append(mark)
        self.graphics.viewport().update()

    def _draw(self, rows: list[tuple[int, bool, np.ndarray]],
              shape: tuple[int, int] | None) -> None:
        ticks = []
        if shape is not None:
            h, w = shape
            gap = 2
            per = max(len(r[2]) for r in rows) if rows else 0
            mosaic = np.full(
                (len(rows) * (h + gap), max(per * (w + gap), 1)), np.nan, np.float32
            )
            for i, (c, seen, xs) in enumerate(rows):
                for j, v in enumerate(xs):
                    top, left = i * (h + gap), j * (w + gap)
                    mosaic[top : top + h, left : left + w] = v.reshape(h, w)
                ticks.append((i * (h + gap) + h / 2, f"{c} {'seen' if seen else 'unseen'}"))
            if self.colorbar.isVisible():  # images: the pixels speak; room for them
                self.graphics.ci.removeItem(self.colorbar)
                self.colorbar.hide()
            self.plot.setLabel("left", "class")
            self._row_span = [(i * (h + gap), h) for i in range(len(rows))]
            self.set_info(f"one class per row, {per} poses theta"
                          + (" · outlined: the selected class" if self._selected else ""))
        else:
            if not self.colorbar.isVisible():
                self.graphics.addItem(self.colorbar, row=0, col=1)
                self.colorbar.show()
            self.plot.setLabel("left", "class (seen = trained on)")
            blocks = []
            y = 0
            self._row_span = []
            for c, seen, xs in rows:
                self._row_span.append((y, len(xs)))
                blocks.append(xs.astype(np.float32))
                blocks.append(np.full((1, xs.shape[1]), np.nan, np.float32))
                ticks.append((y + len(xs) / 2, f"{c} {'seen' if seen else 'unseen'}"))
                y += len(xs) + 1
            mosaic = np.vstack(blocks) if blocks else np.zeros((1, 1), np.float32)
            self.set_info("rows: poses theta · columns: input dims"
                          + (" · outlined: the selected class" if self._selected else ""))
            self.colorbar.getAxis("left").setLabel("value of x")
        finite = mosaic[np.isfinite(mosaic)]
        lo, hi = (np.percentile(finite, [1, 99]) if finite.size else (0.0, 1.0))
        if hi <= lo:
            hi = lo + 1.0
        self.mosaic = mosaic
        self.image.setImage(mosaic, levels=(float(lo), float(hi)), autoLevels=False)
        self.colorbar.setLevels((float(lo), float(hi)))
        self.plot.getAxis("left").setTicks([ticks, []])
        self.plot.setRange(
            xRange=(0, mosaic.shape[1]), yRange=(0, mosaic.shape[0]), padding=0
        )
        self.plot.setAspectLocked(shape is not None)
        self._changed()

    def clear(self) -> None:
        self.image.clear()
        self.plot.getAxis("left").setTicks(None)
        self.mosaic = None
        self._source = None
        self._rows, self._row_span, self._selected = [], [], ()
        self._draw_marks()
        self._cleared()
