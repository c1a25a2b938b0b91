"""The Sweep window: a small sweep runs from the form (serial executor), its table and
phase diagram fill in, runs are selected from the plot or the table, a run opens in the
main window, a sweep folder reopens, bad axes are refused with a named message."""

from __future__ import annotations

import numpy as np
import pytest

from app.sweep_view import SweepWindow
from engine.executors import SerialExecutor
from tests.helpers import tiny_config


@pytest.fixture
def sweeps(qtbot, tmp_path):
    w = SweepWindow(tmp_path / "sweeps")
    qtbot.addWidget(w)
    w.base = tiny_config(**{"train.steps": 20})
    w.axes.setRowCount(0)
    w.add_axis("data.seen_classes", "6,10")
    w.seeds.setValue(2)
    w.show()
    yield w
    w.close()


def test_sweep_runs_from_the_form_and_fills_table_and_diagram(qtbot, sweeps, tmp_path):
    sweeps.out.setText(str(tmp_path / "s1"))
    assert sweeps.start(executor=SerialExecutor(threads=1))
    qtbot.waitUntil(lambda: not sweeps.running and sweeps.result is not None, timeout=120_000)
    qtbot.waitUntil(lambda: sweeps.start_button.isEnabled(), timeout=10_000)
    assert sweeps.result.counts == {"finished": 4}
    assert sweeps.table.rowCount() == 4
    spots = sweeps.phase.runs_item.points()
    assert len(spots) == 4
    # each dot is its run's final one-shot accuracy, at its seen_classes value
    for spot in spots:
        row = sweeps.rows[spot.data()]
        assert spot.pos().x() == pytest.approx(float(row["data.seen_classes"]))
        assert spot.pos().y() == pytest.approx(float(row["oneshot_trained"]))
    xs, ys = sweeps.phase.mean_item.getData()
    assert list(xs) == [6.0, 10.0]
    for x, y in zip(xs, ys, strict=True):
        runs = [float(r["oneshot_trained"]) for r in sweeps.rows.values()
                if float(r["data.seen_classes"]) == x]
        assert y == pytest.approx(np.mean(runs))
    bx, by = sweeps.phase.baseline_items[1].getData()  # raw-input baseline drawn
    assert len(bx) == 2 and np.all(np.isfinite(by))
    # every baseline of the figure has its own dashed line: the learned linear one too
    for item, name in zip(sweeps.phase.baseline_items,
                          ("oneshot_untrained", "oneshot_raw", "oneshot_learned_linear"),
                          strict=True):
        lx, ly = item.getData()
        assert list(lx) == [6.0, 10.0]
        for x, y in zip(lx, ly, strict=True):
            assert y == pytest.approx(np.mean([float(r[name]) for r in sweeps.rows.values()
                                               if float(r["data.seen_classes"]) == x]))

    # linked selection: a point selects its row, a row marks its point
    rid = spots[0].data()
    sweeps.phase.point_clicked.emit(rid)
    selected = {sweeps._id_of(i.row()) for i in sweeps.table.selectedItems()}
    assert selected == {rid}
    assert len(sweeps.phase.selected_item.points()) == 1
    opened = []
    sweeps.open_run_requested.connect(opened.append)
    sweeps.open_run(rid)
    assert opened == [str(tmp_path / "s1" / "runs" / rid)]

    # "best" and "at step" read each run's history from its record
    sweeps.value.setCurrentText("at step")
    sweeps.at_step.setValue(0)
    ys0 = [s.pos().y() for s in sweeps.phase.runs_item.points()]
    untrained = [float(r["oneshot_untrained"]) for r in sweeps.rows.values()]
    assert sorted(ys0) == pytest.approx(sorted(untrained))

    # exports and reopening
    assert (sweeps.export_plot(tmp_path / "phase.pdf")).read_bytes().startswith(b"%PDF")
    assert sweeps.export_plot(tmp_path / "phase.svg").stat().st_size > 0
    assert sweeps.export_summary(tmp_path / "summary.csv").read_text().count("\n") == 5
    other = SweepWindow(tmp_path / "sweeps")
    qtbot.addWidget(other)
    assert other.open_sweep(tmp_path / "s1")
    assert other.table.rowCount() == 4 and len(other.phase.runs_item.points()) == 4
    other.close()


def test_two_axes_give_a_heatmap(qtbot, sweeps, tmp_path):
    sweeps.add_axis("hashing.bits", "4,8")
    sweeps.seeds.setValue(1)
    sweeps.out.setText(str(tmp_path / "s2"))
    assert sweeps.start(executor=SerialExecutor(threads=1))
    qtbot.waitUntil(lambda: sweeps.result is not None, timeout=120_000)
    qtbot.waitUntil(lambda: sweeps.start_button.isEnabled(), timeout=10_000)
    image = sweeps.phase.image.image
    assert image.shape == (2, 2) and np.all(np.isfinite(image))


def test_bad_axes_are_refused_before_anything_runs(qtbot, sweeps, tmp_path):
    sweeps.axes.setItem(0, 1, type(sweeps.axes.item(0, 1))("6,,10"))
    sweeps.out.setText(str(tmp_path / "bad"))
    assert not sweeps.start(executor=SerialExecutor(threads=1))
    assert "data.seen_classes" in sweeps.last_error
    sweeps.axes.setItem(0, 1, type(sweeps.axes.item(0, 1))("6,100000"))
    assert not sweeps.start(executor=SerialExecutor(threads=1))
    assert "data.seen_classes" in sweeps.last_error and "100000" in sweeps.last_error
    assert not (tmp_path / "bad").exists()
    assert not sweeps.running


def test_stop_leaves_stopped_runs_and_resume_finishes_them(qtbot, sweeps, tmp_path):
    sweeps.base = tiny_config(**{"train.steps": 400, "train.snapshot_every": 10})
    sweeps.out.setText(str(tmp_path / "s3"))
    assert sweeps.start(executor=SerialExecutor(threads=1))
    qtbot.waitUntil(lambda: any(r.get("status") == "running" for r in sweeps.rows.values()),
                    timeout=60_000)
    sweeps.stop()
    qtbot.waitUntil(lambda: sweeps.result is not None, timeout=60_000)
    qtbot.waitUntil(lambda: sweeps.start_button.isEnabled(), timeout=10_000)
    statuses = [r["status"] for r in sweeps.rows.values()]
    assert "stopped" in statuses and "finished" not in statuses
    assert sweeps.resume(tmp_path / "s3", executor=SerialExecutor(threads=1))
    qtbot.waitUntil(lambda: sweeps.result is not None and not sweeps.running, timeout=240_000)
    qtbot.waitUntil(lambda: sweeps.start_button.isEnabled(), timeout=10_000)
    assert [r["status"] for r in sweeps.rows.values()] == ["finished"] * 4


def test_the_interval_over_seeds_stays_within_the_figures_range(qtbot, sweeps):
    """Two seeds' one-shot accuracies 0.1 and 0.9: the t-interval of their mean (12.7
    standard errors) reaches far past 0 and 1; the diagram draws it within [0, 1]."""
    sweeps.sweep = sweeps.build_sweep()
    sweeps.rows = {f"r{i}": {"data.seen_classes": "6", "seed": str(i), "status": "finished",
                             "oneshot_trained": str(y)} for i, y in enumerate((0.1, 0.9))}
    sweeps.order = list(sweeps.rows)
    sweeps.redraw()
    opts = sweeps.phase.spread.opts
    assert list(opts["y"]) == [pytest.approx(0.5)] and opts["height"] is None
    assert opts["y"][0] - opts["bottom"][0] == pytest.approx(0.0)
    assert opts["y"][0] + opts["top"][0] == pytest.approx(1.0)
    assert sweeps.phase.info.text().endswith(
        "dashed: untrained, raw input and learned linear")


def test_phase_axes_show_values_as_they_are(qtbot, sweeps):
    for axis in ("left", "bottom"):
        assert not sweeps.phase.plot.getAxis(axis).autoSIPrefix


@pytest.mark.parametrize("preset", __import__("engine.config").config.preset_names())
def test_the_default_sweep_can_start_on_every_preset(qtbot, tmp_path, preset):
    w = SweepWindow(tmp_path / "sweeps")
    qtbot.addWidget(w)
    w.preset.setCurrentText(preset)
    w._on_preset_chosen(w.preset.currentIndex())
    assert w.validate(), w.last_error
    assert w.start_button.isEnabled() and w.message.text() == ""


def test_the_form_is_checked_as_it_is_typed_and_overrides_are_the_base(qtbot, tmp_path):
    """Start is disabled while the form cannot run, the message names the field and
    points at the window's own overrides, and both go once it is fixed."""
    w = SweepWindow(tmp_path / "sweeps")
    qtbot.addWidget(w)
    w.preset.setCurrentText("quick")
    w._on_preset_chosen(w.preset.currentIndex())
    w.axes.item(0, 1).setText("5,10,20")  # below the probe's 10 seen classes
    assert not w.start_button.isEnabled()
    assert "probe.seen_classes" in w.message.text()
    assert "--set" not in w.message.text() and "base overrides" in w.message.text()
    assert w.message.toolTip() == w.message.text()
    w.overrides.setText("probe.seen_classes=5")  # the window's --set
    assert w.start_button.isEnabled() and w.message.text() == ""
    assert w.build_sweep().base.probe.seen_classes == 5
    w.overrides.setText("probe.seen_classes=0")
    assert not w.start_button.isEnabled() and "probe.seen_classes" in w.message.text()
    w.overrides.setText("nonsense")
    assert not w.start_button.isEnabled() and "FIELD=VALUE" in w.message.text()
    w.overrides.setText("")
    w.axes.item(0, 1).setText("10,20")
    assert w.start_button.isEnabled() and w.message.text() == ""
    w.seeds.setValue(1)
    w.message.resize(200, w.message.height())
    w._fail("x" * 2000)  # a long message: elided in place, whole in the tooltip and log
    assert w.message.cut and w.message.toolTip() == "x" * 2000
    assert "x" * 2000 in w.log.toPlainText()


def test_one_seed_reads_one_seed_and_the_axes_fit_the_values(qtbot, sweeps, tmp_path):
    sweeps.seeds.setValue(1)
    sweeps.axes.item(0, 1).setText("12,16")
    sweeps.out.setText(str(tmp_path / "s3"))
    assert sweeps.start(executor=SerialExecutor(threads=1))
    qtbot.waitUntil(lambda: sweeps.result is not None and sweeps.start_button.isEnabled(),
                    timeout=120_000)
    text = sweeps.phase.info.text()
    assert "1 seed " in text and "1 seeds" not in text and "seen classes" in text
    (x0, x1), _ = sweeps.phase.plot.viewRange()
    assert 10 < x0 < 12 and 16 < x1 < 18  # fitted to 12..16, not from 0
    cells = [sweeps.table.item(r, c).text() for r in range(sweeps.table.rowCount())
             for c in range(sweeps.table.columnCount())]
    decimals = [t for t in cells if "." in t and len(t.split(".")[1].rstrip("0")) > 3
                and not t.startswith("seen")]
    assert not decimals, decimals


def test_empty_table_header_and_the_step_box_follow_the_value_choice(qtbot, tmp_path):
    w = SweepWindow(tmp_path / "sweeps")
    qtbot.addWidget(w)
    header = w.table.horizontalHeader()
    assert header.isSortIndicatorShown()
    # the sort arrow has room: "run" is not squeezed to "u▲"
    assert w.table.columnWidth(0) >= header.sectionSizeFromContents(0).width()
    assert w.value.currentText() == "final" and not w.at_step.isEnabled()
    w.value.setCurrentText("at step")
    assert w.at_step.isEnabled()
    w.value.setCurrentText("best")
    assert not w.at_step.isEnabled()


def test_an_axis_being_edited_is_committed_before_the_axes_change(qtbot, tmp_path, qtlog):
    """An open editor is committed and closed before a preset change or an opened sweep
    rebuilds the axes: the typed values count, and no stale editor commits later."""
    from PySide6 import QtTest

    from engine.sweep import Sweep, make_axis, prepare

    w = SweepWindow(tmp_path / "sweeps")
    qtbot.addWidget(w)
    w.show()
    index = w.axes.model().index(0, 1)
    field = w.axes.cellWidget(0, 0).currentText()

    def type_into_axis(text: str) -> None:
        w.axes.setCurrentIndex(index)
        w.axes.edit(index)
        editor = w.axes.indexWidget(index)
        editor.selectAll()
        QtTest.QTest.keyClicks(editor, text)

    type_into_axis("3,4")
    w.preset.setCurrentIndex((w.preset.currentIndex() + 1) % w.preset.count())
    w._on_preset_chosen(w.preset.currentIndex())
    # the typed axis is the user's: it is kept, not replaced by the new preset's default
    assert w.axes.item(0, 1).text() == "3,4" and w.axes.cellWidget(0, 0).currentText() == field
    assert w.axes.state() != w.axes.State.EditingState

    sweep = Sweep(base=tiny_config(), axes=[make_axis("train.lr", "0.1,0.2", tiny_config())],
                    seeds=1, name="x")
    prepare(tmp_path / "s", sweep)
    type_into_axis("5,6")
    assert w.open_sweep(tmp_path / "s")
    qtbot.wait(50)
    assert w.axes.rowCount() == 1 and w.axes.item(0, 1).text() == "0.1,0.2"
    assert not [r for r in qtlog.records if "commitData" in r.message]


def test_the_form_says_which_random_roles_each_axis_changes(qtbot, sweeps):
    from engine.seeds import axis_roles

    sweeps.validate()
    text = sweeps.roles.toolTip()
    assert f"data.seen_classes: {axis_roles('data.seen_classes')}" in text
    assert "unseen classes and unseen probe rows unchanged" in text
    assert "seed: every random role" in text  # two seeds
    # one axis and the seeds are shown whole in the form's narrowest width, not elided
    sweeps.resize(1300, 760)
    qtbot.waitUntil(lambda: sweeps.roles.width() > 0)
    lines = sweeps.roles.shown_lines()
    assert " ".join(lines) == sweeps.roles.text()  # every word, no "…"
    sweeps.seeds.setValue(1)
    assert "seed:" not in sweeps.roles.toolTip()
    sweeps.axes.cellWidget(0, 0).setCurrentText("model.width")
    assert sweeps.roles.toolTip() == f"model.width: {axis_roles('model.width')}"


def test_a_burst_of_events_gives_one_redraw_of_the_last_state(qtbot, tmp_path, monkeypatch):
    """A running sweep's events arrive many a second: the table and the diagram are
    redrawn once per burst (at most every UPDATE_MS), showing the newest values."""
    from app.sweep_view import UPDATE_MS
    from engine.sweep import Sweep, SweepEvent, make_axis, prepare

    w = SweepWindow(tmp_path / "sweeps")
    qtbot.addWidget(w)
    w.show()
    base = tiny_config()
    prepare(tmp_path / "s", Sweep(base=base, axes=[make_axis("train.lr", "0.1,0.2", base)],
                                  seeds=1, name="x"))
    assert w.open_sweep(tmp_path / "s")
    rid = w.order[0]
    redraws = []
    real_redraw = w.redraw
    monkeypatch.setattr(w, "redraw", lambda: (redraws.append(1), real_redraw()))
    for step in range(1, 6):  # five snapshots at once, as a fast sweep sends them
        w.runner.event_arrived.emit(SweepEvent(
            kind="snapshot", run_id=rid, step=step, runs_total=2,
            figures={"oneshot_trained": 0.1 * step, "loss": 1.0 / step}))
    assert redraws == []  # nothing drawn per event
    qtbot.waitUntil(lambda: len(redraws) == 1, timeout=5_000)
    qtbot.wait(3 * UPDATE_MS)
    assert len(redraws) == 1  # one redraw for the burst
    row = [r for r in range(w.table.rowCount()) if w._id_of(r) == rid][0]
    columns = [w.table.horizontalHeaderItem(c).text() for c in range(w.table.columnCount())]
    assert w.table.item(row, columns.index("step")).text() == "5"
    spots = w.phase.runs_item.points()
    assert len(spots) == 1 and spots[0].data() == rid
    assert spots[0].pos().y() == pytest.approx(0.5)  # the last snapshot's one-shot accuracy
    w.close()
