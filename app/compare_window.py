"""The comparison window: 2..8 recorded runs at once (engine.compare).

Each run has one colour and a short name from the settings that differ, the same in
every panel: overlaid curves (baselines dashed in the run's colour, optional smoothing),
small multiples of one view (representation projection, collision heatmap, locality or
samples) at one step chosen on a shared timeline (a run without that step shows its
nearest recorded one and says so), the collision heatmap of run A minus run B with the
one-shot difference and its interval, and the parameter diff table (sortable; a click
highlights that run everywhere; CSV export). Runs still being recorded elsewhere are
followed (app.follow). Every plot panel exports PNG, SVG and vector PDF; the window
exports PNG or PDF. The panels are app.compare_panels' and app.compare_side_by_side's;
`main.py compare` is app.cli.compare_main.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PySide6 import QtCore, QtGui, QtWidgets

from app import file_dialogs
from app.compare_panels import CompareCurvesPanel, ComparePanel, DifferencePanel, DiffTable
from app.compare_side_by_side import SideBySidePanel
from app.exports import EXPORT_FORMATS, export_or_warn, save_grab, widget_to_pdf
from app.panels.base import PlotPanel
from engine import compare
from engine.atomic import atomic_write
from engine.config import ExperimentConfig

if TYPE_CHECKING:
    from app.follow import RunFollower

PANELS = ("curves", "representation", "collisions", "locality", "samples", "diff")


class CompareWindow(QtWidgets.QMainWindow):
    """2..8 recorded runs compared: overlaid curves, small multiples at one step, the
    difference of two runs, the diff table; one timeline drives the step."""

    def __init__(self, comparison: compare.Comparison, parent: QtWidgets.QWidget | None = None,
                 follow: bool = True) -> None:
        super().__init__(parent)
        self.cmp = comparison
        self.setWindowTitle(f"GSH Lab: comparing {len(comparison)} runs")
        self.curves = CompareCurvesPanel()
        self.side = SideBySidePanel()
        self.difference = DifferencePanel()
        self.table = DiffTable()
        self.plot_panels: dict[str, ComparePanel] = {
            p.name: p for p in (self.curves, self.side, self.difference)}
        self.tabs = QtWidgets.QTabWidget()
        self.tabs.addTab(self.curves, "Curves")
        self.tabs.addTab(self.side, "Side by side")
        self.tabs.addTab(self.difference, "Difference A − B")
        central = QtWidgets.QWidget()
        layout = QtWidgets.QVBoxLayout(central)
        layout.setContentsMargins(4, 4, 4, 4)
        self.title = QtWidgets.QLabel()
        self.title.setWordWrap(True)
        self.title.setTextFormat(QtCore.Qt.TextFormat.RichText)
        layout.addWidget(self.title)
        split = QtWidgets.QSplitter(QtCore.Qt.Orientation.Vertical)
        split.addWidget(self.tabs)
        split.addWidget(self.table)
        split.setStretchFactor(0, 4)
        split.setStretchFactor(1, 1)
        layout.addWidget(split, 1)
        row = QtWidgets.QHBoxLayout()
        self.slider = QtWidgets.QSlider(QtCore.Qt.Orientation.Horizontal)
        self.slider.setToolTip("The step every run shows (each its nearest recorded one)")
        self.step_label = QtWidgets.QLabel()
        self.step_label.setMinimumWidth(260)
        row.addWidget(QtWidgets.QLabel("timeline"))
        row.addWidget(self.slider, 1)
        row.addWidget(self.step_label)
        layout.addLayout(row)
        self.setCentralWidget(central)
        self.steps: list[int] = []
        self.step = 0
        self.highlighted: int | None = None
        self.slider.valueChanged.connect(self._on_slider)
        self.table.run_clicked.connect(self.highlight_run)
        self.table.export_button.clicked.connect(self._on_export_table_triggered)
        for panel in self.plot_panels.values():
            panel.export_requested.connect(self._on_export_panel_requested)
        self._build_menu()
        for panel in self.plot_panels.values():
            panel.set_comparison(comparison)
        self._fill()
        self.set_step(self.steps[-1] if self.steps else 0)
        self.followers: list[RunFollower] = []
        if follow:
            from app.follow import RunFollower

            for run in comparison.runs:
                if run.reader.live:
                    f = RunFollower(run.reader, parent=self)
                    f.grew.connect(self._on_run_grew)
                    f.ended.connect(self._on_run_grew)
                    self.followers.append(f)

    # -- contents ------------------------------------------------------------------
    def _fill(self) -> None:
        """Title, timeline and table from the comparison as it is now."""
        parts = [f'<span style="color:{r.colour}">■</span> {r.name} '
                 f'<span style="color:#777">({r.path.name}, {r.reader.display_status})</span>'
                 for r in self.cmp.runs]
        self.title.setText(f"<b>Comparing {len(self.cmp)} runs</b> · what differs: "
                           f"{self.cmp.what_differs}<br>" + " &nbsp; ".join(parts))
        self.steps = self.cmp.all_steps()
        self.slider.blockSignals(True)
        self.slider.setRange(0, max(len(self.steps) - 1, 0))
        self.slider.blockSignals(False)
        columns, rows = self.cmp.table()
        self.table.set_table(self.cmp, columns, rows)
        self.table.select_run(self.highlighted)

    def set_step(self, step: int) -> None:
        """Move every run to `step` (each to its nearest recorded step)."""
        self.step = int(step)
        if self.steps:
            index = int(np.argmin(np.abs(np.asarray(self.steps) - self.step)))
            self.slider.blockSignals(True)
            self.slider.setValue(index)
            self.slider.blockSignals(False)
        nearest = [r.nearest(self.step) for r in self.cmp.runs]
        off = sum(1 for s in nearest if s is not None and s != self.step)
        self.step_label.setText(f"step {self.step}" + (
            f" · {off} runs at their nearest recorded step" if off else ""))
        for panel in self.plot_panels.values():
            panel.set_step(self.step)

    def _on_slider(self, index: int) -> None:
        if 0 <= index < len(self.steps):
            self.set_step(self.steps[index])

    def highlight_run(self, index: int | None) -> None:
        """Mark run `index` in every panel and the table (None: no run marked)."""
        self.highlighted = index
        for panel in self.plot_panels.values():
            panel.set_highlight(index)
        self.table.select_run(index)

    def mark_probe_point(self, config: ExperimentConfig | None, row: int | None) -> None:
        """The Inspector's point (probe row `row` of a run with `config`) marked in every
        compared run that shares its probe set; None, or no such run, clears the mark."""
        shared = None
        if row is not None and config is not None:
            shared = next((r for r in self.cmp.runs if compare.same_probe_set(config, r.config)),
                          None)
        self.side.select_row(None if shared is None else row,
                             0 if shared is None else shared.index)

    def show_view(self, name: str) -> PlotPanel:
        """Bring a panel forward by its CLI name (curves, representation, collisions,
        locality, samples, diff); returns it."""
        panel: ComparePanel
        if name == "curves":
            panel = self.curves
        elif name == "diff":
            panel = self.difference
        else:
            self.side.set_view_name(name)
            panel = self.side
        self.tabs.setCurrentWidget(panel)
        return panel

    def _on_run_grew(self, *_args: object) -> None:
        at_end = not self.steps or self.step >= self.steps[-1]
        self.cmp.refresh()
        for panel in self.plot_panels.values():
            panel.set_comparison(self.cmp)
        self._fill()
        self.set_step(self.steps[-1] if at_end and self.steps else self.step)

    # -- exports -------------------------------------------------------------------
    def _build_menu(self) -> None:
        menu = self.menuBar().addMenu("&File")
        menu.addAction("Export comparison (PNG or PDF)…", self._on_export_window_triggered)
        menu.addAction("Export table as CSV…", self._on_export_table_triggered)
        menu.addSeparator()
        menu.addAction("Close", self.close)

    def export_window(self, path: str | Path) -> Path:
        if Path(path).suffix.lower() == ".pdf":
            return widget_to_pdf(self, path, title=self._pdf_title())
        return save_grab(self, path)

    def export_panel(self, panel: PlotPanel, path: str | Path) -> Path:
        """A panel as PNG, SVG or vector PDF (by suffix)."""
        return panel.export(path, title=self._pdf_title())

    def export_table_csv(self, path: str | Path) -> Path:
        return atomic_write(path, lambda tmp: Path(tmp).write_text(self.table.csv_text(),
                                                                    encoding="utf-8"))

    def _pdf_title(self) -> str:
        return "GSH Lab comparison: " + " / ".join(r.name for r in self.cmp.runs)

    def _ask(self, title: str, filt: str, name: str) -> str | None:
        """A file name, asked in the main window's export folder (remembered there), or
        beside the first run (from the command line): a bare name opened the dialog in
        whatever folder the app was started from."""
        main = self.parent()  # the main window (app.window), or None
        export_folder = getattr(main, "export_folder", None)
        folder = (export_folder() if export_folder is not None
                  else Path(self.cmp.runs[0].path).parent)
        path, _ = file_dialogs.get_save_file_name(self, title, str(folder / name), filt)
        settings = getattr(main, "settings", None)
        if path and settings is not None:
            settings.setValue("exports/folder", str(Path(path).parent))
        return path or None

    def _on_export_window_triggered(self) -> None:
        path = self._ask("Export comparison", "PNG image (*.png);;PDF, vector (*.pdf)",
                         "comparison.png")
        if path:
            export_or_warn(self, "Cannot export", self.export_window, path)

    def _on_export_table_triggered(self) -> None:
        path = self._ask("Export diff table", "CSV (*.csv)", "comparison.csv")
        if path:
            export_or_warn(self, "Cannot export", self.export_table_csv, path)

    def _on_export_panel_requested(self, name: str, fmt: str) -> None:
        if fmt not in EXPORT_FORMATS:
            return
        path = self._ask("Export panel", f"{fmt.upper()} (*.{fmt})", f"{name}.{fmt}")
        if path:
            export_or_warn(self, "Cannot export", self.export_panel, self.plot_panels[name], path)

    def closeEvent(self, event: QtGui.QCloseEvent) -> None:
        self.stop_following()
        super().closeEvent(event)

    def stop_following(self) -> None:
        for f in self.followers:
            f.stop()

