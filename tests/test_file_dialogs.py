"""The app's file dialogs never read a file to name its type or icon (Qt's own dialog did,
on the GUI thread: typing /proc/ hung the app reading /proc/kmsg)."""

from __future__ import annotations

from PySide6 import QtCore, QtWidgets

from app import file_dialogs


def test_types_and_icons_come_from_names_not_contents(qtbot, tmp_path):
    pdf = tmp_path / "report"  # no suffix: only its contents say PDF
    pdf.write_bytes(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n")
    info = QtCore.QFileInfo(str(pdf))
    assert "PDF" in QtWidgets.QFileIconProvider().type(info)  # Qt's reads the file
    provider = file_dialogs.IconProvider()
    assert provider.type(info) == "File"
    assert provider.type(QtCore.QFileInfo(str(tmp_path / "a.toml"))) == "TOML File"
    assert provider.type(QtCore.QFileInfo(str(tmp_path))) == "Folder"
    assert not provider.icon(info).isNull() and not provider.icon(
        QtCore.QFileInfo(str(tmp_path))).isNull()


def test_every_dialog_uses_the_provider(qtbot, tmp_path, monkeypatch):
    seen = []

    def fake_exec(dialog):
        seen.append((dialog.iconProvider(), dialog.fileMode(), dialog.acceptMode()))
        dialog.selectFile(str(tmp_path / "x.toml"))
        return QtWidgets.QDialog.DialogCode.Accepted

    monkeypatch.setattr(QtWidgets.QFileDialog, "exec", fake_exec)
    path, _ = file_dialogs.get_save_file_name(None, "Save", str(tmp_path), "Experiment (*.toml)")
    assert path == str(tmp_path / "x.toml")
    file_dialogs.get_open_file_name(None, "Open", str(tmp_path))
    file_dialogs.get_existing_directory(None, "Folder", str(tmp_path))
    modes = QtWidgets.QFileDialog.FileMode
    assert [m for _, m, _ in seen] == [modes.AnyFile, modes.ExistingFile, modes.Directory]
    assert seen[0][2] == QtWidgets.QFileDialog.AcceptMode.AcceptSave
    assert all(isinstance(p, file_dialogs.IconProvider) for p, _, _ in seen)
