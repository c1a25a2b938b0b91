"""Inspector and linked selection: a clicked point's bucket-mates (checked against codes
computed here), a heatmap cell selects a pair of classes, a rectangle counts classes, the
selection survives a timeline scrub, Escape clears it."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6 import QtCore, QtGui
from PySide6.QtTest import QTest

from engine.hashing import SimHash
from engine.seeds import stream_seed
from tests.helpers import finish_run, make_window


@pytest.fixture
def window(qtbot, tmp_path):
    w = make_window(tmp_path)
    finish_run(qtbot, w)
    yield w
    w.close()


def expected_mates(window, snap, row, table=None):
    """Rows sharing `row`'s bucket at `snap`, hashed as the engine hashes its figures:
    around the mean of the seen classes' rows."""
    run, seed = window.session.run_info, window.run_config.seed
    emb = snap.embedding
    center = emb[run.probe.seen].astype(np.float64).mean(0).astype(np.float32)
    codes = SimHash(emb.shape[1], run.bits, run.tables, stream_seed(seed, "simhash")).codes(
        emb - center)
    same = codes == codes[row]
    hit = same.any(1) if table is None else same[:, table]
    hit[row] = False
    return set(np.flatnonzero(hit).tolist())


def marked_rows(panel, item):
    """Probe rows under a mark (matched by position in the panel's frame)."""
    xy = np.stack([item.data["x"], item.data["y"]], 1) if len(item.data) else np.zeros((0, 2))
    rows = set()
    for p in xy:
        rows |= set(np.flatnonzero(np.all(np.isclose(panel.coords, p), axis=1)).tolist())
    return rows


def click_point(qtbot, panel, row):
    """A real mouse click on the point's spot in the panel's view, once the display shows
    it (the window's round of panel updates has ended and been painted)."""
    window = panel.window()
    qtbot.waitUntil(lambda: not window.drawing, timeout=10_000)
    qtbot.wait(50)
    vb = panel.plot.getViewBox()
    scene_pos = vb.mapViewToScene(QtCore.QPointF(*panel.coords[row]))
    view_pos = panel.graphics.mapFromScene(scene_pos)
    QTest.mouseClick(panel.graphics.viewport(), QtCore.Qt.MouseButton.LeftButton,
                     QtCore.Qt.KeyboardModifier.NoModifier, view_pos)


def test_clicking_a_point_highlights_exactly_its_bucket_mates(qtbot, window):
    snap = window.shown_snapshot
    probe = window.session.run_info.probe
    row = int(np.flatnonzero(~probe.seen)[3])  # a point of an unseen class
    panel = window.representation
    qtbot.waitUntil(lambda: panel.coords is not None, timeout=10_000)
    click_point(qtbot, panel, row)
    qtbot.waitUntil(lambda: window.selection.row is not None, timeout=5_000)
    row = window.selection.row  # the spot under the cursor (points may overlap)
    assert marked_rows(panel, panel.point_mark) >= {row}
    assert marked_rows(panel, panel.mates_mark) == expected_mates(window, snap, row)
    same_class = set(np.flatnonzero(probe.label == probe.label[row]).tolist())
    assert marked_rows(panel, panel.class_mark) == same_class
    text = window.inspector.text.text()
    assert f"class {int(probe.label[row])}" in text and "table 1: bucket" in text
    assert not window.inspector.is_empty  # its input
    assert "one-shot" in text
    # the bucket counts are sampled: their spread over 200 draws beside them
    from engine.hashing import bucket_mates_spread

    run = window.session.run_info
    spread = bucket_mates_spread(snap.embedding, snap.hash_center, row, run.bits,
                                 probe.class_index, stream_seed(window.run_config.seed,
                                                                "lsh_spread"))
    lo, hi = spread["all"]
    assert f"sampled, one draw per table; 5–95% over 200 draws: shared with {lo:.0f}–{hi:.0f}" \
        in text
    e, e_own = spread["expected"]
    assert f"expected {e:.1f} ({e_own:.1f} of its class)" in text
    # the input-space projection marks the same rows
    other = window.input_space
    assert marked_rows(other, other.mates_mark) == expected_mates(window, snap, row)
    # one table instead of any
    window.inspector.table_choice.setCurrentIndex(1)  # "table 1"
    assert marked_rows(panel, panel.mates_mark) == expected_mates(window, snap, row, table=0)


def test_selection_follows_the_timeline(qtbot, window):
    probe = window.session.run_info.probe
    row = int(np.flatnonzero(~probe.seen)[0])
    window.selection.select_point(row)
    window.timeline.set_index(0)
    first = window.shown_snapshot
    assert first.step == 0 and window.selection.row == row
    panel = window.representation
    qtbot.waitUntil(lambda: panel.frame_step == 0, timeout=10_000)
    assert marked_rows(panel, panel.mates_mark) == expected_mates(window, first, row)
    assert "step 0" in window.inspector.info.text()
    # the lower plot says what it shows: this point's input
    assert f"input x of point {row}" in window.inspector.plot.titleLabel.text
    window.selection.clear()
    qtbot.waitUntil(lambda: not window.inspector.plot.titleLabel.isVisible(), timeout=5_000)


def test_heatmap_cell_selects_a_pair_and_rectangles_count_classes(qtbot, window):
    snap = window.shown_snapshot
    probe = window.session.run_info.probe
    window.collisions.cell_clicked.emit(1, 6)
    assert window.selection.pair == (1, 6)
    assert all(m.isVisible() for m in window.collisions.marks)
    rows = set(np.flatnonzero((probe.class_index == 1) | (probe.class_index == 6)).tolist())
    assert marked_rows(window.representation, window.representation.class_mark) == rows
    assert window.locality.selected_pairs.data.size == 1  # exactly that pair
    assert f"{snap.collision_matrix[1, 6]:.3f}" in window.inspector.text.text()
    inspector = window.inspector
    assert not inspector.graphics.isVisibleTo(inspector)  # no input: no empty axes

    chosen = np.array([0, 1, 2, 15, 16])
    window.representation.rows_selected.emit(chosen)
    assert "5 points" in window.inspector.text.text()
    assert not inspector.graphics.isVisibleTo(inspector)
    assert marked_rows(window.representation, window.representation.class_mark) >= set(
        chosen.tolist())

    QTest.keyClick(window, QtCore.Qt.Key.Key_Escape)
    assert window.selection.kind == "none"
    assert len(window.representation.mates_mark.data) == 0
    assert not any(m.isVisible() for m in window.collisions.marks)


def test_shift_drag_selects_the_points_inside(qtbot, window):
    panel = window.representation
    qtbot.waitUntil(lambda: panel.coords is not None, timeout=10_000)
    c = panel.coords
    lo, hi = np.percentile(c, 20, axis=0), np.percentile(c, 60, axis=0)
    rect = QtCore.QRectF(QtCore.QPointF(*lo), QtCore.QPointF(*hi))
    panel._on_rect_selected(rect)
    inside = np.flatnonzero(np.all((c >= lo) & (c <= hi), axis=1))
    assert set(window.selection.rows.tolist()) == set(inside.tolist())
    assert QtGui.QGuiApplication.instance() is not None


def test_samples_and_the_projection_key_mark_the_selection(qtbot, window):
    """The Samples panel outlines the selected class (brought in when it was not shown),
    and the projections' key names the marks."""
    probe = window.session.run_info.probe
    samples = window.samples
    shown = {c for c, _s, _x in samples._rows}
    row = next(r for r in range(len(probe)) if int(probe.label[r]) not in shown)
    label = int(probe.label[row])
    window.selection.select_point(row)
    assert label in {c for c, _s, _x in samples._rows}
    assert len(samples.marks) == 1 and "selected class" in samples.info.text()
    key = window.representation.legend.text
    assert "selected point" in key and "selected class" in key
    window.selection.clear()
    assert not samples.marks and "selected" not in window.representation.legend.text
