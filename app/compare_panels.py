"""The comparison window's panels: each run one colour and a line style per figure
(run_pen, curve_style), the panel base that shows the run key, the overlaid curves, the
difference of run A and run B, and the parameter diff table. The small multiples are
app.compare_side_by_side's."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

from app.palette import palette
from app.panels.base import SOLID, Key, PlotPanel, add_key
from app.panels.curves import PLOTS as CURVE_PLOTS
from app.panels.runs import _Item
from engine import compare, figures
from engine.record_format import RunRecordError

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

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.cmp: compare.Comparison | None = None
        self.step = 0
        self.highlighted: int | None = None
        self.run_key = Key(size="8pt")
        # never taller than its lines (the Difference view without a heatmap: no half
        # window of blank key above its note)
        self.run_key.setSizePolicy(QtWidgets.QSizePolicy.Policy.Preferred,
                                   QtWidgets.QSizePolicy.Policy.Maximum)

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

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
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
            key = add_key(self.graphics, row + 1, col,
                          [[(GLYPHS[style], "#555555", figures.label(k)) for k, style in series]])
            # the keys wrap rather than widen their column: both columns get half the width
            key.setSizePolicy(QtWidgets.QSizePolicy.Policy.Ignored,
                              QtWidgets.QSizePolicy.Policy.Preferred)
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
        self._show_header(self.cmp)
        self._changed()

    def _show_header(self, cmp: compare.Comparison) -> None:
        smoothing = self.smoothing.value()
        text = f"{len(cmp)} runs · step {self.step}"
        if smoothing:
            text += f" · smoothing {smoothing:.2f}"
        self.set_info(text)

    def set_step(self, step: int) -> None:
        super().set_step(step)
        for c in self.cursors:
            c.setPos(step)
        if self.cmp is not None:
            self._show_header(self.cmp)

    def set_highlight(self, index: int | None) -> None:
        super().set_highlight(index)
        self._draw()


class DifferencePanel(ComparePanel):
    """The collision heatmap of run A minus run B (diverging colours, for runs that share
    a probe set; otherwise a note says so) and the one-shot difference with its 95%
    interval."""

    name = "compare_difference"
    title = "Difference"

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
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

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
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

    def set_table(self, cmp: compare.Comparison, columns: Sequence[str],
                  rows: list[list]) -> None:
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
        item = self.table.item(row, 0)
        assert item is not None  # every row has its run cell
        return int(item.data(QtCore.Qt.ItemDataRole.UserRole))

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
