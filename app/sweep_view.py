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
import threading
import time
from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

from app.palette import palette
from app.panels.base import PlotPanel
from app.panels.parameters import field_names
from engine import config as C
from engine import figures, metrics
from engine import sweep as S

# Numbers a run can be represented by; the first ones found in the summary are offered.
METRICS = (  # collision_ratio and the unseen rates: unseen classes, as the claim
    "oneshot_trained", "collision_ratio", "unseen_same_class_collision",
    "unseen_different_class_collision", "invariance_trained", "gamma_r2_trained",
    "theta_r2_trained", "lsh_recall_trained", "collision_ratio_all", "same_class_collision",
    "different_class_collision", "train_accuracy", "loss",
)
VALUE_CHOICES = ("final", "best", "at step")
TABLE_COLUMNS = ("run", "seed", "status", "step", "oneshot_trained", "collision_ratio")


def _number(v) -> float:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return math.nan
    return f


class PhasePanel(PlotPanel):
    """The phase diagram (exports like every plot panel: PNG, SVG, PDF)."""

    name = "phase"
    title = "Phase diagram"
    point_clicked = QtCore.Signal(str)  # run id

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        pal = palette()
        self.plot = self.add_plot()
        for axis in ("left", "bottom"):  # axis values as they are (no "x0.001" rescaling)
            self.plot.getAxis(axis).enableAutoSIPrefix(False)
        self.runs_item = pg.ScatterPlotItem(size=7, pen=pal.no_pen,
                                            brush=pal.class_brushes[0], hoverable=True)
        self.runs_item.sigClicked.connect(self._on_clicked)
        self.mean_item = pg.PlotDataItem(pen=pal.curve_pens["trained"], symbol="o",
                                         symbolSize=5, symbolBrush=pal.class_brushes[0])
        self.spread = pg.ErrorBarItem(pen=pal.curve_pens["trained"], beam=0.0)
        self.baseline_items = [pg.PlotDataItem(pen=pen) for pen in
                               (pal.dashed_pens["untrained"], pal.dashed_pens["raw"])]
        self.selected_item = pg.ScatterPlotItem(size=14, pen=pg.mkPen("k", width=2),
                                                brush=pg.mkBrush(None))
        self.image = pg.ImageItem(axisOrder="row-major")
        self.colorbar = pg.ColorBarItem(colorMap=pal.heat_colormap, interactive=False,
                                        width=12)
        for item in (self.image, self.spread, self.mean_item, *self.baseline_items,
                     self.runs_item, self.selected_item):
            self.plot.addItem(item)
        self.colorbar.setImageItem(self.image, insert_in=self.plot)
        self.colorbar.hide()
        self.set_info("define a sweep and press Start, or open a sweep folder")
        self.set_empty(True, "no sweep yet: define one and press Start, or open a sweep folder")

    def clear(self) -> None:
        for item in (self.runs_item, self.selected_item, self.mean_item, self.image,
                     *self.baseline_items):
            item.clear()
        self.spread.setData(x=np.zeros(0), y=np.zeros(0), height=np.zeros(0))
        self.colorbar.hide()
        self.graphics.viewport().update()

    def _on_clicked(self, _item, points, *_):
        if len(points):
            self.point_clicked.emit(str(points[0].data()))


class SweepWindow(QtWidgets.QMainWindow):
    """Define, run, resume and read sweeps; see the module docstring."""

    open_run_requested = QtCore.Signal(str)
    compare_requested = QtCore.Signal(list)  # 2..8 run folders (str)
    event_arrived = QtCore.Signal(object)  # engine.sweep.SweepEvent, from the sweep thread

    def __init__(self, sweeps_dir: Path, parent=None) -> None:
        super().__init__(parent)
        self.setWindowTitle("GSH Lab: sweeps")
        self.sweeps_dir = Path(sweeps_dir)
        self.folder: Path | None = None
        self.follower = None  # app.follow.SweepFollower of a sweep running elsewhere
        self.sweep: S.Sweep | None = None
        self.rows: dict[str, dict] = {}  # run id -> summary row (live-updated)
        self._points: dict = {}  # run id -> engine.sweep.RunPoint
        self.base: C.ExperimentConfig | None = None  # a base config instead of the preset
        self.order: list[str] = []
        self.selected: str | None = None
        self.last_error: str | None = None
        self.result = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._history_cache: dict[str, list[dict]] = {}
        self.event_arrived.connect(self._on_event)
        self._build()
        self.resize(1300, 800)

    # ------------------------------------------------------------------ building
    def _build(self) -> None:
        form_box = QtWidgets.QWidget()
        form = QtWidgets.QFormLayout(form_box)
        self.preset = QtWidgets.QComboBox()
        self.preset.addItems(C.preset_names())
        self.preset.setCurrentText("quick" if "quick" in C.preset_names() else "default")
        self.preset.activated.connect(lambda _i: setattr(self, "base", None))  # a new base
        form.addRow("base preset", self.preset)
        self.axes = QtWidgets.QTableWidget(0, 2)
        self.axes.setHorizontalHeaderLabels(["field", "values (2,5,10 or lo:hi:n[:log])"])
        self.axes.horizontalHeader().setStretchLastSection(True)
        self.axes.verticalHeader().hide()
        self.axes.setMinimumHeight(110)
        buttons = QtWidgets.QHBoxLayout()
        add = QtWidgets.QPushButton("Add axis")
        add.clicked.connect(lambda: self.add_axis("data.seen_classes", "10,20,40"))
        remove = QtWidgets.QPushButton("Remove axis")
        remove.clicked.connect(self._remove_axis)
        buttons.addWidget(add)
        buttons.addWidget(remove)
        axes_box = QtWidgets.QVBoxLayout()
        axes_box.addWidget(self.axes)
        axes_box.addLayout(buttons)
        form.addRow("axes", axes_box)
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
        self.message = QtWidgets.QLabel("")
        self.message.setWordWrap(True)
        self.message.setStyleSheet("color: #c0392b;")
        form.addRow(self.message)
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
        form.addRow(run_row)
        self.progress = QtWidgets.QProgressBar()
        self.progress.setFormat("%v / %m runs")
        self.status = QtWidgets.QLabel("")
        form.addRow(self.progress)
        form.addRow(self.status)

        self.phase = PhasePanel()
        self.phase.point_clicked.connect(self.select_run)
        controls = QtWidgets.QHBoxLayout()
        self.metric_choice = QtWidgets.QComboBox()
        self.metric_choice.addItems(list(METRICS))
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
        self.log_x.toggled.connect(self.redraw)
        self.table = QtWidgets.QTableWidget(0, len(TABLE_COLUMNS))
        self.table.setHorizontalHeaderLabels(TABLE_COLUMNS)
        self.table.setSortingEnabled(True)
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
        right.addWidget(plot_box)
        right.addWidget(self.table)
        right.setSizes([480, 300])
        scroll = QtWidgets.QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(form_box)
        scroll.setMinimumWidth(340)
        split = QtWidgets.QSplitter()
        split.addWidget(scroll)
        split.addWidget(right)
        split.setSizes([380, 920])
        self.setCentralWidget(split)
        menu = self.menuBar().addMenu("&File")
        menu.addAction("Open sweep…", self._on_open_triggered)
        menu.addAction("Export summary.csv…", self._on_export_summary_triggered)
        for fmt in ("png", "svg", "pdf"):
            menu.addAction(f"Export phase diagram as {fmt.upper()}…",
                           lambda f=fmt: self.phase.export_requested.emit("phase", f))
        self.phase.export_requested.connect(self._on_export_plot_requested)
        self.add_axis("data.seen_classes", "5,10,20")

    # ------------------------------------------------------------------ definition
    def add_axis(self, field: str, values: str) -> None:
        row = self.axes.rowCount()
        self.axes.insertRow(row)
        combo = QtWidgets.QComboBox()
        combo.addItems(field_names())
        combo.setCurrentText(field)
        self.axes.setCellWidget(row, 0, combo)
        self.axes.setItem(row, 1, QtWidgets.QTableWidgetItem(values))

    def _remove_axis(self) -> None:
        row = self.axes.currentRow()
        self.axes.removeRow(row if row >= 0 else self.axes.rowCount() - 1)

    def build_sweep(self) -> S.Sweep:
        """The sweep the form describes; SweepError or ConfigError name the bad part."""
        base = self.base or C.load_preset(self.preset.currentText())
        if self.steps.value():
            base = base.replace(**{"train.steps": self.steps.value()})
        axes = []
        for row in range(self.axes.rowCount()):
            field = self.axes.cellWidget(row, 0).currentText()
            item = self.axes.item(row, 1)
            axes.append(S.make_axis(field, item.text() if item else "", base))
        name = base.name if self.base is not None else self.preset.currentText()
        sweep = S.Sweep(base=base, axes=axes, seeds=self.seeds.value(), name=f"sweep-{name}")
        sweep.points(runnable=True)  # validates every grid point, and that it can run here
        return sweep

    def _executor(self):
        from engine.executors import DaskExecutor, SerialExecutor

        address = self.scheduler.text().strip()
        if address:
            return DaskExecutor(scheduler=address)
        if self.workers.value() == 1:
            return SerialExecutor(threads=1)
        return DaskExecutor(workers=self.workers.value())

    # ------------------------------------------------------------------ running
    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self, executor=None) -> bool:
        """Validate and start the sweep the form describes (or resume its folder)."""
        if self.running:
            return False
        try:
            sweep = self.build_sweep()
            folder = Path(self.out.text().strip()) if self.out.text().strip() else (
                self.sweeps_dir / time.strftime(f"%Y%m%d-%H%M%S-{sweep.name}"))
            S.prepare(folder, sweep)
        except (S.SweepError, C.ConfigError) as exc:
            self._fail(str(exc))
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
        self._stop = threading.Event()
        self.result = None
        stop = self._stop

        def main() -> None:
            try:
                self.result = S.run_sweep(folder, sweep, executor,
                                          on_event=self.event_arrived.emit, stop=stop)
            except Exception as exc:  # shown in the window, never a traceback
                self.event_arrived.emit(S.SweepEvent(kind="failed", error=str(exc)))

        self._thread = threading.Thread(target=main, name="gsh-sweep-view")
        self._thread.start()
        self.start_button.setEnabled(False)
        self.stop_button.setEnabled(True)
        self.status.setText(f"running in {self.folder}")

    def stop(self) -> None:
        """Each running run stops at its next snapshot (recorded "stopped")."""
        self._stop.set()
        self.status.setText("stopping at the runs' next snapshots…")

    def wait(self, timeout_s: float = 120.0) -> bool:
        if self._thread is not None:
            self._thread.join(timeout_s)
        return not self.running

    def _fail(self, message: str) -> None:
        self.last_error = message
        self.message.setText(message)

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
                self.rows[ev.run_id] = S.summary_row(self.folder, self._points[ev.run_id])
                self._history_cache.pop(ev.run_id, None)
        if ev.kind in ("done", "failed"):
            self._finished()
        eta = f", about {ev.eta_s:.0f} s left" if ev.eta_s == ev.eta_s and ev.eta_s > 0 else ""
        if self.running and ev.kind not in ("done", "failed"):
            self.status.setText(f"{ev.runs_done}/{ev.runs_total} runs done{eta}")
        self._fill_table()
        self.redraw()

    def _finished(self) -> None:
        if self._thread is not None:
            self._thread.join(30)
        self.start_button.setEnabled(True)
        self.stop_button.setEnabled(False)
        if self.result is not None:
            self.status.setText(self.result.line())
        self._load_rows()

    # ------------------------------------------------------------------ reading
    def open_sweep(self, folder: str | Path) -> bool:
        """Show a sweep folder's table and phase diagram (its runs are not re-run)."""
        try:
            sweep = S.load_sweep(folder)
            sweep.points()
        except (S.SweepError, C.ConfigError, OSError) as exc:
            self._fail(str(exc))
            return False
        self.folder = Path(folder)
        self.sweep = sweep
        self._show_definition(sweep)
        self._load_rows()
        self.status.setText(f"{self.folder}")
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
            lambda: self.status.setText(f"{self.folder} · no longer running elsewhere"))
        self.status.setText(f"{self.folder} · running elsewhere (following)")

    def _show_definition(self, sweep) -> None:
        """The form shows the opened sweep: its base config (Start resumes it), axes, seeds."""
        self.base = sweep.base
        self.preset.setPlaceholderText(f"the sweep's base ({sweep.base.name})")
        self.preset.setCurrentIndex(-1)
        self.axes.setRowCount(0)
        for a in sweep.axes:
            self.add_axis(a.field, ",".join(str(v) for v in a.values))
        self.seeds.setValue(sweep.seeds)
        self.out.setText(str(self.folder))

    def _load_rows(self) -> None:
        if self.folder is None:
            return
        try:
            self.sweep = S.load_sweep(self.folder)
            rows = S.read_summary(self.folder)
        except (S.SweepError, C.ConfigError, OSError) as exc:
            self._fail(str(exc))
            return
        self.rows = {r["run"]: r for r in rows}
        self.order = [r["run"] for r in rows]
        self._points = {p.id: p for p in self.sweep.points()}
        self._history_cache.clear()
        done = sum(r.get("status") in S.DONE for r in rows)
        self.progress.setRange(0, len(rows))
        self.progress.setValue(done)
        self._fill_table()
        self.redraw()

    def _fill_table(self) -> None:
        axes = [a.field for a in self.sweep.axes if a.field != "seed"] if self.sweep else []
        columns = ["run", *axes, *TABLE_COLUMNS[1:]]
        self.table.setSortingEnabled(False)
        self.table.setColumnCount(len(columns))
        self.table.setHorizontalHeaderLabels([c.rsplit(".", 1)[-1] for c in columns])
        self.table.setRowCount(len(self.order))
        for i, rid in enumerate(self.order):
            row = self.rows[rid]
            for j, col in enumerate(columns):
                value = row.get(col, "")
                f = _number(value)
                text = (f"{f:.3g}" if col not in ("run", "seed", "step") and f == f
                        else str(value))
                item = QtWidgets.QTableWidgetItem(text)
                if f == f and col != "run":
                    item.setData(QtCore.Qt.ItemDataRole.EditRole, f)
                item.setData(QtCore.Qt.ItemDataRole.UserRole, rid)
                self.table.setItem(i, j, item)
        self.table.setSortingEnabled(True)
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
            from engine.record import RunRecordError, open_run

            try:
                self._history_cache[rid] = open_run(self.folder / S.RUNS / rid).rows
            except (RunRecordError, OSError):
                self._history_cache[rid] = []
        return self._history_cache[rid]

    # ------------------------------------------------------------------ the diagram
    def redraw(self) -> None:
        panel = self.phase
        panel.clear()
        if self.sweep is None or not self.rows:
            return
        metric = self.metric_choice.currentText()
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
        panel.runs_item.setData(spots)
        mx, my, sd = [], [], []
        for v in axis.values:
            ys = [values[r] for r in ids if self._same(self.rows[r].get(axis.field), v)]
            ys = [y for y in ys if y == y]
            if ys:
                mean, lo, hi = metrics.mean_ci(ys)
                mx.append(x_of(v))
                my.append(mean)
                sd.append(hi - lo if hi == hi else 0.0)  # the 95% interval's width
        if mx:
            panel.mean_item.setData(mx, my)
            panel.spread.setData(x=np.array(mx), y=np.array(my), height=np.array(sd))
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
        panel.plot.setLabel("bottom", ("log10 " if log else "") + axis.field)
        panel.plot.setLabel("left", f"{metric} ({self.value.currentText()})")
        base_names = " and ".join(figures.baselines(metric))
        extra = f"; dashed: {base_names}" if base_names else ""
        n = sum(1 for rid in ids if values[rid] == values[rid])
        panel.set_info(f"{metric} of {n} runs against {axis.field}: dots = runs, line = mean "
                       f"over {self.sweep.seeds} seeds with its 95% interval{extra}")
        panel.plot.autoRange()
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
        panel.plot.setLabel("bottom", ax1.field)
        panel.plot.setLabel("left", ax2.field)
        panel.set_info(f"mean {metric} ({self.value.currentText()}) over seeds, "
                       f"{ax2.field} x {ax1.field}")
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
        return [self.folder / S.RUNS / self._id_of(r) for r in rows]

    def compare_selected(self) -> None:
        """Ask the main window to compare the selected runs (2..8)."""
        runs = self.selected_runs()
        if 2 <= len(runs) <= 8:
            self.compare_requested.emit([str(p) for p in runs])

    def open_run(self, rid: str) -> None:
        """Ask the main window to open this run as a recorded run."""
        if self.folder is not None and rid in self.rows:
            self.open_run_requested.emit(str(self.folder / S.RUNS / rid))

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
        rows = S.read_summary(self.folder)
        return atomic_write_text(path, S.summary_text(rows, S.summary_columns(self.sweep)))

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
