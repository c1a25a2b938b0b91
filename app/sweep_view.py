"""The Sweep window: define a sweep (axes picked from the parameter panel's fields, seeds,
workers or a Dask scheduler), run it, and read the phase diagram while it fills in.

The sweep itself is engine.sweep's: it runs in a Python thread of this process and hands
every progress event to the GUI thread through a queued Qt signal (no polling). The
phase diagram plots one number per run (final, best or at a step) against the first axis
(single runs, mean and its 95% interval over seeds, the baselines), or a
heatmap over the first two axes. A run is selected by clicking its point or its table
row; a double-click opens it as a recorded run in the main window.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
from PySide6 import QtCore, QtGui, QtWidgets

from app.panels.base import HeaderLabel
from app.panels.parameters import field_names
from app.panels.phase import PhasePanel
from app.sweep_runner import SweepRunner
from engine import figures, metrics
from engine.config import ConfigError, ExperimentConfig, load_preset, preset_names
from engine.seeds import axes_roles
from engine.sweep import (
    DONE,
    RUNS,
    Sweep,
    SweepError,
    load_sweep,
    make_axis,
    parse_set,
    prepare,
    read_summary,
    summary_columns,
    summary_row,
    summary_text,
)

# Numbers a run can be represented by; the first ones found in the summary are offered.
METRICS = (  # collision_ratio and the unseen rates: unseen classes, as the claim
    "oneshot_trained", "collision_ratio", "unseen_same_class_collision",
    "unseen_different_class_collision", "invariance_trained", "gamma_r2_trained",
    "theta_r2_trained", "lsh_recall_trained", "collision_ratio_all", "same_class_collision",
    "different_class_collision", "train_accuracy", "loss",
)
VALUE_CHOICES = ("final", "best", "at step")
TABLE_COLUMNS = ("run", "seed", "status", "step", "oneshot_trained", "collision_ratio")


def default_axis(base: ExperimentConfig) -> tuple[str, str]:
    """The sweep the window offers first, valid on every preset: the number of seen
    classes the network trains on, from the probe's seen classes (it cannot have fewer)
    up to four times that."""
    k = base.probe.seen_classes
    return "data.seen_classes", ",".join(str(k * f) for f in (1, 2, 4))


def parse_overrides(text: str, base: ExperimentConfig) -> ExperimentConfig:
    """`base` with "FIELD=VALUE" overrides applied (spaces, commas or semicolons between
    them), exactly as `main.py sweep --set FIELD=VALUE` applies them; SweepError names
    the bad one."""
    for part in text.replace(";", " ").replace(",", " ").split():
        name, value = parse_set(part.strip())
        try:
            base = base.replace(**{name: value})
        except ConfigError as exc:
            raise SweepError(f"base override {name}={value}: {exc}") from None
    return base


def _for_the_window(message: str) -> str:
    """An engine message that points at the command line's --set, pointed at the field
    that does the same here."""
    return message.replace("e.g. --set ", "under base overrides, e.g. ")


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


class _Cell(QtWidgets.QTableWidgetItem):
    """A table cell showing its text (3 significant digits) and sorting by its number."""

    def __init__(self, text: str, number: float) -> None:
        super().__init__(text)
        self.number = number

    def __lt__(self, other) -> bool:
        a, b = self.number, getattr(other, "number", math.nan)
        if a == a and b == b:
            return a < b
        return self.text() < other.text()


def _message_label(colour: str = "", lines: int = 2) -> HeaderLabel:
    """`lines` lines at most, the rest elided (the whole text in the tooltip and the
    log): a long message never widens the pane or moves the buttons."""
    label = HeaderLabel("")
    label.LINES = lines
    label.setSizePolicy(QtWidgets.QSizePolicy.Policy.Ignored,
                        QtWidgets.QSizePolicy.Policy.Fixed)
    label.setFixedHeight(label.fontMetrics().lineSpacing() * lines + 4)
    if colour:
        label.setStyleSheet(f"color: {colour};")
    return label


def _name(key: str) -> str:
    """A field or figure as a reader says it: "seen classes", "one-shot, trained" (a
    figure's label from engine/figures.py)."""
    if key in figures.FIGURES or key in figures.RATIO:
        return figures.label(key)
    return key.rsplit(".", 1)[-1].replace("_", " ")


def _span(values) -> tuple[float, float]:
    """The range of `values` (a point widened a little, so it has width)."""
    v = [float(x) for x in values if x == x]
    if not v:
        return (0.0, 1.0)
    lo, hi = min(v), max(v)
    if hi - lo < 1e-12:
        pad = abs(lo) * 0.1 or 0.5
        lo, hi = lo - pad, hi + pad
    return (lo, hi)


def _number(v) -> float:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return math.nan
    return f


class SweepWindow(QtWidgets.QMainWindow):
    """Define, run, resume and read sweeps; see the module docstring."""

    open_run_requested = QtCore.Signal(str)
    compare_requested = QtCore.Signal(list)  # 2..8 run folders (str)

    def __init__(self, sweeps_dir: Path, parent=None) -> None:
        super().__init__(parent)
        self.setWindowTitle("GSH Lab: sweeps")
        self.sweeps_dir = Path(sweeps_dir)
        self.folder: Path | None = None
        self.follower = None  # app.follow.SweepFollower of a sweep running elsewhere
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
        self._build()
        self._last_preset = self.preset.currentText()
        self.fit_to_screen()  # before the first show: a window manager frames it in place

    # ------------------------------------------------------------------ building
    def _build(self) -> None:
        form_box = QtWidgets.QWidget()
        form = QtWidgets.QFormLayout(form_box)
        self.preset = QtWidgets.QComboBox()
        self.preset.addItems(preset_names())
        self.preset.setCurrentText("quick" if "quick" in preset_names() else "default")
        self.preset.activated.connect(self._on_preset_chosen)
        form.addRow("base preset", self.preset)
        self.overrides = QtWidgets.QLineEdit()
        self.overrides.setPlaceholderText("e.g. probe.seen_classes=5 train.lr=0.003")
        self.overrides.setToolTip(
            "Changes to the base config, FIELD=VALUE separated by spaces (the same as "
            "`main.py sweep --set FIELD=VALUE`)")
        form.addRow("base overrides", self.overrides)
        self.axes = QtWidgets.QTableWidget(0, 2)
        self.axes.setHorizontalHeaderLabels(["field", "values"])
        self.axes.horizontalHeaderItem(1).setToolTip(
            "A list 2,5,10 or a range lo:hi:n (n values, both ends) or lo:hi:n:log")
        self.axes.horizontalHeader().setSectionResizeMode(
            0, QtWidgets.QHeaderView.ResizeMode.ResizeToContents)
        self.axes.horizontalHeader().setStretchLastSection(True)
        self.axes.verticalHeader().hide()
        self.axes.setMinimumHeight(90)
        self.axes.setMaximumHeight(150)
        buttons = QtWidgets.QHBoxLayout()
        add = QtWidgets.QPushButton("Add axis")
        add.clicked.connect(lambda: self.add_axis("train.lr", "0.001,0.003,0.01"))
        remove = QtWidgets.QPushButton("Remove axis")
        remove.clicked.connect(self._remove_axis)
        buttons.addWidget(add)
        buttons.addWidget(remove)
        axes_box = QtWidgets.QVBoxLayout()
        axes_box.addWidget(self.axes)
        axes_box.addLayout(buttons)
        form.addRow("axes", axes_box)
        hint = QtWidgets.QLabel("values: 2,5,10 or lo:hi:n[:log]")
        hint.setStyleSheet("color: #666;")
        form.addRow("", hint)
        # which random roles each axis (and the seeds) changes: engine.seeds.AXIS_ROLES
        self.roles = _message_label("#666", lines=6)  # all of it in the tooltip
        form.addRow("changes", self.roles)
        self.seeds = QtWidgets.QSpinBox()
        self.seeds.setRange(1, 100)
        self.seeds.setValue(2)
        form.addRow("seeds", self.seeds)
        self.steps = QtWidgets.QSpinBox()
        self.steps.setRange(0, 10_000_000)
        self.steps.setSpecialValueText("as the preset")
        self.steps.setToolTip("Training steps of every run (0: the preset's)")
        form.addRow("steps", self.steps)
        self.workers = QtWidgets.QSpinBox()
        self.workers.setRange(1, 256)
        self.workers.setValue(2)
        self.workers.setToolTip("Worker processes of the local Dask cluster (1: in this "
                                "process, one run after another)")
        form.addRow("workers", self.workers)
        self.scheduler = QtWidgets.QLineEdit()
        self.scheduler.setPlaceholderText("local cluster (or tcp://host:8786)")
        self.scheduler.setToolTip("An existing Dask scheduler; its workers must see the "
                                  "sweep folder at the same path")
        form.addRow("scheduler", self.scheduler)
        self.out = QtWidgets.QLineEdit()
        self.out.setPlaceholderText(str(self.sweeps_dir / "<new folder>"))
        form.addRow("folder", self.out)
        # Below the form, always in view: the message, the buttons, progress and status.
        self.message = _message_label("#c0392b", lines=3)
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
        self.status = _message_label()
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
            self.metric_choice.addItem(_name(m), m)
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
        self.table.setHorizontalHeaderLabels([_name(c) for c in TABLE_COLUMNS])
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

    def _on_preset_chosen(self, _index: int) -> None:
        """A new base: the default axis follows it while it is the only, untouched one."""
        self._commit_axis_edit()
        was_default = (self.axes.rowCount() == 1 and self._axis_text(0) == default_axis(
            self.base or load_preset(self._last_preset)))
        self.base = None
        self._last_preset = self.preset.currentText()
        if was_default:
            field, values = default_axis(load_preset(self._last_preset))
            self.axes.cellWidget(0, 0).setCurrentText(field)
            self.axes.item(0, 1).setText(values)
        self.validate()

    def _axis_text(self, row: int) -> tuple[str, str]:
        item = self.axes.item(row, 1)
        return self.axes.cellWidget(row, 0).currentText(), item.text() if item else ""

    def validate(self) -> bool:
        """Check the form as it is typed: Start is enabled only for a sweep that can run,
        and the message says what is wrong (and goes when it is fixed)."""
        self._show_roles()
        try:
            self.build_sweep()
        except (SweepError, ConfigError) as exc:
            self._fail(_for_the_window(str(exc)))
            self.start_button.setEnabled(False)
            return False
        if self.message.text():
            self.message.setText("")
            self.message.setToolTip("")
        self.last_error = None
        self.start_button.setEnabled(not self.running)
        return True

    def _show_roles(self) -> None:
        """One line per axis (and the seeds, when several): the random roles it changes."""
        fields = [self.axes.cellWidget(r, 0).currentText() for r in range(self.axes.rowCount())
                  if self.axes.cellWidget(r, 0) is not None]
        lines = axes_roles(fields, self.seeds.value())
        if "\n".join(lines) != self.roles.toolTip():  # the label folds lines into one
            self.roles.setText(" · ".join(lines))
            self.roles.setToolTip("\n".join(lines))

    def fit_to_screen(self, width: int = 1300, height: int = 800) -> None:
        """At most `width` x `height`, and never more than the screen shows (a window
        manager's frame included): at 1366x768 every part is on screen. Placed before
        the window is shown, the position is the frame's."""
        screen = self.screen() or QtGui.QGuiApplication.primaryScreen()
        if screen is None:
            return
        area = screen.availableGeometry()
        frame_w = max(self.frameGeometry().width() - self.geometry().width(), 0)
        frame_h = max(self.frameGeometry().height() - self.geometry().height(), 0)
        if QtGui.QGuiApplication.platformName() != "offscreen":
            frame_w, frame_h = max(frame_w, 16), max(frame_h, 48)
        w = min(width, area.width() - frame_w)
        h = min(height, area.height() - frame_h)
        self.resize(w, h)
        self.move(area.x() + (area.width() - w - frame_w) // 2,
                  area.y() + (area.height() - h - frame_h) // 2)

    # ------------------------------------------------------------------ definition
    def add_axis(self, field: str, values: str) -> None:
        row = self.axes.rowCount()
        self.axes.insertRow(row)
        combo = QtWidgets.QComboBox()
        combo.addItems(field_names())
        combo.setSizeAdjustPolicy(
            QtWidgets.QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        combo.setMinimumContentsLength(17)  # "data.seen_classes" whole; the list is wider
        combo.view().setMinimumWidth(combo.view().sizeHintForColumn(0) + 24)
        combo.setCurrentText(field)
        with QtCore.QSignalBlocker(self.axes):
            self.axes.setCellWidget(row, 0, combo)
            self.axes.setItem(row, 1, QtWidgets.QTableWidgetItem(values))
        combo.currentTextChanged.connect(self.validate)
        if hasattr(self, "_last_preset"):
            self.validate()

    def _remove_axis(self) -> None:
        row = self.axes.currentRow()
        self._commit_axis_edit()
        self.axes.removeRow(row if row >= 0 else self.axes.rowCount() - 1)
        self.validate()

    def _commit_axis_edit(self) -> None:
        """Commit the axis value being typed and close its editor before the axes change
        under it: left open, it wrote stale text later, or into a row that had gone
        ("commitData called with an editor that does not belong to this view")."""
        index = self.axes.currentIndex()
        editor = self.axes.indexWidget(index) if index.column() == 1 else None  # not a field
        if editor is not None and (
                self.axes.state() == QtWidgets.QAbstractItemView.State.EditingState):
            self.axes.commitData(editor)
            self.axes.closeEditor(editor, QtWidgets.QAbstractItemDelegate.EndEditHint.NoHint)

    def build_sweep(self) -> Sweep:
        """The sweep the form describes; SweepError or ConfigError name the bad part."""
        base = self.base or load_preset(self.preset.currentText())
        base = parse_overrides(self.overrides.text(), base)
        if self.steps.value():
            base = base.replace(**{"train.steps": self.steps.value()})
        axes = []
        for row in range(self.axes.rowCount()):
            field = self.axes.cellWidget(row, 0).currentText()
            item = self.axes.item(row, 1)
            axes.append(make_axis(field, item.text() if item else "", base))
        name = base.name if self.base is not None else self.preset.currentText()
        sweep = Sweep(base=base, axes=axes, seeds=self.seeds.value(), name=f"sweep-{name}")
        sweep.points(runnable=True)  # validates every grid point, and that it can run here
        return sweep

    def _executor(self):
        from engine.executors import choose_executor

        return choose_executor(self.workers.value(), self.scheduler.text().strip() or None,
                               threads=1)

    # ------------------------------------------------------------------ running
    @property
    def running(self) -> bool:
        return self.runner.running

    @property
    def result(self):
        """How the sweep this window ran ended (engine.sweep.SweepResult), once it has."""
        return self.runner.result

    def start(self, executor=None) -> bool:
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
            self._fail(_for_the_window(str(exc)))
            return False
        self.message.setText("")
        self._run(folder, sweep, executor or self._executor())
        return True

    def resume(self, folder: str | Path, executor=None) -> bool:
        """Run the sweep stored in `folder` again: finished runs are skipped."""
        if self.running or not self.open_sweep(folder):
            return False
        self._run(self.folder, None, executor or self._executor())
        return True

    def _run(self, folder: Path, sweep, executor) -> None:
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

    def _on_event(self, ev) -> None:
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
        self._fill_table()
        self.redraw()

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

    def _show_definition(self, sweep) -> None:
        """The form shows the opened sweep: its base config (Start resumes it), axes, seeds."""
        self.base = sweep.base
        self.preset.setPlaceholderText(f"the sweep's base ({sweep.base.name})")
        self.preset.setCurrentIndex(-1)
        self._commit_axis_edit()
        self.axes.setRowCount(0)
        for a in sweep.axes:
            self.add_axis(a.field, ",".join(str(v) for v in a.values))
        self.seeds.setValue(sweep.seeds)
        self.out.setText(str(self.folder))

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
        self._fill_table()
        self.redraw()

    def _fill_table(self) -> None:
        axes = [a.field for a in self.sweep.axes if a.field != "seed"] if self.sweep else []
        columns = ["run", *axes, *TABLE_COLUMNS[1:]]
        self.table.setSortingEnabled(False)
        self.table.setColumnCount(len(columns))
        self.table.setHorizontalHeaderLabels([
            c.rsplit(".", 1)[-1].replace("_", " ") if c in axes else _name(c)
            for c in columns])
        self.table.setRowCount(len(self.order))
        for i, rid in enumerate(self.order):
            row = self.rows[rid]
            for j, col in enumerate(columns):
                value = row.get(col, "")
                f = _number(value)
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
        return self.table.item(row, 0).data(QtCore.Qt.ItemDataRole.UserRole)

    def run_value(self, rid: str, metric: str) -> float:
        """The number that represents run `rid`: its final, best or at-step `metric`."""
        row = self.rows[rid]
        choice = self.value.currentText()
        if choice == "final":
            return figures.value(row, metric)
        history = self._history(rid)
        values = [(_number(r.get("step")), figures.value(r, metric)) for r in history]
        values = [(s, v) for s, v in values if v == v]
        if not values:
            return math.nan
        if choice == "best":
            pick = max if figures.higher_is_better(metric) else min
            return pick(v for _s, v in values)
        target = self.at_step.value()
        earlier = [(s, v) for s, v in values if s <= target]
        return earlier[-1][1] if earlier else math.nan

    def _history(self, rid: str) -> list[dict]:
        if rid not in self._history_cache:
            from engine.record import open_run
            from engine.record_format import RunRecordError

            try:
                self._history_cache[rid] = open_run(self.folder / RUNS / rid).rows
            except (RunRecordError, OSError):
                self._history_cache[rid] = []
        return self._history_cache[rid]

    # ------------------------------------------------------------------ the diagram
    def redraw(self) -> None:
        panel = self.phase
        panel.clear()
        if self.sweep is None or not self.rows:
            panel.set_empty(True, "no sweep yet: define one and press Start, or open a sweep "
                                  "folder")
            return
        metric = self.metric_choice.currentData()
        axes = [a for a in self.sweep.axes if a.field != "seed"]
        if not axes:
            panel.set_info("the sweep has no axis but seeds: see the table")
            return
        ids = [rid for rid in self.order]
        values = {rid: self.run_value(rid, metric) for rid in ids}
        if len(axes) >= 2:
            self._draw_heatmap(axes[0], axes[1], values, metric)
            return
        axis = axes[0]
        xs_axis = [_number(v) for v in axis.values]
        numeric = all(x == x for x in xs_axis)
        log = self.log_x.isChecked() and numeric and all(x > 0 for x in xs_axis)

        def x_of(v) -> float:
            x = _number(v) if numeric else float(axis.values.index(v))
            return math.log10(x) if log else x

        spots = []
        for rid in ids:
            y = values[rid]
            if y == y:
                spots.append({"pos": (x_of(self.rows[rid].get(axis.field)), y), "data": rid})
        if not spots:
            panel.set_empty(True, f"no {_name(metric)} yet: the runs have not reported one")
            return
        panel.runs_item.setData(spots)
        mx, my, sd = [], [], []
        for v in axis.values:
            ys = [values[r] for r in ids if self._same(self.rows[r].get(axis.field), v)]
            ys = [y for y in ys if y == y]
            if ys:
                mean, lo, hi = metrics.mean_ci(ys)
                mx.append(x_of(v))
                my.append(mean)
                sd.append((hi - lo) / 2 if hi == hi else 0.0)  # the 95% interval's half
        if mx:
            panel.mean_item.setData(mx, my)
            panel.spread.setData(x=np.array(mx), y=np.array(my), height=2 * np.array(sd))
        for item, base in zip(panel.baseline_items, figures.baselines(metric), strict=False):
            bx, by = [], []
            for v in axis.values:
                ys = [_number(self.rows[r].get(base)) for r in ids
                      if self._same(self.rows[r].get(axis.field), v)]
                ys = [y for y in ys if y == y]
                if ys:
                    bx.append(x_of(v))
                    by.append(float(np.mean(ys)))
            item.setData(bx, by)
        if not numeric:
            panel.plot.getAxis("bottom").setTicks(
                [[(float(i), str(v)) for i, v in enumerate(axis.values)], []])
        else:
            panel.plot.getAxis("bottom").setTicks(None)
        panel.plot.setLabel("bottom", ("log10 " if log else "") + _name(axis.field))
        panel.plot.setLabel("left", f"{_name(metric)} ({self.value.currentText()})")
        base_names = " and ".join(_name(b) for b in figures.baselines(metric))
        extra = f"; dashed: {base_names}" if base_names else ""
        n = sum(1 for rid in ids if values[rid] == values[rid])
        panel.set_info(f"{_name(metric)} of {_plural(n, 'run')} against {_name(axis.field)}: "
                       f"dots = runs, line = mean over {_plural(self.sweep.seeds, 'seed')} "
                       f"with its 95% interval{extra}")
        # Axes fitted to the values drawn (baselines included), not to 0 or -0.5..0.5.
        xs = [sp["pos"][0] for sp in spots] + mx
        ys = [sp["pos"][1] for sp in spots] + [my[i] + sd[i] for i in range(len(my))] + [
            my[i] - sd[i] for i in range(len(my))]
        for item in panel.baseline_items:
            bx, by = item.getData()
            if by is not None:
                ys += [float(v) for v in by]
        panel.plot.setRange(xRange=_span(xs), yRange=_span(ys), padding=0.08)
        panel._changed()
        self._mark_selected()

    @staticmethod
    def _same(a, b) -> bool:
        fa, fb = _number(a), _number(b)
        if fa == fa and fb == fb:
            return math.isclose(fa, fb, rel_tol=1e-9, abs_tol=1e-12)
        return str(a) == str(b)

    def _draw_heatmap(self, ax1, ax2, values, metric) -> None:
        panel = self.phase
        grid = np.full((len(ax2.values), len(ax1.values)), np.nan, np.float32)
        for j, v2 in enumerate(ax2.values):
            for i, v1 in enumerate(ax1.values):
                ys = [values[r] for r in self.order
                      if self._same(self.rows[r].get(ax1.field), v1)
                      and self._same(self.rows[r].get(ax2.field), v2)]
                ys = [y for y in ys if y == y]
                if ys:
                    grid[j, i] = float(np.mean(ys))
        finite = grid[np.isfinite(grid)]
        lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
        if hi <= lo:
            hi = lo + 1e-9
        panel.image.setImage(grid, levels=(lo, hi), autoLevels=False)
        panel.colorbar.setLevels((lo, hi))
        panel.colorbar.show()
        panel.plot.getAxis("bottom").setTicks(
            [[(i + 0.5, f"{v:g}" if isinstance(v, float) else str(v))
              for i, v in enumerate(ax1.values)], []])
        panel.plot.getAxis("left").setTicks(
            [[(j + 0.5, f"{v:g}" if isinstance(v, float) else str(v))
              for j, v in enumerate(ax2.values)], []])
        panel.plot.setLabel("bottom", _name(ax1.field))
        panel.plot.setLabel("left", _name(ax2.field))
        panel.set_info(f"mean {_name(metric)} ({self.value.currentText()}) over "
                       f"{_plural(self.sweep.seeds, 'seed')}, {_name(ax2.field)} × "
                       f"{_name(ax1.field)}")
        panel.plot.setRange(xRange=(0, len(ax1.values)), yRange=(0, len(ax2.values)),
                            padding=0)
        panel._changed()

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
                self.table.scrollToItem(self.table.item(r, 0))
                return

    def _mark_selected(self) -> None:
        item = self.phase.selected_item
        item.clear()
        if self.selected is None:
            return
        for spot in self.phase.runs_item.points():
            if spot.data() == self.selected:
                pos = spot.pos()
                item.setData([pos.x()], [pos.y()])
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
        folder = QtWidgets.QFileDialog.getExistingDirectory(
            self, "Open a sweep folder", str(self.sweeps_dir))
        if folder:
            self.open_sweep(folder)

    def export_summary(self, path: str | Path) -> Path:
        from engine.atomic import atomic_write_text

        if self.folder is None:
            raise ValueError("no sweep yet: start or open one first")
        rows = read_summary(self.folder)
        return atomic_write_text(path, summary_text(rows, summary_columns(self.sweep)))

    def _on_export_summary_triggered(self) -> None:
        path, _ = QtWidgets.QFileDialog.getSaveFileName(
            self, "Export summary", "summary.csv", "CSV (*.csv)")
        if path:
            self._guard(self.export_summary, path)

    def _on_export_plot_requested(self, _name: str, fmt: str) -> None:
        path, _ = QtWidgets.QFileDialog.getSaveFileName(
            self, "Export phase diagram", f"phase.{fmt}", f"{fmt.upper()} (*.{fmt})")
        if path:
            self._guard(self.export_plot, path)

    def export_plot(self, path: str | Path) -> Path:
        from app.exports import scene_to_pdf

        path = Path(path)
        if path.suffix.lower() == ".pdf":
            return scene_to_pdf(self.phase.graphics.scene(), self.phase.graphics, path,
                                title="GSH Lab: phase diagram")
        return self.phase.export(path)

    def _guard(self, fn, *args) -> None:
        try:
            out = fn(*args)
        except (OSError, ValueError) as exc:
            QtWidgets.QMessageBox.warning(self, "Export failed", str(exc))
            return
        self.statusBar().showMessage(f"Wrote {out}", 5000)

    def closeEvent(self, event: QtGui.QCloseEvent) -> None:
        if self.follower is not None:
            self.follower.stop()
        if self.running:
            self.stop()
            self.wait(120)
        super().closeEvent(event)
