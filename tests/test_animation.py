"""Animations of recorded runs: keyframes and interpolation (engine), MP4 and GIF movies of
the expected frame count and size read back by a second decoder, the CLI's flag errors,
cancelling without a partial file or a thread, and the app's File > Export animation."""

from __future__ import annotations

import threading
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

import main
from engine.animation import Movie, load_keyframes
from engine.experiment import Experiment
from engine.projection import procrustes_align
from engine.record import open_run
from engine.record_writer import RunWriter
from tests.helpers import tiny_config


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A tiny recorded run (5 snapshots, PCA projection), no cached frames."""
    out = tmp_path_factory.mktemp("anim") / "run"
    cfg = tiny_config()
    exp = Experiment(cfg)
    with RunWriter(out, cfg, device=str(exp.device)) as w:
        for snap in exp.run():
            w.append(snap, exp.info)
    return out


def _no_encoder_thread() -> bool:
    return not any(t.name == "movie-encoder" and t.is_alive() for t in threading.enumerate())


def _leftovers(folder: Path, name: str) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if name in p.name)


def test_keyframes_are_aligned_cached_and_carry_the_measured_figures(run_dir, tmp_path):
    reader = open_run(run_dir)
    assert not (run_dir / "frames").exists()
    keys = load_keyframes(reader)
    assert [k.step for k in keys.keyframes] == reader.steps == [0, 10, 20, 30, 40]
    assert all(k.computed and k.method == "pca" for k in keys.keyframes)
    n = len(reader.probe.label)
    assert keys.raw.shape == (n, 2)
    # each keyframe is Procrustes-aligned to the one before it: aligning again is a no-op
    for a, b in zip(keys.keyframes, keys.keyframes[1:], strict=False):
        np.testing.assert_allclose(procrustes_align(b.coords, a.coords), b.coords, atol=1e-3)
    # the figures are the snapshot's own, as recorded
    for k, row in zip(keys.keyframes, reader.rows, strict=True):
        assert k.figures["oneshot_trained"] == pytest.approx(row["oneshot_trained"])
        assert k.figures["unseen_same_class_collision"] == pytest.approx(
            row["unseen_same_class_collision"])
    assert keys.oneshot_raw == reader.run_info.oneshot_raw  # the baseline, from the run
    from app.animate import _caption_lines

    _title, caption = _caption_lines(keys, Movie(keys, fps=1, seconds=1).frame(0), "Run")
    assert "nan" not in caption and f"raw input {keys.oneshot_raw:.2f}" in caption
    # written back to the frame cache, and read from it next time
    assert keys.written == len(reader.steps) + 1
    again = load_keyframes(open_run(run_dir))
    assert not any(k.computed for k in again.keyframes)
    np.testing.assert_allclose(again.keyframes[-1].coords, keys.keyframes[-1].coords,
                               atol=1e-5)


def test_movie_interpolates_linearly_between_snapshots(run_dir):
    keys = load_keyframes(open_run(run_dir))
    movie = Movie(keys, fps=9, seconds=1)  # 9 frames over 4 intervals: 2 per interval
    assert len(movie) == 9
    first, mid, last = movie.frame(0), movie.frame(1), movie.frame(8)
    k0, k1 = keys.keyframes[0], keys.keyframes[1]
    np.testing.assert_allclose(first.coords, k0.coords)
    np.testing.assert_allclose(last.coords, keys.keyframes[-1].coords)
    np.testing.assert_allclose(mid.coords, 0.5 * (k0.coords + k1.coords), atol=1e-5)
    assert (first.step, last.step) == (0, 40) and first.position == 0 and last.position == 1
    assert movie.frame(2).figures == k1.figures  # the nearest snapshot's figures


def test_the_window_movie_is_drawn_on_the_one_offscreen_window(qapp, run_dir, tmp_path,
                                                                monkeypatch):
    """FrameRenderer's window is MainWindow.offscreen's, with the run opened before the
    layout; a run the window cannot show is an OSError naming it, and no window is left."""

    import shiboken6
    from PySide6 import QtCore

    from app.animate import FrameRenderer
    from app.window import MainWindow

    reader = open_run(run_dir)
    keys = load_keyframes(reader, write_cache=False)
    made = []

    def offscreen(*args, **kwargs):
        made.append(kwargs)
        return MainWindow.offscreen(*args, **kwargs)

    renderer = FrameRenderer(reader, keys, "window", (640, 400), window_factory=offscreen)
    try:
        assert made[0]["run"] == reader.path and made[0]["hidden"]
        assert renderer._window.session.reader.path == reader.path
        assert renderer.render(Movie(keys, fps=2, seconds=1).frame(0)).shape == (400, 640, 3)
    finally:
        renderer.close()
    # The window the failed call makes is deleted (deleteLater) before the error.
    # (Listing QApplication.topLevelWidgets() after forcing deferred deletes segfaulted
    # shiboken when test_app's windows had run earlier in the same process.)
    created: list[MainWindow] = []
    init = MainWindow.__init__

    def recording_init(self, *args, **kwargs):
        created.append(self)
        init(self, *args, **kwargs)

    monkeypatch.setattr(MainWindow, "__init__", recording_init)
    with pytest.raises(OSError, match="cannot show .*missing"):
        MainWindow.offscreen(None, (640, 400), hidden=True, run=tmp_path / "missing",
                             projection_factory=lambda **_: None)
    assert len(created) == 1
    QtCore.QCoreApplication.sendPostedEvents(created[0], QtCore.QEvent.Type.DeferredDelete)
    assert not shiboken6.isValid(created[0])  # deleted, not left behind


def test_a_panel_movie_frame_names_its_own_step_not_a_lag(qapp, run_dir):
    """Every frame's panel title names the frame's snapshot and no "steps ahead"."""
    from app.animate import FrameRenderer

    reader = open_run(run_dir)
    keys = load_keyframes(reader, write_cache=False)
    movie = Movie(keys, fps=9, seconds=1)
    renderer = FrameRenderer(reader, keys, "representation", (320, 240))
    try:
        for i in (0, 4, 8):
            frame = movie.frame(i)
            renderer.render(frame)
            assert renderer._rep.picture_note == f"PCA of step {frame.step}"
    finally:
        renderer.close()


@pytest.mark.parametrize("suffix", [".mp4", ".gif"])
def test_cli_movie_has_the_frame_count_and_size_and_decodes(run_dir, tmp_path, suffix):
    out = tmp_path / f"movie{suffix}"
    rc = main.main(["animate", "--run", str(run_dir), "--out", str(out), "--fps", "10",
                    "--seconds", "1.5", "--size", "320x240", "--quiet"])
    assert rc == 0 and out.is_file()
    if suffix == ".mp4":
        with av.open(str(out)) as container:
            stream = container.streams.video[0]
            frames = list(container.decode(stream))
            assert stream.codec_context.name == "h264"
        assert len(frames) == 15
        assert (frames[0].width, frames[0].height) == (320, 240)
        first, last = frames[0].to_ndarray(format="rgb24"), frames[-1].to_ndarray(
            format="rgb24")
    else:
        with Image.open(out) as im:
            assert im.n_frames == 15 and im.size == (320, 240)
            im.seek(0)
            first = np.asarray(im.convert("RGB"))
            im.seek(14)
            last = np.asarray(im.convert("RGB"))
    assert (first < 128).any(), "the frame has drawn content"
    assert np.abs(first.astype(int) - last.astype(int)).sum() > 0, "the points move"
    assert _leftovers(tmp_path, "movie") == [out.name]
    assert _no_encoder_thread()


def test_window_movie(run_dir, tmp_path):
    out = tmp_path / "window.mp4"
    assert main.main(["animate", "--run", str(run_dir), "--out", str(out), "--panel",
                      "window", "--fps", "4", "--seconds", "1", "--size", "800x500",
                      "--quiet"]) == 0
    with av.open(str(out)) as container:
        frames = list(container.decode(video=0))
    assert len(frames) == 4 and (frames[0].width, frames[0].height) == (800, 500)


@pytest.mark.parametrize("flags, named", [
    (["--fps", "0"], "--fps"),
    (["--fps", "61"], "--fps"),
    (["--fps", "ten"], "--fps"),
    (["--seconds", "0.5"], "--seconds"),
    (["--seconds", "nan"], "--seconds"),
    (["--size", "10x10"], "--size"),
    (["--size", "wide"], "--size"),
    (["--size", "641x480"], "--size"),  # H.264 needs even sides
    (["--panel", "curves"], "--panel"),
    (["--out", "movie.avi"], "--out"),
])
def test_bad_flags_exit_2_with_one_line_naming_the_flag(run_dir, tmp_path, capsys, flags,
                                                         named):
    args = ["animate", "--run", str(run_dir), "--out", str(tmp_path / "m.mp4"), *flags]
    assert main.main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and named in err, err
    assert not list(tmp_path.iterdir())


def test_gif_fps_limit_and_a_folder_that_is_not_a_run(tmp_path, capsys):
    assert main.main(["animate", "--run", str(tmp_path), "--out", str(tmp_path / "m.gif"),
                      "--fps", "55"]) == 2
    assert "--fps" in capsys.readouterr().err
    assert main.main(["animate", "--run", str(tmp_path), "--out", str(tmp_path / "m.gif")]) == 2
    assert "not a GSH Lab run" in capsys.readouterr().err


def test_cancelling_leaves_no_partial_file_and_no_thread(run_dir, tmp_path):
    from app.animate import movie_options
    from app.cli import animate

    out = tmp_path / "cancelled.mp4"
    calls = []

    def stop_after_a_few() -> bool:
        calls.append(1)
        return len(calls) > 8  # past the keyframes, in the middle of the frames

    options = movie_options(out, fps=10, seconds=3, size="320x240")
    with pytest.raises(Exception) as info:
        animate(run_dir, options, quiet=True, should_stop=stop_after_a_few)
    assert type(info.value).__name__ == "Cancelled"
    assert not list(tmp_path.iterdir()), "no file and no temporary beside it"
    assert _no_encoder_thread()


def test_app_export_animation_runs_in_the_event_loop_and_can_be_cancelled(
        run_dir, tmp_path, qtbot):
    from PySide6 import QtCore, QtWidgets

    from app.window import MainWindow

    settings = QtCore.QSettings(str(tmp_path / "s.ini"), QtCore.QSettings.Format.IniFormat)
    window = MainWindow(settings=settings, runs_dir=tmp_path / "runs")
    qtbot.addWidget(window)
    try:
        with pytest.raises(ValueError, match="no recorded run"):
            window.export_animation(tmp_path / "x.gif")
        assert window.open_run(run_dir)
        out = tmp_path / "app.gif"
        export = window.export_animation(out, fps=8, seconds=1, size="320x240",
                                         show_progress=False)
        ticks = []
        beat = QtCore.QTimer()
        beat.timeout.connect(lambda: ticks.append(1))
        beat.start(10)
        with qtbot.waitSignal(export.finished, timeout=120_000) as sig:
            pass
        beat.stop()
        assert sig.args[0] == str(out), sig.args
        with Image.open(out) as im:
            assert im.n_frames == 8 and im.size == (320, 240)
        assert len(ticks) > 5, "the event loop kept running while the movie was made"

        out2 = tmp_path / "app2.mp4"
        export = window.export_animation(out2, fps=10, seconds=30, size="320x240")
        qtbot.waitUntil(lambda: export.frames_rendered > 3, timeout=120_000)
        export.dialog.findChild(QtWidgets.QPushButton).click()  # the dialog's Cancel
        assert not export.active and export.cancelled
        assert not out2.exists() and _leftovers(tmp_path, "app2") == []
        assert _no_encoder_thread()
    finally:
        window.close()


def test_dialog_keeps_bad_options_and_names_the_field(qtbot, tmp_path):
    from app.animate import AnimationDialog

    dialog = AnimationDialog(str(tmp_path / "m.mp4"))
    qtbot.addWidget(dialog)
    dialog.frame_size.setText("333x200")  # odd width: H.264 refuses it
    dialog.accept()
    assert dialog.options is None and dialog.error.text().startswith("Size: must")
    assert dialog.result() == 0
    dialog.frame_size.setText("640x360")
    dialog.panel.setCurrentText("window")
    dialog.accept()
    assert dialog.options.size == (640, 360) and dialog.options.panel == "window"
    assert dialog.options.n_frames == 300


@pytest.mark.parametrize("fps", [12, 25, 30])
def test_gif_delays_add_up_to_the_asked_length(fps):
    from engine.encoder import gif_delays_ms

    n = fps * 10  # 10 s asked for
    delays = gif_delays_ms(n, fps)
    assert all(d % 10 == 0 and d >= 20 for d in delays)  # whole centiseconds, >= 2 cs
    assert sum(delays) == 10_000  # 10 s, so the average rate is exactly fps
