"""The headless CLI: a tiny run writes every file; bad input exits 2 with one line."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

import main
from engine import config as cfg
from tests.helpers import tiny_config

ROOT = Path(__file__).resolve().parent.parent


def test_tiny_run_writes_all_files(tmp_path):
    conf = tmp_path / "tiny.toml"
    tiny_config().save(conf)
    out = tmp_path / "out"
    assert main.main(["run", "--config", str(conf), "--steps", "20", "--seed", "3",
                      "--out", str(out), "--quiet"]) == 0
    resolved = cfg.load(out / "config.toml")
    assert resolved.seed == 3 and resolved.train.steps == 20
    rows = list(csv.DictReader((out / "history.csv").open()))
    assert [int(float(r["step"])) for r in rows] == [0, 10, 20]
    m = json.loads((out / "metrics.json").read_text())
    assert m["steps"] == 20 and m["device"] == "cpu"
    for key in ("trained", "untrained", "raw_input", "ways", "episodes"):
        assert key in m["oneshot"]
    for key in ("bits", "same_class", "different_class", "raw_same_class",
                "raw_different_class"):
        assert key in m["collision"]
    assert set(m["invariance"]) == {"trained", "raw_input", "learned_linear"}
    assert "learned_linear" in m["oneshot"] and len(m["oneshot"]["ci95"]) == 2
    z = np.load(out / "embeddings.npz")
    n = len(z["label"])
    assert z["embedding"].shape == (n, 16) and z["raw"].shape == (n, 32)
    assert z["theta"].shape == (n, 4) and z["seen"].dtype == bool
    assert z["gamma"].shape == (len(z["classes"]), 8)


def test_divergence_writes_what_was_kept_and_exits_1(tmp_path, capsys):
    conf = tmp_path / "bad.toml"
    tiny_config(**{"train.lr": 1e4, "train.optimizer": "sgd", "train.steps": 300,
                   "train.snapshot_every": 1}).save(conf)
    out = tmp_path / "out"
    assert main.main(["run", "--config", str(conf), "--out", str(out), "--quiet"]) == 1
    assert "diverged" in capsys.readouterr().err
    assert (out / "history.csv").exists() and (out / "metrics.json").exists()


def test_bad_config_exits_2_with_one_line(tmp_path):
    conf = tmp_path / "bad.toml"
    conf.write_text("[train]\nlr = -5\n")
    r = subprocess.run(
        [sys.executable, "main.py", "run", "--config", str(conf), "--out", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "train.lr" in lines[0] and "[1e-07, 10000]" in lines[0]


def test_bad_steps_flag_is_named(capsys):
    assert main.main(["run", "--steps", "0", "--out", "/tmp/never"]) == 2
    assert "train.steps" in capsys.readouterr().err


def test_presets_lists_one_line_each(capsys):
    assert main.main(["presets"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == len(cfg.preset_names())
    assert lines[0].split()[0] in cfg.preset_names()


def test_unwritable_out_is_one_readable_line(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    conf = tmp_path / "tiny.toml"
    tiny_config(**{"train.steps": 10}).save(conf)
    code = main.main(["run", "--config", str(conf), "--out", str(blocker / "out"), "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1 and "gsh-lab: error:" in err[0]
    assert str(blocker) in err[0]


def test_the_docstring_lists_every_command():
    listed = {line.split()[0] for line in main.__doc__.splitlines()[1:] if line.strip()}
    assert listed == set(main.COMMANDS)


def test_no_command_launches_the_app_like_gui(monkeypatch):
    """`main.py` alone (the README's first command, and `gsh-lab`) is `gui`."""
    import app.cli

    calls = []
    monkeypatch.setattr(app.cli, "run_gui", lambda config, **kw: calls.append((config, kw)) or 0)
    assert main.main([]) == 0
    assert main.main(["gui"]) == 0
    assert calls == [(None, {"runs_dir": None})] * 2


def test_progress_bar_names_the_figures_of_the_step_it_shows(tmp_path, capsys, monkeypatch):
    """Each drawn 'k/N' carries snapshot k's one-shot, not the previous snapshot's."""
    import functools
    import re

    import engine.cli

    monkeypatch.setattr(engine.cli, "tqdm", functools.partial(engine.cli.tqdm, mininterval=0))
    conf = tmp_path / "tiny.toml"
    tiny_config().save(conf)
    out = tmp_path / "out"
    assert main.main(["run", "--config", str(conf), "--steps", "20", "--out", str(out)]) == 0
    rows = {int(float(r["step"])): float(r["oneshot_trained"])
            for r in csv.DictReader((out / "history.csv").open())}
    shown = re.findall(r"(\d+)/20 \[[^\]]*oneshot=([0-9.]+)\]", capsys.readouterr().err)
    assert {int(k) for k, _ in shown} >= {10, 20}
    for step, oneshot in shown:
        assert oneshot == f"{rows[int(step)]:.2f}", (step, oneshot)
