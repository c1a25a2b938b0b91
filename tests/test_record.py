"""The run record: written while a run trains, reopened lazily, equal to the live run;
killed, stopped and corrupt runs; the CLI's refusal to overwrite; one NPZ/CSV schema."""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

import main
from engine import record, record_format
from engine.experiment import Experiment
from engine.record import open_run
from engine.record_format import RunRecordError
from engine.record_writer import RunWriter
from engine.snapshot import RunInfo, Snapshot
from tests.helpers import fail_writing_snapshot, tiny_config

ROOT = Path(__file__).resolve().parent.parent


def record_run(out: Path, **changes) -> list[Snapshot]:
    """Train a tiny config in-process, recording it; returns the live snapshots."""
    return record_run_and_info(out, **changes)[0]


def record_run_and_info(out: Path, **changes) -> tuple[list[Snapshot], RunInfo]:
    cfg = tiny_config(**changes)
    exp = Experiment(cfg)
    live = []
    with RunWriter(out, cfg, device=str(exp.device)) as w:
        for snap in exp.run():
            w.append(snap, exp.info)
            live.append(snap)
    return live, exp.info


def assert_same_fields(a, b) -> None:
    """Every field of two dataclasses equal; the embedding to float16 precision (what the
    record keeps); nested dataclasses (a RunInfo's probe set) field by field."""
    for f in dataclasses.fields(a):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if dataclasses.is_dataclass(x):
            assert_same_fields(x, y)
        elif f.name in record_format.HALF_PRECISION:
            np.testing.assert_array_equal(x, y.astype(np.float16).astype(np.float32))
        elif isinstance(x, np.ndarray):
            assert x.dtype == y.dtype, f.name
            np.testing.assert_array_equal(x, y)
        elif isinstance(x, float) and np.isnan(x):
            assert isinstance(y, float) and np.isnan(y), f.name
        else:
            assert x == y and type(x) is type(y), f.name


def assert_same_snapshot(a: Snapshot, b: Snapshot) -> None:
    assert_same_fields(a, b)


def test_reopened_run_equals_the_live_run(tmp_path):
    live, info = record_run_and_info(tmp_path / "run")
    r = open_run(tmp_path / "run")
    assert r.status == r.display_status == "finished" and not r.live
    assert r.steps == [s.step for s in live] == [0, 10, 20, 30, 40]
    assert r.rows == [s.scalars() for s in live]
    assert r.problems == []
    assert r.config.model.device == "cpu"  # resolved, not "auto"
    for s in live:
        assert_same_snapshot(r.snapshot(s.step), s)
    assert_same_fields(r.run_info, info)  # probe set, sizes and baselines, stored once
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    assert info["schema_version"] == record_format.SCHEMA_VERSION and info["finished"]
    assert set(info["versions"]) == {"python", "numpy", "torch"}
    assert info["final"]["steps"] == 40 and info["device"] == "cpu"
    # the summary files are the last snapshot's
    z = np.load(tmp_path / "run" / "embeddings.npz")
    np.testing.assert_array_equal(z["embedding"], live[-1].embedding)
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["steps"] == 40


SCHEMA1_RUN = ROOT / "tests" / "data" / "schema1-run"  # recorded by GSH Lab before RunInfo


def test_a_schema_1_record_still_opens_with_its_run_info(tmp_path, qtbot):
    """Schema 1 repeated the run's fixed fields in every snapshot (probe.npz held only a
    few baselines): its RunInfo is rebuilt from its first snapshot, its figures unchanged."""
    import shutil

    run_dir = shutil.copytree(SCHEMA1_RUN, tmp_path / "old")
    r = open_run(run_dir)
    assert r.schema_version == 1 and r.display_status == "finished" and r.steps == [0, 10, 20]
    info, metrics = r.run_info, json.loads((run_dir / "metrics.json").read_text())
    assert info.oneshot_untrained == metrics["oneshot"]["untrained"]
    assert info.oneshot_raw == metrics["oneshot"]["raw_input"]
    assert info.gamma_r2_raw == metrics["probes"]["gamma_r2"]["raw_input"]
    assert info.lsh_recall_raw == metrics["lsh_index"]["raw"]["recall"]
    assert (info.bits, info.tables, info.ways) == (metrics["collision"]["bits"],
                                                   metrics["collision"]["tables"],
                                                   metrics["oneshot"]["ways"])
    c = len(info.probe.classes)
    assert info.pair_angle.shape == info.raw_pair_collision.shape == (c * (c - 1) // 2,)
    last = r.snapshot(20)
    assert last.oneshot_trained == metrics["oneshot"]["trained"]
    # every figure it recorded reads back the same; figures added since are nan
    again = record_format.metrics_dict(last, info, metrics["seconds"])

    def same(old, new, where=""):
        if isinstance(old, dict):
            for k, v in old.items():
                same(v, new[k], f"{where}.{k}")
        else:
            assert new == old, where

    same(metrics, again)
    assert math.isnan(again["oneshot"]["learned_linear"])

    from tests.helpers import make_window

    w = make_window(tmp_path)
    try:
        assert w.open_run(run_dir)
        assert w.shown_snapshot.step == 20 and w.session.run_info.bits == info.bits
        assert f"untrained {info.oneshot_untrained:.2f}" in w.curves.info.text()
    finally:
        w.close()


def test_frames_are_cached_per_step(tmp_path):
    record_run(tmp_path / "run")
    r = open_run(tmp_path / "run")
    assert r.read_frame("embedding", 20) is None
    coords = np.arange(len(r.probe) * 2, dtype=np.float32).reshape(-1, 2)
    r.write_frame("embedding", 20, coords, "umap")
    r.write_frame("raw", None, coords + 1, "pca")
    got, method = open_run(tmp_path / "run").read_frame("embedding", 20)
    assert method == "umap" and np.array_equal(got, coords)
    assert open_run(tmp_path / "run").read_frame("raw", None)[1] == "pca"


def test_every_snapshot_field_is_carried_without_edits(tmp_path, monkeypatch):
    """A Snapshot field added later (string, float, array) round-trips generically."""

    @dataclasses.dataclass
    class Grown(Snapshot):
        extra_note: str = ""
        extra_angle: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(3))

    monkeypatch.setattr(record, "Snapshot", Grown)
    snap = record_run(tmp_path / "a", **{"train.steps": 10})[-1]
    grown = Grown(**{f.name: getattr(snap, f.name) for f in dataclasses.fields(Snapshot)},
                  extra_note="all probes in one bucket", extra_angle=np.array([0.5, 1.5]))
    cfg = tiny_config()
    with RunWriter(tmp_path / "b", cfg, device="cpu") as w:
        w.append(grown, open_run(tmp_path / "a").run_info)
    back = open_run(tmp_path / "b").snapshot(snap.step)
    assert back.extra_note == "all probes in one bucket"
    np.testing.assert_array_equal(back.extra_angle, [0.5, 1.5])


def test_not_a_run_newer_schema_and_corrupt_files_are_clear(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(RunRecordError, match="not a GSH Lab run"):
        open_run(tmp_path / "empty")
    with pytest.raises(RunRecordError, match="not a folder"):
        open_run(tmp_path / "nowhere")
    record_run(tmp_path / "run")
    run = tmp_path / "run"
    info = json.loads((run / "run.json").read_text())
    (run / "run.json").write_text(json.dumps({**info, "schema_version": 99}))
    with pytest.raises(RunRecordError, match="newer GSH Lab") as exc:
        open_run(run)
    assert "\n" not in str(exc.value)
    (run / "run.json").write_text('{"schema_ver')
    with pytest.raises(RunRecordError, match="corrupt"):
        open_run(run)
    (run / "run.json").write_text(json.dumps(info))
    # truncate one snapshot, delete another: the rest opens, both are flagged
    data = (run / "snapshots" / "20.npz").read_bytes()
    (run / "snapshots" / "20.npz").write_bytes(data[: len(data) // 2])
    (run / "snapshots" / "30.npz").unlink()
    r = open_run(run)
    assert r.steps == [0, 10, 40]
    assert len(r.rows) == 5  # history.csv still has every row
    assert any("20.npz is truncated" in p for p in r.problems)
    assert any("30.npz is missing" in p for p in r.problems)
    with pytest.raises(RunRecordError, match="missing"):
        r.snapshot(30)
    assert r.snapshot(40).step == 40 and r.latest().step == 40
    # a snapshot whose zip directory survives but whose data is damaged
    z = run / "snapshots" / "10.npz"
    raw = bytearray(z.read_bytes())
    with zipfile.ZipFile(z) as zf:
        info0 = zf.infolist()[0]
    start = info0.header_offset + 30 + len(info0.filename)
    raw[start: start + 64] = b"\0" * 64
    z.write_bytes(bytes(raw))
    with pytest.raises(RunRecordError, match="10.npz is truncated or corrupt"):
        r.snapshot(10)


def test_a_partial_history_line_is_dropped(tmp_path):
    live = record_run(tmp_path / "run")
    h = tmp_path / "run" / "history.csv"
    h.write_text(h.read_text()[:-20])  # as if killed in the middle of the last row
    r = open_run(tmp_path / "run")
    # the last row is rebuilt from its snapshot file
    assert [row["step"] for row in r.rows] == [s.step for s in live]
    assert r.rows[-1] == live[-1].scalars()


def _cli(args, **kw):
    return subprocess.Popen(
        [sys.executable, "main.py", "run", *args], cwd=ROOT, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, **kw,
    )


def _wait_for_snapshots(out: Path, n: int, proc, timeout=600.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read()
        if (out / "snapshots").is_dir() and len(list((out / "snapshots").glob("*.npz"))) >= n:
            return
        time.sleep(0.05)
    raise AssertionError("the run recorded too few snapshots in time")


@pytest.fixture
def long_config(tmp_path) -> Path:
    conf = tmp_path / "long.toml"
    tiny_config(**{"train.steps": 100_000, "train.snapshot_every": 20}).save(conf)
    return conf


def test_run_killed_with_sigkill_reopens_and_did_not_finish(tmp_path, long_config):
    out = tmp_path / "out"
    proc = _cli(["--config", str(long_config), "--out", str(out), "--quiet"])
    try:
        _wait_for_snapshots(out, 6, proc)
        r = open_run(out)
        assert r.status == "running" and r.live and r.display_status == "running"
        # --force never replaces a run that is still being recorded
        assert main.main(["run", "--preset", "quick", "--out", str(out), "--force"]) == 2
        proc.kill()
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()
    on_disk = sorted(int(p.stem) for p in (out / "snapshots").glob("*.npz")
                     if p.stem.isdigit())
    r = open_run(out)
    assert r.status == "running" and not r.live
    assert r.display_status == record_format.DID_NOT_FINISH == "did not finish"
    assert r.steps == on_disk and len(on_disk) >= 6 and r.problems == []
    assert [row["step"] for row in r.rows] == on_disk
    last = r.snapshot(on_disk[-1])
    assert last.step == on_disk[-1] and last.embedding.shape == (len(r.probe), 16)


def test_sigterm_stops_like_ctrl_c_and_keeps_everything(tmp_path, long_config):
    out = tmp_path / "out"
    proc = _cli(["--config", str(long_config), "--out", str(out), "--quiet"])
    try:
        _wait_for_snapshots(out, 3, proc)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 128 + signal.SIGTERM
    assert err.strip().splitlines()[-1].startswith("gsh-lab: stopped by SIGTERM")
    r = open_run(out)
    assert r.status == r.display_status == "stopped"
    last = r.latest()
    assert last.done and r.steps[-1] == last.step and len(r.steps) >= 4
    assert json.loads((out / "metrics.json").read_text())["steps"] == last.step
    assert int(np.load(out / "embeddings.npz")["step"]) == last.step


def test_divergence_is_recorded_as_diverged(tmp_path):
    conf = tmp_path / "bad.toml"
    tiny_config(**{"train.lr": 1e4, "train.optimizer": "sgd", "train.steps": 300,
                   "train.snapshot_every": 1}).save(conf)
    assert main.main(["run", "--config", str(conf), "--out", str(tmp_path / "o"),
                      "--quiet"]) == 1
    r = open_run(tmp_path / "o")
    assert r.status == "diverged" and "diverged at step" in r.error
    assert r.steps and r.latest().step == r.steps[-1]


def test_non_empty_out_is_refused_unless_force(tmp_path, capsys):
    conf = tmp_path / "tiny.toml"
    tiny_config(**{"train.steps": 10}).save(conf)
    out = tmp_path / "out"
    args = ["run", "--config", str(conf), "--out", str(out), "--quiet"]
    assert main.main(args) == 0
    before = (out / "run.json").read_text()
    capsys.readouterr()
    assert main.main([*args, "--steps", "20"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not empty" in err[0] and "--force" in err[0]
    assert (out / "run.json").read_text() == before  # nothing touched
    (out / "notes.txt").write_text("mine")
    assert main.main([*args, "--steps", "20", "--force"]) == 0
    r = open_run(out)
    assert r.steps == [0, 10, 20] and r.config.train.steps == 20
    assert (out / "notes.txt").read_text() == "mine"  # only the record is replaced


def test_full_disk_names_the_file_and_keeps_what_was_written(tmp_path, monkeypatch, capsys):
    conf = tmp_path / "tiny.toml"
    tiny_config().save(conf)
    fail_writing_snapshot(monkeypatch, 20)
    out = tmp_path / "out"
    assert main.main(["run", "--config", str(conf), "--out", str(out), "--quiet"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "No space left on device" in err[0]
    assert str(out / "snapshots" / "20.npz") in err[0]
    r = open_run(out)
    assert r.status == "failed" and "No space left" in r.error and r.steps == [0, 10]
    assert not [p for p in (out / "snapshots").iterdir() if not p.stem.isdigit()]


def test_collapsed_final_snapshot_warns_and_exits_1(tmp_path, monkeypatch, capsys):
    real_run = Experiment.run

    def collapsing_run(self):
        for snap in real_run(self):
            if snap.done:
                snap = dataclasses.replace(snap)
                snap.collapsed = "every probe in one bucket"
            yield snap

    monkeypatch.setattr(Experiment, "run", collapsing_run)
    conf = tmp_path / "tiny.toml"
    tiny_config(**{"train.steps": 10}).save(conf)
    assert main.main(["run", "--config", str(conf), "--out", str(tmp_path / "o"),
                      "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "collapsed" in err and "every probe in one bucket" in err
    r = open_run(tmp_path / "o")
    assert r.status == "finished" and r.info["final"]["collapsed"] == "every probe in one bucket"
    assert r.latest().collapsed == "every probe in one bucket"


def test_history_csv_and_embeddings_npz_share_one_schema_with_the_app(tmp_path, qtbot):
    """The app's exports and the CLI's record use the same writer: same columns, keys."""
    from tests.helpers import finish_run, make_window

    conf = tmp_path / "tiny.toml"
    tiny_config(**{"train.steps": 20}).save(conf)
    out = tmp_path / "cli"
    assert main.main(["run", "--config", str(conf), "--out", str(out), "--quiet"]) == 0
    w = make_window(tmp_path)
    try:
        finish_run(qtbot, w)
        qtbot.waitUntil(lambda: w.store.latest.step in w.store.frames, timeout=30_000)
        w.export_history_csv(tmp_path / "app.csv")
        w.export_embeddings_npz(tmp_path / "app.npz")
    finally:
        w.close()
    with (out / "history.csv").open() as a, (tmp_path / "app.csv").open() as b:
        cli_cols, app_cols = next(csv.reader(a)), next(csv.reader(b))
    assert cli_cols == app_cols == list(Snapshot.SCALARS)
    cli_keys = set(np.load(out / "embeddings.npz").files)
    app_keys = set(np.load(tmp_path / "app.npz").files)
    assert cli_keys == set(record_format.EMBEDDINGS_KEYS)
    assert app_keys - cli_keys <= set(record_format.EMBEDDINGS_OPTIONAL) and cli_keys <= app_keys
    assert "embedding_2d" in app_keys


def test_export_with_no_run_says_so(tmp_path):
    with pytest.raises(ValueError, match="no snapshot"):
        record_format.write_history_csv(tmp_path / "h.csv", [])
    assert not (tmp_path / "h.csv").exists()


def test_experiment_memory_keeps_scalar_rows_and_the_last_snapshot():
    exp = Experiment(tiny_config())
    snaps = list(exp.run())
    assert exp.history == [s.scalars() for s in snaps] and exp.last is snaps[-1]
    assert not any(isinstance(v, np.ndarray) for row in exp.history for v in row.values())


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0,
                    reason="root can write anywhere")
def test_unwritable_out_fails_before_training(tmp_path, capsys):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        code = main.main(["run", "--preset", "quick", "--out", str(locked / "run"), "--quiet"])
    finally:
        locked.chmod(0o700)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1 and str(locked) in err[0]
