"""The Sweep window's definition form: base preset and overrides, axes (fields of the
parameter panel), seeds, steps, workers or a Dask scheduler, and the folder; checked as it
is typed. A mixin of app.sweep_view.SweepWindow (it relies on the window's attributes)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from PySide6 import QtCore, QtWidgets

from app.panels.base import HeaderLabel
from app.panels.parameters import field_names
from engine.config import ConfigError, ExperimentConfig, load_preset, preset_names
from engine.executors import Executor
from engine.seeds import axes_roles
from engine.sweep import Sweep, SweepError, make_axis, parse_set


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


def for_the_window(message: str) -> str:
    """An engine message that points at the command line's --set, pointed at the field
    that does the same here."""
    return message.replace("e.g. --set ", "under base overrides, e.g. ")


def message_label(colour: str = "", lines: int = 2) -> HeaderLabel:
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


class SweepFormMixin:
    """The Sweep window's definition form and what reads it."""

    # the window's (app.sweep_view.SweepWindow)
    sweeps_dir: Path
    folder: Path | None
    base: ExperimentConfig | None  # a base config instead of the preset
    last_error: str | None
    message: HeaderLabel
    start_button: QtWidgets.QPushButton
    _last_preset: str

    if TYPE_CHECKING:
        @property
        def running(self) -> bool: ...

        def _fail(self, message: str) -> None: ...

    def _build_form(self) -> QtWidgets.QWidget:
        """The definition form: base preset and overrides, axes, seeds, steps, workers,
        scheduler and folder."""
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
        values_header = self.axes.horizontalHeaderItem(1)
        if values_header is not None:  # set just above
            values_header.setToolTip(
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
        self.roles = message_label("#666", lines=10)  # one axis and the seeds whole (tooltip: all)
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
        return form_box

    def _on_preset_chosen(self, _index: int) -> None:
        """A new base: the default axis follows it while it is the only, untouched one."""
        self._commit_axis_edit()
        was_default = (self.axes.rowCount() == 1 and self._axis_text(0) == default_axis(
            self.base or load_preset(self._last_preset)))
        self.base = None
        self._last_preset = self.preset.currentText()
        if was_default:
            field, values = default_axis(load_preset(self._last_preset))
            self._field_box(0).setCurrentText(field)
            self._values_item(0).setText(values)
        self.validate()

    def _field_box(self, row: int) -> QtWidgets.QComboBox:
        """The field chooser of axis `row` (add_axis puts one in every row)."""
        box = self.axes.cellWidget(row, 0)
        if not isinstance(box, QtWidgets.QComboBox):
            raise LookupError(f"axis row {row} has no field chooser")
        return box

    def _values_item(self, row: int) -> QtWidgets.QTableWidgetItem:
        item = self.axes.item(row, 1)
        if item is None:
            raise LookupError(f"axis row {row} has no values")
        return item

    def _axis_text(self, row: int) -> tuple[str, str]:
        item = self.axes.item(row, 1)
        return self._field_box(row).currentText(), item.text() if item else ""

    def validate(self) -> bool:
        """Check the form as it is typed: Start is enabled only for a sweep that can run,
        and the message says what is wrong (and goes when it is fixed)."""
        self._show_roles()
        try:
            self.build_sweep()
        except (SweepError, ConfigError) as exc:
            self._fail(for_the_window(str(exc)))
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
        fields = [self._field_box(r).currentText() for r in range(self.axes.rowCount())
                  if self.axes.cellWidget(r, 0) is not None]
        lines = axes_roles(fields, self.seeds.value())
        if "\n".join(lines) != self.roles.toolTip():  # the label folds lines into one
            self.roles.setText(" · ".join(lines))
            self.roles.setToolTip("\n".join(lines))

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
            field = self._field_box(row).currentText()
            item = self.axes.item(row, 1)
            axes.append(make_axis(field, item.text() if item else "", base))
        name = base.name if self.base is not None else self.preset.currentText()
        sweep = Sweep(base=base, axes=axes, seeds=self.seeds.value(), name=f"sweep-{name}")
        sweep.points(runnable=True)  # validates every grid point, and that it can run here
        return sweep

    def _executor(self) -> Executor:
        from engine.executors import choose_executor

        return choose_executor(self.workers.value(), self.scheduler.text().strip() or None,
                               threads=1)

    def _show_definition(self, sweep: Sweep) -> None:
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
