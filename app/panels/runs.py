"""Runs: the recorded runs of the runs folder, newest first; open, rename or delete one.

Reads only each run's run.json (engine.record), so a folder of hundreds of runs lists at
once; a run's snapshots are read when it is opened.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from PySide6 import QtCore, QtGui, QtWidgets

from engine import figures
from engine.record import DAMAGED, read_run_json
from engine.record_format import DID_NOT_FINISH, RunRecordError, writer_alive

COLUMNS = ("run", "family", "created", "steps", "status", "one-shot", "collision ratio")


def _table(v: object) -> dict:
    return v if isinstance(v, dict) else {}


def _float(v: object) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def run_summary(path: Path) -> dict | None:
    """The Runs table's row for a run folder, or None for a folder that is not a run. A
    run whose run.json cannot be read is listed as damaged, with why in `error`."""
    row = {"path": path, "run": path.name, "family": "", "created": "", "steps": None,
           "status": DAMAGED, "one-shot": None, "collision ratio": None, "error": None}
    try:
        info = read_run_json(path)
    except FileNotFoundError:
        return None
    except RunRecordError as exc:
        return {**row, "error": str(exc)}
    status = info["status"]
    if status == "running" and not writer_alive(path):
        status = DID_NOT_FINISH
    final = _table(info.get("final"))
    oneshot = _float(_table(final.get("oneshot")).get("trained"))
    spec = figures.RATIO["collision_ratio"]
    ratio = figures.ratio(_float(figures.json_get(final, spec.numerator)),
                          _float(figures.json_get(final, spec.denominator)))
    steps = final.get("steps", info.get("steps"))
    return {
        **row,
        "family": str(info.get("family") or "")[:40],
        "created": str(info.get("created") or "")[:19].replace("T", " "),
        "steps": steps if isinstance(steps, int) and not isinstance(steps, bool) else None,
        "status": status,
        "one-shot": oneshot,
        "collision ratio": ratio if ratio == ratio else None,
        "error": info.get("error") if status == DAMAGED else None,
    }


class PathLabel(QtWidgets.QLabel):
    """A folder's path that, when the dock is too narrow for it, keeps both ends and
    drops the middle ("/home/…/gsh-runs"), so the folder's own name stays readable
    (a plain label showed "/home/a" and nothing to say it was cut)."""

    def shown_text(self) -> str:
        return self.fontMetrics().elidedText(
            self.text(), QtCore.Qt.TextElideMode.ElideMiddle,
            max(self.contentsRect().width(), 1))

    def paintEvent(self, event: QtGui.QPaintEvent) -> None:
        painter = QtGui.QPainter(self)
        try:
            self.style().drawItemText(
                painter, self.contentsRect(),
                int(self.alignment() | QtCore.Qt.AlignmentFlag.AlignVCenter),
                self.palette(), self.isEnabled(), self.shown_text(),
                QtGui.QPalette.ColorRole.WindowText)
        finally:
            painter.end()


class _Item(QtWidgets.QTableWidgetItem):
    """Sorts numbers as numbers, with blanks last."""

    def __init__(self, value: object) -> None:
        if isinstance(value, float):
            text = f"{value:.1f}" if value >= 10 else f"{value:.3f}"
        else:
            text = "–" if value is None else str(value)
        super().__init__(text)
        self.value = value
        self.setFlags(self.flags() & ~QtCore.Qt.ItemFlag.ItemIsEditable)

    def __lt__(self, other: QtWidgets.QTableWidgetItem) -> bool:
        a, b = self.value, getattr(other, "value", None)
        if isinstance(a, (int, float)) and isinstance(b, (int, float)):
            return a < b
        return str(self.text()) < str(other.text())


class RunsPanel(QtWidgets.QWidget):
    """The runs folder as a sortable table; double-click opens a run."""

    name = "runs"
    title = "Runs"
    open_requested = QtCore.Signal(str)
    compare_requested = QtCore.Signal(list)  # 2..8 run folders (str)
    folder_change_requested = QtCore.Signal()

    def __init__(self, folder: Path, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName(self.name)
        self.folder = Path(folder)
        self.busy: set[Path] = set()  # runs the window is writing (never deleted or renamed)
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(4, 2, 4, 2)
        row = QtWidgets.QHBoxLayout()
        self.folder_label = PathLabel()
        self.folder_label.setSizePolicy(QtWidgets.QSizePolicy.Policy.Ignored,
                                        QtWidgets.QSizePolicy.Policy.Preferred)
        change = QtWidgets.QPushButton("Folder…")
        change.setToolTip("Choose the folder where runs are recorded and listed")
        change.clicked.connect(self.folder_change_requested)
        refresh = QtWidgets.QPushButton("Refresh")
        refresh.clicked.connect(self.refresh)
        self.compare_button = QtWidgets.QPushButton("Compare")
        self.compare_button.setToolTip("Compare the selected runs (select 2 to 8: Ctrl- or "
                                       "Shift-click)")
        self.compare_button.clicked.connect(self._on_compare_clicked)
        row.addWidget(self.compare_button)
        row.addWidget(change)
        row.addWidget(refresh)
        row.addStretch(1)
        layout.addWidget(self.folder_label)  # its own line: beside the buttons it had 45 px
        layout.addLayout(row)
        self.table = QtWidgets.QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        for j, words in ((5, figures.label("oneshot_trained") + " (unseen classes)"),
                         (6, figures.label("collision_ratio"))):
            header = self.table.horizontalHeaderItem(j)
            if header is not None:  # set by setHorizontalHeaderLabels
                header.setToolTip(words)
        self.table.setSelectionBehavior(QtWidgets.QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QtWidgets.QAbstractItemView.SelectionMode.ExtendedSelection)
        self.table.verticalHeader().hide()
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.setSortingEnabled(True)
        self.table.setContextMenuPolicy(QtCore.Qt.ContextMenuPolicy.CustomContextMenu)
        self.table.customContextMenuRequested.connect(self._on_context_menu)
        self.table.itemDoubleClicked.connect(
            lambda item: self.open_requested.emit(str(self._path_of(item.row())))
        )
        self.table.itemSelectionChanged.connect(self._update_compare)
        layout.addWidget(self.table, 1)
        self.summaries: list[dict] = []
        self.set_folder(self.folder)

    def set_folder(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.folder_label.setText(str(self.folder))
        self.folder_label.setToolTip(str(self.folder))
        self.refresh()

    def refresh(self) -> None:
        """Re-read the runs folder (run.json files only)."""
        rows = []
        try:
            children = [p for p in self.folder.iterdir() if p.is_dir()]
        except OSError:
            children = []
        for path in children:
            s = run_summary(path)
            if s is not None:
                rows.append(s)
        rows.sort(key=lambda r: r["created"], reverse=True)
        self.summaries = rows
        self.table.setSortingEnabled(False)
        self.table.setRowCount(len(rows))
        for i, r in enumerate(rows):
            for j, col in enumerate(COLUMNS):
                item = _Item(r[col])
                if j == 0:
                    item.setData(QtCore.Qt.ItemDataRole.UserRole, str(r["path"]))
                    item.setToolTip(str(r["path"]))
                elif col == "status" and r.get("error") and r["status"] == DAMAGED:
                    item.setToolTip(r["error"])  # why the run cannot be read
                self.table.setItem(i, j, item)
        self.table.setSortingEnabled(True)
        self.table.resizeColumnsToContents()
        self._update_compare()

    def selected_paths(self) -> list[Path]:
        """The selected runs' folders, in table order."""
        rows = sorted({i.row() for i in self.table.selectedItems()})
        return [self._path_of(r) for r in rows]

    def _update_compare(self) -> None:
        n = len(self.selected_paths())
        self.compare_button.setEnabled(2 <= n <= 8)
        self.compare_button.setText(f"Compare {n}" if 2 <= n <= 8 else "Compare")

    def _on_compare_clicked(self) -> None:
        paths = self.selected_paths()
        if 2 <= len(paths) <= 8:
            self.compare_requested.emit([str(p) for p in paths])

    def _path_of(self, row: int) -> Path:
        item = self.table.item(row, 0)
        assert item is not None  # every row has its run cell
        return Path(item.data(QtCore.Qt.ItemDataRole.UserRole))

    # -- rename and delete (plain methods, the context menu asks first) -------------------
    def rename_run(self, path: Path, new_name: str) -> Path:
        """Rename a run's folder; ValueError says why not."""
        path = Path(path)
        new_name = new_name.strip()
        if not new_name or "/" in new_name or "\\" in new_name or new_name in (".", ".."):
            raise ValueError(f"{new_name!r} is not a folder name")
        if self._in_use(path):
            raise ValueError(f"{path.name} is being recorded now; rename it when it ends")
        target = path.with_name(new_name)
        if target.exists():
            raise ValueError(f"{target} already exists")
        path.rename(target)
        self.refresh()
        return target

    def delete_run(self, path: Path) -> None:
        """Delete a recorded run's folder (only a run folder, never one being written)."""
        path = Path(path)
        if run_summary(path) is None:
            raise ValueError(f"{path} is not a recorded run")
        if self._in_use(path):
            raise ValueError(f"{path.name} is being recorded now; stop it first")
        shutil.rmtree(path)
        self.refresh()

    def _in_use(self, path: Path) -> bool:
        return path.resolve() in {p.resolve() for p in self.busy} or writer_alive(path)

    def _on_context_menu(self, pos: QtCore.QPoint) -> None:
        item = self.table.itemAt(pos)
        if item is None:
            return
        path = self._path_of(item.row())
        menu = QtWidgets.QMenu(self)
        menu.addAction("Open", lambda: self.open_requested.emit(str(path)))
        if self.compare_button.isEnabled():
            menu.addAction(f"Compare the {len(self.selected_paths())} selected runs",
                           self._on_compare_clicked)
        menu.addAction("Rename…", lambda: self._ask_rename(path))
        menu.addAction("Delete…", lambda: self._ask_delete(path))
        menu.popup(self.table.viewport().mapToGlobal(pos))

    def _ask_rename(self, path: Path) -> None:
        name, ok = QtWidgets.QInputDialog.getText(self, "Rename run", "New name:",
                                                  text=path.name)
        if ok:
            try:
                self.rename_run(path, name)
            except (ValueError, OSError) as exc:
                QtWidgets.QMessageBox.warning(self, "Cannot rename the run", str(exc))

    def _ask_delete(self, path: Path) -> None:
        answer = QtWidgets.QMessageBox.question(
            self, "Delete run", f"Delete the recorded run {path.name} and all its files?"
        )
        if answer == QtWidgets.QMessageBox.StandardButton.Yes:
            try:
                self.delete_run(path)
            except (ValueError, OSError) as exc:
                QtWidgets.QMessageBox.warning(self, "Cannot delete the run", str(exc))
