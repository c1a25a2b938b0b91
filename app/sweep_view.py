"""The Sweep window: define a sweep (axes picked from the parameter panel's fields, seeds,
workers or a Dask scheduler), run it, and read the phase diagram while it fills in.

The sweep itself is engine.sweep's: it runs in a Python thread of this process and hands
every progress event to the GUI thread through a queued Qt signal (no polling); the
table and the diagram follow at most every UPDATE_MS (superqt's qthrottled). The
phase diagram plots one number per run (final, best or at a step) against the first axis
(single runs, mean and its 95% interval over seeds, the baselines), or a
heatmap over the first two axes. A run is selected by clicking its point or its table
row; a double-click opens it as a recorded run in the main window. The form is
app.sweep_form's, the diagram app.sweep_diagram's, the sweep's thread app.sweep_runner's.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6 import QtCore, QtGui, QtWidgets
from superqt.utils import qthrottled

from app import file_dialogs
from app.exports import export_or_warn
from app.panels.base import HeaderLabel
from app.panels.phase import PhasePanel
from app.qtapp import fit_to_screen
from app.sweep_diagram import METRICS, VALUE_CHOICES, SweepDiagramMixin, as_number, label_of
from app.sweep_form import SweepFormMixin, default_axis, for_the_window, message_label
from app.sweep_runner import SweepRunner
from engine import figures
from engine.config import ConfigError, ExperimentConfig, load_preset
from engine.executors import Executor
from engine.sweep import (
    DONE,
    RUNS,
    Sweep,
    SweepError,
    SweepEvent,
    SweepResult,
    load_sweep,
    prepare,
    read_summary,
    summary_columns,
    summary_row,
    summary_text,
)

if TYPE_CHECKING:
    from app.follow import SweepFollower

UPDATE_MS = 250  # the table and diagram of a running sweep: at most one redraw per this
TABLE_COLUMNS = ("run", "seed", "status", "step", "oneshot_trained", "collision_ratio")


class _Cell(QtWidgets.QTableWidgetItem):
    """A table cell showing its text (3 significant digits) and sorting by its number."""

    def __init__(self, text: str, number: float) -> None:
        super().__init__(text)
        self.number = number

    def __lt__(self, other: QtWidgets.QTableWidgetItem) -> bool:
        a, b = self.number, getattr(other, "number", math.nan)
        if a == a and b == b:
            return a < b
        return self.text() < other.text()


class SweepWindow(SweepFormMixin, SweepDiagramMixin, QtWidgets.QMainWindow):
    """Define, run, resume and read sweeps; see the module docstring."""

    open_run_requested = QtCore.Signal(str)
    compare_requested = QtCore.Signal(list)  # 2..8 run folders (str)

    def __init__(self, sweeps_dir: Path, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("GSH Lab: sweeps")
        self.sweeps_dir = Path(sweeps_dir)
        self.folder: Path | None = None
        self.follower: SweepFollower | None = None  # of a sweep running elsewhere
        self.sweep: Sweep | None = None
        self.rows: dict[str, dict] = {}  # run id -> summary row (live-updated)
        self._points: dict = {}  # run id -> engine.sweep.RunPoint
        self.base: ExperimentConfig | None = None  # a base config instead of the preset
        self.order: list[str] = []
        self.selected: str | None = None
        self.last_error: str | None = None
        self.runner = SweepRunner(self)  # the sweep this window runs, in a thread
        self._history_cache: dict[str, list[dict]] = {}
        self.runner.event_arrived.connect(self._on_event)
        # A running sweep's events update the progress at once, the table and the diagram
        # at most once per UPDATE_MS, with the newest rows (a burst of events: one redraw).
        self._request_update = qthrottled(self._update_views, timeout=UPDATE_MS,
                                          leading=False, parent=self)
        self._build()
        self._last_preset = self.preset.currentText()
        self.fit_to_screen()  # before the first show: a window manager frames it in place

    def _build(self) -> None:
        form_box = self._build_form()
        # Below the form, always in view: the message, the buttons, progress and status.
        self.message = message_label("#c0392b", lines=3)
        run_row = QtWidgets.QHBoxLayout()
        self.start_button = QtWidgets.QPushButton("Start")
        self.start_button.clicked.connect(self.start)
        self.stop_button = QtWidgets.QPushButton("Stop")
        self.stop_button.setEnabled(False)
        self.stop_button.clicked.connect(self.stop)
        open_button = QtWidgets.QPushButton("Open sweep…")
        open_button.clicked.connect(self._on_open_triggered)
        for b in (self.start_button, self.stop_button, open_button):
            run_row.addWidget(b)
        self.progress = QtWidgets.QProgressBar()
        self.progress.setFormat("%v / %m runs")
        self.status = message_label()
        bottom = QtWidgets.QWidget()
        bv = QtWidgets.QVBoxLayout(bottom)
        bv.setContentsMargins(6, 2, 6, 4)
        bv.addWidget(self.message)
        bv.addLayout(run_row)
        bv.addWidget(self.progress)
        bv.addWidget(self.status)

        self.phase = PhasePanel()
        self.phase.point_clicked.connect(self.select_run)
        controls = QtWidgets.QHBoxLayout()
        self.metric_choice = QtWidgets.QComboBox()
        for m in METRICS:
            self.metric_choice.addItem(label_of(m), m)
        self.value = QtWidgets.QComboBox()
        self.value.addItems(list(VALUE_CHOICES))
        self.at_step = QtWidgets.QSpinBox()
        self.at_step.setRange(0, 10_000_000)
        self.at_step.setSingleStep(100)
        self.log_x = QtWidgets.QCheckBox("log x")
        for label, w in (("metric", self.metric_choice), ("value", self.value),
                         ("step", self.at_step)):
            controls.addWidget(QtWidgets.QLabel(label))
            controls.addWidget(w)
        controls.addWidget(self.log_x)
        controls.addStretch(1)
        self.compare_button = QtWidgets.QPushButton("Compare")
        self.compare_button.setToolTip("Compare the runs selected in the table (2 to 8)")
        self.compare_button.setEnabled(False)
        self.compare_button.clicked.connect(self.compare_selected)
        controls.addWidget(self.compare_button)
        for w in (self.metric_choice, self.value):
            w.currentIndexChanged.connect(self.redraw)
        self.at_step.valueChanged.connect(self.redraw)
        self.value.currentTextChanged.connect(
            lambda text: self.at_step.setEnabled(text == "at step"))
        self.at_step.setEnabled(self.value.currentText() == "at step")
        self.log_x.toggled.connect(self.redraw)
        self.table = QtWidgets.QTableWidget(0, len(TABLE_COLUMNS))
        self.table.setHorizontalHeaderLabels([label_of(c) for c in TABLE_COLUMNS])
        self.table.setSortingEnabled(True)
        self.table.resizeColumnsToContents()  # with the sort arrow: "run", not "u▲"
        self.table.verticalHeader().hide()
        self.table.setSelectionBehavior(QtWidgets.QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QtWidgets.QAbstractItemView.SelectionMode.ExtendedSelection)
        self.table.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.itemSelectionChanged.connect(self._on_table_selection)
        self.table.itemDoubleClicked.connect(lambda item: self.open_run(self._id_of(item.row())))
        right = QtWidgets.QSplitter(QtCore.Qt.Orientation.Vertical)
        plot_box = QtWidgets.QWidget()
        pv = QtWidgets.QVBoxLayout(plot_box)
        pv.setContentsMargins(0, 0, 0, 0)
        pv.addLayout(controls)
        pv.addWidget(self.phase, 1)
        self.log = QtWidgets.QPlainTextEdit()
        self.log.setReadOnly(True)
        self.log.setMaximumBlockCount(500)
        self.log.setPlaceholderText("messages of this window, in full")
        right.addWidget(plot_box)
        right.addWidget(self.table)
        right.addWidget(self.log)
        right.setSizes([440, 260, 60])
        scroll = QtWidgets.QScrollArea()
        scroll.setWidgetResizable(True)
        form_page = QtWidgets.QWidget()  # the form at the top, the space below it
        fp = QtWidgets.QVBoxLayout(form_page)
        fp.setContentsMargins(0, 0, 0, 0)
        fp.addWidget(form_box)
        fp.addStretch(1)
        scroll.setWidget(form_page)
        left = QtWidgets.QWidget()
        lv = QtWidgets.QVBoxLayout(left)
        lv.setContentsMargins(0, 0, 0, 0)
        lv.setSpacing(0)
        lv.addWidget(scroll, 1)
        lv.addWidget(bottom)
        left.setMinimumWidth(340)
        left.setMaximumWidth(520)
        split = QtWidgets.QSplitter()
        split.addWidget(left)
        split.addWidget(right)
        split.setStretchFactor(1, 1)
        split.setSizes([380, 920])
        self.setCentralWidget(split)
        menu = self.menuBar().addMenu("&File")
        menu.addAction("Open sweep…", self._on_open_triggered)
        menu.addAction("Export summary.csv…", self._on_export_summary_triggered)
        for fmt in ("png", "svg", "pdf"):
            menu.addAction(f"Export phase diagram as {fmt.upper()}…",
                           lambda f=fmt: self.phase.export_requested.emit("phase", f))
        self.phase.export_requested.connect(self._on_export_plot_requested)
        self.add_axis(*default_axis(load_preset(self.preset.currentText())))
        self.overrides.textChanged.connect(self.validate)
        self.axes.itemChanged.connect(self.validate)
        for spin in (self.seeds, self.steps, self.workers):
            spin.valueChanged.connect(self.validate)
        self.validate()

    def fit_to_screen(self, width: int = 1300, height: int = 800) -> None:
        """At most `width` x `height`, within the screen (app.qtapp.fit_to_screen)."""
        fit_to_screen(self, width, height)

    # ------------------------------------------------------------------ running
    @property
    def running(self) -> bool:
        return self.runner.running

    @property
    def result(self) -> SweepResult | None:
        """How the sweep this window ran ended, once it has."""
        return self.runner.result

    def start(self, executor: Executor | None = None) -> bool:
        """Validate and start the sweep the form describes (or resume its folder)."""
        if self.running:
            return False
        try:
            sweep = self.build_sweep()
            folder = Path(self.out.text().strip()) if self.out.text().strip() else (
                self.sweeps_dir / time.strftime(f"%Y%m%d-%H%M%S-{sweep.name}"))
            address = self.scheduler.text().strip()
            if address and executor is None:  # a cluster that answers, before any folder
                from app.reading import read_off_thread
                from engine.executors import probe_scheduler

                if not read_off_thread(self, lambda: probe_scheduler(address),
                                       f"Connecting to {address}…")[0]:
                    return False
            prepare(folder, sweep)
        except (SweepError, ConfigError) as exc:
            self._fail(for_the_window(str(exc)))
            return False
        self.message.setText("")
        self._run(folder, sweep, executor or self._executor())
        return True

    def resume(self, folder: str | Path, executor: Executor | None = None) -> bool:
        """Run the sweep stored in `folder` again: finished runs are skipped."""
        if self.running or not self.open_sweep(folder) or self.folder is None:
            return False
        self._run(self.folder, None, executor or self._executor())
        return True

    def _run(self, folder: Path, sweep: Sweep | None, executor: Executor) -> None:
        if self.follower is not None:  # this window runs it now
            self.follower.stop()
            self.follower = None
        self.folder = Path(folder)
        self._load_rows()
        self.runner.start(self.folder, sweep, executor)
        self.start_button.setEnabled(False)
        self.stop_button.setEnabled(True)
        self._say(self.status, f"running in {self.folder}")

    def stop(self) -> None:
        """Each running run stops at its next snapshot (recorded "stopped")."""
        self.runner.stop()
        self._say(self.status, "stopping at the runs' next snapshots…")

    def wait(self, timeout_s: float = 120.0) -> bool:
        return self.runner.wait(timeout_s)

    def _fail(self, message: str) -> None:
        self.last_error = message
        self._say(self.message, message)

    def _say(self, label: HeaderLabel, text: str, log: bool = True) -> None:
        """A message in its fixed place (elided), in full in its tooltip and the log."""
        if text == label.text():
            return
        label.setText(text)
        label.setToolTip(text)
        if text and log:
            self.log.appendPlainText(f"{time.strftime('%H:%M:%S')}  {text}")

    def _on_event(self, ev: SweepEvent) -> None:
        if ev.kind == "failed":
            self._fail(f"the sweep stopped: {ev.error}")
        if ev.runs_total:
            self.progress.setRange(0, ev.runs_total)
            self.progress.setValue(ev.runs_done)
        row = self.rows.get(ev.run_id)
        if row is not None:
            if ev.kind == "snapshot":
                row.update(status="running", step=ev.step, **{
                    k: v for k, v in ev.figures.items() if isinstance(v, (int, float))})
                row.update(figures.derived(row))
            elif ev.kind == "run_start":
                row["status"] = "running"
            elif ev.kind == "run_done" and self.folder is not None:
                self.rows[ev.run_id] = summary_row(self.folder, self._points[ev.run_id])
                self._history_cache.pop(ev.run_id, None)
        if ev.kind in ("done", "failed"):
            self._finished()
        eta = f", about {ev.eta_s:.0f} s left" if ev.eta_s == ev.eta_s and ev.eta_s > 0 else ""
        if self.running and ev.kind not in ("done", "failed"):
            self._say(self.status, f"{ev.runs_done}/{ev.runs_total} runs done{eta}", log=False)
        self._request_update()

    def _finished(self) -> None:
        self.runner.wait(30)
        self.validate()
        self.stop_button.setEnabled(False)
        if self.result is not None:
            self._say(self.status, self.result.line())
        self._load_rows()

    # ------------------------------------------------------------------ reading
    def open_sweep(self, folder: str | Path) -> bool:
        """Show a sweep folder's table and phase diagram (its runs are not re-run)."""
        try:
            sweep = load_sweep(folder)
            sweep.points()
        except (SweepError, ConfigError, OSError) as exc:
            self._fail(str(exc))
            return False
        self.folder = Path(folder)
        self.sweep = sweep
        self._show_definition(sweep)
        self._load_rows()
        self._say(self.status, f"{self.folder}")
        self._follow()
        return True

    def _follow(self) -> None:
        """A sweep another process is running (here or on a cluster sharing the folder):
        its table and diagram follow it (app.follow)."""
        from app.follow import SweepFollower, sweep_alive

        if self.follower is not None:
            self.follower.stop()
            self.follower = None
        if self.folder is None or not sweep_alive(self.folder):
            return
        self.follower = SweepFollower(self.folder, parent=self)
        self.follower.changed.connect(self._load_rows)
        self.follower.ended.connect(
            lambda: self._say(self.status, f"{self.folder} · no longer running elsewhere"))
        self._say(self.status, f"{self.folder} · running elsewhere (following)")

    def _load_rows(self) -> None:
        if self.folder is None:
            return
        try:
            self.sweep = load_sweep(self.folder)
            rows = read_summary(self.folder)
        except (SweepError, ConfigError, OSError) as exc:
            self._fail(str(exc))
            return
        self.rows = {r["run"]: r for r in rows}
        self.order = [r["run"] for r in rows]
        self._points = {p.id: p for p in self.sweep.points()}
        self._history_cache.clear()
        done = sum(r.get("status") in DONE for r in rows)
        self.progress.setRange(0, len(rows))
        self.progress.setValue(done)
        self._update_views()

    def _update_views(self) -> None:
        """The table and the diagram from the rows as they are now."""
        self._request_update.cancel()  # what a pending update would show is shown now
        self._fill_table()
        self.redraw()

    def _fill_table(self) -> None:
        axes = [a.field for a in self.sweep.axes if a.field != "seed"] if self.sweep else []
        columns = ["run", *axes, *TABLE_COLUMNS[1:]]
        self.table.setSortingEnabled(False)
        self.table.setColumnCount(len(columns))
        self.table.setHorizontalHeaderLabels([
            c.rsplit(".", 1)[-1].replace("_", " ") if c in axes else label_of(c)
            for c in columns])
        self.table.setRowCount(len(self.order))
        for i, rid in enumerate(self.order):
            row = self.rows[rid]
            for j, col in enumerate(columns):
                value = row.get(col, "")
                f = as_number(value)
                text = (f"{f:.3g}" if col not in ("run", "seed", "step") and f == f
                        else str(value))
                item = _Cell(text, f if col != "run" else math.nan)
                item.setData(QtCore.Qt.ItemDataRole.UserRole, rid)
                self.table.setItem(i, j, item)
        self.table.setSortingEnabled(True)
        self.table.resizeColumnsToContents()
        if self.selected:
            self._select_row_of(self.selected)

    def _id_of(self, row: int) -> str:
        item = self.table.item(row, 0)
        return "" if item is None else item.data(QtCore.Qt.ItemDataRole.UserRole)

    # ------------------------------------------------------------------ selection
    def select_run(self, rid: str) -> None:
        """Select a run: its table row and its point in the diagram."""
        if rid not in self.rows:
            return
        self.selected = rid
        self._select_row_of(rid)
        self._mark_selected()

    def _select_row_of(self, rid: str) -> None:
        for r in range(self.table.rowCount()):
            if self._id_of(r) == rid:
                with QtCore.QSignalBlocker(self.table):
                    self.table.selectRow(r)
                item = self.table.item(r, 0)
                if item is not None:
                    self.table.scrollToItem(item)
                return

    def _on_table_selection(self) -> None:
        rows = {i.row() for i in self.table.selectedItems()}
        n = len(rows)
        self.compare_button.setEnabled(2 <= n <= 8)
        self.compare_button.setText(f"Compare {n}" if 2 <= n <= 8 else "Compare")
        if rows:
            self.selected = self._id_of(min(rows))
            self._mark_selected()

    def selected_runs(self) -> list[Path]:
        """The run folders of the rows selected in the table, in table order."""
        if self.folder is None:
            return []
        rows = sorted({i.row() for i in self.table.selectedItems()})
        return [self.folder / RUNS / self._id_of(r) for r in rows]

    def compare_selected(self) -> None:
        """Ask the main window to compare the selected runs (2..8)."""
        runs = self.selected_runs()
        if 2 <= len(runs) <= 8:
            self.compare_requested.emit([str(p) for p in runs])

    def open_run(self, rid: str) -> None:
        """Ask the main window to open this run as a recorded run."""
        if self.folder is not None and rid in self.rows:
            self.open_run_requested.emit(str(self.folder / RUNS / rid))

    # ------------------------------------------------------------------ files
    def _on_open_triggered(self) -> None:
        folder = file_dialogs.get_existing_directory(
            self, "Open a sweep folder", str(self.sweeps_dir))
        if folder:
            self.open_sweep(folder)

    def export_summary(self, path: str | Path) -> Path:
        from engine.atomic import atomic_write_text

        if self.folder is None or self.sweep is None:
            raise ValueError("no sweep yet: start or open one first")
        rows = read_summary(self.folder)
        return atomic_write_text(path, summary_text(rows, summary_columns(self.sweep)))

    def _on_export_summary_triggered(self) -> None:
        path, _ = file_dialogs.get_save_file_name(
            self, "Export summary", "summary.csv", "CSV (*.csv)")
        if path:
            export_or_warn(self, "Export failed", self.export_summary, path)

    def _on_export_plot_requested(self, _name: str, fmt: str) -> None:
        path, _ = file_dialogs.get_save_file_name(
            self, "Export phase diagram", f"phase.{fmt}", f"{fmt.upper()} (*.{fmt})")
        if path:
            export_or_warn(self, "Export failed", self.export_plot, path)

    def export_plot(self, path: str | Path) -> Path:
        return self.phase.export(path, title="GSH Lab: phase diagram")

    def closeEvent(self, event: QtGui.QCloseEvent) -> None:
        if self.follower is not None:
            self.follower.stop()
        if self.running:
            self.stop()
            self.wait(120)
        self._request_update.cancel()
        self._request_update.flush(restart_timer=False)  # stops its timer, draws nothing
        super().closeEvent(event)
