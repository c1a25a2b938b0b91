"""Entry points used by main.py: launch the GUI, train offscreen and save a screenshot,
render a recorded run as a movie, and compare runs (window or figure)."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from app.qtapp import application, configure_pyqtgraph, fit_to_screen, parse_size, wait_until
from engine.config import ConfigError, ExperimentConfig

if TYPE_CHECKING:
    from PySide6 import QtCore, QtWidgets

    from app import animate as movie
    from app.window import MainWindow
    from engine.snapshot import Snapshot


def _check_panel(panel: str | None) -> None:
    """ConfigError unless `panel` is None or a panel of app.panel_list."""
    from app.panel_list import panel_names

    if panel is not None and panel not in panel_names():
        raise ConfigError("--panel", f"unknown panel {panel!r} (choose from "
                          f"{', '.join(panel_names())})")


def run_gui(config: ExperimentConfig | None = None, runs_dir: Path | None = None,
            open_dir: Path | None = None) -> int:
    """Open the main window (with `config` in the parameters, else the default preset),
    recording runs into `runs_dir`; `open_dir`: show that recorded run (checked first, so
    a folder that is not a run exits 2 before any window opens). When the window has
    closed and everything it started has stopped, the process exits with the app's code."""
    sweep = open_dir is not None and os.path.lexists(Path(open_dir) / "sweep.toml")
    if open_dir is not None and sweep:
        from engine.sweep import load_sweep

        load_sweep(open_dir)  # SweepError: one readable line, exit 2
    elif open_dir is not None:
        from engine.record import open_run

        open_run(open_dir)  # RunRecordError: one readable line, exit 2
    # The first launch after an install compiles and caches a lot: never silent.
    print("gsh-lab: opening the window…", file=sys.stderr, flush=True)
    app = application()
    from PySide6 import QtCore

    from app.window import MainWindow

    window = MainWindow(config, runs_dir=runs_dir)
    window.show()
    print("gsh-lab: window open", file=sys.stderr, flush=True)
    if open_dir is not None and sweep:
        window.open_sweep(open_dir)
    elif open_dir is not None:
        window.open_run(open_dir)
    # Ctrl-C or SIGTERM close the window like the close button does (worker and
    # projection process shut down, layout saved). Python only runs signal handlers
    # between bytecodes, so a light timer gives the interpreter a turn.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: QtCore.QTimer.singleShot(0, window.close))
    tick = QtCore.QTimer()
    tick.timeout.connect(lambda: None)
    tick.start(200)
    try:
        code = int(app.exec())
    finally:
        tick.stop()
        window.shutdown()  # the training children have ended by now
        # A pool task still running must end before the interpreter tears down the Qt
        # objects it signals through; the window is gone.
        QtCore.QThreadPool.globalInstance().waitForDone(60_000)
    # Runs are recorded, settings saved and the projection worker gone by now; the
    # interpreter's teardown (torch, Qt, numba) took 3-12 s on a busy machine, and under
    # a torch import still running in the background it can crash: leave now.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _show_and_export(app: QtWidgets.QApplication, window: MainWindow, panel: str | None,
                     out: Path) -> int:
    """Redraw the snapshot on screen (the timeline's position), let layouts and repaints
    settle, then write the window or one panel."""
    if panel is not None and panel in window.docks:
        window._raise_dock(panel)  # a tab behind another has no size of its own
    window.refresh()
    wait_until(app, lambda: False, 0.3)
    window.lsh.settle()  # the sampled LSH figures' spread over draws, as on screen
    wait_until(app, lambda: False, 0.1)
    _export(window, panel, out)
    return 0


class _Figures(Protocol):
    """A window that writes itself or one of its panels to a file (MainWindow by panel
    name, CompareWindow by panel)."""

    def export_window(self, path: str | Path) -> Path: ...

    def export_panel(self, panel: Any, path: str | Path) -> Path: ...


def _export(window: _Figures, panel: Any, out: Path) -> None:
    """`panel` (or the whole window, for None) into `out`, its folder made first."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if panel is None:
        window.export_window(out)
    else:
        window.export_panel(panel, out)
    print(f"wrote {out}", file=sys.stderr)


def screenshot_run(run_dir: Path, out: Path, step: int | None = None,
                   panel: str | None = None, size: str = "1600x1000",
                   frame_timeout_s: float = 180.0,
                   settings: QtCore.QSettings | None = None) -> int:
    """Render a recorded run at `step` (default: its last) without training: PNG, SVG
    (one panel) or PDF by the suffix of `out`."""
    from engine.record import open_run, warn_problems
    from engine.record_format import RunRecordError

    _check_panel(panel)
    w, h = parse_size(size)
    reader = open_run(run_dir)
    reader.latest()  # finds a damaged last snapshot before the window opens
    warn_problems(reader, lambda line: print(line, file=sys.stderr))
    if not reader.steps:
        raise RunRecordError(f"{reader.path} has no snapshot yet")
    if step is not None and step not in reader.steps:
        shown = ", ".join(str(s) for s in reader.steps[:8])
        more = ", …" if len(reader.steps) > 8 else ""
        raise ConfigError("--step", f"must be a recorded step of {reader.path.name} "
                          f"({shown}{more}), got {step}")
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    app = application()
    from app.window import MainWindow

    window = MainWindow.offscreen(reader.config, (w, h), settings=settings,
                                  runs_dir=reader.path.parent)
    try:
        if not window.open_run(reader.path):
            print(f"gsh-lab: error: {window.last_error}", file=sys.stderr)
            return 2
        session = window.session
        index = session.store.index_of(step) if step is not None else None
        window.timeline.set_index(len(session.store) - 1 if index is None else index)
        assert session.shown is not None  # open_run showed the run
        snap = session.shown.snapshot
        session.project_missing(snap)
        if not wait_until(app, lambda: session.frames_ready(snap.step), frame_timeout_s):
            print("gsh-lab: warning: projection not ready; saving what is shown",
                  file=sys.stderr)
        return _show_and_export(app, window, panel, out)
    finally:
        window.close()
        window.deleteLater()
        app.processEvents()


def screenshot(
    config: ExperimentConfig,
    out: Path,
    panel: str | None = None,
    size: str = "1600x1000",
    frame_timeout_s: float = 180.0,
    settings: QtCore.QSettings | None = None,
    full: bool = False,
    runs_dir: Path | None = None,
) -> int:
    """Train `config` offscreen, wait for the final snapshot's projection, save a PNG.

    full: replace the final fast frame by a full-quality re-fit first (for papers).
    """
    _check_panel(panel)
    w, h = parse_size(size)
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    app = application()
    from app.runner import FAILED, FINISHED
    from app.window import MainWindow

    window = MainWindow.offscreen(config, (w, h), settings=settings, runs_dir=runs_dir)
    try:
        if not window.start():
            print(f"gsh-lab: cannot start: {window.params.errors}", file=sys.stderr)
            return 2
        from tqdm import tqdm

        bar = tqdm(total=config.train.steps, unit="step", file=sys.stderr,
                   desc="building the experiment…",
                   bar_format="{desc} {n_fmt}/{total_fmt} {bar} {elapsed}<{remaining}")

        def on_snapshot(snap: Snapshot) -> None:
            bar.set_description_str("training", refresh=False)
            bar.update(snap.step - bar.n)

        window.runner.snapshot_arrived.connect(on_snapshot)
        try:
            wait_until(app, lambda: window.runner.state in (FINISHED, FAILED), 24 * 3600)
        finally:
            bar.close()
        print("waiting for the final projection…", file=sys.stderr)
        if window.runner.state == FAILED:
            print(f"gsh-lab: training failed: {window.last_error}", file=sys.stderr)
        final = window.store.latest
        method = config.projection.method

        def frame_ready() -> bool:
            f = window.store.frames.get(final.step) if final else None
            raw = window.store.raw_frame
            return (f is not None and f.method == method and raw is not None
                    and raw.method == method)

        if final is not None and not wait_until(app, frame_ready, frame_timeout_s):
            print("gsh-lab: warning: final projection frame not ready; saving what is shown",
                  file=sys.stderr)
        window.refresh()  # show the final snapshot: refine acts on what is on screen
        if full and final is not None and window.refine_projection():
            def refined() -> bool:
                f = window.store.frames.get(final.step)
                return f is not None and f.method.endswith("full")

            if not wait_until(app, refined, frame_timeout_s):
                print("gsh-lab: warning: full-quality projection not ready; saving the "
                      "fast frame", file=sys.stderr)
        return _show_and_export(app, window, panel, out)
    finally:
        window.close()
        window.deleteLater()
        app.processEvents()


# -- `main.py animate` --------------------------------------------------------------


def animate(run_dir: str | Path, options: movie.MovieOptions, quiet: bool = False,
            should_stop: Callable[[], bool] | None = None) -> Path:
    """Render `run_dir`'s recorded timeline into options.out (blocking; offscreen works).
    Missing projections are computed in this process and cached in the run folder."""
    from tqdm import tqdm

    from app.animate import FrameRenderer
    from app.window import MainWindow
    from engine.animation import Cancelled, Movie, load_keyframes
    from engine.encoder import MovieEncoder
    from engine.record import open_run, warn_problems

    reader = open_run(run_dir)
    app = application()
    bar = tqdm(total=0, unit="", disable=quiet, file=sys.stderr, desc="projections",
               bar_format="{desc} {n_fmt}/{total_fmt} {bar} {elapsed}<{remaining}")

    def progress(done: int, total: int) -> None:
        bar.total = total
        bar.update(done - bar.n)

    try:
        keys = load_keyframes(reader, progress=progress, should_stop=should_stop)
    finally:
        bar.close()
    warn_problems(reader, lambda line: print(line, file=sys.stderr))
    movie = Movie(keys, options.fps, options.seconds)
    renderer = FrameRenderer(reader, keys, options.panel, options.size,
                             window_factory=MainWindow.offscreen)
    encoder = MovieEncoder(options.out, options.fps)
    frames = tqdm(movie, total=len(movie), unit="frame", disable=quiet, file=sys.stderr,
                  desc="frames")
    try:
        for frame in frames:
            if should_stop is not None and should_stop():
                raise Cancelled
            encoder.put(renderer.render(frame))
        path = encoder.finish()
    except BaseException:
        encoder.cancel()
        raise
    finally:
        frames.close()
        renderer.close()
        app.processEvents()
    if not quiet:
        print(f"wrote {path} ({len(movie)} frames, {options.size[0]}x{options.size[1]}, "
              f"{options.fps} fps)", file=sys.stderr)
    return path


Number = TypeVar("Number", int, float)


def _number(flag: str, text: str, kind: type[Number]) -> Number:
    try:
        return kind(text)
    except (TypeError, ValueError):
        what = "an integer" if kind is int else "a number"
        raise ConfigError(flag, f"must be {what}, got {text!r}") from None


def animate_main(args: argparse.Namespace) -> int:
    """`main.py animate`: flags checked first (ConfigError: exit 2), then render."""

    from app.animate import movie_options

    options = movie_options(args.out, args.panel, _number("--fps", args.fps, int),
                            _number("--seconds", args.seconds, float), args.size)
    from engine.record import open_run

    open_run(args.run)  # RunRecordError: one readable line, exit 2, before any rendering
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

    try:
        animate(args.run, options, quiet=args.quiet)
    except KeyboardInterrupt:
        print(f"\ngsh-lab: cancelled; no file written at {options.out}", file=sys.stderr)
        return 130
    return 0


def compare_main(args: argparse.Namespace) -> int:
    """`main.py compare RUN RUN ... [--out FILE] [--panel P] [--step N] [--size WxH]`:
    without --out, the comparison window; with it, the figure written offscreen."""
    from app.compare_window import PANELS, CompareWindow
    from engine.compare import open_comparison

    cmp = open_comparison(args.runs)
    if args.panel is not None and args.panel not in PANELS:
        raise ConfigError("--panel", f"unknown panel {args.panel!r} (choose from "
                          f"{', '.join(PANELS)})")
    last = max(cmp.all_steps())
    if args.step is not None and not 0 <= args.step <= last:
        raise ConfigError("--step", f"must be within 0..{last} (the runs' recorded steps), "
                          f"got {args.step}")
    w, h = parse_size(args.size)
    if args.out is not None:
        suffix = Path(args.out).suffix.lower()
        if suffix not in (".png", ".pdf", ".svg"):
            raise ConfigError("--out", f"must end in .png, .pdf or .svg, got {args.out}")
        if suffix == ".svg" and args.panel is None:
            raise ConfigError("--out", "an SVG needs --panel (the whole window: PNG or PDF)")
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    app = application()
    configure_pyqtgraph()
    window = CompareWindow(cmp, follow=args.out is None)
    try:
        if args.out is None:
            fit_to_screen(window, w, h)  # on screen: all of it (1366x768 too)
        else:
            window.resize(w, h)
        panel = None
        if args.panel is not None:
            if args.out is not None:
                window.side.compute_missing()  # the runs' own projections, cached
            panel = window.show_view(args.panel)
        window.set_step(last if args.step is None else args.step)
        window.show()
        wait_until(app, lambda: False, 0.3)
        if args.out is None:
            return int(app.exec())
        _export(window, panel, Path(args.out))
        return 0
    finally:
        window.stop_following()
        window.close()
        window.deleteLater()
        app.processEvents()
