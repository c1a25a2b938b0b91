"""The Sweep window's phase diagram: one number per run (final, best or at a step)
against the first axis (single runs, mean and its 95% interval over seeds, the
baselines), or a heatmap over the first two axes. A mixin of
app.sweep_view.SweepWindow (it relies on the window's attributes)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
from PySide6 import QtWidgets

from app.panels.phase import PhasePanel
from engine import figures, metrics
from engine.sweep import RUNS
from engine.sweep_spec import Axis, Sweep

# Numbers a run can be represented by; the first ones found in the summary are offered.
METRICS = (  # collision_ratio and the unseen rates: unseen classes, as the claim
    "oneshot_trained", "collision_ratio", "unseen_same_class_collision",
    "unseen_different_class_collision", "invariance_trained", "gamma_r2_trained",
    "theta_r2_trained", "lsh_recall_trained", "collision_ratio_all", "same_class_collision",
    "different_class_collision", "train_accuracy", "loss",
    # the validation classes: what presets and targets are chosen on
    "val_oneshot_trained", "val_collision_ratio",
)
VALUE_CHOICES = ("final", "best", "at step")


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def label_of(key: str) -> str:
    """A field or figure as a reader says it: "seen classes", "one-shot, trained" (a
    figure's label from engine/figures.py)."""
    if key in figures.FIGURES or key in figures.RATIO:
        return figures.label(key)
    return key.rsplit(".", 1)[-1].replace("_", " ")


def _span(values: Iterable[float]) -> tuple[float, float]:
    """The range of `values` (a point widened a little, so it has width)."""
    v = [float(x) for x in values if x == x]
    if not v:
        return (0.0, 1.0)
    lo, hi = min(v), max(v)
    if hi - lo < 1e-12:
        pad = abs(lo) * 0.1 or 0.5
        lo, hi = lo - pad, hi + pad
    return (lo, hi)


def as_number(v: Any) -> float:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return math.nan
    return f


class SweepDiagramMixin:
    """The Sweep window's phase diagram, drawn from its table rows."""

    # the window's (app.sweep_view.SweepWindow)
    folder: Path | None
    sweep: Sweep | None
    rows: dict[str, dict]  # run id -> summary row
    order: list[str]
    selected: str | None
    phase: PhasePanel
    metric_choice: QtWidgets.QComboBox
    value: QtWidgets.QComboBox
    at_step: QtWidgets.QSpinBox
    log_x: QtWidgets.QCheckBox
    _history_cache: dict[str, list[dict]]

    def run_value(self, rid: str, metric: str) -> float:
        """The number that represents run `rid`: its final, best or at-step `metric`."""
        row = self.rows[rid]
        choice = self.value.currentText()
        if choice == "final":
            return figures.value(row, metric)
        history = self._history(rid)
        values = [(as_number(r.get("step")), figures.value(r, metric)) for r in history]
        values = [(s, v) for s, v in values if v == v]
        if not values:
            return math.nan
        if choice == "best":
            pick = max if figures.higher_is_better(metric) else min
            return pick(v for _s, v in values)
        target = self.at_step.value()
        earlier = [(s, v) for s, v in values if s <= target]
        return earlier[-1][1] if earlier else math.nan

    def _history(self, rid: str) -> list[dict]:
        if rid not in self._history_cache:
            from engine.record import open_run
            from engine.record_format import RunRecordError

            try:
                self._history_cache[rid] = (open_run(self.folder / RUNS / rid).rows
                                            if self.folder is not None else [])
            except (RunRecordError, OSError):
                self._history_cache[rid] = []
        return self._history_cache[rid]

    def redraw(self) -> None:
        panel = self.phase
        panel.clear()
        sweep = self.sweep
        if sweep is None or not self.rows:
            panel.set_empty(True, "no sweep yet: define one and press Start, or open a sweep "
                                  "folder")
            return
        metric = self.metric_choice.currentData()
        axes = [a for a in sweep.axes if a.field != "seed"]
        if not axes:
            panel.set_info("the sweep has no axis but seeds: see the table")
            return
        ids = [rid for rid in self.order]
        values = {rid: self.run_value(rid, metric) for rid in ids}
        if len(axes) >= 2:
            self._draw_heatmap(axes[0], axes[1], values, metric, sweep.seeds)
            return
        axis = axes[0]
        xs_axis = [as_number(v) for v in axis.values]
        numeric = all(x == x for x in xs_axis)
        log = self.log_x.isChecked() and numeric and all(x > 0 for x in xs_axis)

        def x_of(v: Any) -> float:
            x = as_number(v) if numeric else float(axis.values.index(v))
            return math.log10(x) if log else x

        spots: list[dict[str, Any]] = []  # pyqtgraph spots: pos, data (the run id)
        for rid in ids:
            y = values[rid]
            if y == y:
                spots.append({"pos": (x_of(self.rows[rid].get(axis.field)), y), "data": rid})
        if not spots:
            panel.set_empty(True, f"no {label_of(metric)} yet: the runs have not reported one")
            return
        panel.runs_item.setData(spots)
        # the 95% interval within the figure's own range (a one-shot accuracy's t-interval
        # over two seeds can reach past 0 and 1; the mean cannot)
        f = figures.FIGURES.get(metric)
        floor = f.lo if f is not None and f.lo == f.lo else -math.inf
        ceiling = f.hi if f is not None and f.hi == f.hi else math.inf
        mx, my, below, above = [], [], [], []
        for v in axis.values:
            ys = [values[r] for r in ids if self._same(self.rows[r].get(axis.field), v)]
            ys = [y for y in ys if y == y]
            if ys:
                mean, lo, hi = metrics.mean_ci(ys)
                mx.append(x_of(v))
                my.append(mean)
                below.append(mean - max(lo, floor) if lo == lo else 0.0)
                above.append(min(hi, ceiling) - mean if hi == hi else 0.0)
        if mx:
            panel.mean_item.setData(mx, my)
            panel.spread.setData(x=np.array(mx), y=np.array(my), height=None,
                                 top=np.array(above), bottom=np.array(below))
        for item in panel.baseline_items:
            item.clear()
        for base in figures.baselines(metric):  # its own pen: untrained, raw, learned linear
            item = panel.baseline_items[2 if "learned_linear" in base
                                        else 0 if "untrained" in base else 1]
            bx, by = [], []
            for v in axis.values:
                ys = [as_number(self.rows[r].get(base)) for r in ids
                      if self._same(self.rows[r].get(axis.field), v)]
                ys = [y for y in ys if y == y]
                if ys:
                    bx.append(x_of(v))
                    by.append(float(np.mean(ys)))
            item.setData(bx, by)
        if not numeric:
            panel.plot.getAxis("bottom").setTicks(
                [[(float(i), str(v)) for i, v in enumerate(axis.values)], []])
        else:
            panel.plot.getAxis("bottom").setTicks(None)
        panel.plot.setLabel("bottom", ("log10 " if log else "") + label_of(axis.field))
        panel.plot.setLabel("left", f"{label_of(metric)} ({self.value.currentText()})")
        names = [label_of(b) for b in figures.baselines(metric)]
        base_names = " and ".join([", ".join(names[:-1]), names[-1]] if len(names) > 2
                                  else names)
        extra = f"; dashed: {base_names}" if base_names else ""
        n = sum(1 for rid in ids if values[rid] == values[rid])
        panel.set_info(f"{label_of(metric)} of {_plural(n, 'run')} against {label_of(axis.field)}: "
                       f"dots = runs, line = mean over {_plural(sweep.seeds, 'seed')} "
                       f"with its 95% interval{extra}")
        # Axes fitted to the values drawn (baselines included), not to 0 or -0.5..0.5.
        xs = [sp["pos"][0] for sp in spots] + mx
        ys = [sp["pos"][1] for sp in spots] + [my[i] + above[i] for i in range(len(my))] + [
            my[i] - below[i] for i in range(len(my))]
        for item in panel.baseline_items:
            bx, by = item.getData()
            if by is not None:
                ys += [float(v) for v in by]
        panel.plot.setRange(xRange=_span(xs), yRange=_span(ys), padding=0.08)
        panel._changed()
        self._mark_selected()

    @staticmethod
    def _same(a: Any, b: Any) -> bool:
        fa, fb = as_number(a), as_number(b)
        if fa == fa and fb == fb:
            return math.isclose(fa, fb, rel_tol=1e-9, abs_tol=1e-12)
        return str(a) == str(b)

    def _draw_heatmap(self, ax1: Axis, ax2: Axis, values: dict[str, float], metric: str,
                      seeds: int) -> None:
        panel = self.phase
        grid = np.full((len(ax2.values), len(ax1.values)), np.nan, np.float32)
        for j, v2 in enumerate(ax2.values):
            for i, v1 in enumerate(ax1.values):
                ys = [values[r] for r in self.order
                      if self._same(self.rows[r].get(ax1.field), v1)
                      and self._same(self.rows[r].get(ax2.field), v2)]
                ys = [y for y in ys if y == y]
                if ys:
                    grid[j, i] = float(np.mean(ys))
        finite = grid[np.isfinite(grid)]
        lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
        if hi <= lo:
            hi = lo + 1e-9
        panel.image.setImage(grid, levels=(lo, hi), autoLevels=False)
        panel.colorbar.setLevels((lo, hi))
        panel.colorbar.show()
        panel.plot.getAxis("bottom").setTicks(
            [[(i + 0.5, f"{v:g}" if isinstance(v, float) else str(v))
              for i, v in enumerate(ax1.values)], []])
        panel.plot.getAxis("left").setTicks(
            [[(j + 0.5, f"{v:g}" if isinstance(v, float) else str(v))
              for j, v in enumerate(ax2.values)], []])
        panel.plot.setLabel("bottom", label_of(ax1.field))
        panel.plot.setLabel("left", label_of(ax2.field))
        panel.set_info(f"mean {label_of(metric)} ({self.value.currentText()}) over "
                       f"{_plural(seeds, 'seed')}, {label_of(ax2.field)} × "
                       f"{label_of(ax1.field)}")
        panel.plot.setRange(xRange=(0, len(ax1.values)), yRange=(0, len(ax2.values)),
                            padding=0)
        panel._changed()

    def _mark_selected(self) -> None:
        item = self.phase.selected_item
        item.clear()
        if self.selected is None:
            return
        for spot in self.phase.runs_item.points():
            if spot.data() == self.selected:
                pos = spot.pos()
                item.setData([pos.x()], [pos.y()])
                return
