"""Locality sensitivity: bucket-collision rate of class pairs against an angle.

Two x axes. Against the angle between the two classes' mean embeddings, SimHash's
(1 - angle/pi)**bits is the right reference: the gap to it is how far a class's points
spread around their mean. Against the angle between the class gammas, that curve would
hold only if the network kept gamma angles unchanged, so it is not drawn; what LSH-like
predicts there is a monotone decay, measured by the Spearman rank correlation between
angle and collision rate over unseen pairs (trained vs the raw input's).
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6 import QtWidgets

from app.palette import palette
from app.panels.base import DOT, SOLID, TRIANGLE, PlotPanel, Scatter, add_key
from app.selection import Highlight
from app.view import View
from engine.hashing import theory_curve
from engine.snapshot import ProbeSet

AXES = {  # the x values: the snapshot's class-mean angles, or the run's gamma angles
    "embedding angle": ("pair_embed_angle", "angle between class mean embeddings (rad)"),
    "gamma angle": ("pair_angle", "angle between class gammas (rad)"),
}


class LocalityPanel(PlotPanel):
    name = "locality"
    title = "Locality sensitivity"

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        pal = palette()
        self.axis_choice = QtWidgets.QComboBox()
        self.axis_choice.addItems(list(AXES))
        self.axis_choice.setToolTip(
            "x axis: the angle between the classes' mean embeddings (SimHash's curve is "
            "the reference) or between their gammas (Spearman's rank correlation tests "
            "for a monotone decay)")
        self.axis_choice.currentIndexChanged.connect(self._on_axis_changed)
        self.header.addWidget(self.axis_choice)
        self._view: View | None = None
        self.plot = self.add_plot(row=0, col=0)
        self.plot.setLabel("bottom", AXES["embedding angle"][1])
        self.plot.setLabel("left", "collision rate")
        for axis in ("left", "bottom"):  # rates as they are, never rescaled ("x0.001")
            self.plot.getAxis(axis).enableAutoSIPrefix(False)
        self._home_view()
        self.pairs = Scatter(
            size=6, pen=pal.no_pen, brush=pal.class_brushes[0], name="class pairs"
        )
        self.unseen_pairs = Scatter(
            size=8, symbol="t", pen=pal.unseen_pen, brush=pal.class_brushes[3],
            name="unseen pairs",
        )
        self.theory = pg.PlotDataItem(
            pen=pal.curve_pens["theory"], name="theory (1-angle/π)^bits"
        )
        self.plot.addItem(self.pairs)
        self.plot.addItem(self.unseen_pairs)
        self.plot.addItem(self.theory)
        self.selected_pairs = Scatter(size=12, pen=pg.mkPen(0, 200, 255, width=2),
                                      brush=pg.mkBrush(None))
        self.plot.addItem(self.selected_pairs)
        self.highlight: Highlight | None = None
        self._xy: tuple[np.ndarray, np.ndarray] | None = None
        self._points_key = [(DOT, pal.class_rgb[0], "class pair, measured"),
                            (TRIANGLE, pal.class_rgb[3], "both classes unseen")]
        self._theory_key = [(SOLID, pal.curve_pens["theory"],
                             "SimHash theory (1 - angle/π)^bits")]
        self.key = add_key(self.graphics, 1, 0, [self._points_key, self._theory_key])
        self._theory_bits: int | None = None
        self._unseen_mask: np.ndarray | None = None
        self._mask_for: tuple[int, int] | None = None  # (id of the probe set, pairs)

    @property
    def axis(self) -> str:
        return self.axis_choice.currentText()

    def _on_axis_changed(self, _index: int) -> None:
        field, label = AXES[self.axis]
        self.plot.setLabel("bottom", label)
        self.theory.setVisible(self.axis == "embedding angle")
        if self._view is not None:
            self.set_view(self._view)

    def set_view(self, view: View) -> None:
        self._view = view
        snapshot, run = view.snapshot, view.run
        field = AXES[self.axis][0]
        source = run if field == "pair_angle" else snapshot
        angle = np.asarray(getattr(source, field), dtype=np.float64)
        coll = np.asarray(snapshot.pair_collision, dtype=np.float64)
        if angle.shape != coll.shape:  # a run recorded before class-mean angles existed
            angle = np.asarray(run.pair_angle, dtype=np.float64)
        mask = self._pair_unseen_mask(view.probe, len(angle))
        if mask is None:
            self.pairs.setData(x=angle, y=coll)
            self.unseen_pairs.clear()
        else:
            self.pairs.setData(x=angle[~mask], y=coll[~mask])
            self.unseen_pairs.setData(x=angle[mask], y=coll[mask])
        if run.bits != self._theory_bits:
            self._theory_bits = run.bits
            a = np.linspace(0.0, np.pi, 200)
            self.theory.setData(a, theory_curve(a, run.bits))
        self._xy = (angle, coll)
        self._draw_highlight()
        top = f" · max {coll.max():.2f}" if len(coll) else ""
        rho, rho_raw = snapshot.locality_spearman_unseen, run.locality_spearman_raw
        if self.axis == "gamma angle":
            detail = (f"Spearman ρ(angle, collision), unseen pairs {rho:+.2f} "
                      f"(raw input {rho_raw:+.2f})")
            # in the key too: the header is cut short on small screens
            self.key.set_lines([self._points_key, [("", "#333333", detail)]])
        else:
            detail = f"{len(angle)} class pairs · {run.bits}-bit SimHash"
            self.key.set_lines([self._points_key, self._theory_key])
        self.set_info(f"step {view.step}{top} · {detail}")
        self._changed()

    def _pair_unseen_mask(self, probe: ProbeSet | None, n_pairs: int) -> np.ndarray | None:
        """Pairs i<j in class order (numpy triu order) where both classes are unseen."""
        if probe is None:
            return None
        c = len(probe.classes)
        if c * (c - 1) // 2 != n_pairs:
            return None
        key = (id(probe), n_pairs)
        if self._mask_for != key:
            i, j = np.triu_indices(c, 1)
            cs = np.asarray(probe.class_seen, dtype=bool)
            self._unseen_mask = ~cs[i] & ~cs[j]
            self._mask_for = key
        return self._unseen_mask

    def set_highlight(self, highlight: Highlight | None) -> None:
        """Ring the class pairs of the selected class (or exactly the selected pair)."""
        self.highlight = highlight
        self._draw_highlight()

    def _draw_highlight(self) -> None:
        h, xy = self.highlight, self._xy
        if h is None or not h.classes or xy is None or self._view is None:
            self.selected_pairs.clear()
            return
        c = len(self._view.snapshot.collision_matrix)
        i, j = np.triu_indices(c, 1)
        if len(i) != len(xy[0]):
            self.selected_pairs.clear()
            return
        if len(h.classes) == 2:
            a, b = sorted(h.classes)
            mask = (i == a) & (j == b)
        else:
            mask = (i == h.classes[0]) | (j == h.classes[0])
        self.selected_pairs.setData(x=xy[0][mask], y=xy[1][mask])

    def _home_view(self) -> None:
        """Every angle and every rate in view (a user's zoom ends with the run)."""
        self.plot.setXRange(0, np.pi, padding=0.02)
        self.plot.setYRange(0, 1, padding=0.02)

    def clear(self) -> None:
        self._home_view()
        self._view = None
        self._xy = None
        self.selected_pairs.clear()
        self.pairs.clear()
        self.unseen_pairs.clear()
        self.theory.setData([], [])
        self._theory_bits = None
        self._cleared()
