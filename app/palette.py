"""Colours, brushes and pens, built once and shared by every panel.

pyqtgraph caches scatter symbols by brush/pen identity, so panels index these
prebuilt objects by class position or theta level instead of creating new ones.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6 import QtGui

# Seen classes: a 20-colour categorical palette (tab20 order, strong colours first).
CLASS_RGB = [
    (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
    (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207),
    (174, 199, 232), (255, 187, 120), (152, 223, 138), (255, 152, 150), (197, 176, 213),
    (196, 156, 148), (247, 182, 210), (199, 199, 199), (219, 219, 141), (158, 218, 229),
]
# Unseen classes: 20 more colours (tab20b), so a seen and an unseen class never share one
# (probe sets of the presets hold up to 20 of each).
UNSEEN_RGB = [
    (57, 59, 121), (140, 162, 82), (189, 158, 57), (173, 73, 74), (165, 81, 148),
    (107, 110, 207), (99, 121, 57), (231, 186, 82), (132, 60, 57), (206, 109, 189),
    (82, 84, 163), (181, 207, 107), (140, 109, 49), (214, 97, 107), (123, 65, 115),
    (156, 158, 222), (206, 219, 156), (231, 203, 148), (231, 150, 156), (222, 158, 214),
]
ALARM = (192, 57, 43)  # a collapsed or diverged run
THETA_LEVELS = 256

# Curve colours, by what they measure.
TRAINED = (31, 119, 180)
UNTRAINED = (127, 127, 127)
RAW = (214, 39, 40)
SAME = (44, 160, 44)
DIFFERENT = (148, 103, 189)
THEORY = (255, 127, 14)
LEARNED = (140, 86, 75)  # the learned linear baseline


class Palette:
    """Every QBrush/QPen the panels draw with, created once after QApplication exists."""

    def __init__(self) -> None:
        self.class_rgb = CLASS_RGB
        self.class_brushes = [pg.mkBrush(*c, 220) for c in CLASS_RGB]
        self.unseen_brushes = [pg.mkBrush(*c, 230) for c in UNSEEN_RGB]
        self.alarm_pen = pg.mkPen(*ALARM, width=2)
        self.alarm_hex = "#{:02x}{:02x}{:02x}".format(*ALARM)
        self.unseen_pen = pg.mkPen(20, 20, 20, 200, width=1)
        self.no_pen = pg.mkPen(None)
        self.colormap = pg.colormap.get("viridis")
        self.theta_lut = self.colormap.getLookupTable(0.0, 1.0, THETA_LEVELS, alpha=False)
        self.theta_brushes = [pg.mkBrush(*rgb, 220) for rgb in self.theta_lut]
        self.heat_colormap = pg.colormap.get("inferno")
        self.curve_pens = {
            name: pg.mkPen(*rgb, width=2)
            for name, rgb in {
                "trained": TRAINED, "untrained": UNTRAINED, "raw": RAW,
                "same": SAME, "different": DIFFERENT, "theory": THEORY, "learned": LEARNED,
            }.items()
        }
        self.dashed_pens = {
            name: pg.mkPen(*pen.color().getRgb()[:3], width=2, style=QtGui.Qt.PenStyle.DashLine)
            for name, pen in self.curve_pens.items()
        }
        self.dotted_pens = {
            name: pg.mkPen(*pen.color().getRgb()[:3], width=2, style=QtGui.Qt.PenStyle.DotLine)
            for name, pen in self.curve_pens.items()
        }
        self.cursor_pen = pg.mkPen(120, 120, 120, 160, width=1, style=QtGui.Qt.PenStyle.DotLine)
        self.dotted_pen = pg.mkPen(110, 110, 110, width=1, style=QtGui.Qt.PenStyle.DashLine)
        self.block_pen = pg.mkPen(255, 255, 255, 230, width=2)

    def class_brush_list(self, class_pos: np.ndarray,
                         class_seen: np.ndarray | None = None) -> list[QtGui.QBrush]:
        """A brush per row from its class position; with `class_seen` (per class), seen
        classes take the seen palette in order and unseen classes the unseen one."""
        if class_seen is None:
            b = self.class_brushes
            return [b[i % len(b)] for i in class_pos.tolist()]
        per_class = []
        n_seen = n_unseen = 0
        for seen in np.asarray(class_seen, dtype=bool).tolist():
            if seen:
                per_class.append(self.class_brushes[n_seen % len(self.class_brushes)])
                n_seen += 1
            else:
                per_class.append(self.unseen_brushes[n_unseen % len(self.unseen_brushes)])
                n_unseen += 1
        return [per_class[i] for i in class_pos.tolist()]

    def theta_brush_list(self, values: np.ndarray) -> list[QtGui.QBrush]:
        """Brushes for a theta component over its 2nd..98th percentile (invariance view).

        Percentiles, not min..max: theta is Gaussian, so a few extreme draws would
        otherwise squeeze almost every point into the middle colours.
        """
        v = np.asarray(values, dtype=np.float64)
        lo, hi = theta_range(v)
        scale = (THETA_LEVELS - 1) / (hi - lo) if hi > lo else 0.0
        idx = np.clip(((v - lo) * scale).astype(np.int64), 0, THETA_LEVELS - 1)
        b = self.theta_brushes
        return [b[i] for i in idx.tolist()]


def theta_range(values: np.ndarray) -> tuple[float, float]:
    """The 2nd..98th percentile of a theta component: the span of the colour scale."""
    v = np.asarray(values, dtype=np.float64)
    if not v.size:
        return 0.0, 1.0
    return float(np.percentile(v, 2)), float(np.percentile(v, 98))


_PALETTE: Palette | None = None


def palette() -> Palette:
    """The shared palette (built on first use, on the GUI thread)."""
    global _PALETTE
    if _PALETTE is None:
        _PALETTE = Palette()
    return _PALETTE
