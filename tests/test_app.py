"""GUI tests (pytest-qt, offscreen): runs reach every panel, controls, timeline, exports,
parameter validation, config files, clean shutdown, and the Qt-binding pin guard."""

from __future__ import annotations

import csv
import time

import numpy as np
import pyqtgraph as pg
import pyqtgraph.exporters as pge
import pytest
from PySide6 import QtCore

from app.panels.curves import PLOTS
from app.runner import FAILED, FINISHED, IDLE, PAUSED, RUNNING
from app.window import MainWindow
from engine.config import ConfigError
from engine.projection import pca_2d
from tests.helpers import (
    RUN_TIMEOUT_MS,
    InlineProjection,
    adopt,
    assert_valid_svg,
    finish_run,
    handmade_run,
    handmade_snapshot,
    make_window,
    png_is_not_blank,
    show_frame,
    show_handmade,
    tiny_config,
    wait_state,
)


def test_multi_brush_scatter_paints_and_exports(qtbot, tmp_path):
    """Guards the PySide6 pin: 6.12 aborts painting this, 6.11 breaks the SVG export."""
    pg.setConfigOptions(background="w")
    widget = pg.PlotWidget()
    qtbot.addWidget(widget)
    n = 300
    brushes = [pg.mkBrush(int(255 * i / n), 80, 200 - int(150 * i / n)) for i in range(n)]
    rng = np.random.default_rng(0)
    widget.addItem(pg.ScatterPlotItem(x=rng.normal(size=n), y=rng.normal(size=n), brush=brushes))
    widget.resize(400, 300)
    widget.show()
    assert not widget.grab().isNull()
    pge.ImageExporter(widget.plotItem).export(str(tmp_path / "s.png"))
    pge.SVGExporter(widget.plotItem).export(str(tmp_path / "s.svg"))
    assert png_is_not_blank(tmp_path / "s.png")
    assert_valid_svg(tmp_path / "s.svg")


@pytest.mark.parametrize("image", [False, True])
def test_panels_draw_handmade_snapshot(window, image):
    run = handmade_run(image=image)
    snap = show_handmade(window, run)
    probe = run.probe
    n = len(probe)
    coords = pca_2d(snap.embedding)
    show_frame(window, "embedding", snap.step, coords, "umap")
    rep = window.representation
    assert len(rep.seen_item.data) + len(rep.unseen_item.data) == n
    assert len(rep.unseen_item.data) == int((~probe.seen).sum())
    assert "class" in rep._tip(0, 0, 0) and "seen" in rep._tip(0, 0, 0)
    rep.color_by.setCurrentIndex(2)  # theta[1]: brushes change, points stay
    assert len(rep.seen_item.data) == int(probe.seen.sum())
    assert np.allclose(window.collisions.image.image, snap.collision_matrix)
    assert window.collisions.image.levels is not None
    assert tuple(np.ravel(window.collisions.image.levels)) == (0.0, 1.0)
    c = len(probe.classes)
    loc = window.locality
    assert len(loc.pairs.data) + len(loc.unseen_pairs.data) == c * (c - 1) // 2
    assert len(loc.unseen_pairs.data) == 3  # 3 unseen classes -> 3 unseen pairs
    assert window.samples.mosaic is not None
    assert "projection: UMAP of step 0" in window.status_projection.text()


# --------------------------------------------------------------------------- real runs


def test_run_reaches_every_panel_and_exports(qtbot, tmp_path):
    w = make_window(tmp_path, real_projection=True)
    try:
        finish_run(qtbot, w)
        steps = w.store.steps
        assert steps == [0, 10, 20, 30, 40]
        last = w.store.latest
        assert last.done
        qtbot.waitUntil(
            lambda: 40 in w.store.frames and w.store.raw_frame is not None, timeout=60_000
        )
        w.refresh()
        run = w.session.run_info
        n = len(run.probe)
        rep = w.representation
        assert rep.frame_step == 40
        assert len(rep.seen_item.data) + len(rep.unseen_item.data) == n
        assert len(w.input_space.seen_item.data) + len(w.input_space.unseen_item.data) == n
        assert np.allclose(w.collisions.image.image, last.collision_matrix)
        xs, ys = w.curves.curves["oneshot_trained"].getData()
        assert list(xs) == steps and np.allclose(ys, [r["oneshot_trained"] for r in w.store.rows])
        assert len(w.curves.curves["loss"].getData()[0]) == 5
        # no auto-range: every plot's y range still holds its curves (fitted to the
        # unbounded figures' values, fixed for the bounded ones)
        for plot, (_name, _label, series) in zip(w.curves.plots, PLOTS, strict=True):
            lo, hi = plot.getViewBox().viewRange()[1]
            ys = np.concatenate([w.curves.curves[key].getData()[1] for key, *_ in series])
            ys = ys[np.isfinite(ys)]
            assert lo <= ys.min() and ys.max() <= hi, _name
        loss = w.curves.curves["loss"].getData()[1]
        lo, hi = w.curves.plots[0].getViewBox().viewRange()[1]
        assert hi - lo <= 1.25 * (loss.max() - loss.min())  # fitted, padded <= 10% a side
        assert len(w.locality.pairs.data) + len(w.locality.unseen_pairs.data) == len(
            run.pair_angle
        )
        assert w.samples.mosaic is not None
        assert w.timeline.steps == steps and w.timeline.index == 4
        assert "step 40/40" in w.status_step.text()
        assert "steps/s" in w.status_rate.text()
        assert "cpu" in w.status_device.text()
        assert "PCA of step 40" in w.status_projection.text()
        assert w.progress.value() == 1000

        # exports
        files = w.export_all(tmp_path / "all")
        for f in files:
            if f.suffix == ".png":
                assert png_is_not_blank(f), f
            elif f.suffix == ".svg":
                assert_valid_svg(f)
            else:
                assert f.read_bytes().startswith(b"%PDF"), f
        assert {f.name for f in files} >= {"window.png", "window.pdf", "representation.svg",
                                           "curves.png", "locality.pdf"}
        w.export_history_csv(tmp_path / "h.csv")
        rows = list(csv.DictReader((tmp_path / "h.csv").open()))
        assert [int(float(r["step"])) for r in rows] == steps
        w.export_embeddings_npz(tmp_path / "e.npz")
        z = np.load(tmp_path / "e.npz")
        assert z["embedding"].shape == last.embedding.shape and "embedding_2d" in z
    finally:
        w.close()


def test_timeline_scrubs_every_panel(window, qtbot):
    finish_run(qtbot, window)
    first = window.store.at(0)
    window.timeline.set_index(0)
    assert not window.timeline.is_live
    assert window.shown_snapshot is first
    assert np.allclose(window.collisions.image.image, first.collision_matrix)
    assert window.curves.cursors[0].value() == 0
    qtbot.waitUntil(lambda: window.representation.frame_step == 0, timeout=10_000)
    window.timeline.live.setChecked(True)
    assert window.shown_snapshot is window.store.latest
    assert window.curves.cursors[0].value() == 40


def test_start_paints_nothing_in_its_own_turn(window, qtbot):
    """Start clears every panel and resets the progress bar; their paints come with the
    window's next paint, not inside Start's event-loop turn (QProgressBar.setValue
    repainted at once, which painted every panel Start had cleared)."""
    finish_run(qtbot, window)
    qtbot.waitUntil(lambda: not window.drawing, timeout=5_000)
    qtbot.wait(100)
    assert window.progress.value() == 1000
    paints: list[str] = []

    class Count(QtCore.QObject):
        def eventFilter(self, obj, event):
            if event.type() == QtCore.QEvent.Type.Paint:
                paints.append(obj.objectName() or type(obj).__name__)
            return False

    count = Count()
    watched = [window.progress, *(p.graphics.viewport() for p in window.plot_panels.values())]
    for widget in watched:
        widget.installEventFilter(count)
    try:
        assert window.start()
        assert paints == []
        assert window.progress.value() == 0
        qtbot.waitUntil(lambda: "ProgressBar" in paints, timeout=5_000)  # painted after
    finally:
        for widget in watched:
            widget.removeEventFilter(count)
    window.stop()
    wait_state(qtbot, window, FINISHED)


def test_a_plot_shown_by_a_flip_repaints_when_zoomed(window, qtbot):
    """After a round's flip copied the pictures rendered ahead, a change in a plot's
    scene (a zoom, a hover) still repaints it. Rendered with QGraphicsView.render, the
    items counted as never drawn on screen, so a zoom changed the range and drew nothing
    until the next snapshot (Curves and Locality, found under Xvfb)."""
    assert window.start()  # no refresh() after it: the live rounds' flips paint last
    wait_state(qtbot, window, FINISHED)
    qtbot.waitUntil(lambda: not window.drawing and window.shown is not None
                    and window.shown.snapshot.done, timeout=10_000)
    assert window.curves.graphics.flips > 0  # flips copied Curves' pictures
    qtbot.wait(100)
    paints: list[int] = []

    class Count(QtCore.QObject):
        def eventFilter(self, obj, event):
            if event.type() == QtCore.QEvent.Type.Paint:
                paints.append(1)
            return False

    count = Count()
    viewport = window.curves.graphics.viewport()
    viewport.installEventFilter(count)
    try:
        window.curves.plots[0].setXRange(10, 20, padding=0)  # as a wheel zoom does
        qtbot.waitUntil(lambda: bool(paints), timeout=2_000)
    finally:
        viewport.removeEventFilter(count)


def test_a_zoom_ends_with_the_run(window, qtbot):
    """A zoom into Locality or a projection does not carry over to the next run (its
    points fell outside the old range, and the plot looked empty)."""
    finish_run(qtbot, window)
    locality = window.plot_panels["locality"].plot.getViewBox()
    home = locality.viewRange()
    locality.setRange(xRange=(1.0, 1.5), yRange=(0.2, 0.4), padding=0)
    projection = window.representation.plot.getViewBox()
    projection.setRange(xRange=(0, 0.1), yRange=(0, 0.1), padding=0)  # auto-range off
    assert not any(projection.autoRangeEnabled())
    window.reset()
    assert np.allclose(locality.viewRange(), home)
    assert all(projection.autoRangeEnabled())


def test_pause_resume_step_stop_reset(window, qtbot):
    window.params.set_value("train.steps", 100_000)
    window.params.set_value("train.snapshot_every", 20)
    assert window.start()
    qtbot.waitUntil(lambda: len(window.store) >= 1, timeout=RUN_TIMEOUT_MS)
    window.toggle_pause()
    assert window.act_pause.text() == "Resume"
    wait_state(qtbot, window, PAUSED)
    n = window.runner.snapshots_received
    qtbot.wait(400)
    assert window.runner.snapshots_received == n  # paused: nothing new

    window.step()
    qtbot.waitUntil(lambda: window.runner.snapshots_received == n + 1, timeout=RUN_TIMEOUT_MS)
    wait_state(qtbot, window, PAUSED)
    qtbot.wait(300)
    assert window.runner.snapshots_received == n + 1  # exactly one interval

    window.toggle_pause()
    wait_state(qtbot, window, RUNNING)
    qtbot.waitUntil(lambda: window.runner.snapshots_received >= n + 2, timeout=RUN_TIMEOUT_MS)

    window.stop()
    wait_state(qtbot, window, FINISHED)
    qtbot.waitUntil(lambda: window.store.latest.done, timeout=5_000)
    assert window.store.latest.step < 100_000
    assert window.act_start.isEnabled() and not window.act_stop.isEnabled()

    window.reset()
    assert window.runner.state == IDLE
    assert len(window.store) == 0 and window.collisions.image.image is None
    assert window.timeline.steps == []
    assert window.curves.curves["loss"].getData()[0] is None or not len(
        window.curves.curves["loss"].getData()[0]
    )


def test_invalid_parameter_disables_start_and_names_problem(window):
    assert window.act_start.isEnabled()
    window.params.set_value("data.seen_classes", 1)
    assert not window.act_start.isEnabled()
    assert not window.start()
    label = window.params.error_labels["data.seen_classes"]
    assert label.isVisibleTo(window.params) and "[2, 10000]" in label.text()
    assert "data.seen_classes" in window.params.summary.text()
    window.params.set_value("train.lr", "fast")
    assert "must be a number" in window.params.error_labels["train.lr"].text()
    window.params.set_value("data.seen_classes", 10)
    window.params.set_value("train.lr", "0.001")
    assert window.act_start.isEnabled()
    # a cross-field limit: one-shot ways cannot exceed the unseen classes
    unseen = window.params.config().data.unseen_classes
    window.params.set_value("probe.ways", unseen + 1)
    assert not window.act_start.isEnabled()
    assert f"unseen_classes={unseen}" in window.params.error_labels["probe.ways"].text()
    window.params.set_value("probe.ways", unseen)
    assert window.act_start.isEnabled()


def test_config_files_bad_toml_keeps_state(window, tmp_path):
    window.params.set_value("hashing.bits", 12)
    good = tmp_path / "exp.toml"
    assert window.save_config(good)
    before = window.params.config().to_dict()
    bad = tmp_path / "bad.toml"
    bad.write_text("[data]\nseen_classes = 'many'\n")
    assert not window.load_config(bad)
    assert "data.seen_classes" in window.last_error
    assert window.error_box is not None and window.error_box.isVisible()
    assert window.params.config().to_dict() == before
    assert not window.load_config(tmp_path / "missing.toml")
    (tmp_path / "broken.toml").write_text("this is = = not toml")
    assert not window.load_config(tmp_path / "broken.toml")
    assert "not valid TOML" in window.last_error
    assert window.params.config().to_dict() == before
    window.error_box.close()
    window.params.set_value("hashing.bits", 4)
    assert window.load_config(good)
    assert window.params.config().hashing.bits == 12
    assert window.recent_files()[0].endswith("exp.toml")


def test_layout_is_remembered_and_resettable(qtbot, tmp_path):
    w = make_window(tmp_path)
    w.docks["locality"].hide()
    w.close()
    w2 = make_window(tmp_path)
    try:
        assert not w2.docks["locality"].isVisible()
        w2.reset_layout()
        assert w2.docks["locality"].isVisible()
    finally:
        w2.close()


def test_close_during_training_stops_cleanly(qtbot, tmp_path):
    w = make_window(tmp_path, tiny_config(**{"train.steps": 1_000_000}), real_projection=True)
    assert w.start()
    qtbot.waitUntil(lambda: len(w.store) >= 2, timeout=RUN_TIMEOUT_MS)
    t0 = time.monotonic()
    w.close()
    assert time.monotonic() - t0 < 20
    assert not w.runner.is_active
    assert w.projector.service is None
    assert QtCore.QThreadPool.globalInstance().activeThreadCount() == 0


def test_screenshot_command(qtbot, tmp_path):
    from app.cli import screenshot

    with pytest.raises(ConfigError, match="choose from"):
        screenshot(tiny_config(), tmp_path / "x.png", panel="nope")
    settings = QtCore.QSettings(str(tmp_path / "s.ini"), QtCore.QSettings.Format.IniFormat)
    out = tmp_path / "shot.png"
    assert screenshot(tiny_config(), out, panel="collisions", settings=settings,
                      runs_dir=tmp_path / "runs") == 0
    assert png_is_not_blank(out)


def test_screenshot_full_quality_waits_for_the_refit(qtbot, tmp_path, capsys):
    from app.cli import screenshot

    settings = QtCore.QSettings(str(tmp_path / "s.ini"), QtCore.QSettings.Format.IniFormat)
    out = tmp_path / "full.png"
    code = screenshot(tiny_config(), out, panel="representation", settings=settings, full=True,
                      frame_timeout_s=60, runs_dir=tmp_path / "runs")
    assert code == 0 and png_is_not_blank(out)
    assert "not ready" not in capsys.readouterr().err


def test_divergence_is_reported_and_history_kept(window, qtbot):
    window.params.set_value("train.optimizer", "sgd")
    window.params.set_value("train.lr", "10000")
    assert window.start()
    wait_state(qtbot, window, FAILED, FINISHED)
    assert window.runner.state == FAILED
    assert "diverged" in window.last_error
    assert window.error_box is not None
    window.error_box.close()
    window.refresh()
    assert len(window.store) >= 1 and window.shown_snapshot is not None  # earlier snapshots
    assert window.act_start.isEnabled()


def test_snapshot_store_memory_is_bounded():
    from app.store import Frame, SnapshotStore

    store = SnapshotStore(capacity=20)
    run = handmade_run()
    for k in range(200):
        snap = handmade_snapshot(step=k * 10, run=run)
        store.add(snap)
        store.set_frame(Frame("embedding", snap.step, np.zeros((1, 2)), "pca"))
    assert len(store) <= 20
    assert len(store.rows) == 200  # every scalar row is kept for curves and CSV
    steps = store.steps
    assert steps[0] == 0 and steps[-1] == 1990 and steps == sorted(steps)
    assert set(store.frames) <= set(steps)
    assert store.frame_for(5).step == 0  # nearest earlier frame


def test_family_enables_only_its_own_shape_fields(window):
    editors = window.params.editors
    window.params.set_value("data.family", "random_relu")
    assert editors["data.input_dim"].isEnabled() and not editors["data.image_size"].isEnabled()
    window.params.set_value("data.theta_dim", 3)
    window.params.set_value("data.family", "image_pose")
    assert not editors["data.input_dim"].isEnabled() and editors["data.image_size"].isEnabled()
    assert window.params.config().data.family == "image_pose"


def test_refine_projection_replaces_the_frame_on_screen(window, qtbot):
    assert not window.refine_projection()  # nothing shown yet: a message, no request
    finish_run(qtbot, window)
    step = window.shown_snapshot.step
    qtbot.waitUntil(lambda: step in window.store.frames, timeout=RUN_TIMEOUT_MS)
    assert window.refine_projection()
    qtbot.waitUntil(
        lambda: window.store.frames[step].method.endswith("full"), timeout=RUN_TIMEOUT_MS
    )
    window.refresh()
    assert window.representation.method == "pca full"
    assert "FULL" in window.status_projection.text()


def test_first_launch_gets_the_default_proportions(qtbot, tmp_path):
    w = make_window(tmp_path)  # fresh settings: no saved layout
    try:
        qtbot.waitUntil(lambda: w.docks["parameters"].width() < 0.3 * w.width(), timeout=5000)
        assert w.docks["timeline"].height() < 0.1 * w.height()
        assert w.docks["representation"].width() > 0.15 * w.width()
    finally:
        w.close()


# --------------------------------------------------------------------------- parameter lock


def test_parameters_locked_while_a_run_is_active_paused_included(window, qtbot):
    editors = window.params.editors
    assert not window.params.locked and not editors["train.lr"].isReadOnly()
    window.params.set_value("train.steps", 100_000)
    assert window.start()
    assert window.params.locked and window.params.lock_banner.isVisibleTo(window.params)
    assert "read-only" in window.params.lock_banner.text()
    assert editors["train.lr"].isReadOnly() and editors["data.seen_classes"].isReadOnly()
    assert not editors["data.family"].isEnabled()
    assert editors["projection.method"].isEnabled()  # the view's settings apply now
    qtbot.waitUntil(lambda: len(window.store) >= 1, timeout=RUN_TIMEOUT_MS)
    window.toggle_pause()
    wait_state(qtbot, window, PAUSED)
    assert window.params.locked and editors["train.lr"].isReadOnly()

    # Picking a preset while paused asks first; "no" changes nothing and keeps the run.
    asked = []
    window._confirm = lambda title, text: asked.append(text) or False
    before = window.params.config().to_dict()
    window.params.preset.activated.emit(window.params.preset.findText("quick"))
    assert asked and "Stop it" in asked[0]
    assert window.params.config().to_dict() == before and window.runner.state == PAUSED

    # "yes" stops the run (keeping its results), then loads the preset.
    window._confirm = lambda title, text: True
    window.params.preset.activated.emit(window.params.preset.findText("quick"))
    wait_state(qtbot, window, FINISHED)
    assert window.params.config().name == "quick"
    assert not window.params.locked and not editors["train.lr"].isReadOnly()
    assert window.store.latest.done and window.store.latest.step < 100_000
    # Stopped early: the label says so, not "finished".
    assert window.run_label.text().startswith("stopped at step")
    assert "100000" in window.run_label.text()


def test_start_after_an_unrecorded_run_asks_before_discarding(window, qtbot):
    finish_run(qtbot, window)
    assert window.run_label.text().startswith("finished"), window.run_label.text()
    window.session.record_dir = None  # as when the runs folder could not be written
    asked = []
    window._confirm = lambda title, text: asked.append(text) or False
    window.act_start.trigger()
    assert asked and "not recorded" in asked[0]
    assert window.runner.state == FINISHED and len(window.store) == 5  # kept
    window._confirm = lambda title, text: True
    window.act_start.trigger()
    assert window.runner.is_active
    wait_state(qtbot, window, FINISHED)


def test_reset_clears_every_header_and_the_samples_rows(window, qtbot):
    finish_run(qtbot, window)
    for panel in window.plot_panels.values():
        assert panel.info.text(), panel.name
    assert window.samples.plot.getAxis("left")._tickLevels
    window.reset()
    for panel in window.plot_panels.values():
        assert panel.info.text() == "", panel.name
        assert panel.is_empty, panel.name  # a note, not empty -0.5..0.5 axes
    assert not window.samples.plot.getAxis("left")._tickLevels
    assert window.timeline.label.text() == "no run yet"
    assert window.status_step.text() == "step –"


def test_projection_header_names_its_own_step_and_lag(window):
    adopt(window, handmade_run())
    snap = handmade_snapshot(step=300)
    window.store.add(snap)
    window._show(snap)
    show_frame(window, "embedding", 300, pca_2d(snap.embedding), "pca")
    assert window.representation.picture_note == "PCA of step 300"
    later = handmade_snapshot(step=500)
    window.store.add(later)
    window._show(later)
    assert window.representation.info.text() == "step 500"  # the step on screen
    assert window.representation.picture_note == "PCA of step 300 · 200 steps behind (catching up)"
    assert window.representation.plot.titleLabel.text == window.representation.picture_note


def test_collapsed_snapshot_is_marked_in_status_bar_and_curves(window):
    import dataclasses

    adopt(window, handmade_run())
    snap = handmade_snapshot(step=0)
    window._on_snapshot(snap)
    window.refresh()
    assert not window.status_health.isVisibleTo(window)
    bad = dataclasses.replace(handmade_snapshot(step=10), collapsed="loss 1e16 x its start")
    window._on_snapshot(bad)
    window.refresh()
    assert window.status_health.isVisibleTo(window)
    assert "collapsed at step 10" in window.status_health.text()
    assert window.curves.collapse_lines[0].isVisible()
    assert window.curves.collapse_lines[0].value() == 10
    assert window.curves.info.text().startswith("COLLAPSED")
    window.reset()
    assert not window.status_health.isVisibleTo(window)
    assert not window.curves.collapse_lines[0].isVisible()


def test_window_fits_a_small_screen(qtbot, tmp_path):
    settings = QtCore.QSettings(str(tmp_path / "s.ini"), QtCore.QSettings.Format.IniFormat)
    w = MainWindow(tiny_config(), settings=settings, projection_factory=InlineProjection,
                   runs_dir=tmp_path / "runs")
    try:
        area = w.screen().availableGeometry()
        assert w.width() <= area.width() and w.height() <= area.height()
        w.resize(1366, 768)
        w.show()
        qtbot.waitExposed(w)
        assert w.minimumSizeHint().width() <= 1366 and w.minimumSizeHint().height() <= 768
        for name in ("timeline", "collisions", "samples", "curves"):
            dock = w.docks[name]
            assert dock.isVisible() and dock.geometry().bottom() <= w.height(), name
        assert w.statusBar().geometry().bottom() <= w.height()
    finally:
        w.close()


def test_rate_after_step_does_not_count_paused_time(window, qtbot):
    window.params.set_value("train.steps", 100_000)
    window.params.set_value("train.snapshot_every", 20)
    assert window.start()
    qtbot.waitUntil(lambda: len(window.store) >= 2, timeout=RUN_TIMEOUT_MS)
    window.toggle_pause()
    wait_state(qtbot, window, PAUSED)
    n = window.runner.snapshots_received
    pause_s = 2.0
    qtbot.wait(int(pause_s * 1000))
    window.step()
    qtbot.waitUntil(lambda: window.runner.snapshots_received == n + 1, timeout=RUN_TIMEOUT_MS)
    wait_state(qtbot, window, PAUSED)
    # 20 steps over a 2 s pause would read at most 10 steps/s: the interval's rate must
    # count training time only (a tiny model trains far faster than that).
    assert window.store.latest.steps_per_s > 4 * 20 / pause_s
    window.stop()
    wait_state(qtbot, window, FINISHED)


def test_a_message_never_moves_the_field_being_edited(window, qtbot):
    params = window.params
    editor = params.editors["data.seen_classes"]
    body = params.widget()
    qtbot.wait(50)
    before = editor.mapTo(body, QtCore.QPoint(0, 0)).y()
    params.set_value("data.seen_classes", 1)  # the summary replaces the estimate
    qtbot.wait(50)
    assert params.summary.isVisibleTo(params) and not params.estimate.isVisibleTo(params)
    assert editor.mapTo(body, QtCore.QPoint(0, 0)).y() == before
    params.set_value("data.seen_classes", 10)
    qtbot.wait(50)
    assert params.estimate.isVisibleTo(params)
    assert editor.mapTo(body, QtCore.QPoint(0, 0)).y() == before


def test_input_space_shows_the_raw_frame_and_the_representation_the_embedding(window):
    run = handmade_run()
    snap = show_handmade(window, run)
    emb, raw = pca_2d(snap.embedding), pca_2d(run.probe.x)
    show_frame(window, "embedding", 0, emb, "pca")
    show_frame(window, "raw", None, raw, "umap")
    assert np.array_equal(window.representation.coords, emb)
    assert np.array_equal(window.input_space.coords, raw)
    assert window.input_space.picture_note == "UMAP of the raw input x"
    assert window.representation.picture_note == "PCA of step 0"
    assert window.representation.info.text() == "step 0"


def test_a_round_of_staggered_updates_is_never_split(window, qtbot):
    """Snapshots and frames arriving while a round draws wait for its end: every panel,
    the timeline and the status bar show one step, and the display changes in one go."""
    import dataclasses

    run = dataclasses.replace(handmade_run(), total_steps=120)
    adopt(window, run)
    snaps = [handmade_snapshot(step=s, run=run) for s in range(0, 130, 10)]
    for s in snaps[:-1]:
        window.store.add(s)
    window._show(snaps[0], staggered=True)
    window._on_stagger_tick()  # the timeline is updated, the others not yet
    assert window.drawing
    assert all(not w.updatesEnabled() for w in window._screen_widgets())  # nothing painted
    assert window.status_figures in window._screen_widgets()  # the toolbar's figures too
    window.store.add(snaps[-1])
    window._redraw(staggered=True)  # a newer snapshot: waits for the round
    window._on_frame("embedding", 0, pca_2d(snaps[0].embedding), "pca")  # so does a frame
    shown = []
    while window.drawing:
        window._on_stagger_tick()
        shown.append(window.collisions.info.text())
    assert all(text.startswith("step 0") for text in shown if text)
    for panel in (window.collisions, window.curves, window.locality):
        assert panel.info.text().startswith("step 0"), panel.name
    # its frame came after the round began: the next round shows it
    assert window.representation.info.text() == "waiting for the first projection…"
    assert window.timeline.label.text().startswith("step 0 of 120")
    assert window.status_step.text().startswith("step 0/120")
    # what waited is drawn next, in one round: step 120 with the frame of step 0
    qtbot.waitUntil(lambda: window._round_view.step == 120, timeout=5_000)
    qtbot.waitUntil(lambda: window.shown.step == 120 and not window.drawing, timeout=5_000)
    assert window.representation.picture_note.startswith("PCA of step 0 · 120 steps behind")
    coords = pca_2d(snaps[-1].embedding)
    window._on_frame("embedding", 120, coords, "pca")  # a frame alone: a projection round
    qtbot.waitUntil(lambda: window.representation.picture_note == "PCA of step 120"
                    and not window.drawing, timeout=5_000)
    assert np.array_equal(window.representation.coords, coords)
    for panel in (window.collisions, window.curves, window.locality, window.representation):
        assert panel.info.text().startswith("step 120"), panel.name
    assert window.timeline.label.text().startswith("step 120 of 120")
    assert window.status_step.text() == "step 120/120 · latest"


def test_the_status_bar_follows_the_timeline(window):
    import dataclasses

    run = dataclasses.replace(handmade_run(), total_steps=120)
    adopt(window, run)
    for s in range(0, 130, 10):
        window.store.add(handmade_snapshot(step=s, run=run))
    window.refresh()
    assert window.status_step.text() == "step 120/120 · latest"
    window.timeline.set_index(3)
    assert window.status_step.text() == "viewing step 30 of 120"
    figures = window.status_figures.text()
    assert f"one-shot {window.store.at(3).oneshot_trained:.2f}" in figures
    window.timeline.live.setChecked(True)
    assert window.status_step.text() == "step 120/120 · latest"


def test_a_header_too_long_for_its_dock_ends_in_an_ellipsis(window):
    show_handmade(window)
    header = window.curves.info
    full = header.text()
    header.resize(120, header.height())
    shown = header.shown_text()
    assert shown.endswith("…") and full.startswith(shown[:-1]) and len(shown) < len(full)
    assert len(header.shown_lines()) == 2 and header.cut  # wrapped first, then cut
    assert header.toolTip() == full  # the whole line is one hover away
    header.resize(header.fontMetrics().horizontalAdvance(full) * 2 // 3, header.height())
    assert header.shown_text() == full and len(header.shown_lines()) == 2  # wrapped, whole
    header.resize(header.fontMetrics().horizontalAdvance(full) + 20, header.height())
    assert header.shown_lines() == [full] and not header.cut



def test_empty_panels_say_building_while_a_run_is_built_and_no_selection(window, qtbot):
    """"no run yet" only when there is none: while the run is built its panels say what
    is being done, and an empty Inspector says "no selection"."""
    from app.panels.base import BUILDING_TEXT, EMPTY_TEXT
    from app.panels.inspector import NO_SELECTION

    window.wait_warmed_up()  # then the note is the plain one (see the next test)
    qtbot.waitUntil(lambda: window.curves.empty_note.text() == EMPTY_TEXT, timeout=5000)
    texts = []
    window.runner.state_changed.connect(
        lambda _s: texts.append(window.curves.empty_note.text()))
    window.start()
    assert texts and texts[0].startswith(BUILDING_TEXT)
    wait_state(qtbot, window, FINISHED)
    assert window.inspector.is_empty and window.inspector.empty_note.text() == NO_SELECTION
    window.selection.select_point(0)
    window.selection.clear()
    assert window.inspector.empty_note.text() == NO_SELECTION
    window.reset()
    assert window.curves.empty_note.text() == EMPTY_TEXT


def test_empty_panels_say_torch_and_the_umap_worker_are_loading_until_they_are(window, qtbot):
    """torch and its optimisers (and the UMAP worker) load after the window shows: until
    they are ready the "no run yet" panels say so, then the note is the plain one."""
    from app.panels.base import EMPTY_TEXT
    from app.window_status import TORCH_LOADING, UMAP_STARTING

    projection = window.panels["representation"]
    # the warm-up starts WARM_UP_DELAY_MS after the window
    assert window.curves.empty_note.text() == f"{EMPTY_TEXT}\n{TORCH_LOADING}"
    assert projection.empty_note.text() == f"{EMPTY_TEXT}\n{TORCH_LOADING}"  # PCA: no worker
    assert window.wait_warmed_up()
    qtbot.waitUntil(lambda: window.curves.empty_note.text() == EMPTY_TEXT, timeout=5000)
    assert projection.empty_note.text() == EMPTY_TEXT
    assert not window._loading_timer.isActive()
    window.projector.params["method"] = "umap"  # a UMAP worker still compiling
    window._show_loading()
    assert projection.empty_note.text() == f"{EMPTY_TEXT}\n{UMAP_STARTING}"
    assert window.curves.empty_note.text() == EMPTY_TEXT
    window.projector.service.umap_ready = True
    window._show_loading()
    assert projection.empty_note.text() == EMPTY_TEXT


def test_bucket_codes_follow_the_snapshot_on_screen_not_its_id(window, monkeypatch):
    """CPython reuses the id of an evicted snapshot: the cached codes must not be keyed by
    it (simulated here by giving every object the same id)."""
    import app.window as window_module

    monkeypatch.setattr(window_module, "id", lambda _obj: 0, raising=False)
    coded = []
    real = window_module.bucket_codes
    monkeypatch.setattr(window_module, "bucket_codes",
                        lambda snap, *args: coded.append(snap) or real(snap, *args))
    run = handmade_run()
    show_handmade(window, run, step=0)
    window.selection.select_point(0)
    show_handmade(window, run, step=10)
    window._apply_selection()
    assert coded and coded[-1] is window.shown.snapshot and coded[-1].step == 10


def test_colour_by_survives_a_new_run_and_step_does_not_restart_a_finished_run(window, qtbot):
    finish_run(qtbot, window)
    rep = window.representation
    rep.color_by.setCurrentIndex(2)
    chosen = rep.color_by.currentText()
    assert not window.act_step.isEnabled()  # F10 on a finished run starts nothing
    window._on_step_triggered()
    assert window.runner.state == FINISHED and "finished" in window.statusBar().currentMessage()
    window._confirm = lambda title, text: True
    window.act_start.trigger()
    wait_state(qtbot, window, FINISHED)
    window.refresh()
    assert rep.color_by.currentText() == chosen
    window.reset()
    assert window.act_step.isEnabled()


def test_a_layout_saved_for_another_window_size_is_laid_out_fresh(qtbot, tmp_path):
    from tests.helpers import make_window as make

    first = make(tmp_path)  # 1600x1000
    default = min(310, int(first.width() * 0.23))  # the Parameters dock's default width
    # Its default proportions are applied after the show (a zero timer: under load, later).
    qtbot.waitUntil(lambda: abs(first.docks["parameters"].width() - default) < 20)
    first.close()  # saves its layout and its size
    parameters = first.docks["parameters"].width()
    for saved, restored in (("1600x1000", True), ("1620x990", True), ("822x640", False),
                            ("5000x4000", False), (None, False)):
        first.settings.setValue("window/size", saved)
        if saved is None:  # a settings file from before sizes were saved
            first.settings.remove("window/size")
        first.settings.sync()
        again = make(tmp_path)
        try:  # a layout comes back only into a window of about the size it was made in
            assert again._layout_restored == restored, saved
            # The fresh layout's proportions are applied after the show (a zero timer).
            qtbot.waitUntil(
                lambda w=again: abs(w.docks["parameters"].width() - parameters) < 40,
                timeout=3000)
        finally:
            again.settings.setValue("window/size", saved or "0x0")
            again.close()


def test_an_opened_run_is_a_recent_file_and_reopens_from_the_menu(qtbot, window, tmp_path):
    from tests.helpers import record_tiny_run

    run = record_tiny_run(tmp_path / "run-a", **{"train.steps": 10})
    assert not window.recent_menu.isEnabled()  # nothing opened yet
    assert window.open_run(run)
    assert window.recent_files()[0] == str(run.resolve())
    assert window.recent_menu.isEnabled()
    window.reset()
    window.recent_menu.actions()[0].trigger()  # a run folder opens as a run
    assert window.session is not None and window.session.reader.path == run.resolve()
