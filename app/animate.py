"""Movies of a recorded run: frames drawn with Qt, encoded to GIF or MP4.

engine/animation.py supplies the frames as data (interpolated, aligned projections and
the figures of the nearest snapshot). Here a FrameRenderer draws each one on the GUI
thread (offscreen works): the representation panel, or the whole window, below a
caption band with the step and the headline figures; engine/encoder.py's MovieEncoder
encodes them in a worker thread. AnimationExport runs one export from the app without
blocking it; `main.py animate` is app/cli.py's.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol

import numpy as np
from PySide6 import QtCore, QtGui, QtWidgets

from app import file_dialogs
from app.panels.projection import ProjectionPanel
from app.panels.timeline import TimelinePanel
from app.qtapp import configure_pyqtgraph, parse_size
from app.store import Frame, SnapshotStore
from app.view import View
from engine.animation import Keyframes, Movie, MovieFrame, check_timing
from engine.config import ConfigError
from engine.encoder import MovieEncoder
from engine.record import RunReader

PANELS = ("representation", "window")
FORMATS = (".mp4", ".gif")
MOVIE_SIZES = ((160, 120), (3840, 2160))  # a movie's frames, WxH from .. to
GIF_MAX_FPS = 50  # GIF delays are whole 1/100 s, and viewers slow down shorter ones
DEFAULT_SIZE = "1280x720"


@dataclass(frozen=True)
class MovieOptions:
    out: Path
    panel: str = "representation"
    fps: int = 30
    seconds: float = 10.0
    size: tuple[int, int] = (1280, 720)

    @property
    def n_frames(self) -> int:
        return check_timing(self.fps, self.seconds)


class MovieWindow(Protocol):
    """What FrameRenderer uses of the main window (app.window.MainWindow, a QWidget)."""

    @property
    def last_error(self) -> str | None: ...

    @property
    def representation(self) -> ProjectionPanel: ...

    @property
    def timeline(self) -> TimelinePanel: ...

    @property
    def store(self) -> SnapshotStore: ...

    @property
    def shown(self) -> View | None: ...

    def open_run(self, path: str | Path) -> bool: ...

    def reset_layout(self) -> None: ...

    def refresh(self) -> None: ...

    def shutdown(self) -> None: ...


def movie_options(out: str | Path, panel: str = "representation", fps: int = 30,
                  seconds: float = 10.0, size: str | tuple[int, int] = DEFAULT_SIZE
                  ) -> MovieOptions:
    """Checked options; ConfigError names the flag and its allowed values."""
    out = Path(out)
    suffix = out.suffix.lower()
    if suffix not in FORMATS:
        raise ConfigError("--out", f"must end in .mp4 or .gif, got {out.name!r}")
    if panel not in PANELS:
        raise ConfigError("--panel", f"must be one of {', '.join(PANELS)}, got {panel!r}")
    check_timing(fps, seconds)
    if suffix == ".gif" and fps > GIF_MAX_FPS:
        raise ConfigError("--fps", f"must be in [1, {GIF_MAX_FPS}] for a GIF (its frame "
                          f"delays are whole 1/100 s), got {fps}")
    w, h = parse_size(size if isinstance(size, str) else f"{size[0]}x{size[1]}", MOVIE_SIZES)
    if suffix == ".mp4" and (w % 2 or h % 2):
        raise ConfigError("--size", f"must have an even width and height for MP4 (H.264), "
                          f"got {w}x{h}")
    return MovieOptions(out, panel, fps, seconds, (w, h))


def _caption_lines(keys: Keyframes, frame: MovieFrame, what: str) -> tuple[str, str]:
    f = frame.figures
    title = f"{what} · step {frame.step:,} of {keys.total_steps:,}"
    figures = (f"one-shot ({keys.ways}-way, unseen classes): trained {f['oneshot_trained']:.2f}"
               f" · raw input {keys.oneshot_raw:.2f}     {keys.bits}-bit bucket collisions, "
               f"unseen classes: same class {f['unseen_same_class_collision']:.3f} · "
               f"different {f['unseen_different_class_collision']:.3f}")
    return title, figures


class FrameRenderer:
    """Draws movie frames as RGB arrays: a caption band (step, headline figures, a
    progress line through the recorded timeline) above the representation panel or the
    whole window. Qt objects: create, use and close it on the GUI thread."""

    def __init__(self, reader: RunReader, keys: Keyframes, panel: str, size: tuple[int, int],
                 window_factory: Callable[..., MovieWindow] | None = None):
        """`window_factory(config, size, settings=, hidden=, run=, projection_factory=,
        runs_dir=)` makes the main window for panel "window" (app.window.MainWindow.offscreen:
        the one offscreen window of figures and movies)."""
        configure_pyqtgraph()
        self.keys = keys
        self._reader = reader
        self.w, self.h = size
        self.band = max(36, min(96, round(self.h * 0.085)))
        self._window: MovieWindow | None = None
        self._panel: ProjectionPanel | None = None
        self._settings_dir: tempfile.TemporaryDirectory | None = None
        self._shown_step: int | None = None
        self.widget: QtWidgets.QWidget | None = None  # what a frame draws
        if panel == "representation":
            self._panel = ProjectionPanel("embedding", "representation",
                                          "Representation projection")
            # Only the plot (with its legend) goes into the movie: take it out of the
            # panel's header layout and give it the frame's exact size.
            widget: QtWidgets.QWidget = self._panel.graphics
            self.widget = widget
            self._panel.column.removeWidget(widget)
            widget.setParent(None)
            self._rep = self._panel
            widget.setAttribute(QtCore.Qt.WidgetAttribute.WA_DontShowOnScreen)
            widget.resize(self.w, self.h - self.band)
            widget.show()
            self._rep.plot.disableAutoRange()
            # lay the plot out now, without running the app's other events
            self._rep.graphics.ci.layout.activate()
        else:
            if window_factory is None:
                raise ValueError('panel "window" needs a window_factory')
            self._settings_dir = tempfile.TemporaryDirectory(prefix="gsh-animate-")
            settings = QtCore.QSettings(str(Path(self._settings_dir.name) / "layout.ini"),
                                        QtCore.QSettings.Format.IniFormat)
            # No projection process: every frame's coordinates come from the keyframes.
            try:
                window = self._window = window_factory(
                    reader.config, (self.w, self.h - self.band), settings=settings,
                    hidden=True, run=reader.path, projection_factory=lambda **_: None,
                    runs_dir=reader.path.parent)
            except OSError:
                self.close()
                raise
            if not isinstance(window, QtWidgets.QWidget):
                raise TypeError("window_factory must make a QWidget")
            widget = self.widget = window
            self._rep = window.representation
            window.store.set_frame(Frame("raw", None, keys.raw, keys.raw_method))
            window.refresh()
            self._rep.plot.disableAutoRange()
            QtWidgets.QApplication.processEvents()  # the docks settle into their sizes
        # What the movie's frames are drawn on (the window's view at each keyframe)
        first = keys.keyframes[0].step
        self._base = View(config=reader.config, run=reader.run_info,
                          snapshot=reader.snapshot(first), rows=reader.rows,
                          steps=reader.steps, index=reader.steps.index(first))
        self._image = QtGui.QImage(self.w, self.h, QtGui.QImage.Format.Format_RGB888)
        font = QtGui.QFont(QtWidgets.QApplication.font())
        font.setPixelSize(max(10, round(self.band * 0.30)))
        self._title_font = QtGui.QFont(font)
        self._title_font.setBold(True)
        font.setPixelSize(max(9, round(self.band * 0.24)))
        self._font = font
        self._what = ("Representation" if panel == "representation" else "GSH Lab") + (
            f" ({keys.keyframes[0].method.upper()})")


    def render(self, frame: MovieFrame) -> np.ndarray:
        """The frame as an (h, w, 3) uint8 array."""
        widget = self.widget
        if widget is None:
            raise RuntimeError("the frame renderer is closed")
        if frame.step != self._shown_step:
            if self._window is not None:
                index = self._window.store.index_of(frame.step)
                if index is not None:
                    self._window.timeline.set_index(index)
                    self._window.refresh()
                    self._base = self._window.shown or self._base
            elif frame.step in self._reader.steps:
                # The panel is drawn at the frame's snapshot: on the first one's, its title
                # read "UMAP of step 300 · 300 steps ahead (catching up)".
                self._base = replace(self._base, snapshot=self._reader.snapshot(frame.step),
                                     index=self._reader.steps.index(frame.step))
            self._shown_step = frame.step
        self._rep.set_view(replace(self._base, projection_note="",
                               frame=Frame("embedding", frame.step, frame.coords, frame.method)))
        x0, x1, y0, y1 = frame.view
        self._rep.plot.setRange(xRange=(x0, x1), yRange=(y0, y1), padding=0)
        img = self._image
        img.fill(QtGui.QColor("white"))
        painter = QtGui.QPainter(img)
        try:
            painter.setRenderHint(QtGui.QPainter.RenderHint.Antialiasing)
            painter.setRenderHint(QtGui.QPainter.RenderHint.TextAntialiasing)
            QtWidgets.QWidget.render(widget, painter, QtCore.QPoint(0, self.band))
            self._draw_caption(painter, frame)
        finally:
            painter.end()
        bits = img.constBits()
        rows = np.frombuffer(bits, dtype=np.uint8).reshape(self.h, img.bytesPerLine())
        return rows[:, : self.w * 3].reshape(self.h, self.w, 3).copy()

    def _draw_caption(self, painter: QtGui.QPainter, frame: MovieFrame) -> None:
        title, figures = _caption_lines(self.keys, frame, self._what)
        pad = max(6, self.band // 8)
        line = max(3, self.band // 14)
        text_h = self.band - line - pad
        painter.setPen(QtGui.QColor(20, 20, 20))
        painter.setFont(self._title_font)
        flags = QtCore.Qt.AlignmentFlag.AlignLeft | QtCore.Qt.AlignmentFlag.AlignVCenter
        painter.drawText(QtCore.QRect(pad, 0, self.w - 2 * pad, text_h // 2 + pad // 2),
                         flags, title)
        font = QtGui.QFont(self._font)  # smaller rather than cut off in a narrow movie
        while (QtGui.QFontMetrics(font).horizontalAdvance(figures) > self.w - 2 * pad
               and font.pixelSize() > 7):
            font.setPixelSize(font.pixelSize() - 1)
        painter.setFont(font)
        painter.setPen(QtGui.QColor(60, 60, 60))
        painter.drawText(QtCore.QRect(pad, text_h // 2, self.w - 2 * pad, text_h // 2 + pad),
                         flags, figures)
        # progress through the recorded timeline
        y = self.band - line
        painter.fillRect(0, y, self.w, line, QtGui.QColor(225, 225, 225))
        painter.fillRect(0, y, round(self.w * frame.position), line, QtGui.QColor(40, 110, 200))

    def close(self) -> None:
        widget, self.widget = self.widget, None  # the window, or the panel's plot
        if self._window is not None:
            self._window.shutdown()
            self._window = None
        if widget is not None:
            widget.close()
            widget.deleteLater()
        if self._panel is not None:
            self._panel.deleteLater()
            self._panel = None
        if self._settings_dir is not None:
            self._settings_dir.cleanup()
            self._settings_dir = None


# ---------------------------------------------------------------------------------------
# In the app: File > Export animation…


class AnimationExport(QtCore.QObject):
    """One movie export from the app, without blocking the event loop: the keyframes are
    projected in a child process (UMAP's compiling and fitting never hold this GIL), then a
    timer draws a few frames per event-loop turn (Qt painting stays on the GUI thread) and
    the encoder thread encodes them. A QProgressDialog shows progress; Cancel (or cancel())
    stops everything and leaves no file. `finished` carries the path, or "" and why not."""

    finished = QtCore.Signal(str, str)  # path ("" when none), message
    TICK_MS = 15
    BUDGET_S = 0.03  # drawing per event-loop turn

    def __init__(self, run_dir: str | Path, options: MovieOptions,
                 parent: QtCore.QObject | None = None, show_progress: bool = True,
                 window_factory: Callable[..., MovieWindow] | None = None):
        super().__init__(parent)
        self._window_factory = window_factory  # FrameRenderer's, for panel "window"
        import multiprocessing as mp

        self.run_dir = Path(run_dir)
        self.options = options
        self.path: Path | None = None
        self.message = ""
        self.active = True
        self.cancelled = False
        self._movie: Movie | None = None
        self._renderer: FrameRenderer | None = None
        self._encoder: MovieEncoder | None = None
        self._next = 0
        n = options.n_frames
        self.dialog: QtWidgets.QProgressDialog | None = None
        if show_progress:
            self.dialog = QtWidgets.QProgressDialog(
                f"Projecting the snapshots of {self.run_dir.name}…", "Cancel", 0, n + 100,
                parent if isinstance(parent, QtWidgets.QWidget) else None)
            self.dialog.setWindowTitle("Export animation")
            self.dialog.setMinimumDuration(0)
            self.dialog.setAutoClose(False)
            self.dialog.setAutoReset(False)
            self.dialog.canceled.connect(self.cancel)
            self.dialog.show()
        ctx = mp.get_context("spawn")
        self._conn, child = ctx.Pipe(duplex=False)
        from engine.animation import keyframes_child

        self._process = ctx.Process(target=keyframes_child, args=(child, str(self.run_dir)),
                                    name="gsh-animation-keyframes", daemon=True)
        self._process.start()
        child.close()
        self._timer = QtCore.QTimer(self)
        self._timer.setInterval(self.TICK_MS)
        self._timer.timeout.connect(self._tick)
        self._timer.start()
        if isinstance(parent, QtWidgets.QWidget):
            parent.installEventFilter(self)  # closing the window cancels the export

    def eventFilter(self, obj: QtCore.QObject, event: QtCore.QEvent) -> bool:
        if event.type() == QtCore.QEvent.Type.Close and self.active:
            self.cancel()
        return False

    @property
    def frames_rendered(self) -> int:
        return self._next

    def _progress(self, value: int, text: str | None = None) -> None:
        if self.dialog is not None:
            self.dialog.setValue(value)
            if text:
                self.dialog.setLabelText(text)

    def _tick(self) -> None:
        try:
            movie, encoder = self._movie, self._encoder
            if movie is None or encoder is None:  # made once the keyframes arrived
                self._poll_child()
            elif self._next < len(movie):
                self._draw_some(movie, encoder)
            elif not encoder.end(block=False):
                return  # the queue is full: try again next turn
            elif encoder.done:
                self.path = encoder.finish()
                self._end(str(self.path), f"Wrote {self.path} ({len(movie)} frames)")
        except (OSError, ValueError, RuntimeError) as exc:
            self._stop()
            self._end("", f"Cannot export the animation: {exc}")

    def _poll_child(self) -> None:
        from engine.record import open_run

        while self._conn.poll():
            msg = self._conn.recv()
            if msg[0] == "progress":
                self._progress(round(100 * msg[1] / msg[2]),
                               f"Projecting snapshots {msg[1]}/{msg[2]}…")
            elif msg[0] == "error":
                raise ValueError(msg[1])
            else:
                keys: Keyframes = msg[1]
                self._process.join(5)
                reader = open_run(self.run_dir)
                self._movie = Movie(keys, self.options.fps, self.options.seconds)
                self._renderer = FrameRenderer(reader, keys, self.options.panel,
                                               self.options.size, self._window_factory)
                self._encoder = MovieEncoder(self.options.out, self.options.fps)
                return
        if not self._process.is_alive() and not self._conn.poll():
            raise RuntimeError("the projection process ended without a result")

    def _draw_some(self, movie: Movie, encoder: MovieEncoder) -> None:
        import time

        renderer = self._renderer
        if renderer is None:
            raise RuntimeError("the frame renderer is closed")
        start = time.perf_counter()
        while self._next < len(movie) and time.perf_counter() - start < self.BUDGET_S:
            if encoder.full:
                break  # the encoder is behind: come back next turn
            encoder.put(renderer.render(movie.frame(self._next)))
            self._next += 1
        self._progress(100 + self._next, f"Rendering frame {self._next}/{len(movie)}…")
        if self._next == len(movie):
            renderer.close()
            self._renderer = None
            self._progress(100 + self._next, "Encoding…")

    def cancel(self) -> None:
        """Stop now: no file at the target, no process, thread or timer left running."""
        if not self.active:
            return
        self.cancelled = True
        self._stop()
        self._end("", "Animation export cancelled; no file written")

    def _stop(self) -> None:
        self._timer.stop()
        if self._process.is_alive():
            self._process.terminate()
        self._process.join(5)
        if self._encoder is not None:
            self._encoder.cancel()
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None

    def _end(self, path: str, message: str) -> None:
        self._timer.stop()
        self.active = False
        self.message = message
        parent = self.parent()
        if isinstance(parent, QtWidgets.QWidget):
            parent.removeEventFilter(self)
        with contextlib.suppress(OSError):
            self._conn.close()
        if self.dialog is not None:
            self.dialog.canceled.disconnect(self.cancel)
            self.dialog.close()
            self.dialog.deleteLater()
            self.dialog = None
        self.finished.emit(path, message)


class AnimationDialog(QtWidgets.QDialog):
    """The options of File > Export animation… (the CLI's flags), checked on OK."""

    def __init__(self, default_out: str, parent: QtWidgets.QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("Export animation")
        form = QtWidgets.QFormLayout(self)
        self.out = QtWidgets.QLineEdit(default_out)
        browse = QtWidgets.QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        row = QtWidgets.QHBoxLayout()
        row.addWidget(self.out, 1)
        row.addWidget(browse)
        form.addRow("File (.mp4 or .gif)", row)
        self.panel = QtWidgets.QComboBox()
        self.panel.addItems(PANELS)
        form.addRow("Panel", self.panel)
        self.fps = QtWidgets.QSpinBox()
        self.fps.setRange(1, 60)
        self.fps.setValue(30)
        form.addRow("Frames per second", self.fps)
        self.seconds = QtWidgets.QDoubleSpinBox()
        self.seconds.setRange(1, 600)
        self.seconds.setValue(10)
        form.addRow("Seconds", self.seconds)
        self.frame_size = QtWidgets.QLineEdit(DEFAULT_SIZE)  # not `size`: QWidget.size()
        form.addRow("Size (WxH)", self.frame_size)
        self.error = QtWidgets.QLabel("")
        self.error.setStyleSheet("color: #b00020")
        self.error.setWordWrap(True)
        form.addRow(self.error)
        buttons = QtWidgets.QDialogButtonBox(
            QtWidgets.QDialogButtonBox.StandardButton.Ok
            | QtWidgets.QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)
        self.options: MovieOptions | None = None

    def _browse(self) -> None:
        path, _ = file_dialogs.get_save_file_name(
            self, "Export animation", self.out.text(), "MP4 video (*.mp4);;GIF (*.gif)")
        if path:
            self.out.setText(path)

    def accept(self) -> None:
        try:
            self.options = movie_options(self.out.text(), self.panel.currentText(),
                                         self.fps.value(), self.seconds.value(),
                                         self.frame_size.text())
        except ConfigError as exc:  # the dialog stays open, naming the field
            label = {"--out": "File", "--panel": "Panel", "--fps": "Frames per second",
                     "--seconds": "Seconds", "--size": "Size"}.get(exc.field, exc.field)
            self.error.setText(f"{label}: {exc.message}")
            return
        super().accept()
