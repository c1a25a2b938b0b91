"""The import contracts in pyproject.toml (import-linter): the engine never imports Qt or
the app; engine and app are layered, without import cycles; panels are independent of each
other and of the window."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_engine_does_not_import_qt_or_app():
    lint = Path(sys.executable).with_name("lint-imports")
    r = subprocess.run([str(lint)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "0 broken" in r.stdout and "KEPT" in r.stdout


def test_every_module_is_in_a_layer():
    """A new engine module or panel must be placed in the layers (else it is unchecked)."""
    import re
    import tomllib

    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"][
        "contracts"]
    named = {m for c in contracts for layer in c.get("layers", [])
             for m in re.split(r"[|:]", layer)}
    named = {m.strip() for m in named}
    modules = {f"engine.{p.stem}" for p in (ROOT / "engine").glob("*.py")}
    modules |= {f"app.panels.{p.stem}" for p in (ROOT / "app" / "panels").glob("*.py")}
    modules |= {f"app.{p.stem}" for p in (ROOT / "app").glob("*.py")}
    modules -= {"engine.__init__", "app.__init__", "app.panels.__init__"}
    assert sorted(modules - named) == []


def test_importing_the_engine_loads_no_qt():
    code = (
        "import sys, engine.experiment, engine.cli, engine.config;"
        "bad=[m for m in sys.modules if m.split('.')[0] in "
        "('PySide6','pyqtgraph','superqt','qtpy','app')];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
