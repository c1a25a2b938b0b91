"""Locality sensitivity: bucket-collision rate of class pairs against their gamma angle.

SimHash of a fixed representation collides with probability (1 - angle/pi)**bits; the
theory curve uses the angle between the class gammas themselves, the dots are the
measured collision rates of the network's buckets for each pair of probe classes.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg

from app.palette import palette
from app.panels.base import DOT, SOLID, TRIANGLE, PlotPanel, Scatter, add_key


class LocalityPanel(PlotPanel):
    name = "locality"
    title = "Locality sensitivity"

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        pal = palette()
        self.plot = self.add_plot(row=0, col=0)
        self.plot.setLabel("bottom", "angle between class gammas (rad)")
        self.plot.setLabel("left", "collision rate")
        self.plot.setXRange(0, np.pi, padding=0.02)
        self.plot.setYRange(0, 1, padding=0.02)
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
        self.key = add_key(self.graphics, 1, 0, [
            [(DOT, pal.class_rgb[0], "class pair, measured"),
             (TRIANGLE, pal.class_rgb[3], "both classes unseen")],
            [(SOLID, pal.curve_pens["theory"], "SimHash theory (1 - angle/π)^bits")],
        ])
        self._theory_bits: int | None = None
        self._unseen_mask: np.ndarray | None = None
        self._mask_for: tuple | None = None

    def set_snapshot(self, snapshot) -> None:
        angle = np.asarray(snapshot.pair_angle, dtype=np.float64)
        coll = np.asarray(snapshot.pair_collision, dtype=np.float64)
        mask = self._pair_unseen_mask(snapshot.probe, len(angle))
        if mask is None:
            self.pairs.setData(x=angle, y=coll)
            self.unseen_pairs.clear()
        else:
            self.pairs.setData(x=angle[~mask], y=coll[~mask])
            self.unseen_pairs.setData(x=angle[mask], y=coll[mask])
        if snapshot.bits != self._theory_bits:
            self._theory_bits = snapshot.bits
            a = np.linspace(0.0, np.pi, 200)
            self.theory.setData(a, (1.0 - a / np.pi) ** snapshot.bits)
        top = f" · max {coll.max():.2f}" if len(coll) else ""
        self.set_info(
            f"step {snapshot.step}{top} · {len(angle)} class pairs · {snapshot.bits}-bit SimHash"
        )
        self._changed()

    def _pair_unseen_mask(self, probe, n_pairs: int) -> np.ndarray | None:
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

    def clear(self) -> None:
        self.pairs.clear()
        self.unseen_pairs.clear()
        self.theory.setData([], [])
        self._theory_bits = None
        self._cleared()
