"""The main window: it wires the run on screen (a RunSession, live or reopened) to the
panels, the run controls, the selection, the Runs dock and the Sweep window. Its other
parts are mixins: window_actions (actions, menus), window_layout (docks, geometry),
window_status (status bar), window_files (configs and exports) and window_runs (opening
runs, comparisons and the Sweep window).

Snapshots arrive from the Runner (a child process trains; its reader thread -> queued
signal), go into the
session's SnapshotStore and out to the projection service. What is on screen is one View
(app.view: the run, one snapshot, its frames) that every panel receives through
`set_view(view)`; redraws are throttled (superqt's qthrottled) to at most one per REDRAW_MS,
always of the newest snapshot (or the one the timeline points at), so a fast engine
never queues redraws.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PySide6 import QtCore, QtGui, QtWidgets
from superqt.utils import qthrottled

from app import panel_list
from app.palette import palette
from app.panels.base import BUILDING_TEXT, MarksSelection, PlotPanel, ViewPanel
from app.projector import ProjectionClient
from app.qtapp import configure_pyqtgraph, fresh_settings
from app.runner import FAILED, FINISHED, IDLE, RUNNING, STARTING, Runner
from app.selection import Selection, bucket_codes
from app.session import RunSession
from app.store import DEFAULT_CAPACITY, Frame, SnapshotStore
from app.view import View
from app.window_actions import ActionsMixin
from app.window_files import FilesMixin
from app.window_layout import LayoutMixin
from app.window_runs import RunsMixin
from app.window_status import TORCH_LOADING, StatusMixin
from engine.config import ExperimentConfig, default_config, load_preset
from engine.snapshot import RunInfo, Snapshot

if TYPE_CHECKING:
    from engine.projection import ProjectionService
    from engine.run_process import Built

REDRAW_MS = 100


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


WARM_UP_DELAY_MS = 300  # after the window's first paint, the standby training child starts
LOADING_POLL_MS = 250  # how often the panels' "loading torch" notes are checked
CLOSE_WORKER_S = 0.3  # the projection worker's time to stop on close
CLOSE_RUN_MS = 900  # an aborted run's time to record "stopped" and exit before it is killed


class MainWindow(ActionsMixin, LayoutMixin, StatusMixin, FilesMixin, RunsMixin,
                 QtWidgets.QMainWindow):
    """GSH Lab's window. Every user action also has a method taking plain arguments."""

    @classmethod
    def offscreen(cls, config: ExperimentConfig | None, size: tuple[int, int], *,
                  settings: QtCore.QSettings | None = None, hidden: bool = False,
                  run: str | Path | None = None, **kwargs: Any) -> MainWindow:
        """A window for figures and movies: fresh settings (never the user's saved layout)
        unless given, the default layout at `size`, shown (`hidden`: never on screen).
        `run`: a recorded run opened before the window is laid out (as movies draw it);
        OSError when it cannot be shown."""
        window = cls(config, settings=settings or fresh_settings("gsh-lab-screenshot"),
                     **kwargs)
        if run is not None and not window.open_run(run):
            error = window.last_error
            window.shutdown()
            window.close()
            window.deleteLater()
            raise OSError(f"cannot show {run} in the window: {error}")
        if hidden:
            window.setAttribute(QtCore.Qt.WidgetAttribute.WA_DontShowOnScreen)
        window.resize(*size)
        window.show()
        window.reset_layout()
        QtWidgets.QApplication.processEvents()
        return window

    def __init__(
        self,
        config: ExperimentConfig | None = None,
        settings: QtCore.QSettings | None = None,
        projection_factory: Callable[..., ProjectionService | None] | None = None,
        store_capacity: int = DEFAULT_CAPACITY,
        runs_dir: str | Path | None = None,
    ) -> None:
        super().__init__()
        # Threads beside the event loop (the run's reader, the LSH panel's pool): a 1 ms
        # GIL switch interval (default 5 ms) hands the GIL over sooner.
        sys.setswitchinterval(0.001)
        configure_pyqtgraph()
        palette()
        self.settings = settings if settings is not None else default_settings()
        self.setWindowTitle("GSH Lab: deep networks as locality-sensitive hashes")
        self.setDockNestingEnabled(True)
        self.last_error: str | None = None
        self.error_box: QtWidgets.QMessageBox | None = None
        self._closing = False

        self.runs_dir = Path(runs_dir) if runs_dir is not None else default_runs_dir(
            self.settings)
        self.runner = Runner(self)
        self.start_config = config  # what the parameter panel shows first
        # Every panel, from the one list (app.panel_list): self.params, self.curves, ...
        self.panel_specs = panel_list.PANELS
        self.panels = {}
        self.plot_panels = {}
        self.highlight_panels = []
        for spec in self.panel_specs:
            panel = self.panels[spec.name] = spec.make(self)
            setattr(self, spec.attribute, panel)
            if spec.view:
                if not isinstance(panel, PlotPanel):
                    raise TypeError(f"panel {spec.name}: a view panel must be a PlotPanel")
                self.plot_panels[spec.name] = panel
            if spec.highlight:
                if not isinstance(panel, MarksSelection):
                    raise TypeError(f"panel {spec.name}: a highlight panel needs set_highlight")
                self.highlight_panels.append(panel)
        p = (self.params.config() or default_config()).projection
        self.projector = ProjectionClient(
            {"method": p.method, "n_neighbors": p.n_neighbors, "min_dist": p.min_dist,
             "metric": p.metric, "seed": (self.params.config() or default_config()).seed},
            service_factory=projection_factory,
            parent=self,
        )
        self.session = RunSession(store_capacity, projector=self.projector)

        self.selection = Selection(self)
        self._codes: tuple | None = None  # (the snapshot, its bucket codes)
        self.sweeps = None  # the Sweep window, made when first shown
        self.follower = None  # app.follow.RunFollower of a run recorded elsewhere
        self.compare_windows: list = []  # app.compare_window.CompareWindow
        self._build_actions()
        self._build_menus()
        self._build_toolbar()
        self._build_docks()
        self._build_status()

        # The first call draws at once, later ones at most every REDRAW_MS (the last wins).
        self._request_redraw = qthrottled(self._on_redraw, timeout=REDRAW_MS, leading=True,
                                          parent=self)
        self._round: list | None = None  # the updates of the View being drawn
        self._round_view: View | None = None
        self._redraw_after_round = False
        self._frozen: list[QtWidgets.QWidget] = []  # what the round under way froze
        self._frames_waiting = False  # projection frames arrived since the last redraw
        self._full_waiting = False  # a redraw of every panel was asked for
        # One step of a round per turn, re-armed after each: a timer or input event that
        # came due during a step runs before the next one.
        self._stagger_timer = QtCore.QTimer(self)
        self._stagger_timer.setSingleShot(True)
        self._stagger_timer.setInterval(0)
        self._stagger_timer.timeout.connect(self._on_stagger_tick)

        self.runner.state_changed.connect(self._on_state_changed)
        self.runner.experiment_ready.connect(self._on_experiment_ready)
        self.runner.run_info_ready.connect(self._on_run_info)
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
        self.runs.compare_requested.connect(self.compare_runs)
        self._connect_selection()
        self.runs.folder_change_requested.connect(self._on_runs_folder_triggered)
        for panel in self.plot_panels.values():
            panel.export_requested.connect(self._on_export_panel_requested)

        # an action waiting for the active run to end
        self._after_stop: Callable[[], object] | None = None
        self._restore_settings()
        self._update_actions()
        # The standby training child (app.runner) loads torch and its optimisers (~3-4 s)
        # once the window is on screen, while the user reads it, so Start does not wait.
        QtCore.QTimer.singleShot(WARM_UP_DELAY_MS, self, self.start_warm_up)
        self._loading_timer = QtCore.QTimer(self)  # the panels say what is still loading
        self._loading_timer.setInterval(LOADING_POLL_MS)
        self._loading_timer.timeout.connect(self._show_loading)
        self._loading_timer.start()
        self._show_loading()

    # ------------------------------------------------------------------ run control
    def start(self) -> bool:
        cfg = self.params.config()
        if cfg is None or self.runner.is_active:
            return False
        self._clear_run()
        p = cfg.projection
        self.projector.set_params(method=p.method, n_neighbors=p.n_neighbors,
                                  min_dist=p.min_dist, metric=p.metric, seed=cfg.seed)
        self.session = RunSession.live(self.runs_dir, cfg, self.store.capacity,
                                       projector=self.projector)
        if self.session.record_error:
            self._on_recording_stopped(self.session.record_error)
        self.runner.start(cfg, record_dir=self.session.record_dir)
        return True

    # The run on screen lives in its session (config, RunInfo, record folder, store, frames).
    @property
    def store(self) -> SnapshotStore:
        return self.session.store

    @property
    def run_config(self) -> ExperimentConfig | None:
        return self.session.config

    @property
    def shown(self) -> View | None:
        """What the panels show (the session's View)."""
        return self.session.shown

    @property
    def shown_snapshot(self) -> Snapshot | None:
        """The snapshot on screen (None before the first)."""
        return self.shown.snapshot if self.shown is not None else None

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
        elif len(self.store):  # a finished run on screen: Step does not start another
            self.statusBar().showMessage(
                "The run has finished: Start (F5) begins a new one.", 5000)
        else:
            self._on_start_triggered()
            if self.runner.is_active:
                self.runner.step()

    def stop_then(self, action: Callable[[], object], what: str) -> bool:
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
        self.stop_then(lambda: self.params.set_config(load_preset(name)),
                       f"load the preset {name!r}")

    def reset(self) -> None:
        self.runner.reset()
        self._clear_run()
        self.statusBar().showMessage("Reset: ready to start", 3000)

    def _clear_run(self) -> None:
        self._request_redraw.cancel()
        self._stagger_timer.stop()
        self._round = None
        self._redraw_after_round = self._frames_waiting = self._full_waiting = False
        self._freeze(False)
        self._drop_ahead()
        # nothing on screen, no record
        self.session = RunSession(self.store.capacity, projector=self.projector)
        self.projector.new_run()
        for panel in self.plot_panels.values():
            panel.clear()
        self.selection.clear()
        self.inspector.clear()
        self.timeline.clear()
        self.timeline.live.setChecked(True)
        self._update_status(None)
        self._update_actions()

    # ------------------------------------------------------------------ engine events
    def _show_building(self, what: str) -> None:
        """While a run is built and its step 0 measured, the panels with nothing to show
        yet say so (not "no run yet")."""
        if self._loading()[0]:
            what = f"{TORCH_LOADING[:-1]} first, then {what}"
        for panel in self.plot_panels.values():
            if panel.is_empty:
                panel.set_empty(True, f"{BUILDING_TEXT}\n{what}")

    def _on_experiment_ready(self, built: Built) -> None:
        self._show_building("measuring step 0: the untrained network's and the raw "
                            "input's baselines, the probes and the first snapshot")
        self.status_device.setText(f"device {built.device}")
        self.session.project_input(built.probe_x)  # while step 0 is measured

    def _on_run_info(self, info: RunInfo) -> None:
        self.session.run_info = info

    def _on_snapshot(self, snapshot: Snapshot) -> None:
        recorded = self.session.recorded
        self.session.add_snapshot(snapshot)  # also asks for its projection
        error = self.session.record_error
        if recorded and error is not None:  # it stopped recording just now
            self._on_recording_stopped(error)
        self._ask_redraw()

    def _on_projection_failed(self, message: str) -> None:
        """The projection worker was given up on: say so where the projection is shown."""
        text = f"Projection: {message}. Run > Retry projection starts a new worker."
        self.statusBar().showMessage(text)
        self.status_projection.setToolTip(text)
        self.act_retry_projection.setEnabled(True)
        self._show_frames()

    def retry_projection(self) -> bool:
        """Start a fresh projection worker and re-request what is on screen."""
        if not self.projector.retry():
            return False
        self.act_retry_projection.setEnabled(False)
        self.status_projection.setToolTip("")
        self.statusBar().showMessage("Restarting the projection worker…", 5000)
        self._reproject()
        return True

    def _reproject(self) -> None:
        """Ask again for the frames of what is on screen (new worker or new settings)."""
        if self.shown is not None:
            self.session.project_input()
            self.session.project(self.shown.snapshot)

    def refine_projection(self) -> bool:
        """Ask for a full-quality UMAP of the snapshot on screen (replaces its fast frame)."""
        snap = self.shown_snapshot
        if snap is None:
            self.statusBar().showMessage("Nothing to refine yet: start a run first.", 5000)
            return False
        self.session.project(snap, full=True)
        self.statusBar().showMessage(
            f"Refining the projection of step {snap.step} (full-quality UMAP)…", 5000
        )
        return True

    def _on_frame(self, key: str, step: int | None, coords: np.ndarray, method: str) -> None:
        self.session.add_frame(Frame(key, step, coords, method))
        self._frames_waiting = True  # shown with the next redraw (same throttle)
        self._request_redraw()

    def _on_run_failed(self, message: str) -> None:
        self.show_error("Training stopped", message)
        self._ask_redraw()

    def _on_state_changed(self, state: str) -> None:
        self._update_actions()
        if state == STARTING and self.run_config is not None:
            d = self.run_config.data
            self._show_building(f"drawing the {d.family} data ({d.seen_classes} seen and "
                                f"{d.unseen_classes} unseen classes) and the network")
        if not self.runner.is_active and self._after_stop is not None:
            action, self._after_stop = self._after_stop, None
            action()
        if state == FINISHED:
            self._ask_redraw()
        elif self.shown is not None and self._round is None:
            self._update_status(self.shown)  # paused: no rate, no ETA
        # The Runs list shows a run from its start, and its final figures at its end.
        self.runs.busy = {self.record_dir} if self.runner.is_active and self.record_dir else set()
        if state in (RUNNING, FINISHED, FAILED, IDLE):
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
        self._reproject()  # what is on screen, with the new settings

    # ------------------------------------------------------------------ drawing
    def refresh(self) -> None:
        """Redraw every panel now from the newest (or the scrubbed-to) snapshot."""
        self._redraw(staggered=False)

    def _ask_redraw(self) -> None:
        """Redraw every panel soon (throttled), even if the snapshot is the same."""
        self._full_waiting = True
        self._request_redraw()

    def _on_redraw(self) -> None:
        self._redraw(staggered=True)

    def _redraw(self, staggered: bool) -> None:
        """Show the snapshot the timeline points at; when only projection frames arrived
        for the snapshot on screen, only the projection panels are redrawn."""
        if not len(self.store) or self.session.run_info is None or self.session.config is None:
            self._update_status(None)
            return
        if staggered and self._round is not None:
            self._redraw_after_round = True  # a round is never split: the next one follows
            return
        if self.timeline.is_live:
            snap = self.store.latest
        else:
            snap = self.store.at(self.timeline.index) or self.store.latest
        if snap is None:  # the store has rows but no snapshot it can read
            self._update_status(None)
            return
        same = self.shown is not None and snap is self.shown.snapshot
        frames_only = staggered and same and self._frames_waiting and not self._full_waiting
        self._frames_waiting = self._full_waiting = False
        if frames_only:
            self._show_frames()
        else:
            self._show(snap, staggered=staggered)

    def _show(self, snapshot: Snapshot, staggered: bool = False) -> None:
        """Show `snapshot` on every panel, the timeline and the status bar: one View for
        all of them (a round), so the screen never shows two steps at once.

        Staggered: one panel per event-loop turn, so the loop never spends a whole
        window's updates in one go; then each plot panel prepares and renders its new
        picture ahead, each in a turn of its own (PlotGraphics.prepare_ahead,
        render_ahead). The panels keep their updates off until the round's last step is
        done, so the display changes from one snapshot to the next in one paint, which
        only copies the pictures rendered ahead. A redraw
        asked for meanwhile (a newer snapshot, a projection frame) waits for the round's
        end: the throttle may skip snapshots, never split one.
        """
        view = self._round_view = self.session.show(snapshot)
        self._start_round([update for _name, update in self._panel_updates(view)],
                          self.plot_panels.values(), staggered)

    def _start_round(self, updates: list[Callable[[], None]], panels: Iterable[PlotPanel],
                     staggered: bool, widgets: list[QtWidgets.QWidget] | None = None) -> None:
        """Run `updates` (one per turn if staggered, then `panels` render ahead) with
        the screen (or just the `widgets` they change) frozen, and show the result in
        one paint."""
        if staggered:
            updates += [step for panel in panels
                        for step in (panel.graphics.prepare_ahead, panel.graphics.render_ahead)]
        self._stagger_timer.stop()
        self._drop_ahead()  # of a round this one replaces
        self._freeze(False)  # what a round this one replaces froze
        self._frozen = widgets if widgets is not None else self._screen_widgets()
        self._freeze(True)
        if staggered:
            self._round = updates
            self._stagger_timer.start()
            return
        self._round = None
        for update in updates:
            update()
        self._end_round(staggered=False)

    def _panel_updates(self, view: View) -> list[tuple[str, Callable[[], None]]]:
        """(name, update) of everything that shows `view`, in drawing order."""
        order: tuple[ViewPanel, ...] = (self.timeline, *self.plot_panels.values())
        updates: list[tuple[str, Callable[[], None]]] = [
            (panel.name, functools.partial(panel.set_view, view)) for panel in order]
        updates.append(("projection status", self._show_projection_status))
        updates.append(("status", lambda: self._update_status(view)))
        updates.append(("selection", self._apply_selection))  # it follows the timeline
        return updates

    def _screen_widgets(self) -> list[QtWidgets.QWidget]:
        """What shows the View: frozen together while a round updates them (the headline
        figures sit in the toolbar, outside the status bar)."""
        return [*self.plot_panels.values(), self.timeline, self.inspector, self.statusBar(),
                self.status_figures]

    def _freeze(self, frozen: bool) -> None:
        for widget in self._frozen:
            widget.setUpdatesEnabled(not frozen)

    def _on_stagger_tick(self) -> None:
        if self._round:
            self._round.pop(0)()
        if self._round:
            self._stagger_timer.start()
        elif self._round is not None:
            self._stagger_timer.stop()
            self._end_round()

    def _end_round(self, staggered: bool = True) -> None:
        """The round's last update is done: the display shows it at once, then whatever
        waited for it (a newer snapshot, new frames) is redrawn."""
        self._round = None
        self._freeze(False)
        if staggered:
            self._flip()
        self._drop_ahead()
        if self._redraw_after_round:
            self._redraw_after_round = False
            self._request_redraw()

    def _flip(self) -> None:
        """Paint a staggered round now, one paint per window (from the pictures the plot
        panels rendered ahead), so it is on the display before another round freezes
        the screen again; no picture outlives the round (a later paint draws the scene
        as it is then)."""
        regions: dict[QtWidgets.QWidget, QtGui.QRegion] = {}
        for widget in self._frozen:
            if widget.isVisible():
                top = widget.window()
                rect = QtCore.QRect(widget.mapTo(top, QtCore.QPoint(0, 0)), widget.size())
                regions[top] = regions.get(top, QtGui.QRegion()).united(rect)
        for top, region in regions.items():
            top.repaint(region)

    def _drop_ahead(self) -> None:
        """No picture rendered ahead outlives its round (ended, replaced or dropped)."""
        for panel in self.plot_panels.values():
            panel.graphics.drop_ahead()

    @property
    def drawing(self) -> bool:
        """A round of panel updates is under way (the display still shows the last)."""
        return self._round is not None

    def _show_frames(self) -> None:
        """A projection frame arrived (or the worker failed): the projection panels get
        the View of the snapshot on screen with its newest frames, in a round of their
        own (after a round under way, which shows its own View to the end)."""
        if self.shown is None:
            return
        if self._round is not None:
            self._frames_waiting = self._redraw_after_round = True
            return
        view = self._round_view = self.session.show(self.shown.snapshot)
        panels = (self.representation, self.input_space)
        self._start_round([*(functools.partial(panel.set_view, view) for panel in panels),
                           self._show_projection_status], panels, staggered=True,
                          widgets=[*panels, self.statusBar()])

    def _show_projection_status(self) -> None:
        view = self.shown
        frame = view.frame if view is not None else None
        if view is None or frame is None:
            self.status_projection.setText("projection: waiting")
        else:
            exact = "" if frame.step == view.step else " (nearest)"
            self.status_projection.setText(
                f"projection: {frame.method.upper()} of step {frame.step}{exact}")
        self.status_projection.setToolTip(self.status_projection.text())

    def _on_scrubbed(self, index: int) -> None:
        snap = self.store.at(index)
        if snap is None:
            return
        self._show(snap)
        self.session.project_missing(snap)

    def _on_live_changed(self, live: bool) -> None:
        if live and self.store.latest is not None:
            self._show(self.store.latest)

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
        point = self.selection.row if self.selection.kind == "point" else None
        for window in self._open_compare_windows():  # the same point in compared runs
            window.mark_probe_point(self.session.config, point)

    def _apply_selection(self) -> None:
        """Mark the selection in every panel at the snapshot on screen."""
        view = self.shown
        codes = None
        if view is not None and self.selection.kind == "point":
            # Keyed by the snapshot itself, not id(): an evicted snapshot's id is reused.
            if self._codes is None or self._codes[0] is not view.snapshot:
                self._codes = (view.snapshot, bucket_codes(view.snapshot, view.run,
                                                           view.config.seed))
            codes = self._codes[1]
        h = self.selection.highlight(view, codes)
        marked = None if h.empty else h
        for panel in self.highlight_panels:
            panel.set_highlight(marked)
        self.inspector.show_selection(self.selection, h, view, codes)

    # ------------------------------------------------------------------ shutdown
    def shutdown(self) -> None:
        """Stop the run's child, the standby and the projection process; safe to call twice."""
        if self._closing:
            return
        self._closing = True
        self._loading_timer.stop()
        self._request_redraw.cancel()
        self._request_redraw.flush(restart_timer=False)  # stops its timer, draws nothing
        self._stagger_timer.stop()
        # The engine polls an abort flag inside long measurements, so the run's child
        # records it "stopped" and exits in well under a second; after CLOSE_RUN_MS it is
        # killed. The standby child is ended at once.
        self.runner.close(timeout_ms=CLOSE_RUN_MS)
        # A frame in progress is not worth waiting for: the worker is terminated if it
        # has not read "stop" within this (it can be in a UMAP fit or numba compile).
        self.projector.shutdown(timeout=CLOSE_WORKER_S)
        self.lsh.shutdown(2000)  # a b/L recomputation or a spread in the thread pool
        if self.sweeps is not None:
            self.sweeps.close()  # a running sweep stops at its runs' next snapshots
        if self.follower is not None:
            self.follower.stop()
        for window in self._open_compare_windows():
            window.close()

    def wait_warmed_up(self, timeout_s: float = 60) -> bool:
        """Block until the standby training child has loaded torch and its optimisers
        (about 3-4 s from launch); False on timeout."""
        self.start_warm_up()
        return self._closing or self.runner.wait_ready(timeout_s)

    def start_warm_up(self) -> None:
        """Start the standby training child (app.runner), unless closing or there is one."""
        if not self._closing:
            self.runner.prepare()

    def closeEvent(self, event: QtGui.QCloseEvent) -> None:
        self._save_settings()
        self.hide()  # gone from the screen at once; the workers stop below
        self.shutdown()
        super().closeEvent(event)


