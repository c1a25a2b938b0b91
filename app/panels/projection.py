"""2-D projection of the probe points: the learned representation or the raw input space.

Seen classes are dots, unseen classes are triangles, coloured by class (two palettes, so
a seen and an unseen class never share a colour); the colour-by switch paints a theta
component instead (with its colour bar), which makes theta-invariance visible: once the
network is a hash of gamma, theta colours mix inside every class cluster.

The projection runs in its own process and lags the training: the header names the step
on screen, as every panel's does, and the plot's title row (a fixed place) the picture's
own method and step, and how many steps it is behind.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtWidgets

from app.palette import palette, theta_range
from app.panels.base import DOT, EMPTY_TEXT, TRIANGLE, PlotPanel, Scatter, add_key
from app.selection import Highlight
from app.store import Frame
from app.view import View
from engine.snapshot import ProbeSet

RING, SQUARE = "○", "□"

WAITING = "waiting for the first projection…"


class SelectViewBox(pg.ViewBox):
    """A ViewBox where shift-drag draws a selection rectangle instead of panning."""

    rect_selected = QtCore.Signal(object)  # QRectF in data coordinates

    def mouseDragEvent(self, ev: Any, axis: int | None = None) -> None:
        shift = ev.modifiers() & QtCore.Qt.KeyboardModifier.ShiftModifier
        if not shift or ev.button() != QtCore.Qt.MouseButton.LeftButton:
            super().mouseDragEvent(ev, axis)
            return
        ev.accept()
        if ev.isFinish():
            self.rbScaleBox.hide()
            a, b = self.mapToView(ev.buttonDownPos()), self.mapToView(ev.pos())
            self.rect_selected.emit(QtCore.QRectF(a, b).normalized())
        else:
            self.updateScaleBox(ev.buttonDownPos(), ev.pos())


class ProjectionPanel(PlotPanel):
    """Scatter of one projection key ("embedding" or "raw") of the probe set.

    Clicking a point emits `point_clicked(row)`; shift-drag emits `rows_selected(rows)`;
    `set_highlight` marks a selection (app.selection.Highlight) on the current frame."""

    point_clicked = QtCore.Signal(int)  # probe row
    rows_selected = QtCore.Signal(object)  # np.ndarray of probe rows

    def __init__(self, key: str, name: str, title: str,
                 parent: QtWidgets.QWidget | None = None) -> None:
        self.name = name
        self.title = title
        super().__init__(parent)
        self.frame_key = key  # "embedding" or "raw": which of the View's frames it shows
        self.probe: ProbeSet | None = None
        self.coords: np.ndarray | None = None
        self.frame_step: int | None = None
        self.method: str | None = None
        self.color_by = QtWidgets.QComboBox()
        self.color_by.setToolTip(
            "Colour points by class (gamma) or by one pose coordinate theta_k. "
            "A theta-invariant representation mixes theta colours inside each cluster."
        )
        self.color_by.setSizeAdjustPolicy(
            QtWidgets.QComboBox.SizeAdjustPolicy.AdjustToContents
        )
        self.color_by.setMinimumContentsLength(9)
        self.color_by.addItem("class")
        self.color_by.currentIndexChanged.connect(self._on_color_by_changed)
        self.header.addWidget(QtWidgets.QLabel("colour by"))
        self.header.addWidget(self.color_by)
        self.plot = self.add_plot(row=0, col=0, viewBox=SelectViewBox())
        self.plot.getViewBox().rect_selected.connect(self._on_rect_selected)
        self.plot.hideAxis("left")
        self.plot.hideAxis("bottom")
        self.plot.setAspectLocked(False)
        tip = self._tip
        self.seen_item = Scatter(
            size=6, symbol="o", pen=palette().no_pen, hoverable=True, tip=tip,
            name="seen class",
        )
        self.unseen_item = Scatter(
            size=9, symbol="t", pen=palette().unseen_pen, hoverable=True, tip=tip,
            name="unseen class",
        )
        self.plot.addItem(self.seen_item)
        self.plot.addItem(self.unseen_item)
        for item in (self.seen_item, self.unseen_item):
            item.sigClicked.connect(self._on_points_clicked)
        # Selection overlays: the selected class or rows, bucket-mates, the point itself.
        # Thin open marks around the points (never over them): a square for the selected
        # class or rows, a ring for a bucket-mate, a large ring for the point itself.
        self.class_mark = Scatter(size=12, symbol="s", pen=pg.mkPen(20, 20, 20, 220, width=1.2),
                                  brush=pg.mkBrush(None))
        self.mates_mark = Scatter(size=10, symbol="o",  # hugs the point: many never merge
                                  pen=pg.mkPen(230, 90, 0, 210, width=1.2),
                                  brush=pg.mkBrush(None))
        self.point_mark = Scatter(size=22, symbol="o", pen=pg.mkPen(0, 0, 0, width=2.5),
                                  brush=pg.mkBrush(None))
        for item in (self.class_mark, self.mates_mark, self.point_mark):
            self.plot.addItem(item)
        self.highlight: Highlight | None = None
        self.picture_note = ""  # e.g. "UMAP of step 100 · 100 steps behind"
        self._set_picture("")
        self.legend = add_key(self.graphics, 1, 0, size="8pt")
        self.colorbar = pg.ColorBarItem(
            values=(0.0, 1.0), colorMap=palette().colormap, interactive=False, width=10,
            label="theta",
        )
        self._bar_shown = False
        self._show_colour_key()

    # -- data in -------------------------------------------------------------------
    def set_view(self, view: View) -> None:
        """The View's frame of this panel's key (colours and hover text from the run's
        probe set); the header says how far the frame is behind the snapshot shown."""
        if view.probe is not self.probe:
            self._set_probe(view.probe)
        if self.frame_key == "raw":
            self._show_frame(view.raw_frame)
        else:
            self._show_frame(view.frame, view.step, view.projection_note)

    def _show_frame(self, frame: Frame | None, shown_step: int | None = None,
                    note: str = "") -> None:
        """Show a projection frame (its coords rows match probe rows); None: waiting.

        `shown_step` is the step of the snapshot the other panels show: the header says
        how far this frame is behind (or ahead of) it. `note` adds a word (UMAP warming up).
        """
        coords = None if frame is None else frame.coords
        if (frame is None or coords is None or self.probe is None
                or len(coords) != len(self.probe)):
            had_points = self.coords is not None
            self.coords = None
            self.frame_step = None
            self.method = None
            self.seen_item.clear()
            self.unseen_item.clear()
            self._draw_highlight()
            self.set_info(WAITING if self.probe is not None else "")
            self._set_picture("")
            self.set_empty(True, WAITING if self.probe is not None else EMPTY_TEXT)
            if had_points:
                self.graphics.viewport().update()
            return
        same = self.coords is coords
        method, step = frame.method, frame.step
        self.coords = np.asarray(coords)
        self.frame_step = step
        self.method = method
        if not same:
            coloured = (id(self.probe), self.color_by.currentIndex())
            self._redraw(recolour=getattr(self, "_coloured", None) != coloured)
            self._draw_highlight()
        self._set_picture(_picture_note(method, step, shown_step))
        if step is None:
            self.set_info("the raw input x, the same at every step"
                          + (f" · {note}" if note else ""))
        else:
            self.set_info(f"step {shown_step}" + (f" · {note}" if note else ""))

    def _set_picture(self, text: str) -> None:
        """The step the picture is from, in a fixed place: the plot's title row (always
        there, so the plot does not move when it changes; exports carry it too)."""
        self.picture_note = text
        self.plot.setTitle(text or " ", size="8pt", color="#444")

    def clear(self) -> None:
        self.plot.enableAutoRange()  # the next run's frames fit again (a zoom ends)
        self.probe = None
        self._show_frame(None)
        self._cleared()

    # -- internals -----------------------------------------------------------------
    def _set_probe(self, probe: ProbeSet) -> None:
        self.probe = probe
        self._class_pos = probe.class_index
        self._seen_rows = np.flatnonzero(probe.seen)
        self._unseen_rows = np.flatnonzero(~probe.seen)
        names = list(probe.theta_names) or [f"theta_{k}" for k in range(probe.theta.shape[1])]
        current = self.color_by.currentText()
        self.color_by.blockSignals(True)
        self.color_by.clear()
        self.color_by.addItem("class")
        for n in names[: probe.theta.shape[1]]:
            self.color_by.addItem(n)
        i = self.color_by.findText(current)
        self.color_by.setCurrentIndex(max(i, 0))
        self.color_by.blockSignals(False)
        self._brush_cache: dict[int, tuple[list, list]] = {}
        self._coloured: tuple[int, int] | None = None
        self.coords = None
        self._show_colour_key()

    def _brushes(self, probe: ProbeSet) -> tuple[list, list]:
        mode = self.color_by.currentIndex()
        if mode not in self._brush_cache:
            pal = palette()
            if mode == 0:
                all_brushes = pal.class_brush_list(self._class_pos, probe.class_seen)
            else:
                all_brushes = pal.theta_brush_list(probe.theta[:, mode - 1])
            self._brush_cache[mode] = (
                [all_brushes[i] for i in self._seen_rows],
                [all_brushes[i] for i in self._unseen_rows],
            )
        return self._brush_cache[mode]

    def _show_colour_key(self) -> None:
        """Class mode: a note that colour means class; theta mode: a colour bar of theta_k
        over the span the colours use (2nd..98th percentile of the probe's values)."""
        mode = self.color_by.currentIndex()
        theta_mode = False
        if mode > 0 and self.probe is not None:
            theta_mode = True
            name = self.color_by.currentText()
            lo, hi = theta_range(self.probe.theta[:, mode - 1])
            self.colorbar.setLevels((lo, hi))
            self.colorbar.getAxis("left").setLabel(name)
            colour = f"colour = {name} (bar: 2nd..98th percentile)"
        else:
            colour = "colour = class"
        lines = [
            [(DOT, "#777777", "seen class"),
             (TRIANGLE, "#333333", "unseen class (never trained on)")],
            [("", "#777777", colour)],
        ]
        h = self.highlight
        if h is not None:
            marks: list[tuple[str, str, str]] = []
            if h.point is not None:
                marks.append((RING, "#000000", "selected point"))
            if len(h.mates):
                marks.append((RING, "#e65a00", f"{len(h.mates)} bucket-mates"))
            if len(h.class_rows) or len(h.rows):
                marks.append((SQUARE, "#141414", "selected class" if len(h.class_rows)
                              else "selected points"))
            if marks:
                lines.append(marks)
        self.legend.set_lines(lines)
        if theta_mode != self._bar_shown:
            if theta_mode:
                self.graphics.addItem(self.colorbar, row=0, col=1)
            else:
                self.graphics.ci.removeItem(self.colorbar)
            self._bar_shown = theta_mode

    def _redraw(self, recolour: bool = True) -> None:
        if self.coords is None or self.probe is None:
            return
        c = self.coords
        s, u = self._seen_rows, self._unseen_rows
        if not recolour and _move(self.seen_item, c[s]) and _move(self.unseen_item, c[u]):
            self._changed()
            return
        seen_b, unseen_b = self._brushes(self.probe)
        self.seen_item.setData(x=c[s, 0], y=c[s, 1], brush=seen_b, data=s)
        self.unseen_item.setData(x=c[u, 0], y=c[u, 1], brush=unseen_b, data=u)
        self._coloured = (id(self.probe), self.color_by.currentIndex())
        self._changed()

    def _tip(self, x: float, y: float, data: Any) -> str:
        probe = self.probe
        if probe is None or data is None:
            return ""
        row = int(data)
        kind = "seen" if probe.seen[row] else "unseen"
        names = list(probe.theta_names) or [f"theta_{k}" for k in range(probe.theta.shape[1])]
        pairs = zip(names[:4], probe.theta[row][:4], strict=False)
        theta = ", ".join(f"{n}={v:.2f}" for n, v in pairs)
        more = " …" if probe.theta.shape[1] > 4 else ""
        where = f"step {self.frame_step}" if self.frame_step is not None else "input space"
        return f"class {int(probe.label[row])} ({kind}) · {where}\ntheta: {theta}{more}"

    # -- selection -----------------------------------------------------------------
    def set_highlight(self, highlight: Highlight | None) -> None:
        """Mark a selection (None clears): class or rows, bucket-mates, the point."""
        self.highlight = highlight
        self._draw_highlight()
        self._show_colour_key()  # the key names the marks

    def _draw_highlight(self) -> None:
        h, c = self.highlight, self.coords
        marks = ((self.class_mark, "rows"), (self.mates_mark, "mates"),
                 (self.point_mark, "point"))
        for item, what in marks:
            rows = np.zeros(0, np.int64)
            if h is not None and c is not None:
                if what == "rows":
                    rows = np.concatenate([h.class_rows, h.rows]).astype(np.int64)
                elif what == "mates":
                    rows = h.mates
                elif h.point is not None:
                    rows = np.array([h.point])
            rows = rows[rows < len(c)] if c is not None else rows
            if len(rows) and c is not None:
                item.setData(x=c[rows, 0], y=c[rows, 1])
            else:
                item.clear()  # Scatter: repaints where its points were (no stale marks)

    def _on_points_clicked(self, _item: Any, points: Sequence[Any], *_: Any) -> None:
        if len(points) and points[0].data() is not None:
            self.point_clicked.emit(int(points[0].data()))

    def _on_rect_selected(self, rect: QtCore.QRectF) -> None:
        if self.coords is None:
            return
        c = self.coords
        inside = ((c[:, 0] >= rect.left()) & (c[:, 0] <= rect.right())
                  & (c[:, 1] >= rect.top()) & (c[:, 1] <= rect.bottom()))
        self.rows_selected.emit(np.flatnonzero(inside))

    def _on_color_by_changed(self, _index: int) -> None:
        self._show_colour_key()
        self._redraw()


def _picture_note(method: str | None, step: int | None, shown_step: int | None) -> str:
    """"UMAP of step 100 · 100 steps behind" (the frame's own step, and how far it lags
    the snapshot the other panels show), or "PCA of the raw input x"."""
    name = (method or "").upper()
    if step is None:
        return f"{name} of the raw input x"
    text = f"{name} of step {step}"
    if shown_step is not None and shown_step != step:
        side = "behind" if step < shown_step else "ahead"
        text += f" · {abs(shown_step - step)} steps {side} (catching up)"
    return text


def _move(item: pg.ScatterPlotItem, xy: np.ndarray) -> bool:
    """Move existing spots in place, keeping their brushes and data (a new frame of the
    same points); much cheaper than setData, which rebuilds every spot."""
    d = item.data
    if len(d) != len(xy) or len(d) == 0:
        return False
    item.prepareGeometryChange()  # before the bounds change (Qt's contract)
    d["x"] = xy[:, 0]
    d["y"] = xy[:, 1]
    item.informViewBoundsChanged()
    item.bounds = [None, None]
    item.invalidate()
    item.sigPlotChanged.emit(item)
    return True
