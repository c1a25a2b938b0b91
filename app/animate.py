"""Movies of a recorded run: frames drawn with Qt, encoded to GIF or MP4.

engine/animation.py supplies the frames as data (interpolated, aligned projections and
the figures of the nearest snapshot). Here a FrameRenderer draws each one on the GUI
thread (offscreen works): the representation panel, or the whole window, below a
caption band with the step and the headline figures. A MovieEncoder encodes the frames
in a worker thread: MP4 (H.264, libx264 preset "veryfast") through PyAV, whose wheels
bundle FFmpeg, and GIF through Pillow with one palette for the whole movie (smaller, no
flicker).
The file is written beside its target and renamed into place only when complete; a
cancelled or failed movie leaves no file and no thread.
"""

from __future__ import annotations

import contextlib
import queue
import sys
import tempfile
import threading
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from PySide6 import QtCore, QtGui, QtWidgets

from app.store import Frame
from app.view import View
from engine.animation import Cancelled, Keyframes, Movie, MovieFrame, check_timing
from engine.atomic import atomic_write
from engine.config import ConfigError

PANELS = ("representation", "window")
FORMATS = (".mp4", ".gif")
WIDTH_RANGE = (160, 3840)
HEIGHT_RANGE = (120, 2160)
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


def parse_size(text: str) -> tuple[int, int]:
    """'WxH' -> (w, h); ConfigError names --size and its range."""
    (wlo, whi), (hlo, hhi) = WIDTH_RANGE, HEIGHT_RANGE
    rule = f"must be WxH within {wlo}x{hlo} .. {whi}x{hhi}"
    try:
        w, h = (int(v) for v in str(text).lower().split("x"))
    except ValueError:
        raise ConfigError("--size", f"{rule}, got {text!r}") from None
    if not (wlo <= w <= whi and hlo <= h <= hhi):
        raise ConfigError("--size", f"{rule}, got {text!r}")
    return w, h


def movie_options(out, panel: str = "representation", fps: int = 30,
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
    w, h = parse_size(size) if isinstance(size, str) else parse_size(f"{size[0]}x{size[1]}")
    if suffix == ".mp4" and (w % 2 or h % 2):
        raise ConfigError("--size", f"must have an even width and height for MP4 (H.264), "
                          f"got {w}x{h}")
    return MovieOptions(out, panel, fps, seconds, (w, h))


# ---------------------------------------------------------------------------------------
# Encoding (a worker thread; Qt-free)


class MovieEncoder:
    """Encodes RGB frames (h, w, 3 uint8) to `out` in a worker thread.

    put() hands over a frame (blocking when `block`, else False if the queue is full);
    finish() waits for the file and returns its path; cancel() stops, deletes the partial
    file and joins the thread. The file exists at `out` only after finish() succeeded.
    """

    def __init__(self, out: str | Path, fps: int, queue_size: int = 8):
        self.out = Path(out)
        self.fps = fps
        self.frames = 0
        self.ended = False
        self.error: BaseException | None = None
        self._queue: queue.Queue = queue.Queue(maxsize=queue_size)
        self._cancel = threading.Event()
        self._thread = threading.Thread(target=self._run, name="movie-encoder")
        self._thread.start()

    # producer side
    def put(self, frame: np.ndarray | None, block: bool = True) -> bool:
        """Queue a frame (None ends the movie); False when not `block` and the queue is
        full. A failed encoder raises its error here."""
        while True:
            if self.error is not None:
                raise self.error
            if not self._thread.is_alive():
                raise OSError(f"the encoder of {self.out} stopped")
            try:
                self._queue.put(frame, timeout=0.1 if block else None, block=block)
                return True
            except queue.Full:
                if not block:
                    return False

    def end(self, block: bool = True) -> bool:
        """Mark the end of the movie (once); the encoder then completes the file."""
        if not self.ended:
            self.ended = self.put(None, block=block)
        return self.ended

    @property
    def full(self) -> bool:
        return self._queue.full()

    @property
    def done(self) -> bool:
        return not self._thread.is_alive()

    def finish(self, timeout: float | None = None) -> Path:
        """Wait for every queued frame to be encoded and the file moved into place."""
        self.end()
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise TimeoutError(f"encoding {self.out.name} did not finish")
        if self.error is not None:
            raise self.error
        return self.out

    def cancel(self) -> None:
        """Stop encoding; no file is left at `out` (nor a temporary beside it)."""
        self._cancel.set()
        with contextlib.suppress(queue.Empty):
            while True:
                self._queue.get_nowait()
        with contextlib.suppress(queue.Full):
            self._queue.put_nowait(None)
        self._thread.join()

    # worker side
    def _frames(self):
        while True:
            item = self._queue.get()
            if self._cancel.is_set():
                raise Cancelled
            if item is None:
                return
            yield item

    def _run(self) -> None:
        try:
            writer = self._write_gif if self.out.suffix.lower() == ".gif" else self._write_mp4
            atomic_write(self.out, writer)
        except Cancelled:
            pass
        except BaseException as exc:  # handed to the producer by put() and finish()
            self.error = exc

    def _write_mp4(self, tmp: Path) -> None:
        import av

        with av.open(str(tmp), "w", format="mp4") as container:
            stream = None
            for frame in self._frames():
                if stream is None:
                    stream = container.add_stream("libx264", rate=self.fps)
                    stream.height, stream.width = frame.shape[:2]
                    stream.pix_fmt = "yuv420p"
                    # 2.6x faster than libx264's default "medium" here, no larger
                    stream.options = {"preset": "veryfast", "crf": "23"}
                vf = av.VideoFrame.from_ndarray(frame, format="rgb24")
                container.mux(stream.encode(vf))
                self.frames += 1
            if stream is None:
                raise OSError(f"no frame was rendered for {self.out}")
            container.mux(stream.encode())  # flush the encoder's delayed frames

    def _write_gif(self, tmp: Path) -> None:
        from PIL import Image

        palette = None
        images = []
        for frame in self._frames():
            im = Image.fromarray(frame, "RGB")
            if palette is None:  # the first frame shows every class colour and the text
                palette = im.quantize(colors=255, method=Image.Quantize.MEDIANCUT)
            images.append(im.quantize(palette=palette, dither=Image.Dither.NONE))
            self.frames += 1
        if not images:
            raise OSError(f"no frame was rendered for {self.out}")
        images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:],
                       duration=max(10, round(1000 / self.fps)), loop=0)


# ---------------------------------------------------------------------------------------
# Drawing (GUI thread)


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

    def __init__(self, reader, keys: Keyframes, panel: str, size: tuple[int, int]):
        from app.window import configure_pyqtgraph

        configure_pyqtgraph()
        self.keys = keys
        self.w, self.h = size
        self.band = max(36, min(96, round(self.h * 0.085)))
        self._window = None
        self._settings_dir = None
        self._shown_step = None
        if panel == "representation":
            from app.panels.projection import ProjectionPanel

            self._panel = ProjectionPanel("embedding", "representation",
                                          "Representation projection")
            # Only the plot (with its legend) goes into the movie: take it out of the
            # panel's header layout and give it the frame's exact size.
            self.widget = self._panel.graphics
            self._panel.layout().removeWidget(self.widget)
            self.widget.setParent(None)
            self._rep = self._panel
        else:
            from app.window import MainWindow

            self._settings_dir = tempfile.TemporaryDirectory(prefix="gsh-animate-")
            settings = QtCore.QSettings(str(Path(self._settings_dir.name) / "layout.ini"),
                                        QtCore.QSettings.Format.IniFormat)
            # No projection process: every frame's coordinates come from the keyframes.
            self._window = MainWindow(reader.config, settings=settings,
                                      projection_factory=lambda **_: None,
                                      runs_dir=reader.path.parent)
            self.widget = self._window
            if not self._window.open_run(reader.path):
                error = self._window.last_error
                self.close()
                raise OSError(f"cannot show {reader.path} in the window: {error}")
            self._rep = self._window.representation
        self.widget.setAttribute(QtCore.Qt.WidgetAttribute.WA_DontShowOnScreen)
        self.widget.resize(self.w, self.h - self.band)
        self.widget.show()
        if self._window is not None:
            self._window.reset_layout()
            self._window.store.set_frame(Frame("raw", None, keys.raw, keys.raw_method))
            self._window.refresh()
        self._rep.plot.disableAutoRange()
        if self._window is not None:
            QtWidgets.QApplication.processEvents()  # the docks settle into their sizes
        else:  # lay the plot out now, without running the app's other events
            self.widget.ci.layout.activate()
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
        if self._window is not None and frame.step != self._shown_step:
            index = self._window.store.index_of(frame.step)
            if index is not None:
                self._window.timeline.set_index(index)
                self._window.refresh()
                self._base = self._window.shown
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
            QtWidgets.QWidget.render(self.widget, painter, QtCore.QPoint(0, self.band))
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
        painter.setFont(self._font)
        painter.setPen(QtGui.QColor(60, 60, 60))
        painter.drawText(QtCore.QRect(pad, text_h // 2, self.w - 2 * pad, text_h // 2 + pad),
                         flags, figures)
        # progress through the recorded timeline
        y = self.band - line
        painter.fillRect(0, y, self.w, line, QtGui.QColor(225, 225, 225))
        painter.fillRect(0, y, round(self.w * frame.position), line, QtGui.QColor(40, 110, 200))

    def close(self) -> None:
        if self._window is not None:
            self._window.shutdown()
            self._window.close()
            self._window.deleteLater()
            self._window = None
        elif getattr(self, "widget", None) is not None:
            self.widget.close()
            self.widget.deleteLater()
            self._panel.deleteLater()
        self.widget = None
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

    def __init__(self, run_dir: str | Path, options: MovieOptions, parent=None,
                 show_progress: bool = True):
        super().__init__(parent)
        import multiprocessing as mp

        self.run_dir = Path(run_dir)
        self.options = options
        self.path: Path | None = None
        self.message = ""
        self.active = True
        self.cancelled = False
        self._keys = self._movie = self._renderer = self._encoder = None
        self._reader = None
        self._next = 0
        n = options.n_frames
        self.dialog = None
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

    def eventFilter(self, obj, event) -> bool:
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
            if self._keys is None:
                self._poll_child()
            elif self._next < len(self._movie):
                self._draw_some()
            elif not self._encoder.end(block=False):
                return  # the queue is full: try again next turn
            elif self._encoder.done:
                self.path = self._encoder.finish()
                self._end(str(self.path), f"Wrote {self.path} ({len(self._movie)} frames)")
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
                self._keys = msg[1]
                self._process.join(5)
                self._reader = open_run(self.run_dir)
                self._movie = Movie(self._keys, self.options.fps, self.options.seconds)
                self._renderer = FrameRenderer(self._reader, self._keys, self.options.panel,
                                               self.options.size)
                self._encoder = MovieEncoder(self.options.out, self.options.fps)
                return
        if not self._process.is_alive() and not self._conn.poll():
            raise RuntimeError("the projection process ended without a result")

    def _draw_some(self) -> None:
        import time

        start = time.perf_counter()
        while self._next < len(self._movie) and time.perf_counter() - start < self.BUDGET_S:
            if self._encoder.full:
                break  # the encoder is behind: come back next turn
            self._encoder.put(self._renderer.render(self._movie.frame(self._next)))
            self._next += 1
        self._progress(100 + self._next, f"Rendering frame {self._next}/{len(self._movie)}…")
        if self._next == len(self._movie):
            self._renderer.close()
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
        if isinstance(self.parent(), QtWidgets.QWidget):
            self.parent().removeEventFilter(self)
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

    def __init__(self, default_out: str, parent=None):
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
        self.size = QtWidgets.QLineEdit(DEFAULT_SIZE)
        form.addRow("Size (WxH)", self.size)
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
        path, _ = QtWidgets.QFileDialog.getSaveFileName(
            self, "Export animation", self.out.text(), "MP4 video (*.mp4);;GIF (*.gif)")
        if path:
            self.out.setText(path)

    def accept(self) -> None:
        try:
            self.options = movie_options(self.out.text(), self.panel.currentText(),
                                         self.fps.value(), self.seconds.value(),
                                         self.size.text())
        except ConfigError as exc:  # the dialog stays open, naming the field
            label = {"--out": "File", "--panel": "Panel", "--fps": "Frames per second",
                     "--seconds": "Seconds", "--size": "Size"}.get(exc.field, exc.field)
            self.error.setText(f"{label}: {exc.message}")
            return
        super().accept()


# ---------------------------------------------------------------------------------------
# The command line (headless): python main.py animate ...


def _app():
    app = QtWidgets.QApplication.instance()
    if app is None:
        app = QtWidgets.QApplication(sys.argv[:1])
    return app


def animate(run_dir: str | Path, options: MovieOptions, quiet: bool = False,
            should_stop=None) -> Path:
    """Render `run_dir`'s recorded timeline into options.out (blocking; offscreen works).
    Missing projections are computed in this process and cached in the run folder."""
    from engine.animation import load_keyframes
    from engine.record import open_run

    reader = open_run(run_dir)
    _app()

    def progress(done: int, total: int) -> None:
        if not quiet:
            print(f"\rprojections {done}/{total}", end="", file=sys.stderr, flush=True)

    keys = load_keyframes(reader, progress=progress, should_stop=should_stop)
    movie = Movie(keys, options.fps, options.seconds)
    renderer = FrameRenderer(reader, keys, options.panel, options.size)
    encoder = MovieEncoder(options.out, options.fps)
    try:
        for frame in movie:
            if should_stop is not None and should_stop():
                raise Cancelled
            encoder.put(renderer.render(frame))
            if not quiet and (frame.index % 10 == 0 or frame.index == len(movie) - 1):
                print(f"\rframes {frame.index + 1}/{len(movie)}", end="", file=sys.stderr,
                      flush=True)
        path = encoder.finish()
    except BaseException:
        encoder.cancel()
        raise
    finally:
        renderer.close()
        QtWidgets.QApplication.processEvents()
    if not quiet:
        print(f"\rwrote {path} ({len(movie)} frames, {options.size[0]}x{options.size[1]}, "
              f"{options.fps} fps)", file=sys.stderr)
    return path


def _number(flag: str, text: str, kind: type):
    try:
        return kind(text)
    except (TypeError, ValueError):
        what = "an integer" if kind is int else "a number"
        raise ConfigError(flag, f"must be {what}, got {text!r}") from None


def animate_main(args) -> int:
    """`main.py animate`: flags checked first (ConfigError: exit 2), then render."""
    import os

    options = movie_options(args.out, args.panel, _number("--fps", args.fps, int),
                            _number("--seconds", args.seconds, float), args.size)
    from engine.record import open_run

    open_run(args.run)  # RunRecordError: one readable line, exit 2, before any rendering
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

    def qt_messages(_kind, _context, message: str) -> None:
        # Offscreen windows cannot propagate size hints; Qt says so once per window shown.
        if "propagateSizeHints" not in message:
            print(message, file=sys.stderr)

    QtCore.qInstallMessageHandler(qt_messages)
    try:
        animate(args.run, options, quiet=args.quiet)
    except KeyboardInterrupt:
        print(f"\ngsh-lab: cancelled; no file written at {options.out}", file=sys.stderr)
        return 130
    return 0
