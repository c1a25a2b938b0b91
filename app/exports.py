"""Vector PDF figures of a panel's scene or of a whole window (pyqtgraph has no PDF
exporter, pyqtgraph#1455): Qt paints them into a QPdfWriter, so lines, points and text
stay vector paths. Written through engine.atomic like every other export.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

from engine.atomic import atomic_write

EXPORT_FORMATS = ("png", "svg", "pdf")  # what every plot panel exports to
RESOLUTION_DPI = 96  # one PDF unit per screen pixel at 96 dpi: on-screen proportions


VECTOR_IMAGE_PIXELS = 10_000  # images up to this size (heatmaps) are exported as cells


@contextlib.contextmanager
def _export_mode(items: list[Any], painter: QtGui.QPainter  # pyqtgraph items
                 ) -> Iterator[None]:
    """pyqtgraph's export mode, as its own exporters use it: scatter points are drawn as
    vector symbols instead of cached pixmaps, and small images (heatmaps) as one filled
    rectangle per cell, so a PDF viewer never blurs them."""
    images = [i for i in items if isinstance(i, pg.ImageItem) and _small_image(i)]
    items = [i for i in items if hasattr(i, "setExportMode")]
    for item in items:
        item.setExportMode(True, {"painter": painter, "antialias": True})
    for image in images:
        image.paint = lambda p, *_a, item=image: _paint_cells(item, p)
    try:
        yield
    finally:
        for item in items:
            item.setExportMode(False)
        for image in images:
            del image.paint  # the class's own paint again


def _small_image(item: pg.ImageItem) -> bool:
    return (item.image is not None and item.isVisible()
            and item.image.shape[0] * item.image.shape[1] <= VECTOR_IMAGE_PIXELS)


def _paint_cells(item: pg.ImageItem, painter: QtGui.QPainter) -> None:
    """An image item as vector cells, in the colours it shows on screen."""
    if item.qimage is None:
        item.render()
    qimage = item.qimage
    if qimage is None:
        return
    painter.save()
    painter.setPen(QtCore.Qt.PenStyle.NoPen)
    painter.setRenderHint(QtGui.QPainter.RenderHint.Antialiasing, False)
    for y in range(qimage.height()):
        for x in range(qimage.width()):
            colour = qimage.pixelColor(x, y)
            if colour.alpha() == 0:
                continue
            painter.setBrush(colour)
            # a hair wider than the cell: no seams between cells in a viewer
            painter.drawRect(QtCore.QRectF(x, y, 1.02, 1.02))
    painter.restore()


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


def _paint(path: Path, size: QtCore.QSizeF, title: str,
           paint: Callable[[QtGui.QPainter], None]) -> None:
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
    """A widget (e.g. the main window) as a one-page PDF of what the user sees: the widget
    as it is shown (a scrolled-off column, a dock behind another's tab: not drawn), with
    every wholly visible plot painted over it as vector paths."""
    size = QtCore.QSizeF(widget.size())
    if size.width() < 1 or size.height() < 1:
        raise OSError(f"nothing to export to {path}: the window has no size")
    picture = widget.grab()
    views = [v for v in widget.findChildren(QtWidgets.QGraphicsView)
             if v.scene() is not None and v.isVisible()]

    def paint(painter: QtGui.QPainter) -> None:
        painter.drawPixmap(QtCore.QRectF(QtCore.QPointF(0, 0), size), picture,
                           QtCore.QRectF(picture.rect()))
        painter.setRenderHint(QtGui.QPainter.RenderHint.Antialiasing)
        for view in views:
            port = view.viewport()
            target = _shown_rect(port, widget)
            if target.size() != port.size():
                # partly scrolled off (or hidden): its picture in the window stays, as
                # shown (items drawn from cached pictures can ignore a clip in a PDF)
                continue
            shown = target.translated(-port.mapTo(widget, QtCore.QPoint(0, 0)))
            source = view.mapToScene(shown).boundingRect()
            into = QtCore.QRectF(target)
            painter.save()
            painter.setClipRect(into)
            painter.fillRect(into, view.backgroundBrush().color()
                             if view.backgroundBrush().style() != QtCore.Qt.BrushStyle.NoBrush
                             else QtGui.QColor("white"))
            with _export_mode(view.scene().items(), painter):
                view.scene().render(painter, into, source)
            painter.restore()

    return atomic_write(path, lambda tmp: _paint(tmp, size, title, paint))


def _shown_rect(child: QtWidgets.QWidget, top: QtWidgets.QWidget) -> QtCore.QRect:
    """The part of `child` that `top` shows, in `top`'s coordinates: clipped by every
    widget between them (a scroll area's viewport, a dock)."""
    rect = QtCore.QRect(child.mapTo(top, QtCore.QPoint(0, 0)), child.size())
    parent = child.parentWidget()
    while parent is not None and parent is not top:
        rect &= QtCore.QRect(parent.mapTo(top, QtCore.QPoint(0, 0)), parent.size())
        parent = parent.parentWidget()
    return rect & top.rect()


def save_grab(widget: QtWidgets.QWidget, path: str | Path) -> Path:
    """A widget's pixels as an image file (format by suffix, PNG without one), atomic."""

    def write(tmp: Path) -> None:
        if not widget.grab().save(str(tmp), Path(path).suffix.lstrip(".").upper() or "PNG"):
            raise OSError(f"cannot write {path}: the image could not be encoded")

    return atomic_write(path, write)


def export_or_warn(window: QtWidgets.QMainWindow, title: str, write: Callable[..., Path],
                   *args: Any) -> None:
    """An export asked for from a menu: `write(*args)`, then "Wrote …" in the window's
    status bar, or a message box titled `title` saying why not."""
    try:
        out = write(*args)
    except (OSError, ValueError) as exc:
        QtWidgets.QMessageBox.warning(window, title, str(exc))
        return
    window.statusBar().showMessage(f"Wrote {out}", 5000)
