"""Vector PDF figures of a panel's scene or of a whole window (pyqtgraph has no PDF
exporter, pyqtgraph#1455): Qt paints them into a QPdfWriter, so lines, points and text
stay vector paths. Written through engine.atomic like every other export.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from PySide6 import QtCore, QtGui, QtWidgets

from engine.atomic import atomic_write

EXPORT_FORMATS = ("png", "svg", "pdf")  # what every plot panel exports to
RESOLUTION_DPI = 96  # one PDF unit per screen pixel at 96 dpi: on-screen proportions


@contextlib.contextmanager
def _export_mode(items, painter: QtGui.QPainter):
    """pyqtgraph's export mode, as its own exporters use it: scatter points are drawn as
    vector symbols instead of cached pixmaps."""
    items = [i for i in items if hasattr(i, "setExportMode")]
    for item in items:
        item.setExportMode(True, {"painter": painter, "antialias": True})
    try:
        yield
    finally:
        for item in items:
            item.setExportMode(False)


def _pdf_writer(path: Path, size: QtCore.QSizeF, title: str) -> QtGui.QPdfWriter:
    writer = QtGui.QPdfWriter(str(path))
    writer.setResolution(RESOLUTION_DPI)
    writer.setTitle(title)
    writer.setCreator("GSH Lab")
    points = QtCore.QSizeF(size.width() * 72 / RESOLUTION_DPI,
                           size.height() * 72 / RESOLUTION_DPI)
    layout = QtGui.QPageLayout(
        QtGui.QPageSize(points, QtGui.QPageSize.Unit.Point, "figure",
                        QtGui.QPageSize.SizeMatchPolicy.ExactMatch),
        QtGui.QPageLayout.Orientation.Portrait, QtCore.QMarginsF(0, 0, 0, 0),
    )
    writer.setPageLayout(layout)
    return writer


def _paint(path: Path, size: QtCore.QSizeF, title: str, paint) -> None:
    writer = _pdf_writer(path, size, title)
    painter = QtGui.QPainter()
    if not painter.begin(writer):
        raise OSError(f"cannot write a PDF to {path}")
    try:
        paint(painter)
    finally:
        painter.end()


def scene_to_pdf(scene: QtWidgets.QGraphicsScene, view: QtWidgets.QWidget,
                 path: str | Path, title: str = "GSH Lab figure") -> Path:
    """The part of `scene` that `view` shows, as a one-page vector PDF."""
    source = QtCore.QRectF(view.rect()) if view is not None else scene.sceneRect()
    size = source.size()
    if size.width() < 1 or size.height() < 1:
        raise OSError(f"nothing to export to {path}: the panel has no size")

    def paint(painter: QtGui.QPainter) -> None:
        painter.setRenderHint(QtGui.QPainter.RenderHint.Antialiasing)
        with _export_mode(scene.items(), painter):
            scene.render(painter, QtCore.QRectF(QtCore.QPointF(0, 0), size), source)

    return atomic_write(path, lambda tmp: _paint(tmp, size, title, paint))


def widget_to_pdf(widget: QtWidgets.QWidget, path: str | Path,
                  title: str = "GSH Lab window") -> Path:
    """A widget and its children (e.g. the main window) as a one-page vector PDF."""
    size = QtCore.QSizeF(widget.size())
    if size.width() < 1 or size.height() < 1:
        raise OSError(f"nothing to export to {path}: the window has no size")

    def paint(painter: QtGui.QPainter) -> None:
        items = [i for view in widget.findChildren(QtWidgets.QGraphicsView)
                 if view.scene() is not None for i in view.scene().items()]
        with _export_mode(items, painter):
            widget.render(painter, QtCore.QPoint(0, 0), QtGui.QRegion(),
                      QtWidgets.QWidget.RenderFlag.DrawChildren
                      | QtWidgets.QWidget.RenderFlag.DrawWindowBackground)

    return atomic_write(path, lambda tmp: _paint(tmp, size, title, paint))
