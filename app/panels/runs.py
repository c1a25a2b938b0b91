"""Runs: the recorded runs of the runs folder, newest first; open, rename or delete one.

Reads only each run's run.json (engine.record), so a folder of hundreds of runs lists at
once; a run's snapshots are read when it is opened.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from PySide6 import QtCore, QtWidgets

from engine import figures
from engine.record import DID_NOT_FINISH, RUN_JSON, writer_alive

COLUMNS = ("run", "family", "created", "steps", "status", "one-shot", "collision ratio")


def run_summary(path: Path) -> dict | None:
    """The Runs table's row for a run folder, or None for a folder that is not a run."""
    try:
        info = json.loads((path / RUN_JSON).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(info, dict) or "schema_version" not in info:
        return None
    status = info.get("status", "running")
    if status == "running" and not writer_alive(path):
        status = DID_NOT_FINISH
    final = info.get("final") or {}
    oneshot = (final.get("oneshot") or {}).get("trained")
    spec = figures.RATIO["collision_ratio"]
    ratio = figures.ratio(figures.json_get(final, spec.numerator),
                          figures.json_get(final, spec.denominator))
    return {
        "path": path,
        "run": path.name,
        "family": str(info.get("family", "")),
        "created": str(info.get("created", ""))[:19].replace("T", " "),
        "steps": final.get("steps", info.get("steps")),
        "status": status,
        "one-shot": oneshot,
        "collision ratio": ratio if ratio == ratio else None,
    }


class _Item(QtWidgets.QTableWidgetItem):
    """Sorts numbers as numbers, with blanks last."""

    def __init__(self, value) -> None:
        if isinstance(value, float):
            text = f"{value:.1f}" if value >= 10 else f"{value:.3f}"
        else:
            text = "–" if value is None else str(value)
        super().__init__(text)
        self.value = value
        self.setFlags(self.flags() & ~QtCore.Qt.ItemFlag.ItemIsEditable)

    def __lt__(self, other) -> bool:
        a, b = self.value, getattr(other, "value", None)
        if isinstance(a, (int, float)) and isinstance(b, (int, float)):
            return a < b
        return str(self.text()) < str(other.text())


class RunsPanel(QtWidgets.QWidget):
    """The runs folder as a sortable table; double-click opens a run."""

    name = "runs"
    title = "Runs"
    open_requested = QtCore.Signal(str)
    folder_change_requested = QtCore.Signal()

    def __init__(self, folder: Path, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName(self.name)
        self.folder = Path(folder)
        self.busy: set[Path] = set()  # runs the window is writing (never deleted or renamed)
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(4, 2, 4, 2)
        row = QtWidgets.QHBoxLayout()
        self.folder_label = QtWidgets.QLabel()
        self.folder_label.setSizePolicy(QtWidgets.QSizePolicy.Policy.Ignored,
                                        QtWidgets.QSizePolicy.Policy.Preferred)
        change = QtWidgets.QPushButton("Folder…")
        change.setToolTip("Choose the folder where runs are recorded and listed")
        change.clicked.connect(self.folder_change_requested)
        refresh = QtWidgets.QPushButton("Refresh")
        refresh.clicked.connect(self.refresh)
        row.addWidget(self.folder_label, 1)
        row.addWidget(change)
        row.addWidget(refresh)
        layout.addLayout(row)
        self.table = QtWidgets.QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        for j, words in ((5, figures.label("oneshot_trained") + " (unseen classes)"),
                         (6, figures.label("collision_ratio"))):
            self.table.horizontalHeaderItem(j).setToolTip(words)
        self.table.setSelectionBehavior(QtWidgets.QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QtWidgets.QAbstractItemView.SelectionMode.SingleSelection)
        self.table.verticalHeader().hide()
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.setSortingEnabled(True)
        self.table.setContextMenuPolicy(QtCore.Qt.ContextMenuPolicy.CustomContextMenu)
        self.table.customContextMenuRequested.connect(self._on_context_menu)
        self.table.itemDoubleClicked.connect(
            lambda item: self.open_requested.emit(str(self._path_of(item.row())))
        )
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
                self.table.setItem(i, j, item)
        self.table.setSortingEnabled(True)
        self.table.resizeColumnsToContents()

    def _path_of(self, row: int) -> Path:
        return Path(self.table.item(row, 0).data(QtCore.Qt.ItemDataRole.UserRole))

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
