"""The one list of panels (app.panel_list): each is built, docked, placed and exported
from its entry, and `screenshot --panel` accepts every one of them."""

from __future__ import annotations

import shutil

from PySide6 import QtWidgets

import main
from app import panel_list
from app.cli import _check_panel, _show_and_export
from app.panel_list import PANELS, panel_names
from tests.helpers import make_window, png_is_not_blank
from tests.test_record import SCHEMA1_RUN


def test_every_panel_is_docked_placed_and_exported(window, tmp_path):
    assert window.open_run(shutil.copytree(SCHEMA1_RUN, tmp_path / "run"))
    assert list(window.panels) == list(panel_names())
    app = QtWidgets.QApplication.instance()
    for spec in PANELS:
        panel, dock = window.panels[spec.name], window.docks[spec.name]
        assert getattr(window, spec.attribute) is panel and dock.widget() is panel
        assert (spec.name in window.plot_panels) == spec.view
        assert (panel in window.highlight_panels) == spec.highlight
        anchor = spec.tab_with or (spec.split[0] if spec.split else None)
        if anchor is not None:
            assert window.dockWidgetArea(dock) == window.dockWidgetArea(window.docks[anchor])
        if spec.tab_with is not None:
            assert dock in window.tabifiedDockWidgets(window.docks[spec.tab_with])
        out = tmp_path / f"{spec.name}.png"
        assert _show_and_export(app, window, spec.name, out) == 0
        assert png_is_not_blank(out), spec.name


def test_screenshot_accepts_the_inspector(tmp_path):
    """The command's list once lacked the inspector although the README offers it."""
    run_dir = shutil.copytree(SCHEMA1_RUN, tmp_path / "run")
    out = tmp_path / "inspector.png"
    assert main.main(["screenshot", "--run", str(run_dir), "--panel", "inspector",
                      "--out", str(out)]) == 0
    assert png_is_not_blank(out)


def test_a_new_panel_is_one_file_and_one_entry(qtbot, tmp_path, monkeypatch):
    """Adding a panel: its class (its own file; a stand-in here) plus one entry in
    app.panel_list. The window, its dock, the default layout, the View menu and
    `screenshot --panel` take it from there."""

    class NotesPanel(QtWidgets.QLabel):
        name, title = "notes", "Notes"

        def __init__(self) -> None:
            super().__init__("Notes on this run: gamma, theta, buckets")
            self.setObjectName(self.name)

    entry = panel_list.PanelSpec("notes", lambda _window: NotesPanel(), tab_with="runs")
    monkeypatch.setattr(panel_list, "PANELS", (*panel_list.PANELS, entry))
    _check_panel("notes")  # screenshot --panel notes is accepted
    window = make_window(tmp_path)
    try:
        assert isinstance(window.notes, NotesPanel)
        assert window.docks["notes"].widget() is window.notes
        assert window.docks["notes"] in window.tabifiedDockWidgets(window.docks["runs"])
        assert "Notes" in [a.text() for a in window.view_menu.actions()]
        out = tmp_path / "notes.png"
        _show_and_export(QtWidgets.QApplication.instance(), window, "notes", out)
        assert out.stat().st_size > 0
    finally:
        window.close()


def test_a_key_line_without_a_mark_starts_with_its_words(qtbot):
    """A line of words alone (the Hash index's figures) is not indented by the space that
    follows a mark."""
    from app.panels.base import SOLID, Key

    key = Key([[(SOLID, "#ff0000", "trained")], [("", "#333333", "recall 0.5")]])
    first, second = key.text.split("<br>")
    assert first.endswith("</span>&nbsp;trained")
    assert second == "recall 0.5"


def test_a_short_hash_index_panel_scrolls_instead_of_squeezing_its_plot(qtbot):
    """In the bottom row of a 1366x768 window the Hash index panel is about 240 px tall:
    its plot keeps its height and the panel scrolls, rather than the key's eight lines of
    figures squeezing the plot to a strip."""
    from app.panels.lsh import MIN_HEIGHT, LshPanel

    panel = LshPanel()
    qtbot.addWidget(panel)
    long = "recall 0.46 [0.41–0.51] (expected 0.46) · 0.7 [0.6–0.7] candidates · " * 4
    panel.key.set_lines([panel._marks_key, [("", "#333333", long)], [("", "#333", long)]])
    panel.set_empty(False)
    panel.resize(260, 240)
    panel.show()
    qtbot.waitExposed(panel)
    qtbot.waitUntil(lambda: panel.graphics.height() >= MIN_HEIGHT)
    assert panel.scroller.isVisible() and not panel.is_empty
    assert panel.plot.vb.height() > 100
    panel.set_empty(True, "no run yet")
    # the note lies over the whole scroller, scroll bar included (the plots stay laid out)
    assert panel.is_empty and panel.empty_note.geometry() == panel.scroller.geometry()
    assert panel.childAt(panel.scroller.geometry().center()
                         + panel.scroller.parentWidget().pos()) is panel.empty_note
