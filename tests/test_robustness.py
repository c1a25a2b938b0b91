"""Faults a user can cause: heavy settings, bad files, failing parts, failed writes.

Each test reproduces one fault from issue 8 and checks what the app does instead of
crashing, hanging, half-applying or reporting a write that did not happen.
"""

from __future__ import annotations

import multiprocessing
import os
import time

import numpy as np
import pytest
from PySide6 import QtCore

from app.runner import FINISHED, PAUSED, RUNNING
from engine import metrics, projection, resources
from engine.atomic import atomic_write, atomic_write_text
from engine.config import (
    FAMILIES,
    MAX_FILE_BYTES,
    ConfigError,
    ExperimentConfig,
    load,
    load_preset,
    preset_names,
)
from engine.projection import ProjectionService
from tests.helpers import make_window, tiny_config

GB = 1 << 30


def quick(**changes) -> ExperimentConfig:
    """The quick preset with changes, validated against a huge memory limit."""
    os.environ[resources.ENV_LIMIT] = "1000T"
    try:
        return load_preset("quick").replace(**changes)
    finally:
        del os.environ[resources.ENV_LIMIT]


# -- 1. heavy settings are refused before any allocation ---------------------------------

HEAVY = {
    "one-shot": {"data.unseen_classes": 200, "probe.per_class": 200, "probe.ways": 200,
                 "probe.episodes": 1000},
    "network": {"model.width": 8192, "model.depth": 16, "train.batch_size": 65536},
    "probe": {"data.unseen_classes": 1000, "probe.per_class": 1000},
}


@pytest.mark.parametrize("name", list(HEAVY))
def test_memory_exhausting_configs_are_refused_naming_fields(name, monkeypatch):
    monkeypatch.setenv(resources.ENV_LIMIT, "4G")  # half of an 8 GB laptop
    with pytest.raises(ConfigError) as info:
        resources.check_runnable(load_preset("quick").replace(**HEAVY[name]))
    err = info.value
    assert err.field == "resources"
    assert "needs about" in err.message and "limit of 4.0 GB" in err.message
    changed = [k for k in HEAVY[name] if k in err.message]
    assert changed, err.message  # names at least one of the settings that drive it


def test_presets_pass_with_a_wide_margin():
    limit = 4 * GB  # half of a small 8 GB laptop
    for name in preset_names():
        est = resources.check_resources(load_preset(name), limit_bytes=limit)
        assert est.total_bytes < limit / 5, (name, est.summary())


def test_the_memory_limit_is_changeable(monkeypatch):
    cfg = quick(**HEAVY["one-shot"])
    monkeypatch.setenv(resources.ENV_LIMIT, "1000T")
    assert resources.check_resources(cfg).total_bytes > 4 * GB
    monkeypatch.setenv(resources.ENV_LIMIT, "lots")
    with pytest.raises(ConfigError, match="GSH_MEMORY_LIMIT"):
        resources.memory_limit()
    monkeypatch.delenv(resources.ENV_LIMIT)
    assert resources.memory_limit() == resources.physical_memory() // 2
    with pytest.raises(ConfigError, match="resources: needs about"):
        resources.check_resources(cfg, limit_bytes=GB)


def test_a_limit_no_setting_can_meet_says_so(monkeypatch):
    monkeypatch.setenv(resources.ENV_LIMIT, "64M")  # under what the runtime alone needs
    with pytest.raises(ConfigError) as info:
        resources.check_runnable(load_preset("quick"))
    assert info.value.message.endswith("whatever its settings)"), info.value.message
    assert "; lower" not in info.value.message


@pytest.mark.parametrize("text", ["inf", "1e400", "-inf", "nan", "0", "-1G", "8X"])
def test_a_memory_limit_that_is_no_size_is_named(text, monkeypatch):
    monkeypatch.setenv(resources.ENV_LIMIT, text)
    with pytest.raises(ConfigError) as info:
        resources.memory_limit()
    assert info.value.field == resources.ENV_LIMIT and repr(text) in info.value.message


def test_runs_and_sweeps_recorded_under_any_limit_open_under_a_small_one(tmp_path,
                                                                         monkeypatch):
    """Reading a recorded run or sweep never asks whether its config could run here: the
    bundled schema-1 run, a fresh run and a sweep folder all open under 64 MB."""
    import shutil

    from engine.record import open_run
    from engine.sweep import (
        RUNS,
        Sweep,
        SweepError,
        load_sweep,
        make_axis,
        prepare,
        read_summary,
        run_sweep,
    )
    from tests.test_record import SCHEMA1_RUN

    sweep = Sweep(tiny_config(**{"train.steps": 10}),
                    [make_axis("hashing.bits", "4,6", tiny_config())])
    run_sweep(tmp_path / "sweep", sweep)
    fresh = tmp_path / "sweep" / RUNS / sweep.points()[0].id
    old = shutil.copytree(SCHEMA1_RUN, tmp_path / "old")
    monkeypatch.setenv(resources.ENV_LIMIT, "64M")
    with pytest.raises(ConfigError, match="resources"):
        resources.check_runnable(tiny_config())  # none of them could run here
    for run_dir in (old, fresh):
        run = open_run(run_dir)
        assert run.display_status == "finished" and run.config.validate() == run.config
    rows = read_summary(tmp_path / "sweep")
    assert [r["status"] for r in rows] == ["finished", "finished"]
    assert load_sweep(tmp_path / "sweep").size == 2
    with pytest.raises(SweepError, match="resources"):  # but starting one is refused
        prepare(tmp_path / "new", sweep)
    assert not (tmp_path / "new").exists()


@pytest.mark.parametrize("family", FAMILIES)
def test_every_family_is_estimated_and_can_run(family):
    from tests import helpers

    cfg = helpers.tiny_config(**{"data.family": family})
    est = resources.check_runnable(cfg, limit_bytes=4 * GB)
    assert 0 < est.total_bytes < GB and est.first_snapshot_s > 0


def test_estimate_follows_the_engines_constants():
    from engine import manifolds, measure, training

    assert resources.INVARIANCE_ROWS == measure.INVARIANCE_ROWS
    assert resources.ONESHOT_BATCH_BYTES == metrics.ONESHOT_BATCH_BYTES
    assert resources.IMAGE_BLOBS == manifolds.ImagePose.blobs
    assert resources.FIT_ROWS == getattr(training, "FIT_ROWS", resources.FIT_ROWS)


def test_cli_refuses_a_heavy_config_with_one_line(tmp_path, capsys, monkeypatch):
    import main

    monkeypatch.setenv(resources.ENV_LIMIT, "8G")
    path = tmp_path / "heavy.toml"
    path.write_text(quick(**HEAVY["probe"]).to_toml())
    assert main.main(["run", "--config", str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("gsh-lab: error: resources: needs about") and "\n" not in err
    assert not (tmp_path / "out").exists()


# -- 2. bad files are refused whole ----------------------------------------------------


def test_bad_files_are_refused_with_one_clear_line(tmp_path):
    cases = {}
    cases["binary"] = tmp_path / "binary.toml"
    cases["binary"].write_bytes(bytes(range(256)) * 4)
    cases["latin1"] = tmp_path / "latin1.toml"
    cases["latin1"].write_bytes('name = "caf\u00e9"\n'.encode("latin-1"))
    cases["nested"] = tmp_path / "nested.toml"
    cases["nested"].write_text("seed = " + "[" * 5000 + "]" * 5000 + "\n")
    cases["huge"] = tmp_path / "huge.toml"
    cases["huge"].write_text('description = "' + "x" * (2 * MAX_FILE_BYTES) + '"\n')
    cases["folder"] = tmp_path
    cases["fifo"] = tmp_path / "fifo.toml"
    os.mkfifo(cases["fifo"])
    cases["device"] = "/dev/zero"
    expect = {"binary": "not UTF-8", "latin1": "not UTF-8", "nested": "nested too deeply",
              "huge": "larger than", "folder": "folder", "fifo": "not a regular file",
              "device": "not a regular file"}
    for name, path in cases.items():
        t0 = time.monotonic()
        with pytest.raises(ConfigError) as info:
            load(path)
        assert time.monotonic() - t0 < 5, name  # generous: a FIFO must not block at all
        msg = str(info.value)
        assert msg.startswith(str(path)) and expect[name] in msg, (name, msg)
        assert "\n" not in msg and len(msg) < 300, (name, msg)


def test_bom_and_wrong_types_and_long_text(tmp_path):
    bom = tmp_path / "bom.toml"
    bom.write_bytes(b"\xef\xbb\xbf" + b'name = "bom"\nseed = 3\n')
    assert load(bom).seed == 3
    for text, field in [("description = 5\n", "description"),
                        ("name = [1, 2]\n", "name"),
                        ("[model]\nactivation = 3\n", "model.activation"),
                        ("[train]\noptimizer = [\"adam\"]\n", "train.optimizer"),
                        ("seed = 1.5\n", "seed"),
                        ('description = "' + "d" * 5000 + '"\n', "description")]:
        p = tmp_path / "bad.toml"
        p.write_text(text)
        with pytest.raises(ConfigError) as info:
            load(p)
        assert info.value.field == field, (text[:40], str(info.value))
        assert len(str(info.value)) < 200


def test_ranges_are_printed_as_integers():
    with pytest.raises(ConfigError) as info:
        ExperimentConfig().replace(seed=-1)
    assert "[0, 2147483647]" in str(info.value)


@pytest.mark.parametrize("content", ["binary", "fifo"])
def test_cli_bad_config_file_exits_2_without_traceback(tmp_path, capsys, content):
    import main

    path = tmp_path / "x.toml"
    if content == "fifo":
        os.mkfifo(path)
    else:
        path.write_bytes(b"\x00\xff\xfe" * 100)
    assert main.main(["run", "--config", str(path), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err


# -- 6. closing during a slow first snapshot --------------------------------------------


def test_oneshot_measurement_is_interruptible():
    rng = np.random.default_rng(0)
    index = np.repeat(np.arange(10), 20)
    episodes = metrics.oneshot_episodes(index, np.arange(10), 5, 300, seed=1)
    features = rng.normal(size=(200, 8))
    full = metrics.oneshot_accuracy(features, episodes)
    assert 0 <= full <= 1
    calls = []

    def stop_on_second_poll() -> bool:
        calls.append(1)
        return len(calls) >= 2

    with pytest.raises(metrics.Stopped):
        metrics.oneshot_accuracy(features, episodes, should_stop=stop_on_second_poll)
    with pytest.raises(metrics.Stopped):
        metrics.oneshot_episodes(index, np.arange(10), 5, 300, seed=1, should_stop=lambda: True)


def test_close_during_a_slow_first_snapshot_returns_promptly(qtbot, tmp_path):
    cfg = quick(**{"probe.episodes": 100000, "projection.method": "pca"})
    w = make_window(tmp_path, cfg)
    w.wait_warmed_up()  # torch's one-off start-up at launch is not part of this fault
    assert w.start()
    # Inside the first snapshot: the experiment is built, no snapshot has arrived yet.
    qtbot.waitUntil(lambda: w.runner.experiment is not None, timeout=60_000)
    qtbot.wait(1000)
    assert len(w.store) == 0 and w.runner.state == RUNNING
    t0 = time.monotonic()
    w.close()
    elapsed = time.monotonic() - t0
    assert QtCore.QThreadPool.globalInstance().waitForDone(0)  # the worker has returned
    assert not w.runner.is_active
    assert elapsed < 2.0  # the bound; generous for an abort polled every ~25 ms


# -- 5. writes are verified ------------------------------------------------------------


def test_atomic_write_reports_failures_and_keeps_the_old_file(tmp_path):
    target = tmp_path / "a.txt"
    atomic_write_text(target, "old")
    with pytest.raises(OSError, match="nothing was written"):
        atomic_write(target, lambda tmp: None)
    with pytest.raises(ZeroDivisionError):
        atomic_write(target, lambda tmp: (tmp.write_text("partial"), 1 / 0))
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]  # no temp file left
    for bad in ("/proc/x.png", "/dev/full", str(tmp_path)):
        with pytest.raises(OSError) as info:
            atomic_write_text(bad, "x")
        assert info.value.filename == bad


def test_config_save_is_atomic(tmp_path):
    cfg = tiny_config()
    with pytest.raises(OSError):
        cfg.save("/proc/exp.toml")
    path = tmp_path / "exp.toml"
    cfg.save(path)
    assert load(path) == cfg




# -- 2/3. the GUI loads all or nothing and holds every value ----------------------------


def test_half_bad_file_leaves_panel_and_start_config_untouched(window, tmp_path):
    before = window.params.config()
    shown = window.params.values()
    bad = tmp_path / "bad.toml"
    bad.write_text("description = 5\n[hashing]\nbits = 12\n")
    assert not window.load_config(bad)
    assert window.last_error.startswith("description: must be a string")
    assert window.params.values() == shown
    assert window.params.config() == before
    assert window.params.editors["hashing.bits"].value() == before.hashing.bits


def test_every_value_round_trips_through_the_panel(window, tmp_path):
    src = tmp_path / "src.toml"
    cfg = tiny_config(**{"seed": 2_000_000_000, "train.lr": 0.00123456789,
                         "data.theta_scale": 1.0000000001, "projection.min_dist": 0.123456789012,
                         "description": "round trip"})
    cfg.save(src)
    assert window.load_config(src)
    assert window.params.editors["seed"].value() == 2_000_000_000
    assert window.params.editors["train.lr"].text() == "0.00123456789"
    out = tmp_path / "out.toml"
    assert window.save_config(out)
    import tomllib

    a, b = (tomllib.loads(p.read_text()) for p in (src, out))
    for section, values in a.items():
        if isinstance(values, dict):
            for key, value in values.items():
                assert b[section][key] == value and type(b[section][key]) is type(value), key
        else:
            assert b[section] == values, section
    assert window.params.config() == cfg


def test_load_is_refused_while_a_run_is_active(window, tmp_path, qtbot):
    other = tmp_path / "other.toml"
    tiny_config(**{"hashing.bits": 12}).save(other)
    window.runner.start(tiny_config(**{"train.steps": 1_000_000}), paused_after_first=True)
    qtbot.waitUntil(lambda: window.runner.state == PAUSED, timeout=60_000)
    before = window.params.config()
    assert not window.load_config(other)
    assert "stop it" in window.last_error
    assert window.params.config() == before
    window.runner.reset()


def test_projection_settings_apply_from_a_loaded_file(window, tmp_path):
    path = tmp_path / "umap.toml"
    tiny_config(**{"projection.method": "umap", "projection.n_neighbors": 30}).save(path)
    assert window.projector.params["method"] == "pca"
    assert window.load_config(path)
    assert window.projector.params["method"] == "umap"
    assert window.projector.params["n_neighbors"] == 30


def test_panel_shows_the_estimate_and_refuses_over_the_limit(window, monkeypatch):
    label = window.params.estimate
    assert "Needs about" in label.text() and window.act_start.isEnabled()
    monkeypatch.setenv(resources.ENV_LIMIT, "1G")
    window.params.set_value("probe.per_class", 1000)  # 15 classes x 1000 points
    window.params.set_value("data.unseen_classes", 200)
    assert not window.act_start.isEnabled()
    assert not label.isVisibleTo(window.params)  # the summary states it, with the fields
    assert "resources: needs about" in window.params.summary.text()
    assert "probe.per_class" in window.params.summary.text()


# -- 5. exports that fail say so ----------------------------------------------------------


def test_exports_to_unwritable_places_fail(window, qtbot, tmp_path):
    for export in (lambda p: window.export_panel("curves", p),
                   lambda p: window.export_panel("parameters", p),
                   window.export_window):
        with pytest.raises(OSError):
            export("/proc/x.png")
    assert not os.path.exists("/proc/x.png")
    window._guard("export the panel", window.export_panel, "curves", "/proc/x.png")
    assert window.last_error is not None and "/proc/x.png" in window.last_error
    finished = tiny_config()
    window.params.set_config(finished)
    assert window.start()
    qtbot.waitUntil(lambda: window.runner.state == FINISHED, timeout=120_000)
    window.refresh()
    with pytest.raises(OSError):
        window.export_embeddings_npz("/dev/full")
    with pytest.raises(OSError):
        window.export_all("/proc")
    good = window.export_panel("curves", tmp_path / "c.png")
    assert good.stat().st_size > 0


# -- 4. a projection worker that dies at every start ------------------------------------


class DyingService(ProjectionService):
    """A worker whose entry point returns at once: every start dies before saying hello.

    (`slice(conn, params)` accepts the worker's two arguments and returns: a silent exit.)
    """

    worker_main = staticmethod(slice)


def test_a_worker_that_dies_at_every_start_backs_off_gives_up_and_serves_pca(monkeypatch):
    monkeypatch.setattr(projection, "RESTART_DELAY_S", 0.05)
    x = np.random.default_rng(0).normal(size=(100, 8)).astype(np.float32)
    svc = DyingService(method="umap")
    try:
        starts = []
        svc.submit(1, x)
        deadline = time.monotonic() + 30
        while svc.failed is None and time.monotonic() < deadline:
            if svc.pid is not None and svc.pid not in starts:
                starts.append(svc.pid)
            svc.poll()
            time.sleep(0.01)
        assert svc.failed is not None and "gave up" in svc.failed
        assert len(starts) == projection.MAX_FAILURES  # not one restart per poll
        assert svc.restarts == projection.MAX_FAILURES - 1
        assert svc.pid is None and multiprocessing.active_children() == []
        # The view stays: requests are now answered by PCA in this process.
        got = svc.poll()
        svc.submit(2, x)
        got += svc.poll()
        assert [(r.request_id, r.method) for r in got][-1] == (2, "pca")
        np.testing.assert_allclose(got[-1].coords, projection.pca_2d(x))
        # Retry starts a fresh worker (which dies again here, and is waited for again).
        svc.retry()
        assert svc.failed is None and svc.pid is not None
    finally:
        svc.shutdown()
    assert multiprocessing.active_children() == []


def test_the_window_says_the_projection_failed_and_offers_a_retry(qtbot, tmp_path, monkeypatch):
    monkeypatch.setattr(projection, "RESTART_DELAY_S", 0.05)
    settings = QtCore.QSettings(str(tmp_path / "s.ini"), QtCore.QSettings.Format.IniFormat)
    from app.window import MainWindow

    w = MainWindow(tiny_config(**{"projection.method": "umap"}), settings=settings,
                   projection_factory=DyingService, runs_dir=tmp_path / "runs")
    try:
        assert not w.act_retry_projection.isEnabled()
        qtbot.waitUntil(lambda: w.projector.failure is not None, timeout=30_000)
        assert w.act_retry_projection.isEnabled()
        assert "gave up" in w.statusBar().currentMessage()
        assert "Retry projection" in w.status_projection.toolTip()
        w.act_retry_projection.trigger()
        assert w.projector.failure is None and not w.act_retry_projection.isEnabled()
    finally:
        w.close()
