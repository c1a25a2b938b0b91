"""Runs and sweeps: open a recorded run (off the GUI thread) and follow it while another
process records it, compare 2..8 runs in their own windows, the Sweep window, and the
folder new runs are recorded in.

A mixin of app.window.MainWindow (it relies on the window's attributes).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import shiboken6
from PySide6 import QtCore

from app import file_dialogs
from app.qtapp import fit_to_screen
from app.session import RunSession

if TYPE_CHECKING:
    from app.sweep_view import SweepWindow
    from app.window_host import WindowHost
else:
    WindowHost = object  # the type checker's view of MainWindow (app.window_host)


class RunsMixin(WindowHost):
    def open_run(self, path: str | Path) -> bool:
        """Show a recorded run (made here, headless or on another machine): every panel,
        the timeline and the exports work on it as on a live run. A folder that is not a
        readable run leaves the window as it was and says why."""
        from engine.record_format import RunRecordError

        if self.runner.is_active:
            self.show_error("Cannot open the run",
                            "a run is training: stop it first (Run > Stop), then open the run")
            return False
        from app.reading import read_off_thread

        if getattr(self, "_reading", False):
            return False  # a run is being opened already
        self._reading = True
        try:  # off the GUI thread: the window stays responsive and offers Cancel
            opened, session = read_off_thread(
                self, lambda: RunSession.open(path, self.store.capacity,
                                              projector=self.projector),
                f"Opening {Path(path).name}…")
        except (RunRecordError, OSError) as exc:
            self.show_error("Cannot open the run", str(exc))
            return False
        finally:
            self._reading = False
        if not opened:
            self.statusBar().showMessage(f"Opening {Path(path).name} cancelled", 5000)
            return False
        self.runner.reset()
        self._clear_run()
        self.session = session
        reader, store = session.reader, session.store
        cfg = reader.config
        self.params.set_config(cfg)
        p = cfg.projection
        self.projector.set_params(method=p.method, n_neighbors=p.n_neighbors,
                                  min_dist=p.min_dist, metric=p.metric, seed=cfg.seed)
        session.project_missing(store.latest)
        self.refresh()
        problems = f" ({len(reader.problems)} damaged files skipped)" if reader.problems else ""
        self.run_label.setText(f"recorded run: {reader.display_status}")
        self._follow(session)
        self._add_recent(reader.path)
        self.statusBar().showMessage(
            f"Opened {reader.path.name}: {reader.display_status}, {len(store)} snapshots"
            f"{problems}", 10000)
        return True

    def _follow(self, session: RunSession) -> None:
        """Follow a run another process is still recording (app.follow)."""
        from app.follow import follow_window_run

        if self.follower is not None:
            self.follower.stop()
        self.follower = follow_window_run(self, session)

    def compare_runs(self, paths: Sequence[str | Path]) -> bool:
        """Open a comparison window of 2..8 recorded runs (sweep folders add theirs)."""
        from app.compare_window import CompareWindow
        from engine.compare import CompareError, open_comparison
        from engine.record_format import RunRecordError

        try:
            cmp = open_comparison(paths)
        except (CompareError, RunRecordError, OSError) as exc:
            self.show_error("Cannot compare the runs", str(exc))
            return False
        window = CompareWindow(cmp, parent=self)
        window.setWindowFlag(QtCore.Qt.WindowType.Window)
        window.setAttribute(QtCore.Qt.WidgetAttribute.WA_DeleteOnClose)
        fit_to_screen(window, 1500, 950)  # on screen whole, wherever the main window is
        self.compare_windows = [w for w in self._open_compare_windows()
                                if w.isVisible()] + [window]
        window.show()
        return True

    def show_sweeps(self) -> SweepWindow:
        """The Sweep window (one per main window); its runs open here."""
        if self.sweeps is None:
            from app.sweep_view import SweepWindow

            self.sweeps = SweepWindow(self.runs_dir.parent / "gsh-sweeps", parent=self)
            self.sweeps.setWindowFlag(QtCore.Qt.WindowType.Window)
            self.sweeps.open_run_requested.connect(self._on_sweep_run_requested)
            self.sweeps.compare_requested.connect(self.compare_runs)
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
        folder = file_dialogs.get_existing_directory(
            self, "Open a sweep folder", str(self.runs_dir.parent))
        if folder:
            self.open_sweep(folder)

    def set_runs_dir(self, folder: str | Path) -> None:
        """Record new runs into `folder` and list its runs (remembered across launches)."""
        self.runs_dir = Path(folder)
        self.settings.setValue("runs/folder", str(self.runs_dir))
        self.runs.set_folder(self.runs_dir)

    def _on_open_run_triggered(self) -> None:
        folder = file_dialogs.get_existing_directory(
            self, "Open a recorded run", str(self.runs_dir))
        if folder:
            self.open_run(folder)

    def _on_runs_folder_triggered(self) -> None:
        folder = file_dialogs.get_existing_directory(
            self, "Record runs in", str(self.runs_dir))
        if folder:
            self.set_runs_dir(folder)

    def _open_compare_windows(self) -> list:
        """The comparison windows not yet closed: a closed one is deleted
        (WA_DeleteOnClose), and touching it raised, so quitting after closing one skipped
        the rest of the shutdown."""
        self.compare_windows = [w for w in self.compare_windows if shiboken6.isValid(w)]
        return self.compare_windows
