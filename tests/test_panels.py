"""The one list of panels (app.panel_list): each is built, docked, placed and exported
from its entry, and `screenshot --panel` accepts every one of them."""

from __future__ import annotations

import shutil

from PySide6 import QtWidgets

import main
from app.cli import _show_and_export
from app.panel_list import PANEL_NAMES, PANELS
from tests.test_app import png_is_not_blank
from tests.test_record import SCHEMA1_RUN


def test_every_panel_is_docked_placed_and_exported(window, tmp_path):
    assert window.open_run(shutil.copytree(SCHEMA1_RUN, tmp_path / "run"))
    assert list(window.panels) == list(PANEL_NAMES)
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
