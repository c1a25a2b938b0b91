"""Runs that last, in the app: every run is recorded, any run reopens with its whole
timeline and the same figures, the Runs dock lists/opens/renames/deletes runs, and a
runs folder that cannot be written never stops training."""

from __future__ import annotations

import json

import numpy as np
import pytest

from app.runner import FAILED, FINISHED
from engine.record import open_run
from tests.helpers import finish_run, make_window, tiny_config, wait_state


def _live_figures(w):
    return {s: dict(r) for s, r in zip(w.store.steps, w.store.rows, strict=True)}


def test_a_run_in_the_app_is_recorded_and_reopens_with_the_same_figures(qtbot, tmp_path, window):
    finish_run(qtbot, window)
    folder = window.record_dir
    assert folder is not None and folder.parent == tmp_path / "runs"
    reader = open_run(folder)
    assert reader.display_status == "finished"
    assert reader.steps == window.store.steps == [0, 10, 20, 30, 40]
    live_first = window.store.at(0)
    live_last = window.store.latest
    live_rows = _live_figures(window)
    qtbot.waitUntil(lambda: (folder / "frames").is_dir() and any((folder / "frames").iterdir()),
                    timeout=10_000)

    other = make_window(tmp_path / "second")
    try:
        assert other.open_run(folder)
        assert other.store.steps == reader.steps
        assert other.shown_snapshot.step == 40
        for step, row in _live_figures(other).items():
            for key, value in live_rows[step].items():
                if isinstance(value, str):
                    assert row[key] == value, key
                elif key not in ("seconds", "steps_per_s"):
                    assert row[key] == pytest.approx(value, rel=1e-6, nan_ok=True), key
        assert np.allclose(other.collisions.image.image, live_last.collision_matrix)
        assert other.curves.info.text() == window.curves.info.text()
        for name in ("collisions", "locality", "lsh"):
            assert other.panels[name].info.text() == window.panels[name].info.text(), name
        assert np.array_equal(other.samples.mosaic, window.samples.mosaic, equal_nan=True)
        other.timeline.set_index(0)  # scrub back: the record's step 0, same figures
        assert other.shown_snapshot.step == 0
        assert np.allclose(other.collisions.image.image, live_first.collision_matrix)
        assert np.allclose(other.shown_snapshot.embedding, live_first.embedding, atol=2e-2)
        # exports work on a reopened run, with the same schema as the live one
        csv_path = other.export_history_csv(tmp_path / "h.csv")
        assert csv_path.read_text().count("\n") == 1 + len(reader.steps)
        z = np.load(other.export_embeddings_npz(tmp_path / "e.npz"))
        assert z["embedding"].shape == live_first.embedding.shape
    finally:
        other.close()


def test_runs_dock_lists_opens_renames_and_deletes(qtbot, tmp_path, window):
    finish_run(qtbot, window)
    first = window.record_dir
    finish_run(qtbot, window)
    second = window.record_dir
    window.runs.refresh()
    listed = {s["path"] for s in window.runs.summaries}
    assert listed == {first, second}
    row = next(s for s in window.runs.summaries if s["path"] == first)
    assert row["status"] == "finished" and row["steps"] == 40 and row["one-shot"] is not None
    assert window.runs.table.rowCount() == 2

    window.runs.open_requested.emit(str(first))
    assert window.record_dir == first and window.shown_snapshot.step == 40

    renamed = window.runs.rename_run(second, "my-run")
    assert renamed.name == "my-run" and renamed.is_dir() and not second.exists()
    with pytest.raises(ValueError):
        window.runs.rename_run(renamed, "../escape")
    window.runs.delete_run(renamed)
    assert not renamed.exists()
    assert [s["path"] for s in window.runs.summaries] == [first]
    with pytest.raises(ValueError):
        window.runs.delete_run(tmp_path)  # not a run folder: never deleted


def test_opening_a_bad_folder_leaves_the_window_as_it_was(qtbot, tmp_path, window):
    finish_run(qtbot, window)
    steps, shown = window.store.steps, window.shown_snapshot
    not_a_run = tmp_path / "plain"
    not_a_run.mkdir()
    newer = tmp_path / "newer"
    newer.mkdir()
    (newer / "run.json").write_text(json.dumps({"schema_version": 99}))
    expected = {not_a_run: "not a GSH Lab run", newer: "newer GSH Lab",
                tmp_path / "missing": "not a folder"}
    for bad, words in expected.items():
        assert not window.open_run(bad)
        assert window.store.steps == steps and window.shown_snapshot is shown
        assert words in window.last_error


def test_unwritable_runs_folder_trains_unrecorded_and_says_so(qtbot, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    w = make_window(tmp_path)
    try:
        w.runs_dir = blocker / "runs"
        finish_run(qtbot, w)
        assert w.record_dir is None
        assert "not being recorded" in w.record_error
        assert len(w.store) == 5  # training and the timeline in memory went on
    finally:
        w.close()


def test_closing_mid_run_leaves_a_valid_record(qtbot, tmp_path):
    w = make_window(tmp_path, tiny_config(**{"train.steps": 100_000}))
    w.start()
    qtbot.waitUntil(lambda: len(w.store) >= 3, timeout=60_000)
    folder = w.record_dir
    w.close()
    # A worker busy in a measurement is detached by close() and ends at its next check.
    qtbot.waitUntil(lambda: open_run(folder).display_status != "running", timeout=30_000)
    reader = open_run(folder)
    assert reader.display_status in ("stopped", "did not finish")
    assert len(reader.steps) >= 3
    assert reader.snapshot(reader.steps[-1]).step == reader.steps[-1]


def test_memory_holds_few_snapshots_but_the_timeline_reaches_every_step(qtbot, tmp_path):
    w = make_window(tmp_path, tiny_config(**{"train.steps": 150}))
    w.store.capacity = 4
    try:
        finish_run(qtbot, w)
        assert w.store.steps == list(range(0, 151, 10))
        assert len(w.store._cache) <= 4
        w.timeline.set_index(1)  # step 10, long evicted: read back from the record
        assert w.shown_snapshot.step == 10
        assert w.timeline.index == 1  # the timeline stays where the user put it
        w.refresh()
        assert w.shown_snapshot.step == 10
        assert w.runner.state == FINISHED
    finally:
        w.close()


def test_start_records_into_the_chosen_runs_folder(qtbot, tmp_path, window):
    window.set_runs_dir(tmp_path / "elsewhere")
    assert window.start()
    wait_state(qtbot, window, FINISHED, FAILED)
    assert window.record_dir.parent == tmp_path / "elsewhere"
    assert window.settings.value("runs/folder") == str(tmp_path / "elsewhere")


def test_screenshot_of_a_headless_run_at_a_step_without_training(tmp_path, capsys):
    import main
    from tests.helpers import tiny_config as engine_tiny

    cfg = tmp_path / "tiny.toml"
    engine_tiny(**{"train.steps": 20}).save(cfg)
    run_dir = tmp_path / "headless"
    assert main.main(["run", "--config", str(cfg), "--out", str(run_dir), "--quiet"]) == 0
    metrics = json.loads((run_dir / "metrics.json").read_text())
    last = open_run(run_dir).rows[-1]
    # the headline reports unseen-class collisions beside all classes', and the probes
    assert metrics["collision"]["unseen_same_class"] == last["unseen_same_class_collision"]
    assert metrics["probes"]["theta_r2"]["raw_input"] == open_run(run_dir).run_info.theta_r2_raw
    assert metrics["lsh_index"]["trained"]["recall"] == last["lsh_recall_trained"]
    png, pdf = tmp_path / "step0.png", tmp_path / "window.pdf"
    assert main.main(["screenshot", "--run", str(run_dir), "--step", "0",
                      "--panel", "collisions", "--out", str(png)]) == 0
    assert png.stat().st_size > 1000
    assert main.main(["screenshot", "--run", str(run_dir), "--out", str(pdf),
                      "--size", "1000x700"]) == 0
    assert pdf.read_bytes().startswith(b"%PDF")
    big = tmp_path / "big.png"
    assert main.main(["screenshot", "--run", str(run_dir), "--out", str(big),
                      "--size", "1000x900"]) == 0
    from PySide6 import QtGui

    image = QtGui.QImage(str(big))
    assert (image.width(), image.height()) == (1000, 900)  # larger than offscreen's 800x800
    capsys.readouterr()
    assert main.main(["screenshot", "--run", str(run_dir), "--step", "7",
                      "--out", str(png)]) == 2
    err = capsys.readouterr().err
    assert "--step" in err and "0, 10, 20" in err and "Traceback" not in err
    assert main.main(["open", str(tmp_path)]) == 2  # not a run: one line, no window
    assert "not a GSH Lab run" in capsys.readouterr().err
    assert main.main([str(tmp_path)]) == 2  # `main.py DIR` is `open DIR`


def test_hash_index_panel_recomputes_for_other_bits_and_tables(qtbot, tmp_path, window):
    from engine.lsh_index import lsh_figures

    finish_run(qtbot, window)
    panel, snap = window.lsh, window.store.latest
    run = window.session.run_info
    assert (panel.bits.value(), panel.tables.value()) == (run.bits, run.tables)
    assert panel.figures["trained"]["recall"] == pytest.approx(snap.lsh_recall_trained)
    panel.bits.setValue(3)
    panel.tables.setValue(2)
    expected = lsh_figures(snap, run.probe, window.run_config, 3, 2)
    qtbot.waitUntil(lambda: panel.figures is not None and panel._worker is None
                    and panel.figures["trained"] == pytest.approx(expected["trained"]),
                    timeout=30_000)
    assert panel.figures["raw"] == pytest.approx(expected["raw"])
    # the curves are the recall expected over hyperplanes against L, averaged over pairs:
    # at L = 2 they pass through the index's own expected recall
    x, y = panel.theory.getData()
    assert x[0] == 1 and x[1] == 2
    assert y[1] == pytest.approx(expected["trained"]["recall_theory"], abs=1e-5)
    assert panel.theory_raw.getData()[1][1] == pytest.approx(expected["raw"]["recall_theory"],
                                                             abs=1e-5)
    assert "3 bits × 2 tables" in panel.info.text()
    # the sampled figures carry their spread over 200 draws of tables, computed lazily
    from engine.lsh_index import lsh_spreads

    panel.settle(30_000)
    qtbot.waitUntil(lambda: panel.spread is not None and panel._spread_job is None,
                    timeout=30_000)
    spread = lsh_spreads(snap, run.probe, window.run_config, 3, 2)
    assert panel.spread["trained"] == spread["trained"]
    assert panel.spread["raw"] == spread["raw"]
    lo, hi = spread["trained"]["recall"]
    text = panel.key.text
    assert "sampled, one draw; [5–95% over 200 draws]" in text
    assert f"recall {panel.figures['trained']['recall']:.2f} [{lo:.2f}–{hi:.2f}]" in text
    # scrubbed to step 0: both curves are those of that snapshot's own p_i (the run's
    # episodes and raw p_i are kept between snapshots, the trained ones are not)
    from engine.hashing import lsh_theory_over_pairs
    from engine.lsh_index import lsh_pairs

    window.timeline.set_index(0)
    first = window.shown_snapshot
    assert first.step == 0
    fresh = lsh_pairs(first, run.probe, window.run_config)
    x, y = panel.theory.getData()
    assert np.allclose(y, lsh_theory_over_pairs(fresh["trained"], 3, x))
    assert np.allclose(panel.theory_raw.getData()[1], lsh_theory_over_pairs(fresh["raw"], 3, x))


def test_a_long_run_is_not_refused_for_memory_it_does_not_keep():
    from app.store import DEFAULT_CAPACITY
    from engine.config import default_config
    from engine.resources import SNAPSHOTS_IN_MEMORY, estimate

    assert SNAPSHOTS_IN_MEMORY == DEFAULT_CAPACITY + 1  # the store's bound, + the newest
    long_run = default_config().replace(
        **{"train.steps": 10_000_000, "train.snapshot_every": 100})  # validates: not refused
    short = default_config()
    extra = estimate(long_run).total_bytes - estimate(short).total_bytes
    assert extra < 1 << 30  # 100,000 scalar rows, not 100,000 embeddings


def test_exports_say_what_they_show_and_export_all_asks_before_replacing(
        qtbot, tmp_path, window, monkeypatch):
    from PySide6 import QtGui

    finish_run(qtbot, window)
    out = window.export_panel("collisions", tmp_path / "c.png")
    image = QtGui.QImage(str(out))
    assert "Bucket collisions" in image.text("Title") and "step40" in image.text("Title")
    assert image.text("Description") == window.collisions.info.text()
    assert window.export_stem().endswith("-step40")
    assert window.export_all_names(tmp_path / "all") == []
    window.export_all(tmp_path / "all")
    assert len(window.export_all_names(tmp_path / "all")) == 2 + 3 * len(window.plot_panels)
    asked = []
    window._confirm = lambda title, text: asked.append(text) or False
    from app import file_dialogs
    before = (tmp_path / "all" / "window.png").stat().st_mtime_ns
    monkeypatch.setattr(file_dialogs, "get_existing_directory",
                        lambda *a, **k: str(tmp_path / "all"))
    window._on_export_all_triggered()
    assert asked and "already exist" in asked[0]
    assert (tmp_path / "all" / "window.png").stat().st_mtime_ns == before  # not replaced


class _Requests:
    """A stand-in projection service that records what it was asked for."""

    failure = None

    def __init__(self) -> None:
        self.asked: list[tuple[str, int | None, bool]] = []

    def request(self, key, step, points, full=False) -> None:
        self.asked.append((key, step, full))


def test_a_reopened_session_shows_the_record_and_asks_only_for_missing_frames(tmp_path):
    import dataclasses

    from app.session import RunSession
    from app.store import Frame
    from engine.record_writer import RunWriter
    from tests.helpers import handmade_run, handmade_snapshot

    run = handmade_run()
    snaps = [handmade_snapshot(step=s, run=run) for s in (0, 10, 20)]
    snaps[2] = dataclasses.replace(snaps[2], collapsed="all probes in one bucket", done=True)
    with RunWriter(tmp_path / "r", tiny_config(), device="cpu") as w:
        for s in snaps:
            w.append(s, run)
    service = _Requests()
    session = RunSession.open(tmp_path / "r", projector=service)
    assert session.collapsed_at == 20 and session.config == tiny_config().replace(
        **{"model.device": "cpu"})
    view = session.show(session.store.at(1))
    assert session.shown is view and view.step == 10 and view.index == 1
    assert view.run.oneshot_raw == run.oneshot_raw and view.steps == [0, 10, 20]
    assert view.frame is None and view.collapsed_at == 20
    session.project_missing(view.snapshot)  # nothing cached yet: both frames
    assert service.asked == [("raw", None, False), ("embedding", 10, False)]
    coords = np.zeros((len(run.probe), 2), np.float32)
    session.add_frame(Frame("embedding", 10, coords, "pca"))
    session.add_frame(Frame("raw", None, coords, "pca"))
    assert session.frames_ready(10) and not session.frames_ready(0)
    # reopened again, the frames come from the record's cache: nothing is asked for
    service.asked.clear()
    again = RunSession.open(tmp_path / "r", projector=service)
    again.project_missing(again.store.at(1))
    assert service.asked == [] and again.show(again.store.at(1)).frame.step == 10
    # a PCA stand-in (UMAP was still starting when it was made) is asked for again
    wants_umap = RunSession.open(tmp_path / "r", projector=service)
    wants_umap.config = wants_umap.config.replace(**{"projection.method": "umap"})
    service.asked.clear()
    wants_umap.project_missing(wants_umap.store.at(1))
    assert service.asked == [("raw", None, False), ("embedding", 10, False)]
    assert not wants_umap.frames_ready(10)  # a screenshot waits for the UMAP frames
    wants_umap.add_frame(Frame("embedding", 10, coords, "umap"))
    wants_umap.add_frame(Frame("raw", None, coords, "umap"))
    assert wants_umap.frames_ready(10)


def test_a_panel_behind_another_tab_is_raised_before_it_is_exported(qtbot, tmp_path, window):
    from PySide6 import QtWidgets

    from app.cli import _show_and_export

    finish_run(qtbot, window)
    window.reset_layout()  # Hash index is a tab behind Locality sensitivity
    qtbot.wait(50)
    assert window.docks["lsh"].visibleRegion().isEmpty()
    assert _show_and_export(QtWidgets.QApplication.instance(), window, "lsh",
                            tmp_path / "lsh.png") == 0
    assert not window.docks["lsh"].visibleRegion().isEmpty()
    assert (tmp_path / "lsh.png").stat().st_size > 1000


def test_a_long_runs_folder_keeps_its_own_name_in_a_narrow_dock(qtbot, tmp_path):
    from app.panels.runs import RunsPanel

    folder = tmp_path / ("a-long-folder-name-" * 4) / "gsh-runs"
    folder.mkdir(parents=True)
    panel = RunsPanel(folder)
    qtbot.addWidget(panel)
    panel.resize(300, 300)
    panel.show()
    label = panel.folder_label
    qtbot.waitUntil(lambda: 0 < label.width() < label.fontMetrics().horizontalAdvance(str(folder)))
    shown = label.shown_text()
    assert "…" in shown and shown.endswith("gsh-runs") and shown.startswith("/")
    assert label.toolTip() == str(folder)
