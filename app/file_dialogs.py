"""The app's file dialogs: QFileDialog's static functions, less a hang in Qt's own dialog.

Where no native dialog is available (no desktop portal or GTK theme: Xvfb, minimal
desktops) Qt shows its own dialog, whose file model asks the icon provider for each
file's type and icon; Qt's provider finds the MIME type by reading the file, on the GUI
thread. Typing /proc/ in the file name then blocks the app for good (reading /proc/kmsg
waits for kernel messages). IconProvider names types and icons from the name and the
kind of entry only, never the contents. A native dialog is used as before where there
is one (it does not use the provider).
"""

from __future__ import annotations

from PySide6 import QtCore, QtGui, QtWidgets

Kind = QtGui.QAbstractFileIconProvider.IconType


class IconProvider(QtWidgets.QFileIconProvider):
    """File types and icons from names only (folder, file, link): reads no file."""

    def type(self, info: QtCore.QFileInfo) -> str:  # noqa: A003 (Qt's name)
        if info.isDir():
            return "Folder"
        suffix = info.suffix()
        return f"{suffix.upper()} File" if suffix else "File"

    def icon(self, what: QtCore.QFileInfo | Kind) -> QtGui.QIcon:
        if isinstance(what, QtCore.QFileInfo):
            what = Kind.Folder if what.isDir() else Kind.File
        return super().icon(what)


def _dialog(parent: QtWidgets.QWidget | None, title: str, start: str,
            filt: str = "") -> QtWidgets.QFileDialog:
    dialog = QtWidgets.QFileDialog(parent, title, start, filt)
    provider = IconProvider()
    dialog.setIconProvider(provider)
    # the dialog does not own it: kept as long as the dialog (a Python attribute on it)
    dialog._icon_provider = provider  # type: ignore[attr-defined]
    return dialog


def _run(dialog: QtWidgets.QFileDialog) -> tuple[str, str]:
    try:
        if dialog.exec() != QtWidgets.QDialog.DialogCode.Accepted:
            return "", ""
        files = dialog.selectedFiles()
        return (files[0] if files else ""), dialog.selectedNameFilter()
    finally:
        dialog.deleteLater()


def get_open_file_name(parent: QtWidgets.QWidget | None, title: str, start: str = "",
                       filt: str = "") -> tuple[str, str]:
    """As QFileDialog.getOpenFileName: (path or "", the chosen filter)."""
    dialog = _dialog(parent, title, start, filt)
    dialog.setFileMode(QtWidgets.QFileDialog.FileMode.ExistingFile)
    return _run(dialog)


def get_save_file_name(parent: QtWidgets.QWidget | None, title: str, start: str = "",
                       filt: str = "") -> tuple[str, str]:
    """As QFileDialog.getSaveFileName: (path or "", the chosen filter); asks before
    replacing a file."""
    dialog = _dialog(parent, title, start, filt)
    dialog.setAcceptMode(QtWidgets.QFileDialog.AcceptMode.AcceptSave)
    dialog.setFileMode(QtWidgets.QFileDialog.FileMode.AnyFile)
    return _run(dialog)


def get_existing_directory(parent: QtWidgets.QWidget | None, title: str, start: str = "") -> str:
    """As QFileDialog.getExistingDirectory: a folder or ""."""
    dialog = _dialog(parent, title, start)
    dialog.setFileMode(QtWidgets.QFileDialog.FileMode.Directory)
    dialog.setOption(QtWidgets.QFileDialog.Option.ShowDirsOnly, True)
    return _run(dialog)[0]
