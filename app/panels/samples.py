"""Samples of the manifolds x = f(gamma, theta): one row per class, columns are poses.

For image_pose the rows are images of one class under different poses theta; for vector
families each class is a block of sample vectors drawn as a heatmap (rows = samples,
columns = input dimensions). Rows are labelled with the class and whether the network is
trained on it; the colour bar gives the value scale.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg

from app.palette import palette
from app.panels.base import PlotPanel

MAX_SEEN = 4
MAX_UNSEEN = 4
PER_CLASS = 8


def pick_classes(classes: np.ndarray, class_seen: np.ndarray) -> list[tuple[int, bool]]:
    """A few seen and a few unseen probe classes, in probe order."""
    seen = [int(c) for c, s in zip(classes, class_seen, strict=True) if s][:MAX_SEEN]
    unseen = [int(c) for c, s in zip(classes, class_seen, strict=True) if not s][:MAX_UNSEEN]
    return [(c, True) for c in seen] + [(c, False) for c in unseen]


class SamplesPanel(PlotPanel):
    name = "samples"
    title = "Samples"

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.plot = self.add_plot()
        self.plot.invertY(True)
        self.plot.getViewBox().setDefaultPadding(0.0)
        self.plot.hideAxis("bottom")
        self.plot.setLabel("left", "class (seen = trained on)")
        self.image = pg.ImageItem(axisOrder="row-major")
        self.image.setLookupTable(palette().colormap.getLookupTable(0.0, 1.0, 256))
        self.plot.addItem(self.image)
        self.colorbar = pg.ColorBarItem(
            values=(0.0, 1.0), colorMap=palette().colormap, interactive=False, width=10,
            label="value of x",
        )
        self.graphics.addItem(self.colorbar, row=0, col=1)
        self.mosaic: np.ndarray | None = None
        self._source = None

    def set_view(self, view) -> None:
        """Probe rows of a few seen and unseen classes: the same for a live run and a
        reopened one (drawn once per run)."""
        probe = view.probe
        if probe is self._source:
            return
        self._source = probe
        x, label = probe.x, probe.label
        rows = [(c, s, x[label == c][:PER_CLASS])
                for c, s in pick_classes(probe.classes, probe.class_seen)]
        self._draw(rows, probe.image_shape)

    def _draw(self, rows, shape) -> None:
        ticks = []
        if shape is not None:
            h, w = shape
            gap = 2
            per = max(len(r[2]) for r in rows) if rows else 0
            mosaic = np.full(
                (len(rows) * (h + gap), max(per * (w + gap), 1)), np.nan, np.float32
            )
            for i, (c, seen, xs) in enumerate(rows):
                for j, v in enumerate(xs):
                    top, left = i * (h + gap), j * (w + gap)
                    mosaic[top : top + h, left : left + w] = v.reshape(h, w)
                ticks.append((i * (h + gap) + h / 2, f"{c} {'seen' if seen else 'unseen'}"))
            self.set_info(f"one class per row, {per} poses theta")
            self.colorbar.getAxis("left").setLabel("pixel value")
        else:
            blocks = []
            y = 0
            for c, seen, xs in rows:
                blocks.append(xs.astype(np.float32))
                blocks.append(np.full((1, xs.shape[1]), np.nan, np.float32))
                ticks.append((y + len(xs) / 2, f"{c} {'seen' if seen else 'unseen'}"))
                y += len(xs) + 1
            mosaic = np.vstack(blocks) if blocks else np.zeros((1, 1), np.float32)
            self.set_info("rows: poses theta · columns: input dims")
            self.colorbar.getAxis("left").setLabel("value of x")
        finite = mosaic[np.isfinite(mosaic)]
        lo, hi = (np.percentile(finite, [1, 99]) if finite.size else (0.0, 1.0))
        if hi <= lo:
            hi = lo + 1.0
        self.mosaic = mosaic
        self.image.setImage(mosaic, levels=(float(lo), float(hi)), autoLevels=False)
        self.colorbar.setLevels((float(lo), float(hi)))
        self.plot.getAxis("left").setTicks([ticks, []])
        self.plot.setRange(
            xRange=(0, mosaic.shape[1]), yRange=(0, mosaic.shape[0]), padding=0
        )
        self.plot.setAspectLocked(shape is not None)
        self._changed()

    def clear(self) -> None:
        self.image.clear()
        self.plot.getAxis("left").setTicks(None)
        self.mosaic = None
        self._source = None
        self._cleared()
