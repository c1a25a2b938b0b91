"""The one run loop: the CLI, a sweep's run and the app's worker end a run alike.

Each case trains a tiny config through all three callers and checks the status in the
record and what the caller says (the CLI's exit code, a sweep run's outcome, the app
worker's error), so the three cannot drift apart again.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import main
from engine.record import open_run
from tests.helpers import fail_writing_snapshot, tiny_config

DIVERGING = {"train.lr": 1e4, "train.optimizer": "sgd", "train.steps": 300,
             "train.snapshot_every": 1}


def cli(config, out: Path) -> int:
    conf = out.parent / f"{out.name}.toml"
    config.save(conf)
    return main.main(["run", "--config", str(conf), "--out", str(out), "--quiet"])


def sweep_run(config, out: Path, stop_after: int | None = None) -> dict:
    """A sweep's grid point, as its executor runs it."""
    from engine.executors import RunTask, _execute

    seen = []
    msg = _execute(RunTask("p", config.to_dict(), str(out)), seen.append,
                   lambda: stop_after is not None and len(seen) > stop_after, threads=None)
    assert [m["kind"] for m in seen][:1] == ["run_start"]
    return {**msg.get("outcome", {}), "status": msg["status"], "error": msg["error"]}


def app_run(config, out: Path, stop_after: int | None = None) -> tuple[list, object]:
    """The app's training child's loop (engine.run_process.ChildRun), run in this thread:
    (what it sends, the failure message or None)."""
    from engine.run_process import ChildRun, Start

    items = []

    def send(item) -> None:
        items.append(item)
        if stop_after is not None and sum(hasattr(i, "step") for i in items) == stop_after:
            run.command("stop")

    run = ChildRun(Start(config, out, None), send)
    return items, run.run().error


def status(out: Path) -> str:
    return open_run(out).display_status


def test_a_run_that_ends_finishes_alike(tmp_path):
    cfg = tiny_config(**{"train.steps": 20})
    assert cli(cfg, tmp_path / "cli") == 0
    outcome = sweep_run(cfg, tmp_path / "sweep")
    assert outcome["status"] == "finished" and outcome["error"] is None
    assert outcome["steps"] == 20
    items, error = app_run(cfg, tmp_path / "app")
    assert error is None and [i.step for i in items if hasattr(i, "step")] == [0, 10, 20]
    for name in ("cli", "sweep", "app"):
        assert status(tmp_path / name) == "finished", name
        assert open_run(tmp_path / name).steps == [0, 10, 20], name


def test_a_diverging_run_is_recorded_diverged_alike(tmp_path):
    cfg = tiny_config(**DIVERGING)
    assert cli(cfg, tmp_path / "cli") == 1
    outcome = sweep_run(cfg, tmp_path / "sweep")
    assert outcome["status"] == "diverged" and "diverged at step" in outcome["error"]
    _, error = app_run(cfg, tmp_path / "app")
    assert "diverged at step" in str(error)
    for name in ("cli", "sweep", "app"):
        r = open_run(tmp_path / name)
        assert r.status == "diverged" and "diverged at step" in r.error, name


def test_a_stopped_run_is_recorded_stopped(tmp_path):
    cfg = tiny_config(**{"train.steps": 200})
    outcome = sweep_run(cfg, tmp_path / "sweep", stop_after=2)
    assert outcome["status"] == "stopped" and outcome["steps"] == 10
    assert open_run(tmp_path / "sweep").steps == [0, 10]
    items, error = app_run(cfg, tmp_path / "app", stop_after=2)
    steps = [i.step for i in items if hasattr(i, "step")]
    # stop: after the current step, which is a few steps past snapshot 10 when its
    # measurements ran beside training; a snapshot already handed over for measuring
    # (at most two in flight) comes before the final one
    assert error is None and steps[:2] == [0, 10] and items[-1].done
    assert steps[2:-1] in ([], [20]) and 10 < steps[-1] <= 31
    for name in ("sweep", "app"):
        assert status(tmp_path / name) == "stopped", name


def test_a_record_that_cannot_be_written(tmp_path, monkeypatch):
    """The CLI and a sweep end the run failed; the app trains on unrecorded."""
    fail_writing_snapshot(monkeypatch, 20)
    cfg = tiny_config()
    assert cli(cfg, tmp_path / "cli") == 1
    outcome = sweep_run(cfg, tmp_path / "sweep")
    assert outcome["status"] == "failed" and "No space left" in outcome["error"]
    for name in ("cli", "sweep"):
        r = open_run(tmp_path / name)
        assert r.status == "failed" and "No space left" in r.error and r.steps == [0, 10]
    items, error = app_run(cfg, tmp_path / "app")
    notes = [i.message for i in items if type(i).__name__ == "RecordingStopped"]
    assert error is None and len(notes) == 1 and "recording stopped at step 20" in notes[0]
    assert [i.step for i in items if hasattr(i, "step")][-1] == 40  # trained on
    assert open_run(tmp_path / "app").steps == [0, 10]
    assert status(tmp_path / "app") == "did not finish"


def test_a_run_that_cannot_be_built(tmp_path, monkeypatch):
    """A sweep records the failure in the run folder; the app reports it, recording
    nothing; the CLI lets the error out (main turns a ConfigError into exit 2)."""
    from engine import experiment

    def broken(self, config):
        raise RuntimeError("no memory for the probe set")

    monkeypatch.setattr(experiment.Experiment, "__init__", broken)
    cfg = tiny_config()
    outcome = sweep_run(cfg, tmp_path / "sweep")
    assert outcome["status"] == "failed" and "no memory" in outcome["error"]
    r = open_run(tmp_path / "sweep")
    assert r.status == "failed" and "no memory" in r.error and r.steps == []
    items, error = app_run(cfg, tmp_path / "app")
    assert items == [] and "no memory" in str(error)
    assert not (tmp_path / "app").exists()
    with pytest.raises(RuntimeError, match="no memory"):
        cli(cfg, tmp_path / "cli")
    assert not (tmp_path / "cli").exists()
