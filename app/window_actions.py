"""Actions, menus, the toolbar and the recent-files list: what the user can trigger and when it
is enabled.

A mixin of app.window.MainWindow (it relies on the window's attributes).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6 import QtCore, QtGui, QtWidgets

from app.exports import EXPORT_FORMATS
from app.runner import FAILED, FINISHED, IDLE, PAUSED, PAUSING, RUNNING, STARTING, STOPPING

if TYPE_CHECKING:
    from app.window_host import WindowHost
else:
    WindowHost = object  # the type checker's view of MainWindow (app.window_host)

MAX_RECENT = 8

SHORTCUTS = {
    "start": "F5",
    "pause": "Space",
    "step": "F10",
    "stop": "Shift+F5",
    "reset": "Ctrl+Shift+R",
}


class ActionsMixin(WindowHost):
    def _action(self, text: str, slot: Callable[[], object], shortcut: str | None = None,
                tip: str | None = None) -> QtGui.QAction:
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

    def _update_actions(self) -> None:
        state = self.runner.state
        active = self.runner.is_active
        valid = self.params.is_valid()
        self.act_start.setEnabled(valid and not active)
        self.act_pause.setEnabled(state in (STARTING, RUNNING, PAUSING, PAUSED))
        self.act_pause.setText("Resume" if state in (PAUSING, PAUSED) else "Pause")
        # Step on a finished run would start a new one: only Start does (or Reset first).
        self.act_step.setEnabled(state in (RUNNING, PAUSING, PAUSED) or
                                 (valid and not active and not len(self.store)))
        self.act_stop.setEnabled(active and state != STOPPING)
        self.act_reset.setEnabled(True)
        label = {
            IDLE: "ready" if valid else "fix the highlighted parameters to start",
            STARTING: "building the experiment…",
            RUNNING: "training",
            PAUSING: "pausing at the next snapshot…",
            PAUSED: "paused",
            STOPPING: "stopping…",
            FINISHED: "finished",
            FAILED: "failed: see the message",
        }[state]
        last, run = self.store.latest, self.session.run_info
        if (state == FINISHED and last is not None and run is not None
                and last.step < run.total_steps):
            label = f"stopped at step {last.step} of {run.total_steps}"
        if self.session.collapsed_at is not None:
            label += " · collapsed"
        self.run_label.setText(label)
        self.params.set_locked(
            active,
            f"A run is {state}: its settings are read-only. Stop or Reset it to change them "
            "(projection settings apply now).",
        )

    def recent_files(self) -> list[str]:
        value = self.settings.value("recent_files", [])
        if isinstance(value, str):
            value = [value]
        return [str(v) for v in value] if isinstance(value, list) else []

    def _add_recent(self, path: Path) -> None:
        p = str(Path(path).resolve())
        files = [f for f in self.recent_files() if f != p]
        self.settings.setValue("recent_files", [p, *files][:MAX_RECENT])
        self._rebuild_recent_menu()

    def _rebuild_recent_menu(self) -> None:
        self.recent_menu.clear()
        files = self.recent_files()
        for f in files:  # experiment files, and run folders opened here
            a = self.recent_menu.addAction(f)
            a.triggered.connect(lambda _=False, path=f: self.open_run(path)
                                if Path(path).is_dir() else self.load_config(path))
        self.recent_menu.setEnabled(bool(files))
