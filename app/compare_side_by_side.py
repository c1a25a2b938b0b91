"""Small multiples of the comparison window: one plot per run of one view
(representation projection, collision heatmap, locality or samples) at the shared step,
each run at its nearest recorded step."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

from app.compare_panels import ComparePanel
from app.palette import palette
from app.panels.base import Scatter
from app.panels.samples import PER_CLASS, pick_classes
from engine import compare
from engine.hashing import theory_curve
from engine.projection import procrustes_align
from engine.record_format import RunRecordError

VIEWS = ("representation", "collisions", "locality", "samples")


class SideBySidePanel(ComparePanel):
    """Small multiples: one plot per run of the chosen view at the shared step (each run's
    nearest recorded one, said in its title)."""

    name = "compare_side"
    title = "Side by side"
    view_changed = QtCore.Signal(str)

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
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
        cmp = self.cmp
        if cmp is None:
            return
        for cell in self.cells:
            self.graphics.removeItem(cell)
        if self.colorbar is not None:
            self.graphics.removeItem(self.colorbar)
            self.colorbar = None
        self.cells = []
        n = len(cmp.runs)
        cols = n if n <= 2 else (2 if n <= 4 else 4)
        if self.run_key in self.graphics.ci.items:
            self.graphics.ci.removeItem(self.run_key)
        self._place_key(cols)
        for run in cmp.runs:
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

    def _on_points_clicked(self, run: int, points: Sequence[Any]) -> None:
        if len(points) and points[0].data() is not None:
            row = int(points[0].data())
            self.select_row(None if (run, row) == self.selected else row, run)

    def _titles(self) -> None:
        if self.cmp is None:
            return
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
        cmp = self.cmp
        if cmp is None:
            return
        view = self.view.currentText()
        self.shown_steps, self.methods = {}, {}
        if self.colorbar is not None:
            self.graphics.removeItem(self.colorbar)
            self.colorbar = None
        reference: np.ndarray | None = None
        for run, cell in zip(cmp.runs, self.cells, strict=True):
            cell.clear()
            shown = run.nearest(self.step)
            if shown is None:
                continue
            self.shown_steps[run.index] = shown
            try:
                if view == "representation":
                    reference = self._draw_projection(cmp, run, cell, shown, reference)
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

    def _draw_projection(self, cmp: compare.Comparison, run: compare.ComparedRun,
                         cell: pg.PlotItem, step: int, reference: np.ndarray | None
                         ) -> np.ndarray | None:
        coords, method = self._frame(run, step)
        self.methods[run.index] = method
        probe = run.reader.run_info.probe
        first = cmp.runs[0]
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
        selected = self.selected
        marked = selected is not None and (
            run.index == selected[0] or compare.shares_probe(run, cmp.runs[selected[0]]))
        row = selected[1] if selected is not None and marked else None
        if row is not None and row < len(coords):
            cell.addItem(Scatter(x=[coords[row, 0]], y=[coords[row, 1]], size=18,
                                 pen=pg.mkPen(0, 0, 0, width=3), brush=pg.mkBrush(None)))
        return reference

    def _draw_heatmap(self, run: compare.ComparedRun, cell: pg.PlotItem, step: int) -> None:
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

    def _draw_locality(self, run: compare.ComparedRun, cell: pg.PlotItem, step: int) -> None:
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

    def _draw_samples(self, run: compare.ComparedRun, cell: pg.PlotItem) -> None:
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


def sample_mosaic(rows: Sequence[tuple[int, bool, np.ndarray]],
                  shape: tuple[int, int] | None) -> np.ndarray:
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
