"""Comparing runs in the app and from the command line: the comparison window (one
colour and name per run in every panel, one timeline, highlight, diff table and its CSV,
exports), opening it from the Runs dock and the Sweeps table, `main.py compare`, and a
run recorded by another process followed live."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import unicodedata
from pathlib import Path

import numpy as np
import pyqtgraph as pg
import pytest
from PySide6 import QtCore

import main
from app.compare_window import CompareWindow
from engine.compare import open_comparison
from tests.helpers import record_tiny_run, tiny_config
from tests.test_exports import _content_ops

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("cmpapp")
    a = record_tiny_run(root / "runs" / "a")
    b = record_tiny_run(root / "runs" / "b", **{"model.depth": 1})
    c = record_tiny_run(root / "runs" / "c", seed=1, **{"train.snapshot_every": 15,
                                                         "train.steps": 45})
    return [a, b, c]


@pytest.fixture
def compare(qtbot, runs):
    w = CompareWindow(open_comparison(runs))
    qtbot.addWidget(w)
    w.resize(1600, 1000)
    w.show()
    yield w
    w.close()


def _pens(window, index):
    return [item.opts["pen"] for (run, _key), item in window.curves.items.items()
            if run == index]


def test_every_run_has_one_colour_and_name_in_every_panel(compare):
    cmp = compare.cmp
    names = [r.name for r in cmp.runs]
    assert names == ["depth=2 · steps=40 · snapshot_every=10 · seed 0",
                     "depth=1 · steps=40 · snapshot_every=10 · seed 0",
                     "depth=2 · steps=45 · snapshot_every=15 · seed 1"]
    key = compare.curves.run_key.text
    for run in cmp.runs:
        assert run.name in key and run.colour in key
        assert all(p.color().name() == run.colour for p in _pens(compare, run.index))
        row = [r for r in range(compare.table.table.rowCount())
               if compare.table.run_of_row(r) == run.index][0]
        item = compare.table.table.item(row, 0)
        assert item.foreground().color().name() == run.colour
        assert run.name in item.text()
    # the curves hold each run's own history
    item = compare.curves.items[(2, "oneshot_trained")]
    x, y = item.getData()
    assert list(x) == [0, 15, 30, 45]
    assert np.allclose(y, cmp.runs[2].reader.history["oneshot_trained"])


def test_the_curves_columns_share_the_width(compare, qtbot):
    """The keys wrap instead of widening their column: a long key (the unseen collisions')
    no longer squeezes the other column's plots."""
    compare.show_view("curves")
    plots = compare.curves.plots
    qtbot.waitUntil(lambda: plots[0].width() > 100)
    widths = [plot.width() for plot in plots]
    assert max(widths) - min(widths) < 0.05 * max(widths), widths


def test_the_timeline_moves_every_run_to_its_nearest_recorded_step(compare):
    compare.show_view("representation")
    compare.set_step(20)
    side = compare.side
    assert side.shown_steps == {0: 20, 1: 20, 2: 15}
    titles = [c.titleLabel.text for c in side.cells]
    assert "step 20" in titles[0] and "nearest" not in titles[0]
    assert "step 15 (nearest to 20)" in titles[2]
    assert "1 runs at their nearest recorded step" in compare.step_label.text()
    compare.slider.setValue(compare.slider.maximum())
    assert compare.step == 45 and side.shown_steps == {0: 40, 1: 40, 2: 45}
    for view in ("collisions", "locality", "samples"):
        compare.show_view(view)
        assert all(len(c.items) for c in side.cells), view


def test_a_table_row_highlights_its_run_everywhere_and_exports_csv(compare, tmp_path):
    table = compare.table.table
    row = [r for r in range(table.rowCount()) if compare.table.run_of_row(r) == 1][0]
    table.selectRow(row)
    assert compare.highlighted == 1
    lit = _pens(compare, 1)[0].widthF()
    assert lit > _pens(compare, 0)[0].widthF()
    assert _pens(compare, 0)[0].color().alpha() < 255  # the others fade
    compare.show_view("representation")
    assert "font-weight:bold" in compare.side.cells[1].titleLabel.text
    # sorting by a column keeps each row's run
    table.sortItems(compare.table.columns.index("depth"))
    assert {compare.table.run_of_row(r) for r in range(3)} == {0, 1, 2}
    out = compare.export_table_csv(tmp_path / "t.csv")
    lines = out.read_text().splitlines()
    assert len(lines) == 4 and lines[0].startswith("run,depth,steps,snapshot_every,seed")


def test_comparison_exports_png_svg_and_pdf(compare, tmp_path):
    for panel in compare.plot_panels.values():
        for fmt in ("png", "svg", "pdf"):
            out = compare.export_panel(panel, tmp_path / f"{panel.name}.{fmt}")
            assert out.stat().st_size > 1000, out
    assert compare.export_window(tmp_path / "w.png").stat().st_size > 10_000
    assert compare.export_window(tmp_path / "w.pdf").read_bytes().startswith(b"%PDF")


def test_difference_panel_shows_a_minus_b_and_the_oneshot_difference(compare, qtbot):
    compare.show_view("diff")
    panel = compare.difference
    panel.set_pair(1, 0)
    compare.set_step(30)
    expected = (compare.cmp.runs[1].reader.snapshot(30).collision_matrix
                - compare.cmp.runs[0].reader.snapshot(30).collision_matrix)
    assert np.allclose(panel.image.image, expected, atol=1e-6)
    assert panel.oneshot.paired
    assert "paired over 10 shared episodes" in panel.summary.text
    assert "[" in panel.summary.text  # the interval
    panel.set_pair(0, 2)  # another seed: other probe points, no cell-by-cell difference
    assert panel.difference is None and panel.image.image is None
    note = "the difference needs runs that share a probe set (the same data config and seed)"
    assert note in panel.summary.text and note in panel.info.text()
    # the run key stays one key high at the top, the note takes the space of the heatmap
    qtbot.waitUntil(lambda: panel.summary.size().height() > 200)
    assert panel.run_key.size().height() < 80


def test_runs_dock_selection_opens_the_comparison(qtbot, tmp_path, runs):
    from tests.helpers import make_window

    for p in runs:
        shutil.copytree(p, tmp_path / "runs" / p.name)
    w = make_window(tmp_path)
    try:
        dock = w.runs
        dock.refresh()
        assert not dock.compare_button.isEnabled()
        table = dock.table
        table.selectRow(0)
        table.selectionModel().select(
            table.model().index(2, 0),
            QtCore.QItemSelectionModel.SelectionFlag.Select
            | QtCore.QItemSelectionModel.SelectionFlag.Rows)
        assert dock.compare_button.isEnabled() and dock.compare_button.text() == "Compare 2"
        dock.compare_button.click()
        assert len(w.compare_windows) == 1
        shown = w.compare_windows[0]
        assert len(shown.cmp) == 2 and shown.isVisible()
        area = shown.screen().availableGeometry()  # no bigger than the screen
        assert shown.width() <= area.width() and shown.height() <= area.height()
        assert not w.compare_runs([tmp_path / "runs" / "a"])  # one run: refused, said why
        assert "2 to 8" in w.last_error
    finally:
        w.close()
    assert not shown.isVisible()


def test_sweeps_table_selection_asks_for_a_comparison(qtbot, tmp_path):
    from app.sweep_view import SweepWindow
    from engine.executors import SerialExecutor

    sweeps = SweepWindow(tmp_path / "sweeps")
    qtbot.addWidget(sweeps)
    sweeps.base = tiny_config(**{"train.steps": 20})
    sweeps.axes.setRowCount(0)
    sweeps.add_axis("model.depth", "1,2")
    sweeps.seeds.setValue(1)
    sweeps.out.setText(str(tmp_path / "s"))
    try:
        assert sweeps.start(executor=SerialExecutor(threads=1))
        qtbot.waitUntil(lambda: not sweeps.running and sweeps.result is not None,
                        timeout=120_000)
        got = []
        sweeps.compare_requested.connect(got.append)
        sweeps.table.selectAll()
        assert sweeps.compare_button.isEnabled()
        sweeps.compare_button.click()
        assert len(got) == 1 and len(got[0]) == 2
        cmp = open_comparison(got[0])
        assert sorted(r.name for r in cmp.runs) == ["depth=1", "depth=2"]
    finally:
        sweeps.close()


def _pdf_text(path: Path) -> str:
    text = subprocess.run(["pdftotext", str(path), "-"], capture_output=True, text=True,
                          check=True).stdout
    return unicodedata.normalize("NFKC", text)  # "differs" is typeset with a ligature


def test_cli_compare_writes_figures_and_refuses_bad_input(runs, tmp_path, capsys):
    out = tmp_path / "cmp.pdf"
    assert main.main(["compare", str(runs[0]), str(runs[1]), "--out", str(out)]) == 0
    pdf = out.read_bytes()
    ops, _images = _content_ops(pdf)
    assert pdf.startswith(b"%PDF") and ops > 500  # curves drawn as vector paths
    assert "depth=2 / depth=1".encode("utf-16-be") in pdf  # the PDF's title names the runs
    if shutil.which("pdftotext"):
        text = _pdf_text(out)
        assert "depth=2" in text and "depth=1" in text
        assert "what differs: model.depth" in text
    rep = tmp_path / "rep.png"
    assert main.main(["compare", str(runs[0]), str(runs[2]), "--out", str(rep),
                      "--panel", "representation", "--step", "30"]) == 0
    assert rep.stat().st_size > 5000
    for run in (runs[0], runs[2]):  # computed in the run's method and cached
        assert (run / "frames" / "embedding-30.npz").is_file()
    svg = tmp_path / "curves.svg"
    assert main.main(["compare", str(runs[0]), str(runs[1]), "--out", str(svg),
                      "--panel", "curves"]) == 0
    assert "depth=1" in svg.read_text()
    capsys.readouterr()
    bad = [
        ([str(runs[0])], "2 to 8"),
        ([str(runs[0]), str(tmp_path / "missing")], "is not a folder"),
        ([str(runs[0]), str(runs[1]), "--out", str(tmp_path / "x.png"), "--step", "999"],
         "--step"),
        ([str(runs[0]), str(runs[1]), "--out", str(tmp_path / "x.png"), "--panel", "nope"],
         "--panel"),
        ([str(runs[0]), str(runs[1]), "--out", str(tmp_path / "x.svg")], "--panel"),
    ]
    for args, words in bad:
        assert main.main(["compare", *args]) == 2, args
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and words in err, err


def test_cli_compare_window_fits_the_screen(runs, monkeypatch):
    """`main.py compare A B` on screen: the window (1600x1000 by default) is shrunk to the
    screen's available area, so the diff table at its bottom is on screen at 1366x768."""
    from PySide6 import QtWidgets

    sizes = []

    def shown(app):
        for w in app.topLevelWidgets():
            if isinstance(w, CompareWindow) and w.isVisible():
                area = w.screen().availableGeometry()
                sizes.append((w.width(), w.height(), area.width(), area.height()))
        return 0

    monkeypatch.setattr(QtWidgets.QApplication, "exec", shown)
    assert main.main(["compare", str(runs[0]), str(runs[1])]) == 0
    [(w, h, aw, ah)] = sizes
    assert w <= aw and h <= ah and (w, h) != (1600, 1000)


def test_a_run_recorded_by_another_process_grows_in_the_open_window(qtbot, tmp_path):
    from tests.helpers import make_window

    conf = tmp_path / "long.toml"
    tiny_config(**{"train.steps": 100_000, "train.snapshot_every": 20}).save(conf)
    out = tmp_path / "elsewhere"
    env = {**os.environ, "GSH_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "main.py", "run", "--config", str(conf),
                             "--out", str(out), "--quiet"], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    w = make_window(tmp_path)
    try:
        deadline = time.monotonic() + 300
        while not (out / "snapshots").is_dir() or len(list((out / "snapshots").iterdir())) < 2:
            assert proc.poll() is None, proc.stderr.read()
            assert time.monotonic() < deadline, "the run recorded no snapshot in time"
            time.sleep(0.1)
        assert w.open_run(out)
        opened = len(w.store)
        started = time.monotonic()
        assert w.follower is not None and w.follower.following
        assert "following" in w.run_label.text()
        qtbot.waitUntil(lambda: len(w.store) >= opened + 2, timeout=120_000)
        # the view on screen follows the newest snapshot, and nothing read faster than 1/s
        assert w.shown_snapshot.step == w.store.steps[-1] > (opened - 1) * 20
        assert w.follower.reads <= time.monotonic() - started + 2
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        qtbot.waitUntil(lambda: not w.follower.following, timeout=10_000)
        assert "did not finish" in w.run_label.text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)
        proc.stderr.close()
        w.close()


def test_a_probe_point_is_marked_in_every_run_sharing_the_probe_set(compare):
    compare.show_view("representation")
    side = compare.side

    def marks(cell):
        return [i for i in cell.items if isinstance(i, pg.ScatterPlotItem)
                and i.opts["size"] == 18]

    side.select_row(3, run=0)
    assert [len(marks(c)) for c in side.cells] == [1, 1, 0]  # run c: another seed
    x, y = marks(side.cells[1])[0].getData()
    coords = side._frames[(1, side.shown_steps[1])][0]
    assert np.allclose(x[0], procrustes_x(side, coords)[3, 0])
    side.select_row(None)
    assert [len(marks(c)) for c in side.cells] == [0, 0, 0]


def procrustes_x(side, coords):
    """Run b's coords as drawn: aligned to run a's (they share the probe set)."""
    from engine.projection import procrustes_align

    ref = side._frames[(0, side.shown_steps[0])][0]
    return procrustes_align(coords, ref)


def test_a_sweep_run_by_another_process_is_followed(qtbot, tmp_path):
    from app.sweep_view import SweepWindow

    conf = tmp_path / "tiny.toml"
    tiny_config(**{"train.steps": 120, "train.snapshot_every": 20}).save(conf)
    folder = tmp_path / "sweep"
    env = {**os.environ, "GSH_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "main.py", "sweep", "--config", str(conf),
                             "--vary", "model.depth=1,2", "--workers", "1", "--quiet",
                             "--out", str(folder)], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    sweeps = SweepWindow(tmp_path / "sweeps")
    qtbot.addWidget(sweeps)
    try:
        deadline = time.monotonic() + 300
        while not ((folder / "sweep.toml").is_file() and (folder / "runs").is_dir()):
            assert proc.poll() is None, proc.stderr.read()
            assert time.monotonic() < deadline, "the sweep started no run in time"
            time.sleep(0.1)
        assert sweeps.open_sweep(folder), sweeps.message.text()
        assert sweeps.follower is not None and "following" in sweeps.status.text()
        qtbot.waitUntil(lambda: not sweeps.follower.following, timeout=300_000)
        assert proc.wait(60) == 0
        assert sweeps.progress.value() == 2 and sweeps.table.rowCount() == 2
        assert {r["status"] for r in sweeps.rows.values()} == {"finished"}
        assert "no longer running" in sweeps.status.text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)
        proc.stderr.close()
        sweeps.close()


def test_the_inspectors_point_is_marked_in_compared_runs(qtbot, tmp_path, runs):
    from tests.helpers import make_window

    w = make_window(tmp_path)
    try:
        assert w.open_run(runs[1])  # depth 1, seed 0: the probe set of runs a and b
        assert w.compare_runs([str(p) for p in runs])
        cmp_window = w.compare_windows[0]
        cmp_window.show_view("representation")
        w.selection.select_point(7)
        assert cmp_window.side.selected == (0, 7)
        marked = [[i for i in c.items if isinstance(i, pg.ScatterPlotItem)
                   and i.opts["size"] == 18] for c in cmp_window.side.cells]
        assert [len(m) for m in marked] == [1, 1, 0]
        w.selection.clear()
        assert cmp_window.side.selected is None
    finally:
        w.close()


def test_a_damaged_snapshot_leaves_the_rest_of_the_comparison_working(qtbot, runs, tmp_path):
    copy = shutil.copytree(runs[1], tmp_path / "b")
    (copy / "snapshots" / "20.npz").write_bytes(b"PK\x03\x04 not a zip")
    w = CompareWindow(open_comparison([runs[0], copy]))
    qtbot.addWidget(w)
    try:
        w.show_view("collisions")
        w.set_step(20)
        assert w.side.shown_steps[0] == 20
        assert 20 not in w.cmp.runs[1].steps  # skipped when the run opened
        assert w.side.shown_steps[1] in (10, 30)
        assert "(nearest to 20)" in w.side.cells[1].titleLabel.text
        # a snapshot that breaks after opening: its cell says so, the others draw
        (copy / "snapshots" / "30.npz").write_bytes(b"PK\x03\x04 not a zip either")
        w.set_step(30)
        assert "cannot be shown" in w.side.cells[1].titleLabel.text
        assert len(w.side.cells[0].items)
        w.show_view("diff")  # the difference at a damaged step says why, no exception
        w.set_step(40)
        assert w.difference.difference is not None
    finally:
        w.close()


def test_a_closed_comparison_window_is_forgotten(qtbot, tmp_path, runs):
    """Closed (and so deleted), it no longer gets the Inspector's point, and quitting
    after it runs the whole shutdown."""
    import shiboken6

    from tests.helpers import make_window

    w = make_window(tmp_path)
    try:
        assert w.open_run(runs[1])
        assert w.compare_runs([str(p) for p in runs])
        closed = w.compare_windows[0]
        closed.close()
        qtbot.waitUntil(lambda: not shiboken6.isValid(closed), timeout=5_000)
        w.selection.select_point(7)  # raised on the deleted window
    finally:
        w.close()  # raised in closeEvent, skipping the rest of the shutdown
    assert w.compare_windows == []


def test_export_dialogs_start_in_the_export_folder_not_the_working_one(qtbot, tmp_path, runs,
                                                                       monkeypatch):
    from tests.helpers import make_window

    asked = []
    from app import file_dialogs

    monkeypatch.setattr(file_dialogs, "get_save_file_name",
                        lambda _parent, _title, start, _filt: (asked.append(start), ("", ""))[1])
    alone = CompareWindow(open_comparison(runs))  # from the command line
    qtbot.addWidget(alone)
    alone._on_export_window_triggered()
    assert asked[-1] == str(Path(runs[0]).parent / "comparison.png")
    alone.close()
    w = make_window(tmp_path)  # from the app: where its exports go
    try:
        w.settings.setValue("exports/folder", str(tmp_path / "figures"))
        assert w.compare_runs([str(p) for p in runs[:2]])
        w.compare_windows[0]._on_export_window_triggered()
        assert asked[-1] == str(tmp_path / "figures" / "comparison.png")
    finally:
        w.close()
