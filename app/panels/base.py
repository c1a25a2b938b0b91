"""PlotPanel: a titled pyqtgraph panel that can export itself as PNG or SVG."""

from __future__ import annotations

from pathlib import Path

import pyqtgraph as pg
import pyqtgraph.exporters as pge
from PySide6 import QtCore, QtWidgets

from engine.atomic import atomic_write


class PlotPanel(QtWidgets.QWidget):
    """Header row (title, status text, controls) above a GraphicsLayoutWidget.

    Subclasses add plots to `self.graphics` and implement set_snapshot(snapshot).
    """

    name = "panel"
    title = "Panel"
    export_requested = QtCore.Signal(str, str)  # panel name, "png" | "svg"

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName(self.name)
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.setSpacing(2)
        self.header = QtWidgets.QHBoxLayout()
        self.header.setContentsMargins(4, 0, 4, 0)
        self.info = QtWidgets.QLabel("")
        self.info.setObjectName("panelInfo")
        # Changing text must never re-layout the window (a full repaint of every panel).
        self.info.setSizePolicy(
            QtWidgets.QSizePolicy.Policy.Ignored, QtWidgets.QSizePolicy.Policy.Preferred
        )
        self.header.addWidget(self.info, 1)
        layout.addLayout(self.header)
        self.graphics = pg.GraphicsLayoutWidget()
        self.graphics.ci.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.graphics, 1)

    def add_plot(self, row: int = 0, col: int = 0, **kwargs) -> pg.PlotItem:
        """A plot whose right-click menu also offers this panel's PNG/SVG export."""
        plot = self.graphics.addPlot(row=row, col=col, **kwargs)
        plot.setMenuEnabled(True)
        menu = plot.vb.menu
        menu.addSeparator()
        for fmt in ("png", "svg"):
            action = menu.addAction(f"Export panel as {fmt.upper()}…")
            action.triggered.connect(
                lambda _=False, f=fmt: self.export_requested.emit(self.name, f)
            )
        return plot

    def set_info(self, text: str) -> None:
        self.info.setText(text)

    def export(self, path: str | Path) -> Path:
        """Write the panel's plots to `path` (.png or .svg); the exporter always gets a name."""
        path = Path(path)
        scene = self.graphics.scene()
        if path.suffix.lower() == ".svg":
            exporter = pge.SVGExporter(scene)
        else:
            exporter = pge.ImageExporter(scene)
            # Render at least at on-screen size, twice that when small, for crisp figures.
            w = max(int(self.graphics.width()), 400)
            exporter.parameters()["width"] = w * 2 if w < 1000 else w
        # pyqtgraph ignores a failed save: write a temporary file, check it, rename.
        return atomic_write(path, lambda tmp: exporter.export(str(tmp)))
