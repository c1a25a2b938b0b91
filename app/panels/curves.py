"""Curves over training steps: loss, accuracies (one-shot trained vs untrained vs raw
input), same- vs different-class bucket collisions (unseen classes, then all probe
classes; rates expected over hyperplanes), theta-invariance, and the gamma and theta
ridge probes (R²).

Each plot's legend sits in its own row below the plot, so it never covers a curve (on
screen and in exports). A collapsed run is marked by a red line at the step it collapsed
and a red header."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtWidgets

from app.palette import Palette, palette
from app.panels.base import (
    DASHED,
    DOTTED,
    SOLID,
    Key,
    KeyLine,
    PlotPanel,
    add_key,
)
from app.view import View
from engine import figures
from engine.snapshot import RunInfo

MIN_ROW_HEIGHT = 150  # pixels per row of plots (with its key) before the panel scrolls
BAND_LIMIT = 1e3  # an interval band is drawn within +-BAND_LIMIT (every axis is within)
AXIS_WIDTH = 52  # pixels of every y axis (label and tick values)

# (plot name, y label, [(figure, pen name, style)]); style False solid, True dashed,
# "dotted"; a figure (engine/figures.py) is a
# history column or one of the run's baselines (drawn flat); the y label names the plot
# (no titles: at 1366x768 they took the room of the curves).
PLOTS: list[tuple[str, str, list[tuple[str, str, bool | str]]]] = [
    ("Training loss", "training loss", [("loss", "trained", False)]),
    (
        "Accuracy",
        "accuracy",
        [
            ("oneshot_trained", "trained", False),
            ("oneshot_untrained", "untrained", False),
            ("oneshot_raw", "raw", False),
            ("oneshot_learned_linear", "learned", False),
            ("train_accuracy", "same", True),
        ],
    ),
    (
        "Unseen-class collisions",
        "unseen coll.",
        [
            ("unseen_same_class_collision", "same", False),
            ("unseen_different_class_collision", "different", False),
            ("raw_unseen_same_class_collision", "same", True),
            ("raw_unseen_different_class_collision", "different", True),
            ("learned_linear_unseen_same_class_collision", "same", "dotted"),
            ("learned_linear_unseen_different_class_collision", "different", "dotted"),
        ],
    ),
    (
        "Theta-invariance",
        "theta-invariance",
        [
            ("invariance_trained", "trained", False),
            ("invariance_raw", "raw", True),
            ("invariance_learned_linear", "learned", False),
        ],
    ),
    (
        "Bucket collisions",
        "coll., all classes",
        [
            ("same_class_collision", "same", False),
            ("different_class_collision", "different", False),
            ("raw_same_class_collision", "same", True),
            ("raw_different_class_collision", "different", True),
        ],
    ),
    (
        "Probes",
        "probe R²",
        [
            ("gamma_r2_trained", "same", False),
            ("gamma_r2_raw", "same", True),
            ("theta_r2_trained", "different", False),
            ("theta_r2_raw", "different", True),
        ],
    ),
]


PROBES = 5  # the R² plot's index in PLOTS

# Keys below the plots (by plot index): one or two lines of (glyph, pen, words).
KEYS: dict[int, Callable[[Palette], list[KeyLine]]] = {
    1: lambda pal: [
        [(SOLID, pal.curve_pens["trained"], "one-shot, trained"),
         (SOLID, pal.curve_pens["untrained"], "untrained"),
         (SOLID, pal.curve_pens["raw"], "raw input"),
         (SOLID, pal.curve_pens["learned"], "learned linear")],
        [(DASHED, pal.curve_pens["same"], "head accuracy (seen classes)"),
         (DOTTED, pal.dotted_pen, "chance (1/ways)")],
    ],
    2: lambda pal: [
        [(SOLID, pal.curve_pens["same"], "same class"),
         (SOLID, pal.curve_pens["different"], "different class")],
        [(DASHED, "#777777", "raw input"), (DOTTED, "#777777", "learned linear"),
         ("", "#777777", "· both classes never trained on")],
    ],
    3: lambda pal: [
        [(SOLID, pal.curve_pens["trained"], "trained"),
         (DASHED, pal.curve_pens["raw"], "raw input"),
         (SOLID, pal.curve_pens["learned"], "learned linear")],
        [("", "#777777", "within- / between-class distance, unseen")],
    ],
    4: lambda pal: [
        [(SOLID, pal.curve_pens["same"], "same class"),
         (SOLID, pal.curve_pens["different"], "different class"),
         (DASHED, "#777777", "raw input")],
        [("", "#777777", "all probe classes, seen and unseen")],
    ],
    5: lambda pal: [
        [(SOLID, pal.curve_pens["same"], "gamma from embedding"),
         (SOLID, pal.curve_pens["different"], "theta from embedding"),
         (DASHED, "#777777", "raw input")],
        [("", "#777777", "ridge R² on held-out rows (unseen classes for gamma)")],
    ],
}


class CurvesPanel(PlotPanel):
    name = "curves"
    title = "Curves"

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        pal = palette()
        # Plain curve items, not PlotDataItems: a PlotDataItem re-applies its pen (mkPen,
        # mkColor) and rebuilds its dataset at every setData, half of a snapshot's redraw.
        self.curves: dict[str, pg.PlotCurveItem] = {}
        # key -> (lower, upper, band between them) of the figures with a 95% interval
        self.bands: dict[str, tuple[pg.PlotCurveItem, pg.PlotCurveItem,
                                    pg.FillBetweenItem]] = {}
        self.cursors: list[pg.InfiniteLine] = []
        self.plots: list[pg.PlotItem] = []
        self._fitted: list[int] = []  # plots of unbounded figures: y fitted to the curves
        first: pg.PlotItem | None = None
        self.keys: list[Key] = []
        self.collapse_lines: list[pg.InfiniteLine] = []
        for i, (_name, ylabel, series) in enumerate(PLOTS):
            row, col = 2 * (i // 2), i % 2
            plot = self.add_plot(row=row, col=col)
            plot.setLabel("left", ylabel, **{"font-size": "8pt"})  # fits a short plot
            plot.getAxis("left").enableAutoSIPrefix(False)
            # One width for every y axis: the linked step axes then line up (a wider
            # label used to push a plot's start to step 20 and hide step 0).
            plot.getAxis("left").setWidth(AXIS_WIDTH)
            # No grid: its alpha-blended lines made this panel the slowest one to paint.
            plot.getViewBox().setMouseEnabled(x=True, y=False)
            for key, pen_name, dashed in series:
                pen = (pal.dotted_pens if dashed == "dotted" else pal.dashed_pens if dashed
                       else pal.curve_pens)[pen_name]
                curve = pg.PlotCurveItem(pen=pen, name=figures.label(key), connect="finite")
                plot.addItem(curve)
                self.curves[key] = curve
                if figures.FIGURES[key].ci:  # its 95% interval: a band behind the curve
                    lo, hi = pg.PlotCurveItem(), pg.PlotCurveItem()
                    color = pen.color()
                    color.setAlpha(55)
                    band = pg.FillBetweenItem(lo, hi, brush=pg.mkBrush(color))
                    band.setZValue(-10)
                    plot.addItem(band)
                    self.bands[key] = (lo, hi, band)
            if i in KEYS:
                self.keys.append(add_key(self.graphics, row + 1, col, KEYS[i](pal)))
            # No auto-range: it measured every curve's bounds at each paint (a fifth of
            # this panel's drawing). Bounded figures get a fixed range, the others the
            # range of their curves at each snapshot (_fit_y), the steps the run's.
            plot.enableAutoRange(x=False, y=False)
            ranges = [figures.FIGURES[key] for key, *_ in series]
            if all(math.isfinite(f.hi) for f in ranges):  # bounded figures: a fixed range
                lo = min((f.lo for f in ranges if math.isfinite(f.lo)), default=0.0)
                plot.setYRange(lo, max(f.hi for f in ranges), padding=0.02)
            else:
                self._fitted.append(i)
            if i >= len(PLOTS) - 2:
                plot.setLabel("bottom", "step")
            else:  # linked step axes: numbers under the bottom row only (room for curves)
                plot.getAxis("bottom").setStyle(showValues=False)
                plot.getAxis("bottom").setHeight(6)
            if first is None:
                first = plot
            else:
                plot.setXLink(first)
            cursor = pg.InfiniteLine(angle=90, pen=pal.cursor_pen, movable=False)
            plot.addItem(cursor, ignoreBounds=True)
            self.cursors.append(cursor)
            collapse = pg.InfiniteLine(angle=90, pen=pal.alarm_pen, movable=False,
                                       label="collapsed" if i == 0 else None,
                                       labelOpts={"color": pal.alarm_hex, "position": 0.85})
            collapse.hide()
            plot.addItem(collapse, ignoreBounds=True)
            self.collapse_lines.append(collapse)
            self.plots.append(plot)
        self.chance = self.plots[1].plot([], [], pen=pal.dotted_pen, name="chance")
        # The loss plot has one curve (no key): its key row holds nothing.
        for row in range(0, 2 * ((len(PLOTS) + 1) // 2), 2):
            self.graphics.ci.layout.setRowStretchFactor(row, 10)
        self.collapsed_at: int | None = None
        # Below MIN_ROW_HEIGHT per row of plots the panel scrolls instead of squeezing
        # every plot flat (six plots in a 1366x768 window).
        self.scroll_below(MIN_ROW_HEIGHT * -(-len(PLOTS) // 2))
        self.set_empty(True)
        self._run: RunInfo | None = None
        self._rows_key: tuple[int, int] | None = None

    def set_view(self, view: View) -> None:
        """The run's curves (redrawn when its history grew), the step cursor at the
        snapshot shown, the collapse marker."""
        run, snapshot = view.run, view.snapshot
        if run is not self._run:
            # A fixed step axis for the whole run: the axes are not re-laid out (the
            # costliest part of repainting this panel) every time a point is added.
            self._run = run
            self._rows_key = None
            self.plots[0].setXRange(0, run.total_steps, padding=0.02)
            self.chance.setData([0, run.total_steps], [1.0 / max(run.ways, 1)] * 2)
        rows_key = (id(view.rows), len(view.rows))
        if rows_key != self._rows_key:
            self._rows_key = rows_key
            self._set_history(view.rows, run)
        for c in self.cursors:
            c.setPos(snapshot.step)
        if self.collapsed_at != view.collapsed_at:
            self._set_collapse(view.collapsed_at)
        text = (
            f"step {snapshot.step} · one-shot {snapshot.oneshot_trained:.2f} "
            f"(untrained {run.oneshot_untrained:.2f}, raw {run.oneshot_raw:.2f}) · "
            f"unseen same {snapshot.unseen_same_class_collision:.2f} / "
            f"different {snapshot.unseen_different_class_collision:.2f} (all classes "
            f"{snapshot.same_class_collision:.2f} / "
            f"{snapshot.different_class_collision:.2f}) · "
            f"R² gamma {snapshot.gamma_r2_trained:.2f}, theta {snapshot.theta_r2_trained:.2f}"
        )
        if snapshot.collapsed:
            text = f"COLLAPSED ({snapshot.collapsed}) · {text}"
        self.set_info(text, alarm=bool(snapshot.collapsed))
        self._changed()

    def _set_history(self, rows: Sequence[dict[str, Any]], run: RunInfo | None) -> None:
        """Redraw every curve from the run's scalar history (one row per snapshot); the
        baselines are flat lines over the same steps."""
        if not rows or run is None:
            for item in self.curves.values():
                item.setData([], [])
            for lo, hi, _band in self.bands.values():
                with QtCore.QSignalBlocker(lo):  # the band follows hi's change
                    lo.setData([], [])
                hi.setData([], [])
            return
        steps = np.array([r["step"] for r in rows], dtype=np.float64)
        lowest = 0.0
        probe_keys = {key for key, *_ in PLOTS[PROBES][2]}
        for key, item in self.curves.items():
            if figures.FIGURES[key].per_run:
                y = np.full(len(steps), getattr(run, key), dtype=np.float64)
            else:
                y = np.array([r.get(key, np.nan) for r in rows], dtype=np.float64)
            item.setData(steps, y)
            if key in self.bands:
                lo, hi = self.bands[key][:2]
                if figures.FIGURES[key].per_run:  # a baseline's interval: a flat band
                    pair = run.baseline_ci95.get(key, (np.nan, np.nan))
                    ys = [np.full(len(steps), float(v)) for v in pair]
                else:
                    cols = figures.FIGURES[key].ci_columns
                    ys = [np.array([r.get(c, np.nan) for r in rows], dtype=np.float64)
                          for c in cols]
                ok = np.isfinite(ys[0]) & np.isfinite(ys[1])  # runs before intervals: none
                # At coordinates far beyond every axis (a tiny probe's R² interval once
                # reached -8.6e15) Qt's rasteriser fills a band differently from one paint
                # to the next (test_screen): a band is drawn cut at BAND_LIMIT.
                ys = [np.clip(y, -BAND_LIMIT, BAND_LIMIT) for y in ys]
                with QtCore.QSignalBlocker(lo):  # one band update, when hi is set
                    lo.setData(steps[ok], ys[0][ok])
                hi.setData(steps[ok], ys[1][ok])
            if key in probe_keys and np.isfinite(y).any():
                lowest = min(lowest, float(np.nanmin(y)))
        # R² below 0 (worse than the mean) is shown down to -1, not cut off at 0
        self.plots[PROBES].setYRange(max(lowest, -1.0), 1, padding=0.02)
        for i in self._fitted:
            self._fit_y(i)

    def _fit_y(self, i: int) -> None:
        """Plot i's y range: its curves' values, padded as pyqtgraph's auto-range pads;
        unchanged while no curve has a value."""
        ys = [self.curves[key].yData for key, *_ in PLOTS[i][2]]
        finite = np.concatenate([y[np.isfinite(y)] for y in ys if y is not None] or [[]])
        if not len(finite):
            return
        lo, hi = float(finite.min()), float(finite.max())
        self.plots[i].setYRange(lo, hi if hi > lo else lo + 1.0)

    def _set_collapse(self, step: int | None) -> None:
        """Mark the step where the run collapsed (None: not collapsed) on every plot."""
        self.collapsed_at = step
        for line in self.collapse_lines:
            line.setVisible(step is not None)
            if step is not None:
                line.setPos(step)

    def clear(self) -> None:
        self._run = None
        self._rows_key = None
        self.chance.setData([], [])
        self._set_history([], None)
        self._set_collapse(None)
        self._cleared()
