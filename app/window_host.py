"""What the main window's parts share, for the type checker: MainWindow (app.window) is
built from mixins (window_actions, window_layout, window_status, window_files,
window_runs) that use each other's attributes and methods. Each mixin derives from
WindowHost while type checking (from `object` at run time), so mypy checks every use
against one declaration, and every definition (MainWindow's or a mixin's) against it.

Nothing here runs: the class exists only under TYPE_CHECKING.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pathlib import Path

    from PySide6 import QtCore, QtGui, QtWidgets

    from app.compare_window import CompareWindow
    from app.follow import RunFollower
    from app.panel_list import PanelSpec
    from app.panels.about import AboutPanel
    from app.panels.base import MarksSelection, PlotPanel
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
    from app.runner import Runner
    from app.selection import Selection
    from app.session import RunSession
    from app.store import SnapshotStore
    from app.sweep_view import SweepWindow
    from app.view import View
    from engine.config import ExperimentConfig
    from engine.snapshot import Snapshot

    class WindowHost(QtWidgets.QMainWindow):
        # -- set in MainWindow.__init__
        settings: QtCore.QSettings
        last_error: str | None
        error_box: QtWidgets.QMessageBox | None
        _closing: bool
        runs_dir: Path
        runner: Runner
        start_config: ExperimentConfig | None
        panel_specs: tuple[PanelSpec, ...]
        panels: dict[str, QtWidgets.QWidget]  # every panel by name (app.panel_list)
        plot_panels: dict[str, PlotPanel]  # the panels showing the View (PanelSpec.view)
        highlight_panels: list[MarksSelection]
        projector: ProjectionClient
        session: RunSession
        selection: Selection
        sweeps: SweepWindow | None
        follower: RunFollower | None
        compare_windows: list[CompareWindow]
        _loading_timer: QtCore.QTimer
        # the panels, set from app.panel_list.PANELS (PanelSpec.attribute)
        params: ParameterPanel
        runs: RunsPanel
        about: AboutPanel
        inspector: InspectorPanel
        representation: ProjectionPanel
        curves: CurvesPanel
        input_space: ProjectionPanel
        collisions: CollisionPanel
        locality: LocalityPanel
        samples: SamplesPanel
        lsh: LshPanel
        timeline: TimelinePanel
        # -- set by the parts
        docks: dict[str, QtWidgets.QDockWidget]  # window_layout
        view_menu: QtWidgets.QMenu  # window_actions
        act_reset_layout: QtGui.QAction
        run_label: QtWidgets.QLabel

        # -- MainWindow's
        @classmethod
        def offscreen(cls, config: ExperimentConfig | None, size: tuple[int, int], *,
                      settings: QtCore.QSettings | None = None, hidden: bool = False,
                      **kwargs: Any) -> WindowHost: ...
        @property
        def store(self) -> SnapshotStore: ...
        @property
        def run_config(self) -> ExperimentConfig | None: ...
        @property
        def shown(self) -> View | None: ...
        @property
        def shown_snapshot(self) -> Snapshot | None: ...
        @property
        def record_dir(self) -> Path | None: ...
        def refresh(self) -> None: ...
        def shutdown(self) -> None: ...
        def reset(self) -> None: ...
        def stop(self) -> None: ...
        def toggle_pause(self) -> None: ...
        def refine_projection(self) -> bool: ...
        def retry_projection(self) -> bool: ...
        def _clear_run(self) -> None: ...
        def _on_start_triggered(self) -> None: ...
        def _on_step_triggered(self) -> None: ...

        # -- the parts', called from another part
        def _update_actions(self) -> None: ...  # window_actions
        def _add_recent(self, path: Path) -> None: ...
        def show_error(self, title: str, message: str) -> None: ...
        def reset_layout(self) -> None: ...  # window_layout
        def _raise_dock(self, name: str) -> None: ...
        def load_config(self, path: str | Path) -> bool: ...  # window_files
        def _on_open_triggered(self) -> None: ...
        def _on_save_triggered(self) -> None: ...
        def _on_export_window_triggered(self) -> None: ...
        def _on_export_panel_requested(self, name: str, fmt: str) -> None: ...
        def _on_export_all_triggered(self) -> None: ...
        def _on_export_csv_triggered(self) -> None: ...
        def _on_export_npz_triggered(self) -> None: ...
        def _on_export_animation_triggered(self) -> None: ...
        def open_run(self, path: str | Path) -> bool: ...  # window_runs
        def show_sweeps(self) -> SweepWindow: ...
        def _on_open_run_triggered(self) -> None: ...
        def _on_open_sweep_triggered(self) -> None: ...
        def _on_runs_folder_triggered(self) -> None: ...
