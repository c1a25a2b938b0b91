"""Bucket-collision heatmap: P[h(x) = h(x')] for every pair of probe classes.

Each cell is the rate expected over random hyperplanes (closed form, engine.hashing);
a run recorded before schema 3 shows the one draw of tables it recorded, and says so.

A network that has become a hash of gamma turns this matrix diagonal: points of one
class share a bucket, points of different classes rarely do, unseen classes included.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtWidgets

from app.palette import palette
from app.panels.base import PlotPanel
from app.selection import Highlight
from app.view import View
from engine import figures


class CollisionPanel(PlotPanel):
    """The heatmap; clicking a cell emits `cell_clicked(row class, column class)` and
    `set_highlight` outlines the selected classes' rows and columns."""

    name = "collisions"
    title = "Bucket collisions"
    cell_clicked = QtCore.Signal(int, int)  # class positions (probe.classes order)

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.plot = self.add_plot()
        self.plot.invertY(True)
        self.plot.getViewBox().setDefaultPadding(0.0)
        self.image = pg.ImageItem(axisOrder="row-major")
        self.image.setLevels((0.0, 1.0))
        self.plot.addItem(self.image)
        self.colorbar = pg.ColorBarItem(
            values=(0.0, 1.0), colorMap=palette().heat_colormap, interactive=False,
            label="collision probability", width=12,
        )
        self.colorbar.setImageItem(self.image, insert_in=self.plot)
        pen = palette().block_pen
        self.vline = pg.InfiniteLine(angle=90, pen=pen, movable=False)
        self.hline = pg.InfiniteLine(angle=0, pen=pen, movable=False)
        self.plot.addItem(self.vline)
        self.plot.addItem(self.hline)
        self.vline.hide()
        self.hline.hide()
        self.n_seen: int | None = None
        # The selected classes: outlines of their rows and columns (and their cell).
        pen = pg.mkPen(0, 200, 255, width=2)
        self.marks = [QtWidgets.QGraphicsRectItem() for _ in range(5)]
        for mark in self.marks:
            mark.setPen(pen)
            mark.setBrush(pg.mkBrush(None))
            mark.hide()
            self.plot.addItem(mark)
        self.image.mouseClickEvent = self._on_image_clicked
        self.plot.setLabel("bottom", "probe class")
        self.plot.setLabel("left", "probe class")

    def set_view(self, view: View) -> None:
        m = np.asarray(view.snapshot.collision_matrix, dtype=np.float32)
        self.image.setImage(m, levels=(0.0, 1.0), autoLevels=False)
        n_seen = int(np.sum(view.probe.class_seen))
        if n_seen != self.n_seen or self.image.width() != m.shape[1]:
            self._label_blocks(n_seen, m.shape[0])
        snap, run = view.snapshot, view.run
        how = (f"expected over {run.bits}-bit hyperplanes" if figures.expected_rates(snap)
               else f"one draw of {run.bits} bits × {run.tables} tables")
        self.set_info(
            f"step {view.step} · unseen classes: same {snap.unseen_same_class_collision:.2f},"
            f" different {snap.unseen_different_class_collision:.2f} · {how}"
        )
        self._changed()

    def set_highlight(self, highlight: Highlight | None) -> None:
        """Outline the selected classes' rows and columns, and a selected pair's cell."""
        for mark in self.marks:
            mark.hide()
        c = self.image.width() or 0
        classes = [] if highlight is None else [k for k in highlight.classes if k < c]
        for k, pos in enumerate(classes[:2]):
            self.marks[2 * k].setRect(QtCore.QRectF(0, pos, c, 1))  # its row
            self.marks[2 * k + 1].setRect(QtCore.QRectF(pos, 0, 1, c))  # its column
            self.marks[2 * k].show()
            self.marks[2 * k + 1].show()
        if len(classes) == 2:
            self.marks[4].setRect(QtCore.QRectF(classes[1], classes[0], 1, 1))
            self.marks[4].show()

    def _on_image_clicked(self, ev: Any) -> None:  # a pyqtgraph MouseClickEvent
        if ev.button() != QtCore.Qt.MouseButton.LeftButton or self.image.image is None:
            return
        ev.accept()
        col, row = int(ev.pos().x()), int(ev.pos().y())
        c = self.image.width()
        if 0 <= row < c and 0 <= col < c:
            self.cell_clicked.emit(row, col)

    def _label_blocks(self, n_seen: int, c: int) -> None:
        self.n_seen = n_seen
        n_unseen = c - n_seen
        ticks = []
        if n_seen:
            ticks.append((n_seen / 2, "seen"))
        if n_unseen:
            ticks.append((n_seen + n_unseen / 2, "unseen"))
        for axis in ("bottom", "left"):
            self.plot.getAxis(axis).setTicks([ticks, []])
        # The counts go in the axis title: as tick labels ("unseen (20)") they overlapped
        # in a narrow dock and pyqtgraph dropped one (1366x768).
        self.plot.setLabel("bottom", f"probe class ({n_seen} seen, {n_unseen} unseen)")
        show = 0 < n_seen < c
        self.vline.setVisible(show)
        self.hline.setVisible(show)
        self.vline.setPos(n_seen)
        self.hline.setPos(n_seen)
        self.plot.setRange(xRange=(0, c), yRange=(0, c), padding=0)

    def clear(self) -> None:
        self.image.clear()
        self.n_seen = None
        self.plot.setLabel("bottom", "probe class")
        self._cleared()
