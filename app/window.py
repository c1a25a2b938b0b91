"""The main window: dockable panels, run controls, status bar, exports and settings.

Snapshots arrive from the Runner (worker thread -> queued signal), go into the
SnapshotStore and out to the projection service; panels are redrawn by a single-shot
timer at most every REDRAW_MS, always from the newest snapshot (or the one the timeline
points at), so a fast engine never queues redraws.
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

from app import runner as R
from app.exports import EXPORT_FORMATS, scene_to_pdf, widget_to_pdf
from app.palette import palette
from app.panels.about import AboutPanel
from app.panels.collisions import CollisionPanel
from app.panels.curves import CurvesPanel
from app.panels.inspector import InspectorPanel
from app.panels.locality import LocalityPanel
from app.panels.lsh import LshPanel
from app.panels.parameters import ParameterPanel
from app.panels.projection import ProjectionPanel
from app.panels.runs import RunsPanel
from app.panels.samples import SamplesPanel
from app.panels.timeline import TimelinePanel
from app.projector import ProjectionClient
from app.selection import Selection, bucket_codes
from app.session import RunSession
from app.store import DEFAULT_CAPACITY, Frame, SnapshotStore
from engine import config as C
from engine.atomic import atomic_write
from engine.training import warm_up

REDRAW_MS = 100
LAYOUT_VERSION = 4
MAX_RECENT = 8
FRAME_ALLOWANCE = (16, 48)  # a usual window-manager frame (borders, title bar), pixels
STYLE = Path(__file__).resolve().parents[1] / "resources" / "style.qss"

SHORTCUTS = {
    "start": "F5",
    "pause": "Space",
    "step": "F10",
    "stop": "Shift+F5",
    "reset": "Ctrl+Shift+R",
}


def configure_pyqtgraph() -> None:
    pg.setConfigOptions(background="w", foreground=(40, 40, 40), antialias=False)


def default_settings() -> QtCore.QSettings:
    return QtCore.QSettings("GSH Lab", "gsh-lab")


def default_runs_dir(settings: QtCore.QSettings) -> Path:
    """Where the app records runs: the saved choice, else gsh-runs under the documents
    (or, without one, the app data) folder."""
    saved = settings.value("runs/folder")
    if saved:
        return Path(str(saved))
    loc = QtCore.QStandardPaths
    base = loc.writableLocation(loc.StandardLocation.DocumentsLocation) or loc.writableLocation(
        loc.StandardLocation.AppDataLocation)
    return Path(base or Path.home()) / "gsh-runs"


class MainWindow(QtWidgets.QMainWindow):
    """GSH Lab's window. Every user action also has a method taking plain arguments."""

    def __init__(
        self,
        config: C.ExperimentConfig | None = None,
        settings: QtCore.QSettings | None = None,
        projection_factory=None,
        store_capacity: int = DEFAULT_CAPACITY,
        runs_dir: str | Path | None = None,
    ) -> None:
        super().__init__()
        # Training runs in a worker thread of this process: a 1 ms GIL switch interval
        # (default 5 ms) hands the GIL back to it sooner while this thread paints
        # (measured: app training 155-160 -> 175 steps/s on 2 cores).
        sys.setswitchinterval(0.001)
        configure_pyqtgraph()
        palette()
        self.settings = settings if settings is not None else default_settings()
        self.setWindowTitle("GSH Lab: deep networks as locality-sensitive hashes")
        self.setDockNestingEnabled(True)
        if STYLE.is_file():
            self.setStyleSheet(STYLE.read_text(encoding="utf-8"))
        self.last_error: str | None = None
        self.error_box: QtWidgets.QMessageBox | None = None
        self.shown_snapshot = None
        self.config_path: Path | None = None
        self._closing = False

        self.session = RunSession(store_capacity)
        self.runs_dir = Path(runs_dir) if runs_dir is not None else default_runs_dir(
            self.settings)
        self.runner = R.Runner(self)
        self.params = ParameterPanel(config)
        p = (self.params.config() or C.default_config()).projection
        self.projector = ProjectionClient(
            {"method": p.method, "n_neighbors": p.n_neighbors, "min_dist": p.min_dist,
             "metric": p.metric, "seed": (self.params.config() or C.default_config()).seed},
            service_factory=projection_factory,
            parent=self,
        )

        self.representation = ProjectionPanel(
            "embedding", "representation", "Representation projection"
        )
        self.input_space = ProjectionPanel("raw", "input_space", "Input-space projection")
        self.collisions = CollisionPanel()
        self.curves = CurvesPanel()
        self.locality = LocalityPanel()
        self.lsh = LshPanel()
        self.samples = SamplesPanel()
        self.timeline = TimelinePanel()
        self.about = AboutPanel()
        self.inspector = InspectorPanel()
        self.selection = Selection(self)
        self._codes: tuple | None = None  # (id of the snapshot, its bucket codes)
        self.runs = RunsPanel(self.runs_dir)
        self.sweeps = None  # the Sweep window, made when first shown
        self.plot_panels = {
            p.name: p
            for p in (self.representation, self.input_space, self.collisions, self.curves,
                      self.locality, self.lsh, self.samples)
        }
        self.panels = {
            **self.plot_panels,
            "parameters": self.params,
            "timeline": self.timeline,
            "about": self.about,
            "inspector": self.inspector,
            "runs": self.runs,
        }
        self._build_actions()
        self._build_menus()
        self._build_toolbar()
        self._build_docks()
        self._build_status()

        self._redraw_timer = QtCore.QTimer(self)
        self._redraw_timer.setSingleShot(True)
        self._redraw_timer.setInterval(REDRAW_MS)
        self._redraw_timer.timeout.connect(self._on_redraw)
        self._pending_updates: list = []
        self._stagger_timer = QtCore.QTimer(self)
        self._stagger_timer.setInterval(1)
        self._stagger_timer.timeout.connect(self._on_stagger_tick)

        self.runner.state_changed.connect(self._on_state_changed)
        self.runner.experiment_ready.connect(self._on_experiment_ready)
        self.runner.snapshot_arrived.connect(self._on_snapshot)
        self.runner.failed.connect(self._on_run_failed)
        self.runner.recording_stopped.connect(self._on_recording_stopped)
        self.projector.frame_ready.connect(self._on_frame)
        self.projector.failed.connect(self._on_projection_failed)
        self.params.validity_changed.connect(self._on_validity_changed)
        self.params.projection_changed.connect(self._on_projection_params_changed)
        self.params.preset_requested.connect(self._on_preset_requested_while_locked)
        self.timeline.scrubbed.connect(self._on_scrubbed)
        self.timeline.live_changed.connect(self._on_live_changed)
        self.runs.open_requested.connect(self.open_run)
        self._connect_selection()
        self.runs.folder_change_requested.connect(self._on_runs_folder_triggered)
        for panel in self.plot_panels.values():
            panel.export_requested.connect(self._on_export_panel_requested)

        self._collapsed_at: int | None = None  # first step a collapsed snapshot arrived
        self._after_stop = None  # an action waiting for the active run to end
        self._restore_settings()
        self._update_actions()
        # torch's first optimiser import (~2 s of GIL-heavy Python) happens now, while the
        # user reads the window, instead of stalling the event loop at a run's first step.
        self._warm_up = threading.Thread(target=warm_up, name="torch-warm-up", daemon=True)
        self._warm_up.start()

    # ------------------------------------------------------------------ building
    def _action(self, text, slot, shortcut=None, tip=None) -> QtGui.QAction:
        a = QtGui.QAction(text, self)
        if shortcut:
            a.setShortcut(QtGui.QKeySequence(shortcut))
            a.setShortcutContext(QtCore.Qt.ShortcutContext.ApplicationShortcut)
        if tip:
            a.setToolTip(f"{tip} ({shortcut})" if shortcut else tip)
            a.setStatusTip(tip)
        a.triggered.connect(slot)
        return a

    def _build_actions(self) -> None:
        A = self._action
        self.act_start = A("Start", self._on_start_triggered, SHORTCUTS["start"],
                           "Build the experiment from the parameters and train")
        self.act_pause = A("Pause", self.toggle_pause, SHORTCUTS["pause"],
                           "Pause at the next snapshot / resume")
        self.act_step = A("Step", self._on_step_triggered, SHORTCUTS["step"],
                          "Train one snapshot interval, then pause")
        self.act_stop = A("Stop", self.stop, SHORTCUTS["stop"],
                          "Finish after the current step (keeps the results)")
        self.act_reset = A("Reset", self.reset, SHORTCUTS["reset"],
                           "Discard the run and clear the panels")
        self.act_export_window = A("Export window as PNG…", self._on_export_window_triggered,
                                   "Ctrl+E")
        self.act_export_all = A("Export all panels to folder…", self._on_export_all_triggered,
                                "Ctrl+Shift+E")
        self.act_export_csv = A("Export history as CSV…", self._on_export_csv_triggered)
        self.act_export_npz = A("Export probe embeddings as NPZ…",
                                self._on_export_npz_triggered)
        self.act_open = A("Open experiment…", self._on_open_triggered, "Ctrl+O")
        self.act_open_run = A("Open run…", self._on_open_run_triggered, "Ctrl+Shift+O",
                              "Open a recorded run folder: every panel and the timeline")
        self.act_sweeps = A("Sweeps…", self.show_sweeps, "Ctrl+Shift+W",
                            "Map one-shot accuracy across parameters and seeds")
        self.act_open_sweep = A("Open sweep…", self._on_open_sweep_triggered, None,
                                "Open a sweep folder: its runs table and phase diagram")
        self.act_runs_folder = A("Runs folder…", self._on_runs_folder_triggered, None,
                                 "Choose where runs are recorded")
        self.act_save = A("Save experiment as…", self._on_save_triggered, "Ctrl+S")
        self.act_quit = A("Quit", self.close, "Ctrl+Q")
        self.act_reset_layout = A("Reset layout", self.reset_layout)
        self.act_refine = A("Refine projection (full-quality UMAP)", self.refine_projection,
                            "Ctrl+R", "Re-fit the projection on screen with umap's full "
                            "defaults, for a final figure")
        self.act_retry_projection = A(
            "Retry projection", self.retry_projection,
            tip="Start a fresh projection worker after it failed (PCA is shown meanwhile)")
        self.act_retry_projection.setEnabled(False)

    def _build_menus(self) -> None:
        bar = self.menuBar()
        m = bar.addMenu("&File")
        m.addAction(self.act_open)
        m.addAction(self.act_open_run)
        m.addAction(self.act_open_sweep)
        m.addAction(self.act_runs_folder)
        self.recent_menu = m.addMenu("Open recent")
        m.addAction(self.act_save)
        m.addSeparator()
        m.addAction(self.act_export_window)
        self.export_panel_menu = m.addMenu("Export panel")
        for name, panel in self.plot_panels.items():
            sub = self.export_panel_menu.addMenu(panel.title)
            for fmt in EXPORT_FORMATS:
                a = sub.addAction(f"as {fmt.upper()}…")
                a.triggered.connect(
                    lambda _=False, n=name, f=fmt: self._on_export_panel_requested(n, f)
                )
        m.addAction(self.act_export_all)
        m.addAction(self.act_export_csv)
        m.addAction(self.act_export_npz)
        self.act_export_animation = m.addAction("Export animation…",
                                                self._on_export_animation_triggered)
        m.addSeparator()
        m.addAction(self.act_quit)
        r = bar.addMenu("&Run")
        for a in (self.act_start, self.act_pause, self.act_step, self.act_stop, self.act_reset):
            r.addAction(a)
        r.addSeparator()
        r.addAction(self.act_refine)
        r.addAction(self.act_retry_projection)
        self.view_menu = bar.addMenu("&View")
        self.view_menu.addAction(self.act_sweeps)
        self.view_menu.addSeparator()
        h = bar.addMenu("&Help")
        h.addAction("About this experiment", lambda: self._raise_dock("about"))
        self._rebuild_recent_menu()

    def _build_toolbar(self) -> None:
        tb = self.addToolBar("Run")
        tb.setObjectName("toolbar_run")
        tb.setMovable(False)
        tb.setToolButtonStyle(QtCore.Qt.ToolButtonStyle.ToolButtonTextOnly)
        for a in (self.act_start, self.act_pause, self.act_step, self.act_stop, self.act_reset):
            tb.addAction(a)
        tb.addSeparator()
        self.run_label = QtWidgets.QLabel("")
        self.run_label.setContentsMargins(8, 0, 8, 0)
        tb.addWidget(self.run_label)

    def _build_docks(self) -> None:
        self.docks: dict[str, QtWidgets.QDockWidget] = {}
        for name, panel in self.panels.items():
            dock = QtWidgets.QDockWidget(panel.title, self)
            dock.setObjectName(f"dock_{name}")
            dock.setWidget(panel)
            dock.setFeatures(
                QtWidgets.QDockWidget.DockWidgetFeature.DockWidgetMovable
                | QtWidgets.QDockWidget.DockWidgetFeature.DockWidgetFloatable
                | QtWidgets.QDockWidget.DockWidgetFeature.DockWidgetClosable
            )
            self.docks[name] = dock
            self.view_menu.addAction(dock.toggleViewAction())
        self.view_menu.addSeparator()
        self.view_menu.addAction(self.act_reset_layout)
        self._default_layout()

    def _default_layout(self) -> None:
        d = self.docks
        for dock in d.values():
            self.removeDockWidget(dock)
        Left = QtCore.Qt.DockWidgetArea.LeftDockWidgetArea
        Right = QtCore.Qt.DockWidgetArea.RightDockWidgetArea
        Bottom = QtCore.Qt.DockWidgetArea.BottomDockWidgetArea
        H, V = QtCore.Qt.Orientation.Horizontal, QtCore.Qt.Orientation.Vertical
        self.addDockWidget(Left, d["parameters"])
        self.tabifyDockWidget(d["parameters"], d["runs"])
        self.tabifyDockWidget(d["parameters"], d["about"])
        self.tabifyDockWidget(d["parameters"], d["inspector"])
        self.addDockWidget(Right, d["representation"])
        self.splitDockWidget(d["representation"], d["curves"], V)
        self.splitDockWidget(d["representation"], d["input_space"], H)
        self.splitDockWidget(d["input_space"], d["collisions"], H)
        self.splitDockWidget(d["curves"], d["locality"], H)
        self.splitDockWidget(d["locality"], d["samples"], H)
        self.tabifyDockWidget(d["locality"], d["lsh"])
        self.addDockWidget(Bottom, d["timeline"])
        for dock in d.values():
            dock.show()
        d["parameters"].raise_()
        d["locality"].raise_()
        self._default_sizes()

    def _default_sizes(self) -> None:
        d = self.docks
        w, h = self.width(), self.height()
        left = min(310, int(w * 0.23))
        right = w - left - 20
        self.resizeDocks([d["parameters"]], [left], QtCore.Qt.Orientation.Horizontal)
        self.resizeDocks(
            [d["representation"], d["input_space"], d["collisions"]],
            [int(right * 0.36), int(right * 0.32), int(right * 0.32)],
            QtCore.Qt.Orientation.Horizontal,
        )
        self.resizeDocks(
            [d["curves"], d["locality"], d["samples"]],
            [int(right * 0.5), int(right * 0.25), int(right * 0.25)],
            QtCore.Qt.Orientation.Horizontal,
        )
        self.resizeDocks(
            # The curves panel holds four plots and their legends: it gets the larger half.
            [d["representation"], d["curves"]], [int(h * 0.44), int(h * 0.5)],
            QtCore.Qt.Orientation.Vertical,
        )
        self.resizeDocks([d["timeline"]], [40], QtCore.Qt.Orientation.Vertical)

    def _build_status(self) -> None:
        sb = self.statusBar()
        self.progress = QtWidgets.QProgressBar()
        self.progress.setMaximumWidth(180)
        self.progress.setRange(0, 1000)
        self.progress.setValue(0)
        self.progress.setFormat("%p%")
        self.status_step = QtWidgets.QLabel("step –")
        self.status_rate = QtWidgets.QLabel("– steps/s")
        self.status_eta = QtWidgets.QLabel("ETA –")
        self.status_device = QtWidgets.QLabel("device –")
        self.status_projection = QtWidgets.QLabel("projection –")
        # The headline figures of the newest snapshot: one-shot and the unseen classes'
        # bucket collisions beside all classes' (the one-shot claim is about unseen ones).
        self.status_figures = QtWidgets.QLabel("")
        self.status_figures.setObjectName("statusFigures")
        self.status_health = QtWidgets.QLabel("")
        self.status_health.setObjectName("statusHealth")
        self.status_health.setStyleSheet(f"color: {palette().alarm_hex}; font-weight: bold;")
        self.status_health.hide()
        widths = (None, 110, 90, 80, 90, 230)
        sb.addPermanentWidget(self.status_health)
        sb.addPermanentWidget(self.status_figures)
        for w, width in zip((self.progress, self.status_step, self.status_rate, self.status_eta,
                             self.status_device, self.status_projection), widths, strict=True):
            if width:
                w.setFixedWidth(width)  # text updates must not re-layout the window
            sb.addPermanentWidget(w)

    # ------------------------------------------------------------------ settings
    def _restore_settings(self) -> None:
        geometry = self.settings.value("window/geometry")
        if geometry is None or not self.restoreGeometry(geometry):
            self.fit_to_screen()
        else:
            self.fit_to_screen(keep_size=True)
        state = self.settings.value("window/state")
        self._layout_restored = state is not None and self.restoreState(state, LAYOUT_VERSION)

    def fit_to_screen(self, keep_size: bool = False) -> None:
        """Size the window from its screen's available area (not a fixed size), so the
        status bar and every dock are on screen; a restored size is shrunk to fit."""
        screen = self.screen() or QtGui.QGuiApplication.primaryScreen()
        if screen is None:
            self.resize(1600, 1000)
            return
        area = screen.availableGeometry()
        # The frame the window manager adds (title bar, borders) also has to fit; before
        # the first show it is unknown, so room for a usual one is kept (showEvent checks).
        frame_w = max(self.frameGeometry().width() - self.geometry().width(), 0)
        frame_h = max(self.frameGeometry().height() - self.geometry().height(), 0)
        if not self.isVisible() and QtGui.QGuiApplication.platformName() != "offscreen":
            frame_w, frame_h = max(frame_w, FRAME_ALLOWANCE[0]), max(frame_h, FRAME_ALLOWANCE[1])
        max_w, max_h = area.width() - frame_w, area.height() - frame_h
        if keep_size:
            w, h = min(self.width(), max_w), min(self.height(), max_h)
        else:
            w, h = min(1600, max_w), min(1000, max_h)
        self.resize(w, h)
        if not keep_size or not area.contains(self.frameGeometry()):
            self.move(area.x() + (area.width() - w - frame_w) // 2,
                      area.y() + (area.height() - h - frame_h) // 2)

    def _save_settings(self) -> None:
        self.settings.setValue("window/geometry", self.saveGeometry())
        self.settings.setValue("window/state", self.saveState(LAYOUT_VERSION))
        self.settings.sync()

    def reset_layout(self) -> None:
        """Put every panel back where it starts (and forget the saved layout)."""
        for dock in self.docks.values():
            dock.setFloating(False)
        self._default_layout()
        QtCore.QTimer.singleShot(0, self._unelide_tabs)
        self.settings.remove("window/state")

    def recent_files(self) -> list[str]:
        value = self.settings.value("recent_files", [])
        if isinstance(value, str):
            value = [value]
        return [str(v) for v in (value or [])]

    def _add_recent(self, path: Path) -> None:
        p = str(Path(path).resolve())
        files = [f for f in self.recent_files() if f != p]
        self.settings.setValue("recent_files", [p, *files][:MAX_RECENT])
        self._rebuild_recent_menu()

    def _rebuild_recent_menu(self) -> None:
        self.recent_menu.clear()
        files = self.recent_files()
        for f in files:
            a = self.recent_menu.addAction(f)
            a.triggered.connect(lambda _=False, path=f: self.load_config(path))
        self.recent_menu.setEnabled(bool(files))

    # ------------------------------------------------------------------ run control
    def start(self) -> bool:
        cfg = self.params.config()
        if cfg is None or self.runner.is_active:
            return False
        self._clear_run()
        p = cfg.projection
        self.projector.set_params(method=p.method, n_neighbors=p.n_neighbors,
                                  min_dist=p.min_dist, metric=p.metric, seed=cfg.seed)
        self.run_config = cfg
        self.lsh.config = cfg
        self.session = RunSession.live(self.runs_dir, cfg.name, cfg.seed, self.store.capacity)
        if self.session.record_error:
            self._on_recording_stopped(self.session.record_error)
        self.runner.start(cfg, record_dir=self.session.record_dir)
        return True

    # The run on screen lives in its session (record folder, store, frames).
    @property
    def store(self) -> SnapshotStore:
        return self.session.store

    @property
    def record_dir(self) -> Path | None:
        return self.session.record_dir

    @property
    def record_error(self) -> str | None:
        return self.session.record_error

    def _on_recording_stopped(self, message: str) -> None:
        self.session.stop_recording(message)
        self.statusBar().showMessage(message, 30000)

    def toggle_pause(self) -> None:
        self.runner.toggle_pause()

    def step(self) -> None:
        if self.runner.is_active:
            self.runner.step()
        elif self.params.is_valid():
            self.start()
            self.runner.step()

    def stop(self) -> None:
        self.runner.stop()

    def _confirm(self, title: str, question: str) -> bool:
        """Ask a yes/no question (tests replace this method)."""
        answer = QtWidgets.QMessageBox.question(
            self, title, question,
            QtWidgets.QMessageBox.StandardButton.Yes | QtWidgets.QMessageBox.StandardButton.No,
            QtWidgets.QMessageBox.StandardButton.No,
        )
        return answer == QtWidgets.QMessageBox.StandardButton.Yes

    def _on_start_triggered(self) -> None:
        """Start from the toolbar/menu: a finished run that was not recorded to disk is
        only discarded after asking."""
        if self.runner.is_active:
            return
        unrecorded = len(self.store) and (self.record_dir is None or self.record_error)
        if unrecorded and not self._confirm(
            "Discard the run on screen?",
            f"The run on screen ({self.run_label.text()}) was not recorded to disk. "
            "Starting a new run discards it. Start anyway?",
        ):
            return
        self.start()

    def _on_step_triggered(self) -> None:
        if self.runner.is_active:
            self.step()
        else:
            self._on_start_triggered()
            if self.runner.is_active:
                self.runner.step()

    def stop_then(self, action, what: str) -> bool:
        """Ask whether to stop the active run before `what`; on yes stop it and run
        `action` once it has ended (its final snapshot kept). False: nothing changed."""
        if not self.runner.is_active:
            action()
            return True
        if not self._confirm(
            "Stop the run first?",
            f"A run is {self.runner.state}. Stop it (keeping its results) and {what}?",
        ):
            return False
        self._after_stop = action
        self.stop()
        return True

    def _on_preset_requested_while_locked(self, name: str) -> None:
        self.stop_then(lambda: self.params.set_config(C.load_preset(name)),
                       f"load the preset {name!r}")

    def reset(self) -> None:
        self.runner.reset()
        self._clear_run()
        self.statusBar().showMessage("Reset: ready to start", 3000)

    def _clear_run(self) -> None:
        self._redraw_timer.stop()
        self._stagger_timer.stop()
        self._pending_updates = []
        self._collapsed_at = None
        self.session = RunSession(self.store.capacity)  # nothing on screen, no record
        self.projector.new_run()
        self.shown_snapshot = None
        for panel in self.plot_panels.values():
            panel.clear()
        self.selection.clear()
        self.inspector.episodes = None
        self.inspector.clear()
        self.timeline.clear()
        self.timeline.live.setChecked(True)
        self._update_status(None)
        self._update_actions()

    # ------------------------------------------------------------------ engine events
    def _on_experiment_ready(self, exp) -> None:
        probe = exp.probe
        seen = [int(c) for c, s in zip(probe.classes, probe.class_seen, strict=True) if s][:4]
        unseen = [int(c) for c, s in zip(probe.classes, probe.class_seen, strict=True)
                  if not s][:4]
        try:
            x, theta, label = exp.samples(seen + unseen, 8)
        except Exception as exc:  # the gallery falls back to the probe rows
            self.statusBar().showMessage(f"samples unavailable: {exc}", 5000)
        else:
            flags = {c: True for c in seen} | {c: False for c in unseen}
            self.samples.set_samples(x, theta, label, flags, probe.image_shape)
        self.status_device.setText(f"device {exp.device}")
        self.projector.request("raw", None, probe.x)

    def _on_snapshot(self, snapshot) -> None:
        if getattr(snapshot, "collapsed", "") and self._collapsed_at is None:
            self._collapsed_at = snapshot.step
        recorded = self.session.recorded
        self.session.add_snapshot(snapshot)
        if recorded and not self.session.recorded:
            self._on_recording_stopped(self.session.record_error)
        self.projector.request("embedding", snapshot.step, snapshot.embedding)
        if not self._redraw_timer.isActive():
            self._redraw_timer.start()

    def _on_projection_failed(self, message: str) -> None:
        """The projection worker was given up on: say so where the projection is shown."""
        text = f"Projection: {message}. Run > Retry projection starts a new worker."
        self.statusBar().showMessage(text)
        self.status_projection.setToolTip(text)
        self.act_retry_projection.setEnabled(True)
        if self.shown_snapshot is not None:
            self._show_frames(self.shown_snapshot)

    def retry_projection(self) -> bool:
        """Start a fresh projection worker and re-request what is on screen."""
        if not self.projector.retry():
            return False
        self.act_retry_projection.setEnabled(False)
        self.status_projection.setToolTip("")
        self.statusBar().showMessage("Restarting the projection worker…", 5000)
        snap = self.shown_snapshot
        if snap is not None and self.store.probe is not None:
            self.projector.request("raw", None, self.store.probe.x)
            self.projector.request("embedding", snap.step, snap.embedding)
        return True

    def refine_projection(self) -> bool:
        """Ask for a full-quality UMAP of the snapshot on screen (replaces its fast frame)."""
        snap = self.shown_snapshot
        if snap is None:
            self.statusBar().showMessage("Nothing to refine yet: start a run first.", 5000)
            return False
        self.projector.request("embedding", snap.step, snap.embedding, full=True)
        self.statusBar().showMessage(
            f"Refining the projection of step {snap.step} (full-quality UMAP)…", 5000
        )
        return True

    def _on_frame(self, key: str, step, coords, method: str) -> None:
        self.session.add_frame(Frame(key, step, coords, method))
        if self.shown_snapshot is not None:
            self._show_frames(self.shown_snapshot)

    def _on_run_failed(self, message: str) -> None:
        self.show_error("Training stopped", message)
        if not self._redraw_timer.isActive():
            self._redraw_timer.start()

    def _on_state_changed(self, state: str) -> None:
        self._update_actions()
        if not self.runner.is_active and self._after_stop is not None:
            action, self._after_stop = self._after_stop, None
            action()
        if state == R.FINISHED and not self._redraw_timer.isActive():
            self._redraw_timer.start()
        # The Runs list shows a run from its start, and its final figures at its end.
        self.runs.busy = {self.record_dir} if self.runner.is_active and self.record_dir else set()
        if state in (R.RUNNING, R.FINISHED, R.FAILED, R.IDLE):
            self.runs.refresh()

    def _on_validity_changed(self, _valid: bool) -> None:
        self._update_actions()

    def _on_projection_params_changed(self) -> None:
        cfg = self.params.config()
        if cfg is None:
            return
        p = cfg.projection
        self.projector.set_params(method=p.method, n_neighbors=p.n_neighbors,
                                  min_dist=p.min_dist, metric=p.metric)
        # Re-project what is on screen with the new settings.
        snap = self.shown_snapshot
        if snap is not None and self.store.probe is not None:
            self.projector.request("raw", None, self.store.probe.x)
            self.projector.request("embedding", snap.step, snap.embedding)

    # ------------------------------------------------------------------ drawing
    def refresh(self) -> None:
        """Redraw every panel now from the newest (or the scrubbed-to) snapshot."""
        self._redraw(staggered=False)

    def _on_redraw(self) -> None:
        self._redraw(staggered=True)

    def _redraw(self, staggered: bool) -> None:
        if not len(self.store):
            self._update_status(None)
            return
        self.timeline.set_steps(self.store.steps)
        if self.timeline.is_live:
            snap = self.store.latest
        else:
            snap = self.store.at(self.timeline.index) or self.store.latest
        self._show(snap, staggered=staggered, history=True)
        self._update_status(self.store.latest)

    def _show(self, snapshot, staggered: bool = False, history: bool = False) -> None:
        """Point every panel at `snapshot`.

        Staggered: one panel per event-loop turn, so Qt paints each panel separately
        and the loop never spends a whole-window repaint in one go.
        """
        self.shown_snapshot = snapshot

        def curves():
            if history:
                self.curves.set_history(self.store.rows)
            self.curves.set_snapshot(snapshot)

        def projections():
            self.representation.set_snapshot(snapshot)
            self.input_space.set_snapshot(snapshot)
            self._show_frames(snapshot)

        updates = [
            lambda: self.timeline.set_snapshot(snapshot),
            lambda: self.collisions.set_snapshot(snapshot),
            curves,
            lambda: self.locality.set_snapshot(snapshot),
            lambda: self.lsh.set_snapshot(snapshot),
            projections,
            lambda: self.samples.set_snapshot(snapshot),
            self._apply_selection,  # the selection follows the timeline
        ]
        self._stagger_timer.stop()
        if staggered:
            self._pending_updates = updates
            self._stagger_timer.start()
        else:
            self._pending_updates = []
            for update in updates:
                update()

    def _on_stagger_tick(self) -> None:
        if self._pending_updates:
            self._pending_updates.pop(0)()
        if not self._pending_updates:
            self._stagger_timer.stop()

    # ------------------------------------------------------------------ selection
    def _connect_selection(self) -> None:
        for panel in (self.representation, self.input_space):
            panel.point_clicked.connect(self.selection.select_point)
            panel.rows_selected.connect(self.selection.select_rows)
        self.collisions.cell_clicked.connect(self.selection.select_pair)
        self.inspector.table_chosen.connect(self.selection.set_table)
        self.selection.changed.connect(self._on_selection_changed)
        esc = QtGui.QShortcut(QtGui.QKeySequence("Escape"), self)
        esc.activated.connect(self.selection.clear)

    def _on_selection_changed(self) -> None:
        dock = self.docks["inspector"]
        if self.selection.kind != "none" and (not dock.isVisible()
                                              or dock.visibleRegion().isEmpty()):
            self._raise_dock("inspector")  # only when hidden: raising re-lays the docks
        self._apply_selection()

    def _apply_selection(self) -> None:
        """Mark the selection in every panel at the snapshot on screen."""
        snap = self.shown_snapshot
        codes = None
        if snap is not None and snap.probe is not None and self.selection.kind == "point":
            if self._codes is None or self._codes[0] != id(snap):
                cfg = getattr(self, "run_config", None)
                seed = cfg.seed if cfg is not None else 0
                self._codes = (id(snap), bucket_codes(snap, seed))
            codes = self._codes[1]
            if self.inspector.episodes is None and getattr(self, "run_config", None):
                from engine.training import probe_episodes

                self.inspector.episodes = probe_episodes(self.run_config, snap.probe)
        h = self.selection.highlight(snap, codes)
        marked = None if h.empty else h
        for panel in (self.representation, self.input_space, self.collisions, self.locality):
            panel.set_highlight(marked)
        self.inspector.show_selection(self.selection, h, snap, codes)

    def _show_frames(self, snapshot) -> None:
        frame = self.store.frame_for(snapshot.step)
        note = self._projection_note(frame.method if frame is not None else None)
        if frame is None:
            self.representation.set_frame(None, None, None)
        else:
            # Always re-stated: the header says how far the frame lags the shown step.
            self.representation.set_frame(frame.coords, frame.method, frame.step,
                                          shown_step=snapshot.step, note=note)
        raw = self.store.raw_frame
        if raw is not None and raw.coords is not self.input_space.coords:
            self.input_space.set_frame(raw.coords, raw.method, None)
        if frame is None:
            self.status_projection.setText("projection: waiting")
        else:
            exact = "" if frame.step == snapshot.step else " (nearest)"
            self.status_projection.setText(
                f"projection: {frame.method.upper()} of step {frame.step}{exact}"
            )

    def _projection_note(self, method: str | None) -> str:
        """"UMAP starting…" while PCA stands in for a UMAP that is still compiling."""
        cfg = getattr(self, "run_config", None) or self.params.config()
        wanted = cfg.projection.method if cfg is not None else None
        if self.projector.failure is not None:
            return "projection worker failed: PCA only (Run > Retry projection)"
        if wanted == "umap" and method is not None and not method.startswith("umap"):
            return "UMAP starting…"
        return ""

    def _on_scrubbed(self, index: int) -> None:
        snap = self.store.at(index)
        if snap is None:
            return
        self._show(snap)
        if self.store.recorded_frame(snap.step) is None:
            self.projector.request("embedding", snap.step, snap.embedding)

    def _on_live_changed(self, live: bool) -> None:
        if live and self.store.latest is not None:
            self._show(self.store.latest)

    def _update_status(self, snap) -> None:
        state = self.runner.state
        if snap is None:
            self.progress.setValue(0)
            self.status_step.setText("step –")
            self.status_rate.setText("– steps/s")
            self.status_eta.setText("ETA –")
            self.status_projection.setText("projection –")
            self.status_figures.setText("")
            self._show_health()
            return
        self._show_health()
        unseen = (getattr(snap, "unseen_same_class_collision", float("nan")),
                  getattr(snap, "unseen_different_class_collision", float("nan")))
        self.status_figures.setText(
            f"one-shot {snap.oneshot_trained:.2f} · buckets unseen {unseen[0]:.2f}/"
            f"{unseen[1]:.2f}, all {snap.same_class_collision:.2f}/"
            f"{snap.different_class_collision:.2f}")
        self.status_figures.setToolTip(
            "one-shot accuracy on unseen classes; bucket-collision rate same class / "
            "different class, among unseen classes and among all probe classes")
        total = max(snap.total_steps, 1)
        self.progress.setValue(int(1000 * snap.step / total))
        self.status_step.setText(f"step {snap.step}/{snap.total_steps}")
        self.status_rate.setText(f"{snap.steps_per_s:.0f} steps/s")
        if state in (R.RUNNING, R.PAUSING) and snap.steps_per_s > 0 and not snap.done:
            eta = (snap.total_steps - snap.step) / snap.steps_per_s
            self.status_eta.setText(f"ETA {eta:.0f} s" if eta < 120 else f"ETA {eta / 60:.1f} min")
        else:
            self.status_eta.setText("ETA –")
        self.status_device.setText(f"device {snap.device}")

    def _show_health(self) -> None:
        """The collapse marker in the status bar and on the curves (like a divergence)."""
        latest = self.store.latest
        reason = getattr(latest, "collapsed", "") if latest is not None else ""
        if self._collapsed_at is not None:
            self.status_health.setText(
                f"⚠ collapsed at step {self._collapsed_at}" + (f": {reason}" if reason else "")
            )
            self.status_health.setToolTip(
                "The network has collapsed: its loss is far above its start or its buckets "
                "hold almost all points. Its figures describe a failed run."
            )
        self.status_health.setVisible(self._collapsed_at is not None)
        if self.curves.collapsed_at != self._collapsed_at:
            self.curves.set_collapse(self._collapsed_at)

    def _update_actions(self) -> None:
        state = self.runner.state
        active = self.runner.is_active
        valid = self.params.is_valid()
        self.act_start.setEnabled(valid and not active)
        self.act_pause.setEnabled(state in (R.STARTING, R.RUNNING, R.PAUSING, R.PAUSED))
        self.act_pause.setText("Resume" if state in (R.PAUSING, R.PAUSED) else "Pause")
        self.act_step.setEnabled(state in (R.RUNNING, R.PAUSING, R.PAUSED) or
                                 (valid and not active))
        self.act_stop.setEnabled(active and state != R.STOPPING)
        self.act_reset.setEnabled(True)
        label = {
            R.IDLE: "ready" if valid else "fix the highlighted parameters to start",
            R.STARTING: "building the experiment…",
            R.RUNNING: "training",
            R.PAUSING: "pausing at the next snapshot…",
            R.PAUSED: "paused",
            R.STOPPING: "stopping…",
            R.FINISHED: "finished",
            R.FAILED: "failed: see the message",
        }[state]
        last = self.store.latest
        if state == R.FINISHED and last is not None and last.step < last.total_steps:
            label = f"stopped at step {last.step} of {last.total_steps}"
        if self._collapsed_at is not None:
            label += " · collapsed"
        self.run_label.setText(label)
        self.params.set_locked(
            active,
            f"A run is {state}: its settings are read-only. Stop or Reset it to change them "
            "(projection settings apply now).",
        )

    # ------------------------------------------------------------------ files
    def show_error(self, title: str, message: str) -> None:
        """Status bar plus a non-blocking message box; the window's state is untouched."""
        self.last_error = message
        self.statusBar().showMessage(f"{title}: {message}", 15000)
        if self._closing:
            return
        if self.error_box is not None:
            self.error_box.close()
        box = QtWidgets.QMessageBox(QtWidgets.QMessageBox.Icon.Warning, title, message,
                                    QtWidgets.QMessageBox.StandardButton.Ok, self)
        box.setAttribute(QtCore.Qt.WidgetAttribute.WA_DeleteOnClose)
        box.open()
        self.error_box = box
        box.finished.connect(lambda _r: setattr(self, "error_box", None))

    def open_run(self, path: str | Path) -> bool:
        """Show a recorded run (made here, headless or on another machine): every panel,
        the timeline and the exports work on it as on a live run. A folder that is not a
        readable run leaves the window as it was and says why."""
        from engine.record import RunRecordError

        if self.runner.is_active:
            self.show_error("Cannot open the run",
                            "a run is training: stop it first (Run > Stop), then open the run")
            return False
        try:
            session = RunSession.open(path, self.store.capacity)
        except (RunRecordError, OSError) as exc:
            self.show_error("Cannot open the run", str(exc))
            return False
        self.runner.reset()
        self._clear_run()
        self.session = session
        reader, store = session.reader, session.store
        cfg = reader.config
        self.lsh.config = cfg
        self.run_config = cfg
        self.params.set_config(cfg)
        p = cfg.projection
        self.projector.set_params(method=p.method, n_neighbors=p.n_neighbors,
                                  min_dist=p.min_dist, metric=p.metric, seed=cfg.seed)
        if store.raw_frame is None:
            self.projector.request("raw", None, store.probe.x)
        latest = store.latest
        if store.recorded_frame(latest.step) is None:
            self.projector.request("embedding", latest.step, latest.embedding)
        self.refresh()
        problems = f" ({len(reader.problems)} damaged files skipped)" if reader.problems else ""
        self.run_label.setText(f"recorded run: {reader.display_status}")
        self.statusBar().showMessage(
            f"Opened {reader.path.name}: {reader.display_status}, {len(store)} snapshots"
            f"{problems}", 10000)
        return True

    def show_sweeps(self):
        """The Sweep window (one per main window); its runs open here."""
        if self.sweeps is None:
            from app.sweep_view import SweepWindow

            self.sweeps = SweepWindow(self.runs_dir.parent / "gsh-sweeps", parent=self)
            self.sweeps.setWindowFlag(QtCore.Qt.WindowType.Window)
            self.sweeps.open_run_requested.connect(self._on_sweep_run_requested)
        self.sweeps.show()
        self.sweeps.raise_()
        return self.sweeps

    def open_sweep(self, folder: str | Path) -> bool:
        """Show a sweep folder in the Sweep window."""
        return self.show_sweeps().open_sweep(folder)

    def _on_sweep_run_requested(self, path: str) -> None:
        if self.open_run(path):
            self.raise_()
            self.activateWindow()

    def _on_open_sweep_triggered(self) -> None:
        folder = QtWidgets.QFileDialog.getExistingDirectory(
            self, "Open a sweep folder", str(self.runs_dir.parent))
        if folder:
            self.open_sweep(folder)

    def set_runs_dir(self, folder: str | Path) -> None:
        """Record new runs into `folder` and list its runs (remembered across launches)."""
        self.runs_dir = Path(folder)
        self.settings.setValue("runs/folder", str(self.runs_dir))
        self.runs.set_folder(self.runs_dir)

    def _on_open_run_triggered(self) -> None:
        folder = QtWidgets.QFileDialog.getExistingDirectory(
            self, "Open a recorded run", str(self.runs_dir))
        if folder:
            self.open_run(folder)

    def _on_runs_folder_triggered(self) -> None:
        folder = QtWidgets.QFileDialog.getExistingDirectory(
            self, "Record runs in", str(self.runs_dir))
        if folder:
            self.set_runs_dir(folder)

    def load_config(self, path: str | Path) -> bool:
        """Load an experiment TOML into the parameters in one step.

        The whole file is read and validated first; a bad file, or a run in progress,
        changes nothing (neither the editors nor the config Start runs) and says why.
        """
        if self.runner.is_active:
            self.show_error("Cannot load experiment",
                            f"a run is {self.runner.state}: stop it (or Reset) first, then "
                            f"open {Path(path).name} again")
            return False
        try:
            self.params.set_config(C.load(path))
        except C.ConfigError as exc:
            self.show_error("Cannot load experiment", str(exc))
            return False
        self.config_path = Path(path)
        self._add_recent(Path(path))
        self.statusBar().showMessage(f"Loaded {path}", 5000)
        self._update_actions()
        return True

    def save_config(self, path: str | Path) -> bool:
        cfg = self.params.config()
        if cfg is None:
            self.show_error("Cannot save experiment", "fix the highlighted parameters first")
            return False
        try:
            cfg.save(path)
        except OSError as exc:
            self.show_error("Cannot save experiment", str(exc))
            return False
        self.config_path = Path(path)
        self._add_recent(Path(path))
        self.statusBar().showMessage(f"Saved {path}", 5000)
        return True

    def export_window(self, path: str | Path) -> Path:
        """The whole window as PNG, or as a vector PDF (by suffix)."""
        if Path(path).suffix.lower() == ".pdf":
            return widget_to_pdf(self, path)
        return _save_grab(self, path)

    def export_panel(self, name: str, path: str | Path) -> Path:
        """Write one panel as PNG, SVG or vector PDF (by suffix); non-plot panels as a PNG
        grab or a PDF."""
        if name not in self.panels:
            raise C.ConfigError("--panel", f"unknown panel {name!r} (choose from "
                                f"{', '.join(self.panels)})")
        path = Path(path)
        panel = self.panels[name]
        pdf = path.suffix.lower() == ".pdf"
        if name in self.plot_panels:
            if pdf:
                return scene_to_pdf(panel.graphics.scene(), panel.graphics, path,
                                    title=f"GSH Lab: {panel.title}")
            return panel.export(path)
        return widget_to_pdf(panel, path) if pdf else _save_grab(panel, path)

    def export_all(self, folder: str | Path) -> list[Path]:
        """Every plot panel as PNG, SVG and PDF, plus the whole window, into `folder`."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        out = [self.export_window(folder / "window.png"),
               self.export_window(folder / "window.pdf")]
        for name in self.plot_panels:
            for fmt in EXPORT_FORMATS:
                out.append(self.export_panel(name, folder / f"{name}.{fmt}"))
        return out

    def export_history_csv(self, path: str | Path) -> Path:
        """The run's history, one row per snapshot (the same writer as the CLI's record)."""
        from engine.record import write_history_csv

        return write_history_csv(path, self.store.rows)

    def export_embeddings_npz(self, path: str | Path) -> Path:
        """The probe embeddings of the snapshot on screen, with its 2-D frames when drawn
        (the same schema and writer as the CLI's embeddings.npz)."""
        from engine.record import write_embeddings_npz

        snap = self.shown_snapshot or self.store.latest
        if snap is None or snap.probe is None:
            raise ValueError("no snapshot yet: start a run first")
        frame = self.store.frames.get(snap.step)
        raw = self.store.raw_frame
        return write_embeddings_npz(
            path, snap, embedding_2d=None if frame is None else frame.coords,
            input_2d=None if raw is None else raw.coords,
        )

    # file-dialog front ends (not used by tests)
    def _ask_save(self, title: str, filt: str, default: str) -> str | None:
        path, _ = QtWidgets.QFileDialog.getSaveFileName(self, title, default, filt)
        return path or None

    def _guard(self, what: str, fn, *args) -> None:
        try:
            out = fn(*args)
        except (OSError, ValueError, RuntimeError) as exc:
            self.show_error(f"Cannot {what}", str(exc))
            return
        self.statusBar().showMessage(f"Wrote {out if not isinstance(out, list) else args[0]}",
                                     5000)

    def _on_export_window_triggered(self) -> None:
        path = self._ask_save("Export window", "PNG image (*.png);;PDF, vector (*.pdf)",
                              "gsh-lab.png")
        if path:
            self._guard("export the window", self.export_window, path)

    def _on_export_panel_requested(self, name: str, fmt: str) -> None:
        filt = {"svg": "SVG image (*.svg)", "pdf": "PDF, vector (*.pdf)"}.get(
            fmt, "PNG image (*.png)")
        path = self._ask_save(f"Export {self.panels[name].title}", filt, f"{name}.{fmt}")
        if path:
            if not path.lower().endswith(f".{fmt}"):
                path += f".{fmt}"
            self._guard("export the panel", self.export_panel, name, path)

    def _on_export_all_triggered(self) -> None:
        folder = QtWidgets.QFileDialog.getExistingDirectory(self, "Export all panels to")
        if folder:
            self._guard("export the panels", self.export_all, folder)

    def _on_export_csv_triggered(self) -> None:
        path = self._ask_save("Export history", "CSV (*.csv)", "history.csv")
        if path:
            self._guard("export the history", self.export_history_csv, path)

    def _on_export_npz_triggered(self) -> None:
        path = self._ask_save("Export embeddings", "NumPy archive (*.npz)", "embeddings.npz")
        if path:
            self._guard("export the embeddings", self.export_embeddings_npz, path)

    def export_animation(self, path: str | Path, panel: str = "representation", fps: int = 30,
                         seconds: float = 10.0, size: str = "1280x720", show_progress=True):
        """Render the run on screen (live or reopened) as an MP4 or GIF without blocking the
        window (app/animate.py); returns the AnimationExport (its `finished` signal reports)."""
        from app.animate import AnimationExport, movie_options

        if self.record_dir is None:
            raise ValueError("no recorded run on screen: start or open a run first")
        options = movie_options(path, panel, fps, seconds, size)
        export = AnimationExport(self.record_dir, options, parent=self,
                                 show_progress=show_progress)
        export.finished.connect(self._on_animation_finished)
        self._animation_export = export
        return export

    def _on_animation_finished(self, path: str, message: str) -> None:
        if path or self._animation_export.cancelled:
            self.statusBar().showMessage(message, 10000)
        else:
            self.show_error("Cannot export the animation", message)

    def _on_export_animation_triggered(self) -> None:
        from app.animate import AnimationDialog

        dialog = AnimationDialog(str(self.runs_dir.parent / "gsh-lab.mp4"), self)
        if dialog.exec() and dialog.options is not None:
            o = dialog.options
            try:
                self.export_animation(o.out, o.panel, o.fps, o.seconds,
                                      f"{o.size[0]}x{o.size[1]}")
            except (OSError, ValueError) as exc:
                self.show_error("Cannot export the animation", str(exc))

    def _on_open_triggered(self) -> None:
        path, _ = QtWidgets.QFileDialog.getOpenFileName(
            self, "Open experiment", str(C.PRESET_DIR), "Experiment (*.toml)"
        )
        if path:
            self.load_config(path)

    def _on_save_triggered(self) -> None:
        path = self._ask_save("Save experiment", "Experiment (*.toml)", "experiment.toml")
        if path:
            self.save_config(path)

    def _raise_dock(self, name: str) -> None:
        dock = self.docks[name]
        dock.show()
        dock.raise_()

    # ------------------------------------------------------------------ shutdown
    def shutdown(self) -> None:
        """Stop the worker and the projection process; safe to call twice."""
        if self._closing:
            return
        self._closing = True
        self._redraw_timer.stop()
        self._stagger_timer.stop()
        # The engine polls an abort flag inside long measurements, so this returns in
        # well under a second; a worker still busy after that is detached, not waited for.
        self.runner.reset(timeout_ms=1500)
        self.projector.shutdown()
        self.lsh.wait(2000)  # a b/L recomputation finishing in the thread pool
        if self.sweeps is not None:
            self.sweeps.close()  # a running sweep stops at its runs' next snapshots
        self._warm_up.join(timeout=30)

    def showEvent(self, event: QtGui.QShowEvent) -> None:
        super().showEvent(event)
        # Dock sizes only stick once the window has its real size: on a first launch
        # (no saved layout) apply the default proportions after the first show.
        if not self._layout_restored and not getattr(self, "_sized", False):
            self._sized = True
            QtCore.QTimer.singleShot(0, self._default_sizes)
        if not getattr(self, "_fitted", False):
            # The window manager's frame is known once the window is mapped: if the frame
            # sticks out of the screen (status bar below it), shrink the window to fit.
            self._fitted = True
            QtCore.QTimer.singleShot(250, self._fit_after_show)
        QtCore.QTimer.singleShot(0, self._unelide_tabs)

    def _unelide_tabs(self) -> None:
        """Dock tabs show their whole title and scroll when they do not fit (a narrow
        dock at 1366x768 elided them to "Para…", "R…")."""
        for bar in self.findChildren(QtWidgets.QTabBar):
            bar.setElideMode(QtCore.Qt.TextElideMode.ElideNone)
            bar.setUsesScrollButtons(True)

    def _fit_after_show(self) -> None:
        screen = self.screen()
        framed = self.frameGeometry().size() != self.geometry().size()  # a window manager's
        if (framed and screen is not None and not self.isMaximized() and not self.isFullScreen()
                and not screen.availableGeometry().contains(self.frameGeometry())):
            self.fit_to_screen(keep_size=True)

    def closeEvent(self, event: QtGui.QCloseEvent) -> None:
        self._save_settings()
        self.shutdown()
        super().closeEvent(event)


def _save_grab(widget: QtWidgets.QWidget, path: str | Path) -> Path:
    """A widget's pixels as an image file (format by suffix), written atomically."""

    def write(tmp: Path) -> None:
        if not widget.grab().save(str(tmp)):
            raise OSError(f"cannot write {path}: the image could not be encoded")

    return atomic_write(path, write)
