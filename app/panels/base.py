"""PlotPanel: a titled pyqtgraph panel that can export itself as PNG or SVG, and the plot
items every panel shares (a scatter that clears cleanly, legends outside the plot area).

Screen truth: pyqtgraph repaints only an item's current bounds, so whatever an item drew
outside them (the points of a data set that shrank or was cleared, old axis ticks) would
stay on the display while a fresh render (exports, `grab()`) looks clean. Every panel
therefore repaints its whole view whenever its data changes (`_changed`).
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import pyqtgraph as pg
import pyqtgraph.exporters as pge
from PySide6 import QtCore, QtGui, QtWidgets

from app.exports import EXPORT_FORMATS, scene_to_pdf
from app.palette import palette
from app.selection import Highlight
from app.view import View
from engine.atomic import atomic_write

EMPTY_TEXT = "no run yet: press Start"
BUILDING_TEXT = "building the experiment…"


class ViewPanel(Protocol):
    """The panel protocol: the View on screen reaches a panel only through set_view (it
    redraws what differs from the view it showed last); clear() empties it. The plot
    panels (PanelSpec.view) and the timeline."""

    @property
    def name(self) -> str: ...

    def set_view(self, view: View) -> None: ...

    def clear(self) -> None: ...


@runtime_checkable
class MarksSelection(Protocol):
    """A panel that marks the selection (PanelSpec.highlight): None clears the marks."""

    def set_highlight(self, highlight: Highlight | None) -> None: ...


class Scatter(pg.ScatterPlotItem):
    """ScatterPlotItem whose clear() tells the scene its bounds are about to change.

    pyqtgraph's clear() (also the first half of every setData) drops the points without
    prepareGeometryChange(), so Qt never repaints where they were: after Reset or a new
    run the old points stayed on screen until the window was resized.
    """

    def clear(self) -> None:
        self.prepareGeometryChange()
        super().clear()
        self.informViewBoundsChanged()


SOLID, DASHED, DOTTED, DOT, TRIANGLE = "━━", "╺╸╺╸", "┅┅", "●", "▼"


# A key's line: (glyph, colour, words) entries; the colour a QPen, "#rrggbb" or (r, g, b)
KeyLine = Sequence[tuple[str, Any, str]]

INFO_MIN_WIDTH = 260  # narrower beside a panel's controls, the header goes above them
KEY_MIN_WIDTH = 110  # a key narrower than its text wraps instead of widening the panel


class Key(pg.LabelItem):
    """A legend in its own layout cell (below a plot), so it never covers data, on
    screen or in exports: lines of (glyph, colour, words), e.g. (SOLID, pen, "trained").

    In a narrow panel the key wraps its lines (LabelItem would instead demand its whole
    text width and push the plots beyond the panel's edge)."""

    def __init__(self, lines: Sequence[KeyLine] = (), size: str = "7pt") -> None:
        super().__init__("", size=size, color=(60, 60, 60), justify="center")
        self.set_lines(lines)

    def resizeEvent(self, ev: QtWidgets.QGraphicsSceneResizeEvent) -> None:
        width = self.width()
        self.item.setTextWidth(width if width > 0 else -1)
        super().resizeEvent(ev)
        # Wrapped to this width the key may need more (or fewer) lines: ask the layout for
        # that height, or its last lines are drawn over the plot below.
        height = self.itemRect().height()
        if abs(height - self.minimumHeight()) > 0.5:
            self.setMinimumHeight(height)
            hint = QtCore.Qt.SizeHint
            for which in (hint.MinimumSize, hint.PreferredSize):
                self._sizeHint[which] = (self._sizeHint[which][0], height)
            self.updateGeometry()

    def updateMin(self) -> None:
        wrapped = self.item.textWidth()
        self.item.setTextWidth(-1)
        natural = self.item.document().size().width()
        self.item.setTextWidth(wrapped)
        height = self.itemRect().height()
        least = min(natural, KEY_MIN_WIDTH)
        self.setMinimumWidth(least)
        self.setMinimumHeight(height)
        hint = QtCore.Qt.SizeHint
        self._sizeHint = {hint.MinimumSize: (least, height), hint.PreferredSize: (natural, height),
                          hint.MaximumSize: (-1, -1), hint.MinimumDescent: (0, 0)}
        self.updateGeometry()

    def set_lines(self, lines: Sequence[KeyLine]) -> None:
        def entry(glyph: str, colour: Any, words: str) -> str:
            if hasattr(colour, "color"):  # a QPen
                colour = colour.color().name()
            elif not isinstance(colour, str):
                colour = "#{:02x}{:02x}{:02x}".format(*colour[:3])
            if not glyph:  # words alone: no mark, no space before them
                return html.escape(words)
            return (f'<span style="color:{colour}">{glyph}</span>&nbsp;'
                    f"{html.escape(words)}")

        self.setText("<br>".join(
            "&nbsp;&nbsp; ".join(entry(*e) for e in line) for line in lines
        ))


class HeaderLabel(QtWidgets.QLabel):
    """A panel header of at most LINES lines: a line too long for the dock wraps at a
    word onto the next, and only text beyond the last line ends in "…", so a figure is
    never shown cut short ("max 0.1" for 0.18); text() and the tooltip keep the whole
    text. Its height is fixed (LINES lines), so a new text never re-lays the window."""

    LINES = 2

    def shown_lines(self) -> list[str]:
        """The lines as painted: whole words, the last one ended with "…" if cut."""
        metrics, width = self.fontMetrics(), max(self.contentsRect().width(), 1)
        lines: list[str] = []
        rest = self.text().split()
        while rest and len(lines) < self.LINES:
            line = rest.pop(0)
            while rest and metrics.horizontalAdvance(f"{line} {rest[0]}") <= width:
                line = f"{line} {rest.pop(0)}"
            if len(lines) == self.LINES - 1 and rest:
                line = " ".join([line, *rest])
                rest = []
            if metrics.horizontalAdvance(line) > width:
                line = metrics.elidedText(line, QtCore.Qt.TextElideMode.ElideRight, width)
            lines.append(line)
        return lines

    def shown_text(self) -> str:
        return " ".join(self.shown_lines())

    @property
    def cut(self) -> bool:
        """Part of the text is not on screen (it ends in "…")."""
        return self.shown_text() != " ".join(self.text().split())

    def paintEvent(self, event: QtGui.QPaintEvent) -> None:
        painter = QtGui.QPainter(self)
        try:
            rect = self.contentsRect()
            lines = self.shown_lines()
            h = self.fontMetrics().lineSpacing()
            top = rect.top() + max((rect.height() - h * len(lines)) // 2, 0)
            for i, line in enumerate(lines):
                self.style().drawItemText(
                    painter, QtCore.QRect(rect.left(), top + i * h, rect.width(), h),
                    int(self.alignment() | QtCore.Qt.AlignmentFlag.AlignVCenter),
                    self.palette(), self.isEnabled(), line,
                    QtGui.QPalette.ColorRole.WindowText)
        finally:
            painter.end()


def title_of(panel: QtWidgets.QWidget) -> str:
    """A panel's title (its `title`, as every panel of app.panel_list has): its dock's,
    its menu entries' and its exports'."""
    return str(getattr(panel, "title", panel.objectName()))


def add_key(graphics: pg.GraphicsLayoutWidget, row: int, col: int,
            lines: Sequence[KeyLine] = (),
            size: str = "7pt") -> Key:
    key = Key(lines, size)
    graphics.addItem(key, row=row, col=col)
    return key


class PlotGraphics(pg.GraphicsLayoutWidget):
    """A panel's plots, which a round of panel updates (app.window) can render ahead.

    render_ahead() paints the plots as they are now into a pixmap, in an event-loop turn
    of its own; the next paint of the view (the round's flip, which shows every panel's
    new snapshot in one go) copies that pixmap instead of painting every item again, so
    no single turn pays for all panels' drawing. The pixmap is used once: any later paint
    (hover, zoom, resize, a projection frame) draws the scene as usual, and drop_ahead()
    discards one the flip did not use. Only the part of the view on screen is rendered
    (none of a tab behind another; the rows in sight of a panel that scrolls), and a
    paint beyond that part draws the scene as usual.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # the picture rendered ahead and the part of the view it holds
        self._ahead: tuple[QtGui.QPixmap, QtCore.QRect] | None = None
        self.flips = 0  # paints that copied a picture rendered ahead (tests read it)
        self.covered = False  # the panel's empty note lies over the whole view

    def _in_sight(self) -> QtCore.QRect:
        """The part of the view on screen (empty for a view behind a tab or a note)."""
        if self.covered:
            return QtCore.QRect()
        return self.viewport().visibleRegion().boundingRect()  # of a scrolled panel: its rows

    def prepare_ahead(self) -> None:
        """What render_ahead would compute before drawing, in a turn of its own: the
        layouts and pyqtgraph's deferred work, every item's bounds and each changed
        axis's picture (Curves: about half of its render, 10 of 19 ms CPU). The same
        code as a paint's, run earlier, so the picture is the same."""
        if self._in_sight().isEmpty():
            return
        QtCore.QCoreApplication.sendPostedEvents(None, QtCore.QEvent.Type.LayoutRequest)
        scene = self.scene()
        scene.prepareForPaint()
        for item in scene.items():
            if not item.isVisible():
                continue
            item.boundingRect()
            if isinstance(item, pg.AxisItem) and item.picture is None:
                scratch = QtGui.QPicture()
                painter = QtGui.QPainter(scratch)
                try:
                    item.paint(painter, None, None)  # keeps its new picture
                finally:
                    painter.end()

    def render_ahead(self) -> None:
        """Render the part of the plots on screen, as they are now, into the picture
        the next paint copies (nothing for a view that is not on screen)."""
        self._ahead = None
        viewport = self.viewport()
        shown = self._in_sight()
        if shown.isEmpty():
            return
        # Layouts the update changed (a key's new lines) settle first, then pyqtgraph's
        # deferred work (auto-range, axes) runs as before a paint.
        QtCore.QCoreApplication.sendPostedEvents(None, QtCore.QEvent.Type.LayoutRequest)
        self.scene().prepareForPaint()
        ratio = viewport.devicePixelRatioF()
        ahead = QtGui.QPixmap(viewport.size() * ratio)
        ahead.setDevicePixelRatio(ratio)
        ahead.fill(self.backgroundBrush().color())
        # The viewport's own paint, redirected into the picture: QGraphicsView then
        # records where it drew each item, as it does on screen. (QGraphicsView.render
        # did not: items it drew counted as not on screen, so after a flip a zoom or a
        # hover changed the plot without repainting it.)
        viewport.render(ahead, shown.topLeft(), QtGui.QRegion(shown))
        self._ahead = (ahead, shown)

    def drop_ahead(self) -> None:
        self._ahead = None

    def paintEvent(self, ev: QtGui.QPaintEvent) -> None:
        if self.covered:  # nothing of it shows: Start clears every panel at once
            return
        rendered, self._ahead = self._ahead, None
        if (rendered is None
                or rendered[0].deviceIndependentSize().toSize() != self.viewport().size()
                or not QtGui.QRegion(rendered[1]).contains(ev.region().boundingRect())):
            super().paintEvent(ev)
            return
        ahead = rendered[0]
        painter = QtGui.QPainter(self.viewport())
        try:
            painter.setClipRegion(ev.region())
            painter.drawPixmap(0, 0, ahead)
        finally:
            painter.end()
        self.flips += 1


class PlotPanel(QtWidgets.QWidget):
    """Header row (title, status text, controls) above a GraphicsLayoutWidget.

    Subclasses add plots to `self.graphics`, implement `set_view(view)` (app.view.View: the
    one way data reaches a panel) and `clear()`, and call `_changed()` after every change
    of data. Until the first data arrives (and
    after clear()) the plots are replaced by a one-line "no run yet" note, so an empty
    panel never shows meaningless axes.
    """

    name = "panel"
    title = "Panel"
    export_requested = QtCore.Signal(str, str)  # panel name, "png" | "svg"

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName(self.name)
        self.setMinimumSize(180, 140)
        layout = self.column = QtWidgets.QVBoxLayout(self)  # header, plots or a note
        layout.setContentsMargins(2, 2, 2, 2)
        layout.setSpacing(2)
        self.header = QtWidgets.QHBoxLayout()  # the panel's controls (a subclass adds them)
        self.header.setContentsMargins(4, 0, 4, 0)
        self.info = HeaderLabel("")
        self.info.setObjectName("panelInfo")
        # Changing text must never re-layout the window (a full repaint of every panel):
        # a fixed height (two lines) and an ignored width; the full text is the tooltip.
        self.info.setSizePolicy(
            QtWidgets.QSizePolicy.Policy.Ignored, QtWidgets.QSizePolicy.Policy.Fixed
        )
        self.info.setFixedHeight(
            self.info.fontMetrics().lineSpacing() * HeaderLabel.LINES + 4)
        self.info.setContentsMargins(4, 0, 0, 0)
        # The header line beside the controls, or above them when the dock is too narrow
        # to leave it INFO_MIN_WIDTH (decided on resize, never on a new text).
        self._top = QtWidgets.QGridLayout()
        self._top.setContentsMargins(0, 0, 0, 0)
        self._top.setSpacing(2)
        self._top.setColumnStretch(0, 1)
        self._top.addWidget(self.info, 0, 0)
        self._top.addLayout(self.header, 0, 1)
        self._info_above = False
        layout.addLayout(self._top)
        self.graphics = PlotGraphics()
        self.graphics.ci.setContentsMargins(4, 4, 4, 4)
        self.graphics.setMinimumSize(120, 80)
        # The note lies over the plots (one stack, both laid out), so the plots keep
        # their size while the panel is empty: a run's first snapshot does not lay every
        # panel out again (tens of ms in one event-loop turn).
        host = QtWidgets.QWidget()
        self._stack = QtWidgets.QStackedLayout(host)
        self._stack.setStackingMode(QtWidgets.QStackedLayout.StackingMode.StackAll)
        self._stack.addWidget(self.graphics)
        layout.addWidget(host, 1)
        self.empty_note = QtWidgets.QLabel(EMPTY_TEXT)
        self.empty_note.setObjectName("emptyNote")
        self.empty_note.setAlignment(QtCore.Qt.AlignmentFlag.AlignCenter)
        self.empty_note.setWordWrap(True)
        self.empty_note.setMargin(8)
        self.empty_note.setStyleSheet("color: #888; background: white;")
        self.empty_note.setAutoFillBackground(True)  # nothing of the plots shows through
        self.empty_note.setSizePolicy(
            QtWidgets.QSizePolicy.Policy.Ignored, QtWidgets.QSizePolicy.Policy.Ignored
        )
        self._stack.addWidget(self.empty_note)
        self.set_empty(True)

    def resizeEvent(self, event: QtGui.QResizeEvent) -> None:
        super().resizeEvent(event)
        self._place_info()

    def _place_info(self) -> None:
        controls = self.header.sizeHint().width() if self.header.count() else 0
        above = controls > 0 and self.width() - controls < INFO_MIN_WIDTH
        if above == self._info_above:
            return
        self._info_above = above
        self._top.removeWidget(self.info)
        self._top.removeItem(self.header)
        if above:
            self._top.addWidget(self.info, 0, 0, 1, 2)
            self._top.addLayout(self.header, 1, 1)
        else:
            self._top.addWidget(self.info, 0, 0)
            self._top.addLayout(self.header, 0, 1)

    def add_plot(self, row: int = 0, col: int = 0, **kwargs: Any) -> pg.PlotItem:
        """A plot whose right-click menu also offers this panel's PNG/SVG export."""
        plot = self.graphics.addPlot(row=row, col=col, **kwargs)
        plot.setMenuEnabled(True)
        menu = plot.vb.menu
        menu.addSeparator()
        for fmt in EXPORT_FORMATS:
            action = menu.addAction(f"Export panel as {fmt.upper()}…")
            action.triggered.connect(
                lambda _=False, f=fmt: self.export_requested.emit(self.name, f)
            )
        return plot

    def set_view(self, view: View) -> None:
        """Show `view` (the View on screen), redrawing what differs from the last one."""
        raise NotImplementedError(f"{type(self).__name__} shows no View")

    def clear(self) -> None:
        """Empty the panel (no run): no data, no header text."""
        raise NotImplementedError

    def set_info(self, text: str, alarm: bool = False) -> None:
        """The header line; `alarm` paints it red (a collapsed or diverged run)."""
        self.info.setText(text)
        self.info.setToolTip(text)
        self.info.setStyleSheet(f"color: {palette().alarm_hex};" if alarm else "")

    @property
    def is_empty(self) -> bool:
        return self.empty_note.isVisibleTo(self)

    def scroll_below(self, height: int) -> None:
        """Below `height` pixels of plots (and keys) the panel scrolls instead of squeezing
        them flat (a 1366x768 window)."""
        self.scroller = QtWidgets.QScrollArea()
        self.scroller.setWidgetResizable(True)
        self.scroller.setFrameShape(QtWidgets.QFrame.Shape.NoFrame)
        self.scroller.setHorizontalScrollBarPolicy(QtCore.Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self._stack.removeWidget(self.graphics)
        self.scroller.setWidget(self.graphics)
        self._stack.insertWidget(0, self.scroller)
        self.graphics.setMinimumHeight(height)
        self.set_empty(self.is_empty, self.empty_note.text())

    def set_empty(self, empty: bool, text: str = EMPTY_TEXT) -> None:
        """Show the plots (data arrived) or a note (`text`) over them, instead of
        empty axes."""
        self.empty_note.setText(text)
        self.empty_note.setVisible(empty)
        self.graphics.covered = empty
        if empty:
            self.empty_note.raise_()
        else:
            self.graphics.viewport().update()

    def _changed(self) -> None:
        """After any change of data: show the plots and repaint all of them (see module)."""
        if self.is_empty:
            self.set_empty(False)
        self.graphics.viewport().update()

    def _cleared(self) -> None:
        """After clear(): no header text from the old run, no plots, nothing stale."""
        self.set_info("")
        self.set_empty(True)
        self.graphics.viewport().update()

    def export(self, path: str | Path, title: str = "GSH Lab figure") -> Path:
        """Write the panel's plots to `path`: .png, .svg, or a vector .pdf titled `title`;
        the exporter always gets a name."""
        path = Path(path)
        scene = self.graphics.scene()
        if path.suffix.lower() == ".pdf":
            return scene_to_pdf(scene, self.graphics, path, title=title)
        if path.suffix.lower() == ".svg":
            exporter = pge.SVGExporter(scene)
        else:
            exporter = pge.ImageExporter(scene)
            # Render at least at on-screen size, twice that when small, for crisp figures.
            w = max(int(self.graphics.width()), 400)
            exporter.parameters()["width"] = w * 2 if w < 1000 else w
        # pyqtgraph ignores a failed save: write a temporary file, check it, rename.
        return atomic_write(path, lambda tmp: exporter.export(str(tmp)))
