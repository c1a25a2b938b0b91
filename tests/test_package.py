"""The wheel is a real package: built from a copy of the tree, installed into a fresh
venv, its `gsh-lab` command works from another folder with the presets, sweeps and About
text it ships (not this checkout's files)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SKIP = shutil.ignore_patterns(".venv", ".git", "build", "dist", "*.egg-info", "__pycache__",
                              ".pytest_cache", ".ruff_cache", "docs", "tests", "bench")


def _run(cmd, cwd, **kw) -> subprocess.CompletedProcess:
    r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=300, **kw)
    assert r.returncode == 0, f"{cmd}: {r.stdout[-2000:]}\n{r.stderr[-2000:]}"
    return r


def test_the_wheel_installs_and_gsh_lab_runs_from_any_folder(tmp_path):
    src = shutil.copytree(ROOT, tmp_path / "src", ignore=SKIP)
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
          "--no-index", "-q", "-w", str(tmp_path / "dist"), str(src)], cwd=tmp_path)
    wheel = next((tmp_path / "dist").glob("gsh_lab-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    for shipped in ("engine/presets/quick.toml", "engine/sweeps/bits.toml", "app/about.md",
                    "main.py"):
        assert shipped in names, shipped
    meta = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("METADATA")))
    assert b"License-Expression: MIT" in meta

    # A fresh venv; the heavy dependencies (torch, Qt, ...) are taken from this one's
    # site-packages through a .pth file, so the install takes seconds and no network.
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], cwd=tmp_path)
    py = venv / "bin" / "python"
    purelib = _run([str(py), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                   cwd=tmp_path).stdout.strip()
    (Path(purelib) / "gsh_lab_deps.pth").write_text(sysconfig.get_path("purelib") + "\n")
    _run([str(py), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)],
         cwd=tmp_path)

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["GSH_THREADS"] = "1"
    where = _run([str(py), "-c", "import engine, app; print(engine.__file__, app.__file__)"],
                 cwd=elsewhere, env=env).stdout.split()
    assert all(p.startswith(purelib) for p in where), where  # the wheel's, not this tree
    gsh = venv / "bin" / "gsh-lab"
    presets = _run([str(gsh), "presets"], cwd=elsewhere, env=env).stdout.split("\n")
    assert [line.split()[0] for line in presets if line] == sorted(
        p.stem for p in (ROOT / "engine" / "presets").glob("*.toml"))
    _run([str(gsh), "run", "--preset", "quick", "--steps", "200", "--out", "X", "--quiet"],
         cwd=elsewhere, env=env)
    metrics = json.loads((elsewhere / "X" / "metrics.json").read_text())
    assert metrics["steps"] == 200
