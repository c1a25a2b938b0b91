"""What the tests share: a tiny config (fast enough for a 2-core CI machine), the app's
window with in-process projections, hand-made runs and snapshots, image checks. Qt is
imported only by the helpers that need it, so engine tests stay Qt-free."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from engine.config import ExperimentConfig
from engine.projection import pca_2d
from engine.snapshot import ProbeSet, RunInfo, Snapshot

RUN_TIMEOUT_MS = 120_000


def tiny_config(**changes) -> ExperimentConfig:
    base = {
        "data.seen_classes": 10,
        "data.unseen_classes": 6,
        "data.validation_classes": 3,  # as the presets have: their figures are finite
        "data.input_dim": 32,
        "data.theta_dim": 4,
        "model.width": 32,
        "model.embed_dim": 16,
        "train.steps": 40,
        "train.batch_size": 64,
        "train.snapshot_every": 10,
        "probe.seen_classes": 5,
        "probe.per_class": 8,
        "probe.ways": 5,
        "probe.episodes": 10,
        "projection.method": "pca",
    }
    base.update(changes)
    return ExperimentConfig().replace(**base)


def record_tiny_run(out, **changes):
    """Train tiny_config(**changes) and record it into `out` (a run folder); returns out."""
    from engine.experiment import Experiment
    from engine.record_writer import RunWriter

    cfg = tiny_config(**changes)
    exp = Experiment(cfg)
    with RunWriter(out, cfg, device=str(exp.device)) as w:
        for snap in exp.run():
            w.append(snap, exp.info)
    return out


class InlineProjection:
    """Stand-in for ProjectionService: PCA computed in poll(), no child process."""

    def __init__(self, method="pca", **_params):
        self.method = method
        self.umap_ready = False
        self.error = None
        self.restarts = 0
        self._pending = {}

    def submit(self, request_id, points, key="embedding", full=False):
        self._pending[key] = (request_id, np.asarray(points), full)

    def poll(self):
        from engine.projection import ProjectionResult

        out = [
            ProjectionResult(rid, key, pca_2d(pts), "pca", 0.0, full)
            for key, (rid, pts, full) in self._pending.items()
        ]
        self._pending.clear()
        return out

    def set_params(self, method=None, **_):
        self.method = method or self.method

    def reset(self):
        self._pending.clear()

    def shutdown(self, timeout=None):
        pass


def make_window(tmp_path, config=None, real_projection=False):
    """The app's window on `config` (tiny_config()), shown at 1600x1000; projections
    computed in-process unless `real_projection`."""
    from PySide6 import QtCore

    from app.window import MainWindow

    settings = QtCore.QSettings(str(tmp_path / "settings.ini"), QtCore.QSettings.Format.IniFormat)
    w = MainWindow(
        config or tiny_config(),
        settings=settings,
        projection_factory=None if real_projection else InlineProjection,
        runs_dir=tmp_path / "runs",
    )
    w.resize(1600, 1000)
    w.show()
    return w


def wait_state(qtbot, w, *states, timeout=RUN_TIMEOUT_MS):
    qtbot.waitUntil(lambda: w.runner.state in states, timeout=timeout)


def finish_run(qtbot, w):
    from app import runner

    assert w.start()
    wait_state(qtbot, w, runner.FINISHED, runner.FAILED)
    assert w.runner.state == runner.FINISHED, w.last_error
    w.refresh()


def png_is_not_blank(path) -> bool:
    from PySide6 import QtGui

    img = QtGui.QImage(str(path))
    if img.isNull() or img.width() < 10:
        return False
    colours = {img.pixel(x, y) for x in range(0, img.width(), 7) for y in range(0, img.height(), 7)}
    return len(colours) > 5


def assert_valid_svg(path):
    root = ET.parse(path).getroot()
    assert root.tag.endswith("svg")
    assert len(list(root.iter())) > 5


# --------------------------------------------------------------------------- hand-made data


def handmade_run(c_seen=4, c_unseen=3, per=6, theta_dim=3, image=False) -> RunInfo:
    """A run's fixed part made by hand: probe set, sizes, baselines."""
    rng = np.random.default_rng(0)
    classes = np.arange(c_seen + c_unseen)
    label = np.repeat(classes, per)
    c = len(classes)
    x_dim = 64 if image else 12
    probe = ProbeSet(
        x=rng.normal(size=(len(label), x_dim)).astype(np.float32),
        label=label,
        seen=label < c_seen,
        theta=rng.normal(size=(len(label), theta_dim)).astype(np.float32),
        classes=classes,
        class_seen=classes < c_seen,
        gamma=rng.normal(size=(c, 5)).astype(np.float32),
        theta_names=[f"theta[{k}]" for k in range(theta_dim)],
        image_shape=(8, 8) if image else None,
    )
    i, _ = np.triu_indices(c, 1)
    return RunInfo(
        probe=probe, total_steps=100, device="cpu", ways=c_unseen, episodes=5, bits=8,
        tables=2, pair_angle=rng.uniform(0, np.pi, len(i)).astype(np.float32),
        oneshot_untrained=0.3, oneshot_raw=0.3, raw_same_class_collision=0.1,
        raw_different_class_collision=0.1, invariance_raw=0.9,
    )


def handmade_snapshot(step=0, run: RunInfo | None = None, done=False) -> Snapshot:
    """A snapshot of `run` (handmade_run() when None) made by hand."""
    run = run if run is not None else handmade_run()
    rng = np.random.default_rng(step)
    c, n = len(run.probe.classes), len(run.probe)
    m = rng.uniform(0, 0.2, size=(c, c))
    np.fill_diagonal(m, 0.9)
    i, j = np.triu_indices(c, 1)
    return Snapshot(
        step=step, seconds=1.0, steps_per_s=50.0, loss=1.0, train_accuracy=0.5,
        oneshot_trained=0.8, same_class_collision=0.9, different_class_collision=0.1,
        collision_matrix=m, pair_collision=m[i, j], invariance_trained=0.3,
        embedding=rng.normal(size=(n, 8)).astype(np.float32), done=done,
    )


def adopt(window, run: RunInfo) -> None:
    """Make `run` the window's run on screen (as a run's RunInfo arriving would)."""
    window.session.config = window.params.config()
    window.session.run_info = run


def show_handmade(window, run: RunInfo | None = None, step: int = 0) -> Snapshot:
    """A hand-made snapshot of `run` (handmade_run() when None), shown in every panel."""
    run = run if run is not None else handmade_run()
    adopt(window, run)
    snap = handmade_snapshot(step=step, run=run)
    window.store.add(snap)
    window._show(snap)
    return snap


def show_frame(window, key: str, step: int | None, coords, method: str) -> None:
    """A projection frame arrives and its round of updates runs to the end (the event
    loop would start it when the redraw throttle lets it, and run it a step per turn)."""
    window._on_frame(key, step, coords, method)
    window._request_redraw.flush()
    while window.drawing:
        window._on_stagger_tick()


def fail_writing_snapshot(monkeypatch, step: int) -> None:
    """Every later write of snapshots/<step>.npz fails as on a full disk."""

    real = np.savez

    def savez(file, **arrays):
        if Path(file).name.startswith(f".{step}."):  # the temporary file of <step>.npz
            raise OSError(28, "No space left on device")
        return real(file, **arrays)

    monkeypatch.setattr(np, "savez", savez)
