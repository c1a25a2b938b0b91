"""The Sweeps window's phase diagram: a figure per run against an axis (mean and spread
over seeds, the baselines dashed), or a heatmap over two axes; a click picks a run."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtWidgets

from app.palette import palette
from app.panels.base import PlotPanel


class PhasePanel(PlotPanel):
    """The phase diagram (exports like every plot panel: PNG, SVG, PDF)."""

    name = "phase"
    title = "Phase diagram"
    point_clicked = QtCore.Signal(str)  # run id

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        pal = palette()
        self.plot = self.add_plot()
        for axis in ("left", "bottom"):  # axis values as they are (no "x0.001" rescaling)
            self.plot.getAxis(axis).enableAutoSIPrefix(False)
        self.runs_item = pg.ScatterPlotItem(size=7, pen=pal.no_pen,
                                            brush=pal.class_brushes[0], hoverable=True)
        self.runs_item.sigClicked.connect(self._on_clicked)
        self.mean_item = pg.PlotDataItem(pen=pal.curve_pens["trained"], symbol="o",
                                         symbolSize=5, symbolBrush=pal.class_brushes[0])
        self.spread = pg.ErrorBarItem(pen=pal.curve_pens["trained"], beam=0.0)
        # one dashed line per baseline of a figure (engine/figures.py): untrained, raw
        # input, learned linear
        self.baseline_items = [pg.PlotDataItem(pen=pen) for pen in
                               (pal.dashed_pens["untrained"], pal.dashed_pens["raw"],
                                pal.dashed_pens["learned"])]
        self.selected_item = pg.ScatterPlotItem(size=14, pen=pg.mkPen("k", width=2),
                                                brush=pg.mkBrush(None))
        self.image = pg.ImageItem(axisOrder="row-major")
        self.colorbar = pg.ColorBarItem(colorMap=pal.heat_colormap, interactive=False,
                                        width=12)
        for item in (self.image, self.spread, self.mean_item, *self.baseline_items,
                     self.runs_item, self.selected_item):
            self.plot.addItem(item)
        self.colorbar.setImageItem(self.image, insert_in=self.plot)
        self.colorbar.hide()
        self.set_info("define a sweep and press Start, or open a sweep folder")
        self.set_empty(True, "no sweep yet: define one and press Start, or open a sweep folder")

    def clear(self) -> None:
        for item in (self.runs_item, self.selected_item, self.mean_item, self.image,
                     *self.baseline_items):
            item.clear()
        self.spread.setData(x=np.zeros(0), y=np.zeros(0), height=np.zeros(0))
        self.colorbar.hide()
        self.graphics.viewport().update()

    def _on_clicked(self, _item: Any, points: Sequence[Any], *_: Any) -> None:
        if len(points):
            self.point_clicked.emit(str(points[0].data()))
