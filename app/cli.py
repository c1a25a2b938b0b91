"""Entry points used by main.py: launch the GUI, or train offscreen and save a screenshot."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

from engine.config import ConfigError, ExperimentConfig


def _check_panel(panel: str | None) -> None:
    """ConfigError unless `panel` is None or a panel of app.panel_list."""
    from app.panel_list import PANEL_NAMES

    if panel is not None and panel not in PANEL_NAMES:
        raise ConfigError("--panel", f"unknown panel {panel!r} (choose from "
                          f"{', '.join(PANEL_NAMES)})")


def _app():
    from PySide6 import QtWidgets

    app = QtWidgets.QApplication.instance()
    if app is None:
        app = QtWidgets.QApplication(sys.argv[:1])
        app.setApplicationName("GSH Lab")
        app.setOrganizationName("GSH Lab")
    return app


def run_gui(config: ExperimentConfig | None = None, runs_dir: Path | None = None,
            open_dir: Path | None = None) -> int:
    """Open the main window (with `config` in the parameters, else the default preset),
    recording runs into `runs_dir`; `open_dir`: show that recorded run (checked first, so
    a folder that is not a run exits 2 before any window opens)."""
    sweep = open_dir is not None and (Path(open_dir) / "sweep.toml").is_file()
    if sweep:
        from engine.sweep import load_sweep

        load_sweep(open_dir)  # SweepError: one readable line, exit 2
    elif open_dir is not None:
        from engine.record import open_run

        open_run(open_dir)  # RunRecordError: one readable line, exit 2
    app = _app()
    from PySide6 import QtCore

    from app.window import MainWindow

    window = MainWindow(config, runs_dir=runs_dir)
    window.show()
    if sweep:
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
        return int(app.exec())
    finally:
        tick.stop()
        window.shutdown()
        # A training worker detached by shutdown (stuck in an import, say) must end before
        # the interpreter tears down the Qt objects it signals through; the window is gone.
        QtCore.QThreadPool.globalInstance().waitForDone(60_000)


def _parse_size(size: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in size.lower().split("x"))
    except ValueError:
        raise ConfigError("--size", f"must look like 1600x1000, got {size!r}") from None
    if not (320 <= w <= 8000 and 240 <= h <= 8000):
        raise ConfigError("--size", f"must be within 320x240 .. 8000x8000, got {size!r}")
    return w, h


def _show_and_export(app, window, panel: str | None, out: Path) -> int:
    """Redraw the snapshot on screen (the timeline's position), let layouts and repaints
    settle, then write the window or one panel."""
    if panel is not None and panel in window.docks:
        window._raise_dock(panel)  # a tab behind another has no size of its own
    window.refresh()
    wait_until(app, lambda: False, 0.3)
    _export(window, panel, out)
    return 0


def _export(window, panel: str | None, out: Path) -> None:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if panel is None:
        window.export_window(out)
    else:
        window.export_panel(panel, out)
    print(f"wrote {out}", file=sys.stderr)


def _screenshot_settings():
    from PySide6 import QtCore

    # A fresh layout, never the user's saved one: figures must be reproducible.
    settings = QtCore.QSettings(QtCore.QSettings.Format.IniFormat,
                                QtCore.QSettings.Scope.UserScope, "GSH Lab",
                                "gsh-lab-screenshot")
    settings.clear()
    return settings


def screenshot_run(run_dir: Path, out: Path, step: int | None = None,
                   panel: str | None = None, size: str = "1600x1000",
                   frame_timeout_s: float = 180.0, settings=None) -> int:
    """Render a recorded run at `step` (default: its last) without training: PNG, SVG
    (one panel) or PDF by the suffix of `out`."""
    from engine.record import RunRecordError, open_run

    _check_panel(panel)
    w, h = _parse_size(size)
    reader = open_run(run_dir)
    if not reader.steps:
        raise RunRecordError(f"{reader.path} has no snapshot yet")
    if step is not None and step not in reader.steps:
        shown = ", ".join(str(s) for s in reader.steps[:8])
        more = ", …" if len(reader.steps) > 8 else ""
        raise ConfigError("--step", f"must be a recorded step of {reader.path.name} "
                          f"({shown}{more}), got {step}")
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    app = _app()
    from app.window import MainWindow

    window = MainWindow(reader.config, settings=settings or _screenshot_settings(),
                        runs_dir=reader.path.parent)
    try:
        window.resize(w, h)
        window.show()
        window.reset_layout()
        app.processEvents()
        if not window.open_run(reader.path):
            print(f"gsh-lab: error: {window.last_error}", file=sys.stderr)
            return 2
        session = window.session
        index = session.store.index_of(step) if step is not None else len(session.store) - 1
        window.timeline.set_index(index)
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


def wait_until(app, predicate, timeout_s: float) -> bool:
    """Process Qt events until predicate() holds or the timeout passes."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            return False
        app.processEvents()
        time.sleep(0.01)
    return True


def screenshot(
    config: ExperimentConfig,
    out: Path,
    panel: str | None = None,
    size: str = "1600x1000",
    frame_timeout_s: float = 180.0,
    settings=None,
    full: bool = False,
    runs_dir: Path | None = None,
) -> int:
    """Train `config` offscreen, wait for the final snapshot's projection, save a PNG.

    full: replace the final fast frame by a full-quality re-fit first (for papers).
    """
    _check_panel(panel)
    w, h = _parse_size(size)
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    app = _app()
    from app import runner as R
    from app.window import MainWindow

    window = MainWindow(config, settings=settings or _screenshot_settings(), runs_dir=runs_dir)
    try:
        window.resize(w, h)
        window.show()
        window.reset_layout()
        app.processEvents()
        if not window.start():
            print(f"gsh-lab: cannot start: {window.params.errors}", file=sys.stderr)
            return 2
        print(f"training {config.train.steps} steps…", file=sys.stderr)
        wait_until(app, lambda: window.runner.state in (R.FINISHED, R.FAILED), 24 * 3600)
        if window.runner.state == R.FAILED:
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
