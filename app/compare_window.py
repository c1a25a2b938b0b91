"""The comparison window: 2..8 recorded runs at once (engine.compare).

Each run has one colour and a short name from the settings that differ, the same in
every panel: overlaid curves (baselines dashed in the run's colour, optional smoothing),
small multiples of one view (representation projection, collision heatmap, locality or
samples) at one step chosen on a shared timeline (a run without that step shows its
nearest recorded one and says so), the collision heatmap of run A minus run B with the
one-shot difference and its interval, and the parameter diff table (sortable; a click
highlights that run everywhere; CSV export). Runs still being recorded elsewhere are
followed (app.follow). Every plot panel exports PNG, SVG and vector PDF; the window
exports PNG or PDF. `compare_main` is `main.py compare`.
"""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

from app.exports import EXPORT_FORMATS, scene_to_pdf, widget_to_pdf
from app.palette import palette
from app.panels.base import SOLID, Key, PlotPanel, Scatter, add_key
from app.panels.curves import PLOTS as CURVE_PLOTS
from app.panels.runs import _Item
from app.panels.samples import PER_CLASS, pick_classes
from app.qtapp import application, configure_pyqtgraph, parse_size, wait_until
from engine import compare, figures
from engine.atomic import atomic_write
from engine.config import ConfigError
from engine.hashing import theory_curve
from engine.projection import procrustes_align
from engine.record_format import RunRecordError

VIEWS = ("representation", "collisions", "locality", "samples")
PANELS = ("curves", "representation", "collisions", "locality", "samples", "diff")
DASH, DOTS, DASHDOT, DASHDOTDOT = "╺╸╺╸", "┅┅", "╺·╸", "╺··╸"
_STYLES = {
    "solid": (QtCore.Qt.PenStyle.SolidLine, 2.0),
    "dot": (QtCore.Qt.PenStyle.DotLine, 2.0),
    "dash": (QtCore.Qt.PenStyle.DashLine, 1.5),
    "dashdot": (QtCore.Qt.PenStyle.DashDotLine, 1.5),
    "dashdotdot": (QtCore.Qt.PenStyle.DashDotDotLine, 1.5),
}
GLYPHS = {"solid": SOLID, "dot": DOTS, "dash": DASH, "dashdot": DASHDOT,
          "dashdotdot": DASHDOTDOT}
BAND_ALPHA = 40  # a figure's 95% interval: a band in the run's colour


def curve_style(name: str, first_trained: bool) -> str:
    """How a figure is drawn when the run's colour is taken: the plot's first trained
    figure solid, other trained ones dotted; baselines (engine/figures.py, per run)
    dashed: raw input, untrained network and learned linear each its own dash."""
    f = figures.FIGURES.get(name)
    if f is None or not f.per_run:
        return "solid" if first_trained else "dot"
    if "untrained" in name:
        return "dashdot"
    return "dashdotdot" if "learned_linear" in name else "dash"


def compare_plots() -> list[tuple[str, list[tuple[str, str]]]]:
    """The Curves panel's plots (app.panels.curves.PLOTS: every one of its curves) as
    (y label, [(figure, style)])."""
    out = []
    for _title, ylabel, series in CURVE_PLOTS:
        styled, first = [], True
        for name, *_rest in series:
            style = curve_style(name, first)
            if style in ("solid", "dot"):
                first = False
            styled.append((name, style))
        out.append((ylabel, styled))
    return out


AXIS_WIDTH = 52
FADED_ALPHA = 60


def run_pen(colour: str, style: str = "solid", highlighted: bool = False,
            faded: bool = False) -> QtGui.QPen:
    qstyle, width = _STYLES[style]
    c = QtGui.QColor(colour)
    if faded:
        c.setAlpha(FADED_ALPHA)
    pen = pg.mkPen(c, width=width + (1.5 if highlighted else 0))
    pen.setStyle(qstyle)
    return pen


def run_key_lines(cmp: compare.Comparison) -> list:
    """The key naming every run in its colour, and what differs between them."""
    lines, line = [], []
    for run in cmp.runs:
        line.append((SOLID, run.colour, run.name))
        if len(line) == 4:
            lines.append(line)
            line = []
    if line:
        lines.append(line)
    lines.append([("", "#555555", f"what differs: {cmp.what_differs}")])
    return lines


class ComparePanel(PlotPanel):
    """A comparison panel: its first layout row is the run key; `set_comparison`,
    `set_step` and `set_highlight` are its inputs."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.cmp: compare.Comparison | None = None
        self.step = 0
        self.highlighted: int | None = None
        self.run_key = Key(size="8pt")

    def _place_key(self, cols: int) -> None:
        self.graphics.addItem(self.run_key, row=0, col=0, colspan=max(cols, 1))

    def set_comparison(self, cmp: compare.Comparison) -> None:
        self.cmp = cmp
        self.run_key.set_lines(run_key_lines(cmp))

    def set_step(self, step: int) -> None:
        self.step = int(step)

    def set_highlight(self, index: int | None) -> None:
        self.highlighted = index

    def clear(self) -> None:
        self.cmp = None
        self._cleared()


class CompareCurvesPanel(ComparePanel):
    """Every curve of the Curves panel for every run: one colour per run, baselines
    dashed in the run's colour, x axis in steps, optional smoothing."""

    name = "compare_curves"
    title = "Compared curves"

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.smoothing = QtWidgets.QDoubleSpinBox()
        self.smoothing.setRange(0.0, 0.99)
        self.smoothing.setSingleStep(0.1)
        self.smoothing.setDecimals(2)
        self.smoothing.setToolTip("Exponential moving average of the trained curves "
                                  "(TensorBoard's smoothing); 0 = none")
        self.smoothing.valueChanged.connect(lambda _v: self._draw())
        self.header.addWidget(QtWidgets.QLabel("smoothing"))
        self.header.addWidget(self.smoothing)
        self._place_key(2)
        self.plots: list[pg.PlotItem] = []
        self.cursors: list[pg.InfiniteLine] = []
        first = None
        self.layout_plots = compare_plots()
        for i, (ylabel, series) in enumerate(self.layout_plots):
            row, col = 1 + 2 * (i // 2), i % 2
            plot = self.add_plot(row=row, col=col)
            plot.setLabel("left", ylabel, **{"font-size": "8pt"})
            plot.getAxis("left").enableAutoSIPrefix(False)
            plot.getAxis("left").setWidth(AXIS_WIDTH)
            plot.getViewBox().setMouseEnabled(x=True, y=False)
            bounds = [(figures.FIGURES[k].lo, figures.FIGURES[k].hi) for k, _s in series
                      if k in figures.FIGURES]
            if bounds and all(lo == 0 and hi == 1 for lo, hi in bounds):
                plot.setYRange(0, 1, padding=0.02)
            if i >= len(self.layout_plots) - 2:
                plot.setLabel("bottom", "step")
            if first is None:
                first = plot
            else:
                plot.setXLink(first)
            cursor = pg.InfiniteLine(angle=90, pen=palette().cursor_pen, movable=False)
            plot.addItem(cursor, ignoreBounds=True)
            self.cursors.append(cursor)
            self.plots.append(plot)
            add_key(self.graphics, row + 1, col,
                    [[(GLYPHS[style], "#555555", figures.label(k)) for k, style in series]])
            self.graphics.ci.layout.setRowStretchFactor(row, 10)
        self.items: dict[tuple[int, str], pg.PlotDataItem] = {}
        # (run, figure) -> (lower, upper, band) of a figure with a 95% interval
        self.bands: dict[tuple[int, str], tuple] = {}

    def set_comparison(self, cmp: compare.Comparison) -> None:
        super().set_comparison(cmp)
        for plot in self.plots:
            for item in list(plot.items):
                if not isinstance(item, pg.InfiniteLine):
                    plot.removeItem(item)
        self.items, self.bands = {}, {}
        for plot, (_label, series) in zip(self.plots, self.layout_plots, strict=True):
            for run in cmp.runs:
                for key, style in series:
                    self.items[(run.index, key)] = plot.plot([], [],
                                                             pen=run_pen(run.colour, style))
                    f = figures.FIGURES.get(key)
                    if f is not None and f.ci:
                        lo, hi = pg.PlotDataItem([], []), pg.PlotDataItem([], [])
                        colour = QtGui.QColor(run.colour)
                        colour.setAlpha(BAND_ALPHA)
                        band = pg.FillBetweenItem(lo, hi, brush=pg.mkBrush(colour))
                        band.setZValue(-10)
                        plot.addItem(band)
                        self.bands[(run.index, key)] = (lo, hi, band)
        self._draw()

    def _draw(self) -> None:
        """(Re)draw every run's curves from its history (after a run grew, a new
        smoothing or highlight); smoothing leaves baselines and interval bands alone."""
        if self.cmp is None:
            return
        weight = float(self.smoothing.value())
        longest = 1
        for run in self.cmp.runs:
            h = run.reader.history
            steps = h["step"].astype(np.float64)
            if len(steps):
                longest = max(longest, int(steps[-1]), run.config.train.steps)
            try:
                info = run.reader.run_info
            except RunRecordError:  # no baselines to draw; the run's own curves still are
                info = None
            faded = self.highlighted is not None and self.highlighted != run.index
            lit = self.highlighted == run.index
            for _label, series in self.layout_plots:
                for key, style in series:
                    item = self.items[(run.index, key)]
                    if key in h:
                        y = compare.smooth(h[key], weight) if style in ("solid", "dot") else h[key]
                    elif info is not None and hasattr(info, key):
                        y = np.full(len(steps), float(getattr(info, key)))
                    else:
                        y = np.full(len(steps), np.nan)
                    item.setData(steps, y, connect="finite")
                    item.setPen(run_pen(run.colour, style, lit, faded))
                    item.setZValue(10 if lit else 0)
                    if (run.index, key) in self.bands:
                        lo_item, hi_item, band = self.bands[(run.index, key)]
                        lo_col, hi_col = figures.FIGURES[key].ci_columns
                        shown = lo_col in h and not faded
                        lo_item.setData(steps, h[lo_col] if shown else [np.nan] * len(steps))
                        hi_item.setData(steps, h[hi_col] if shown else [np.nan] * len(steps))
                        band.setVisible(shown and bool(np.isfinite(h[lo_col]).any()))
        self.plots[0].setXRange(0, longest, padding=0.02)
        self._show_header()
        self._changed()

    def _show_header(self) -> None:
        smoothing = self.smoothing.value()
        text = f"{len(self.cmp)} runs · step {self.step}"
        if smoothing:
            text += f" · smoothing {smoothing:.2f}"
        self.set_info(text)

    def set_step(self, step: int) -> None:
        super().set_step(step)
        for c in self.cursors:
            c.setPos(step)
        if self.cmp is not None:
            self._show_header()

    def set_highlight(self, index: int | None) -> None:
        super().set_highlight(index)
        self._draw()


class SideBySidePanel(ComparePanel):
    """Small multiples: one plot per run of the chosen view at the shared step (each run's
    nearest recorded one, said in its title)."""

    name = "compare_side"
    title = "Side by side"
    view_changed = QtCore.Signal(str)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.view = QtWidgets.QComboBox()
        self.view.addItems(VIEWS)
        self.view.setToolTip("What every run shows at the step on the timeline")
        self.view.currentTextChanged.connect(self._on_view_changed)
        self.header.addWidget(QtWidgets.QLabel("show"))
        self.header.addWidget(self.view)
        self.compute = False  # compute missing projections in the run's method (CLI)
        self.cells: list[pg.PlotItem] = []
        self.shown_steps: dict[int, int] = {}
        self.methods: dict[int, str] = {}
        self._frames: dict[tuple[int, int], tuple[np.ndarray, str]] = {}
        self.colorbar: pg.ColorBarItem | None = None
        self.selected: tuple[int, int] | None = None  # (run, probe row) marked

    def set_comparison(self, cmp: compare.Comparison) -> None:
        super().set_comparison(cmp)
        self._frames = {}
        self._build()

    def _build(self) -> None:
        for cell in self.cells:
            self.graphics.removeItem(cell)
        if self.colorbar is not None:
            self.graphics.removeItem(self.colorbar)
            self.colorbar = None
        self.cells = []
        n = len(self.cmp.runs)
        cols = n if n <= 2 else (2 if n <= 4 else 4)
        if self.run_key in self.graphics.ci.items:
            self.graphics.ci.removeItem(self.run_key)
        self._place_key(cols)
        for run in self.cmp.runs:
            row, col = 1 + run.index // cols, run.index % cols
            cell = self.add_plot(row=row, col=col)
            cell.getAxis("left").enableAutoSIPrefix(False)
            self.cells.append(cell)
        self.cols = cols
        self._draw()

    def _on_view_changed(self, view: str) -> None:
        if self.cmp is not None:
            self._build()
        self.view_changed.emit(view)

    def compute_missing(self, on: bool = True) -> None:
        """Compute projections the records lack in each run's own method (UMAP: seconds
        per run, so the CLI does, the window shows a PCA stand-in) and cache them."""
        self.compute = on
        self._frames = {k: v for k, v in self._frames.items() if v[1] != "pca stand-in"}
        if self.cmp is not None:
            self._draw()

    def set_view_name(self, view: str) -> None:
        if view not in VIEWS:
            raise ValueError(f"view must be one of {', '.join(VIEWS)}, got {view!r}")
        self.view.setCurrentText(view)

    def set_step(self, step: int) -> None:
        super().set_step(step)
        if self.cmp is not None:
            self._draw()

    def set_highlight(self, index: int | None) -> None:
        super().set_highlight(index)
        if self.cmp is not None:
            self._titles()

    def select_row(self, row: int | None, run: int = 0) -> None:
        """Mark probe row `row` of run `run` in it and in every run sharing its probe set
        (the same data, probe settings and seed: the same probe point)."""
        self.selected = None if row is None else (int(run), int(row))
        if self.cmp is not None:
            self._draw()

    def _on_points_clicked(self, run: int, points) -> None:
        if len(points) and points[0].data() is not None:
            row = int(points[0].data())
            self.select_row(None if (run, row) == self.selected else row, run)

    def _titles(self) -> None:
        for run, cell in zip(self.cmp.runs, self.cells, strict=True):
            shown = self.shown_steps.get(run.index)
            where = "no snapshot" if shown is None else f"step {shown}"
            if shown is not None and shown != self.step:
                where += f" (nearest to {self.step})"
            method = self.methods.get(run.index)
            if method and method.startswith("cannot"):
                where += f" · {method}"
            elif method:
                where += " · " + method.replace("umap", "UMAP").replace("pca", "PCA")
            weight = "bold" if self.highlighted == run.index else "normal"
            cell.setTitle(f'<span style="color:{run.colour};font-weight:{weight}">■ '
                          f"{run.name}</span><br>{where}", size="8pt")

    def _draw(self) -> None:
        view = self.view.currentText()
        self.shown_steps, self.methods = {}, {}
        if self.colorbar is not None:
            self.graphics.removeItem(self.colorbar)
            self.colorbar = None
        reference = None
        for run, cell in zip(self.cmp.runs, self.cells, strict=True):
            cell.clear()
            shown = run.nearest(self.step)
            if shown is None:
                continue
            self.shown_steps[run.index] = shown
            try:
                if view == "representation":
                    reference = self._draw_projection(run, cell, shown, reference)
                elif view == "collisions":
                    self._draw_heatmap(run, cell, shown)
                elif view == "locality":
                    self._draw_locality(run, cell, shown)
                else:
                    self._draw_samples(run, cell)
            except RunRecordError as exc:  # a damaged file: this cell says so, others draw
                self.methods[run.index] = f"cannot be shown: {exc}"
        self._titles()
        if view == "collisions" and self.cells:
            images = [i for i in self.cells[0].items if isinstance(i, pg.ImageItem)]
            if images:
                self.colorbar = pg.ColorBarItem(values=(0.0, 1.0),
                                                colorMap=palette().heat_colormap,
                                                interactive=False, width=10,
                                                label="collision probability")
                self.colorbar.setImageItem(images[0])
                rows = -(-len(self.cells) // self.cols)
                self.graphics.addItem(self.colorbar, row=1, col=self.cols, rowspan=rows)
        note = {"representation": "projection of the representation (dots: seen classes, "
                                  "triangles: unseen; click a point to mark it in every run "
                                  "sharing the probe set)",
                "collisions": "bucket-collision heatmaps",
                "locality": "collision rate of class pairs against their embedding angle",
                "samples": "probe samples"}[view]
        self.set_info(f"{note} · step {self.step}")
        self._changed()

    def _frame(self, run: compare.ComparedRun, step: int) -> tuple[np.ndarray, str]:
        key = (run.index, step)
        if key not in self._frames:
            self._frames[key] = compare.projection(run.reader, step, compute=self.compute)
        return self._frames[key]

    def _draw_projection(self, run, cell, step, reference):
        coords, method = self._frame(run, step)
        self.methods[run.index] = method
        probe = run.reader.run_info.probe
        first = self.cmp.runs[0]
        shared = run.index == 0 or compare.shares_probe(run, first)
        if reference is not None and shared and reference.shape == coords.shape:
            coords = procrustes_align(coords, reference)  # the same points in like places
        if run.index == 0:
            reference = coords
        pal = palette()
        brushes = pal.class_brush_list(probe.class_index, probe.class_seen)
        seen = np.flatnonzero(probe.seen)
        unseen = np.flatnonzero(~probe.seen)
        a = Scatter(x=coords[seen, 0], y=coords[seen, 1], size=5, pen=pal.no_pen,
                    brush=[brushes[i] for i in seen], data=seen)
        b = Scatter(x=coords[unseen, 0], y=coords[unseen, 1], size=7, symbol="t",
                    pen=pal.unseen_pen, brush=[brushes[i] for i in unseen], data=unseen)
        for item in (a, b):
            cell.addItem(item)
            item.sigClicked.connect(
                lambda _i, points, *_, k=run.index: self._on_points_clicked(k, points))
        cell.hideAxis("left")
        cell.hideAxis("bottom")
        marked = self.selected is not None and (
            run.index == self.selected[0]
            or compare.shares_probe(run, self.cmp.runs[self.selected[0]]))
        row = self.selected[1] if marked else None
        if row is not None and row < len(coords):
            cell.addItem(Scatter(x=[coords[row, 0]], y=[coords[row, 1]], size=18,
                                 pen=pg.mkPen(0, 0, 0, width=3), brush=pg.mkBrush(None)))
        return reference

    def _draw_heatmap(self, run, cell, step) -> None:
        snap = run.reader.snapshot(step)
        m = np.asarray(snap.collision_matrix, dtype=np.float32)
        image = pg.ImageItem(axisOrder="row-major")
        image.setLookupTable(palette().heat_colormap.getLookupTable(0.0, 1.0, 256))
        image.setImage(m, levels=(0.0, 1.0), autoLevels=False)
        cell.addItem(image)
        cell.invertY(True)
        cell.getViewBox().setDefaultPadding(0.0)
        n_seen = int(np.sum(run.reader.run_info.probe.class_seen))
        if 0 < n_seen < len(m):
            for angle in (0, 90):
                cell.addItem(pg.InfiniteLine(n_seen, angle=angle, pen=palette().block_pen))
        cell.setRange(xRange=(0, len(m)), yRange=(0, len(m)), padding=0)
        cell.showAxis("left")
        cell.showAxis("bottom")
        cell.setLabel("bottom", f"probe class ({n_seen} seen first)")

    def _draw_locality(self, run, cell, step) -> None:
        snap = run.reader.snapshot(step)
        info = run.reader.run_info
        x = np.asarray(snap.pair_embed_angle, dtype=np.float64)
        y = np.asarray(snap.pair_collision, dtype=np.float64)
        n = min(len(x), len(y))
        cell.addItem(Scatter(x=x[:n], y=y[:n], size=4, pen=palette().no_pen,
                             brush=pg.mkBrush(QtGui.QColor(run.colour))))
        angles = np.linspace(0, math.pi, 64)
        cell.addItem(pg.PlotDataItem(angles, theory_curve(angles, info.bits),
                                     pen=palette().curve_pens["theory"]))
        cell.showAxis("left")
        cell.showAxis("bottom")
        cell.setLabel("bottom", "embedding angle (rad)")
        cell.setLabel("left", "collision rate")
        cell.setRange(xRange=(0, math.pi), yRange=(0, 1), padding=0.02)

    def _draw_samples(self, run, cell) -> None:
        probe = run.reader.run_info.probe
        rows = [(c, s, probe.x[probe.label == c][:PER_CLASS])
                for c, s in pick_classes(probe.classes, probe.class_seen)]
        mosaic = sample_mosaic(rows, probe.image_shape)
        finite = mosaic[np.isfinite(mosaic)]
        lo, hi = np.percentile(finite, [1, 99]) if finite.size else (0.0, 1.0)
        image = pg.ImageItem(axisOrder="row-major")
        image.setLookupTable(palette().colormap.getLookupTable(0.0, 1.0, 256))
        image.setImage(mosaic, levels=(float(lo), float(max(hi, lo + 1e-6))), autoLevels=False)
        cell.addItem(image)
        cell.invertY(True)
        cell.hideAxis("bottom")
        cell.hideAxis("left")
        cell.setRange(xRange=(0, mosaic.shape[1]), yRange=(0, mosaic.shape[0]), padding=0)


def sample_mosaic(rows, shape) -> np.ndarray:
    """Probe samples of a few classes, one class per row: images side by side, or for
    vector families the sample vectors as rows (NaN gaps between classes)."""
    if shape is not None:
        h, w = shape
        per = max((len(r[2]) for r in rows), default=0)
        mosaic = np.full((max(len(rows), 1) * (h + 2), max(per * (w + 2), 1)), np.nan,
                         np.float32)
        for i, (_c, _s, xs) in enumerate(rows):
            for j, v in enumerate(xs):
                mosaic[i * (h + 2): i * (h + 2) + h, j * (w + 2): j * (w + 2) + w] = \
                    v.reshape(h, w)
        return mosaic
    blocks = []
    for _c, _s, xs in rows:
        blocks += [xs.astype(np.float32), np.full((1, xs.shape[1]), np.nan, np.float32)]
    return np.vstack(blocks) if blocks else np.zeros((1, 1), np.float32)


class DifferencePanel(ComparePanel):
    """The collision heatmap of run A minus run B (diverging colours, for runs that share
    a probe set; otherwise a note says so) and the one-shot difference with its 95%
    interval."""

    name = "compare_difference"
    title = "Difference"

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.a = QtWidgets.QComboBox()
        self.b = QtWidgets.QComboBox()
        for box, tip in ((self.a, "run A"), (self.b, "run B")):
            box.setToolTip(tip)
            box.setSizeAdjustPolicy(QtWidgets.QComboBox.SizeAdjustPolicy.AdjustToContents)
            box.currentIndexChanged.connect(lambda _i: self._draw())
        self.header.addWidget(QtWidgets.QLabel("A"))
        self.header.addWidget(self.a)
        self.header.addWidget(QtWidgets.QLabel("− B"))
        self.header.addWidget(self.b)
        self._place_key(2)
        self.plot = self.add_plot(row=1, col=0)
        self.plot.invertY(True)
        self.plot.getViewBox().setDefaultPadding(0.0)
        self.image = pg.ImageItem(axisOrder="row-major")
        self.plot.addItem(self.image)
        self.colormap = pg.colormap.get("CET-D1")
        self.colorbar = pg.ColorBarItem(values=(-1.0, 1.0), colorMap=self.colormap,
                                        interactive=False, width=12,
                                        label="collision probability, A − B")
        self.colorbar.setImageItem(self.image, insert_in=self.plot)
        self.lines = [pg.InfiniteLine(angle=a, pen=pg.mkPen(60, 60, 60, 200, width=1))
                      for a in (0, 90)]
        for line in self.lines:
            self.plot.addItem(line)
        self.summary = Key(size="9pt")
        self.graphics.addItem(self.summary, row=2, col=0, colspan=2)
        self.difference: compare.HeatmapDifference | None = None
        self.oneshot: compare.Estimate | None = None

    def set_comparison(self, cmp: compare.Comparison) -> None:
        super().set_comparison(cmp)
        for box, pick in ((self.a, 0), (self.b, 1)):
            box.blockSignals(True)
            box.clear()
            for run in cmp.runs:
                box.addItem(run.name)
                box.setItemData(box.count() - 1, QtGui.QColor(run.colour),
                                QtCore.Qt.ItemDataRole.ForegroundRole)
            box.setCurrentIndex(pick)
            box.blockSignals(False)
        self._draw()

    def set_pair(self, a: int, b: int) -> None:
        self.a.setCurrentIndex(a)
        self.b.setCurrentIndex(b)

    def set_step(self, step: int) -> None:
        super().set_step(step)
        if self.cmp is not None:
            self._draw()

    def _draw(self) -> None:
        if self.cmp is None or self.a.currentIndex() < 0 or self.b.currentIndex() < 0:
            return
        ia, ib = self.a.currentIndex(), self.b.currentIndex()
        ra, rb = self.cmp.runs[ia], self.cmp.runs[ib]
        try:
            d = self.cmp.heatmap_difference(ia, ib, self.step)
        except compare.CompareError as exc:  # e.g. runs that do not share a probe set
            self.difference = None
            self.oneshot = None
            self.image.clear()
            self.plot.hide()  # no empty axes and colour bar: the note says why
            self.set_info(str(exc))
            self.summary.set_lines([[("", "#a33", str(exc))]])
            self._changed()
            return
        self.difference = d
        self.plot.show()
        m = d.matrix.astype(np.float32)
        span = max(d.largest, 0.05)
        self.image.setLookupTable(self.colormap.getLookupTable(0.0, 1.0, 256))
        self.image.setImage(m, levels=(-span, span), autoLevels=False)
        self.colorbar.setLevels((-span, span))
        c = len(m)
        for line in self.lines:
            line.setPos(d.n_seen)
            line.setVisible(0 < d.n_seen < c)
        self.plot.setRange(xRange=(0, c), yRange=(0, c), padding=0)
        self.plot.setLabel("bottom", f"probe class ({d.n_seen} seen, {c - d.n_seen} unseen)")
        self.oneshot = self.cmp.oneshot_difference(ia, ib, self.step)
        steps = (f"step {d.step_a}" if d.step_a == d.step_b
                 else f"steps {d.step_a} / {d.step_b}")
        basis = f"bootstrap paired over {self.oneshot.n} shared episodes and their classes"
        diag = float(np.mean(np.diag(m))) if c else math.nan
        off = float((m.sum() - np.trace(m)) / max(c * c - c, 1))
        self.set_info(f"{ra.name} − {rb.name} · {steps} · same probe set")
        self.summary.set_lines([
            [(SOLID, ra.colour, f"A = {ra.name}"), (SOLID, rb.colour, f"B = {rb.name}")],
            [("", "#222222", f"one-shot A − B: {self.oneshot.text(3, signed=True)} "
                             f"(95% interval, {basis})")],
            [("", "#555555", f"collisions A − B: same class {diag:+.3f}, different "
                             f"{off:+.3f} · red: A collides more, blue: B")],
        ])
        self._changed()


class DiffTable(QtWidgets.QWidget):
    """The parameter diff table (differing settings and final figures), sortable;
    clicking a row emits `run_clicked(run index)`; CSV export."""

    run_clicked = QtCore.Signal(int)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        row = QtWidgets.QHBoxLayout()
        self.note = QtWidgets.QLabel("")
        self.note.setSizePolicy(QtWidgets.QSizePolicy.Policy.Ignored,
                                QtWidgets.QSizePolicy.Policy.Preferred)
        self.export_button = QtWidgets.QPushButton("Export CSV…")
        row.addWidget(self.note, 1)
        row.addWidget(self.export_button)
        layout.addLayout(row)
        self.table = QtWidgets.QTableWidget(0, 0)
        self.table.setSelectionBehavior(QtWidgets.QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QtWidgets.QAbstractItemView.SelectionMode.SingleSelection)
        self.table.verticalHeader().hide()
        self.table.verticalHeader().setDefaultSectionSize(self.fontMetrics().height() + 6)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.itemSelectionChanged.connect(self._on_selection)
        layout.addWidget(self.table, 1)
        self.columns: list[str] = []
        self.rows: list[list] = []

    def set_table(self, cmp: compare.Comparison, columns, rows) -> None:
        self.columns, self.rows = list(columns), rows
        self.table.blockSignals(True)
        self.table.setSortingEnabled(False)
        self.table.clear()
        self.table.setColumnCount(len(columns))
        self.table.setHorizontalHeaderLabels(columns)
        self.table.setRowCount(len(rows))
        for i, (run, values) in enumerate(zip(cmp.runs, rows, strict=True)):
            for j, v in enumerate(values):
                if isinstance(v, compare.Estimate):
                    item = _Item(v.value)
                    item.setText(v.text(3, signed=j == len(values) - 1))
                else:
                    item = _Item(v if not (isinstance(v, float) and math.isnan(v)) else None)
                if j == 0:
                    item.setText(f"■ {v}")
                    item.setForeground(QtGui.QColor(run.colour))
                    item.setData(QtCore.Qt.ItemDataRole.UserRole, run.index)
                    item.setToolTip(str(run.path))
                self.table.setItem(i, j, item)
        self.table.setSortingEnabled(True)
        self.table.resizeColumnsToContents()
        self.table.blockSignals(False)
        # every run's row in view (up to five; more scroll)
        row_h = self.table.verticalHeader().defaultSectionSize()
        self.table.setMinimumHeight(self.table.horizontalHeader().height()
                                    + row_h * min(len(rows), 5) + 6)
        self.note.setText(f"{len(rows)} runs · differing settings: {cmp.what_differs} · "
                          "final figures at each run's last snapshot; [..] = 95% interval "
                          "(bootstrap over episodes and unseen classes)")

    def run_of_row(self, row: int) -> int:
        return int(self.table.item(row, 0).data(QtCore.Qt.ItemDataRole.UserRole))

    def select_run(self, index: int | None) -> None:
        self.table.blockSignals(True)
        self.table.clearSelection()
        if index is not None:
            for row in range(self.table.rowCount()):
                if self.run_of_row(row) == index:
                    self.table.selectRow(row)
        self.table.blockSignals(False)

    def _on_selection(self) -> None:
        rows = {i.row() for i in self.table.selectedItems()}
        if rows:
            self.run_clicked.emit(self.run_of_row(min(rows)))

    def csv_text(self) -> str:
        return compare.table_csv(self.columns, self.rows)


class CompareWindow(QtWidgets.QMainWindow):
    """2..8 recorded runs compared: overlaid curves, small multiples at one step, the
    difference of two runs, the diff table; one timeline drives the step."""

    def __init__(self, comparison: compare.Comparison, parent=None, follow: bool = True) -> None:
        super().__init__(parent)
        self.cmp = comparison
        self.setWindowTitle(f"GSH Lab: comparing {len(comparison)} runs")
        self.curves = CompareCurvesPanel()
        self.side = SideBySidePanel()
        self.difference = DifferencePanel()
        self.table = DiffTable()
        self.plot_panels = {p.name: p for p in (self.curves, self.side, self.difference)}
        self.tabs = QtWidgets.QTabWidget()
        self.tabs.addTab(self.curves, "Curves")
        self.tabs.addTab(self.side, "Side by side")
        self.tabs.addTab(self.difference, "Difference A − B")
        central = QtWidgets.QWidget()
        layout = QtWidgets.QVBoxLayout(central)
        layout.setContentsMargins(4, 4, 4, 4)
        self.title = QtWidgets.QLabel()
        self.title.setWordWrap(True)
        self.title.setTextFormat(QtCore.Qt.TextFormat.RichText)
        layout.addWidget(self.title)
        split = QtWidgets.QSplitter(QtCore.Qt.Orientation.Vertical)
        split.addWidget(self.tabs)
        split.addWidget(self.table)
        split.setStretchFactor(0, 4)
        split.setStretchFactor(1, 1)
        layout.addWidget(split, 1)
        row = QtWidgets.QHBoxLayout()
        self.slider = QtWidgets.QSlider(QtCore.Qt.Orientation.Horizontal)
        self.slider.setToolTip("The step every run shows (each its nearest recorded one)")
        self.step_label = QtWidgets.QLabel()
        self.step_label.setMinimumWidth(260)
        row.addWidget(QtWidgets.QLabel("timeline"))
        row.addWidget(self.slider, 1)
        row.addWidget(self.step_label)
        layout.addLayout(row)
        self.setCentralWidget(central)
        self.steps: list[int] = []
        self.step = 0
        self.highlighted: int | None = None
        self.slider.valueChanged.connect(self._on_slider)
        self.table.run_clicked.connect(self.highlight_run)
        self.table.export_button.clicked.connect(self._on_export_table_triggered)
        for panel in self.plot_panels.values():
            panel.export_requested.connect(self._on_export_panel_requested)
        self._build_menu()
        for panel in self.plot_panels.values():
            panel.set_comparison(comparison)
        self._fill()
        self.set_step(self.steps[-1] if self.steps else 0)
        self.followers = []
        if follow:
            from app.follow import RunFollower

            for run in comparison.runs:
                if run.reader.live:
                    f = RunFollower(run.reader, parent=self)
                    f.grew.connect(self._on_run_grew)
                    f.ended.connect(self._on_run_grew)
                    self.followers.append(f)

    # -- contents ------------------------------------------------------------------
    def _fill(self) -> None:
        """Title, timeline and table from the comparison as it is now."""
        parts = [f'<span style="color:{r.colour}">■</span> {r.name} '
                 f'<span style="color:#777">({r.path.name}, {r.reader.display_status})</span>'
                 for r in self.cmp.runs]
        self.title.setText(f"<b>Comparing {len(self.cmp)} runs</b> · what differs: "
                           f"{self.cmp.what_differs}<br>" + " &nbsp; ".join(parts))
        self.steps = self.cmp.all_steps()
        self.slider.blockSignals(True)
        self.slider.setRange(0, max(len(self.steps) - 1, 0))
        self.slider.blockSignals(False)
        columns, rows = self.cmp.table()
        self.table.set_table(self.cmp, columns, rows)
        self.table.select_run(self.highlighted)

    def set_step(self, step: int) -> None:
        """Move every run to `step` (each to its nearest recorded step)."""
        self.step = int(step)
        if self.steps:
            index = int(np.argmin(np.abs(np.asarray(self.steps) - self.step)))
            self.slider.blockSignals(True)
            self.slider.setValue(index)
            self.slider.blockSignals(False)
        nearest = [r.nearest(self.step) for r in self.cmp.runs]
        off = sum(1 for s in nearest if s is not None and s != self.step)
        self.step_label.setText(f"step {self.step}" + (
            f" · {off} runs at their nearest recorded step" if off else ""))
        for panel in self.plot_panels.values():
            panel.set_step(self.step)

    def _on_slider(self, index: int) -> None:
        if 0 <= index < len(self.steps):
            self.set_step(self.steps[index])

    def highlight_run(self, index: int | None) -> None:
        """Mark run `index` in every panel and the table (None: no run marked)."""
        self.highlighted = index
        for panel in self.plot_panels.values():
            panel.set_highlight(index)
        self.table.select_run(index)

    def mark_probe_point(self, config, row: int | None) -> None:
        """The Inspector's point (probe row `row` of a run with `config`) marked in every
        compared run that shares its probe set; None, or no such run, clears the mark."""
        shared = None
        if row is not None and config is not None:
            shared = next((r for r in self.cmp.runs if compare.same_probe_set(config, r.config)),
                          None)
        self.side.select_row(None if shared is None else row,
                             0 if shared is None else shared.index)

    def show_view(self, name: str) -> PlotPanel:
        """Bring a panel forward by its CLI name (curves, representation, collisions,
        locality, samples, diff); returns it."""
        if name == "curves":
            panel = self.curves
        elif name == "diff":
            panel = self.difference
        else:
            self.side.set_view_name(name)
            panel = self.side
        self.tabs.setCurrentWidget(panel)
        return panel

    def _on_run_grew(self, *_args) -> None:
        at_end = not self.steps or self.step >= self.steps[-1]
        self.cmp.refresh()
        for panel in self.plot_panels.values():
            panel.set_comparison(self.cmp)
        self._fill()
        self.set_step(self.steps[-1] if at_end and self.steps else self.step)

    # -- exports -------------------------------------------------------------------
    def _build_menu(self) -> None:
        menu = self.menuBar().addMenu("&File")
        menu.addAction("Export comparison (PNG or PDF)…", self._on_export_window_triggered)
        menu.addAction("Export table as CSV…", self._on_export_table_triggered)
        menu.addSeparator()
        menu.addAction("Close", self.close)

    def export_window(self, path: str | Path) -> Path:
        if Path(path).suffix.lower() == ".pdf":
            return widget_to_pdf(self, path, title=self._pdf_title())
        return _save_grab(self, path)

    def export_panel(self, panel: PlotPanel, path: str | Path) -> Path:
        """A panel as PNG, SVG or vector PDF (by suffix)."""
        path = Path(path)
        if path.suffix.lower() == ".pdf":
            return scene_to_pdf(panel.graphics.scene(), panel.graphics, path,
                                title=self._pdf_title())
        return panel.export(path)

    def export_table_csv(self, path: str | Path) -> Path:
        return atomic_write(path, lambda tmp: Path(tmp).write_text(self.table.csv_text(),
                                                                    encoding="utf-8"))

    def _pdf_title(self) -> str:
        return "GSH Lab comparison: " + " / ".join(r.name for r in self.cmp.runs)

    def _ask(self, title: str, filt: str, name: str) -> str | None:
        """A file name, asked in the main window's export folder (remembered there), or
        beside the first run (from the command line): a bare name opened the dialog in
        whatever folder the app was started from."""
        main = self.parent()
        folder = (main.export_folder() if hasattr(main, "export_folder")
                  else Path(self.cmp.runs[0].path).parent)
        path, _ = QtWidgets.QFileDialog.getSaveFileName(self, title, str(folder / name), filt)
        if path and hasattr(main, "settings"):
            main.settings.setValue("exports/folder", str(Path(path).parent))
        return path or None

    def _guard(self, fn, *args) -> None:
        try:
            out = fn(*args)
        except (OSError, ValueError) as exc:
            QtWidgets.QMessageBox.warning(self, "Cannot export", str(exc))
            return
        self.statusBar().showMessage(f"Wrote {out}", 5000)

    def _on_export_window_triggered(self) -> None:
        path = self._ask("Export comparison", "PNG image (*.png);;PDF, vector (*.pdf)",
                         "comparison.png")
        if path:
            self._guard(self.export_window, path)

    def _on_export_table_triggered(self) -> None:
        path = self._ask("Export diff table", "CSV (*.csv)", "comparison.csv")
        if path:
            self._guard(self.export_table_csv, path)

    def _on_export_panel_requested(self, name: str, fmt: str) -> None:
        if fmt not in EXPORT_FORMATS:
            return
        path = self._ask("Export panel", f"{fmt.upper()} (*.{fmt})", f"{name}.{fmt}")
        if path:
            self._guard(self.export_panel, self.plot_panels[name], path)

    def closeEvent(self, event: QtGui.QCloseEvent) -> None:
        self.stop_following()
        super().closeEvent(event)

    def stop_following(self) -> None:
        for f in self.followers:
            f.stop()


def _save_grab(widget: QtWidgets.QWidget, path: str | Path) -> Path:
    def write(tmp: Path) -> None:
        if not widget.grab().save(str(tmp), Path(path).suffix.lstrip(".").upper() or "PNG"):
            raise OSError(f"cannot write {path}: the image could not be encoded")

    return atomic_write(path, write)


# ---------------------------------------------------------------------------------------
# main.py compare


def compare_main(args) -> int:
    """`main.py compare RUN RUN ... [--out FILE] [--panel P] [--step N] [--size WxH]`:
    without --out, the comparison window; with it, the figure written offscreen."""
    cmp = compare.open_comparison(args.runs)
    if args.panel is not None and args.panel not in PANELS:
        raise ConfigError("--panel", f"unknown panel {args.panel!r} (choose from "
                          f"{', '.join(PANELS)})")
    last = max(cmp.all_steps())
    if args.step is not None and not 0 <= args.step <= last:
        raise ConfigError("--step", f"must be within 0..{last} (the runs' recorded steps), "
                          f"got {args.step}")
    w, h = parse_size(args.size)
    if args.out is not None:
        suffix = Path(args.out).suffix.lower()
        if suffix not in (".png", ".pdf", ".svg"):
            raise ConfigError("--out", f"must end in .png, .pdf or .svg, got {args.out}")
        if suffix == ".svg" and args.panel is None:
            raise ConfigError("--out", "an SVG needs --panel (the whole window: PNG or PDF)")
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    app = application()
    configure_pyqtgraph()
    window = CompareWindow(cmp, follow=args.out is None)
    try:
        window.resize(w, h)
        if args.panel is not None:
            if args.out is not None:
                window.side.compute_missing()  # the runs' own projections, cached
            window.show_view(args.panel)
        window.set_step(last if args.step is None else args.step)
        window.show()
        wait_until(app, lambda: False, 0.3)
        if args.out is None:
            return int(app.exec())
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        if args.panel is None:
            window.export_window(out)
        else:
            window.export_panel(window.tabs.currentWidget(), out)
        print(f"wrote {out}", file=sys.stderr)
        return 0
    finally:
        window.stop_following()
        window.close()
        window.deleteLater()
        app.processEvents()
