"""A sweep's definition: a base config, axes and seeds, and the grid of runs they make.

`sweep.toml` (engine.sweep) stores a Sweep; this module parses axes ("2,5,10",
"lo:hi:n[:log]"), builds and validates the grid (each point a RunPoint: its id, axis
values, seed and resolved config) and reads sweep TOML files (built-in or a folder's).
"""

from __future__ import annotations

import difflib
import hashlib
import itertools
import json
import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import Any

import tomli_w

from .config import (
    ConfigError,
    ExperimentConfig,
    default_config,
    from_dict,
    load,
    load_preset,
    read_text,
)
from .resources import check_runnable
from .seeds import axes_roles

SWEEP_TOML, SUMMARY, RUNS, LOCK = "sweep.toml", "summary.csv", "runs", ".sweep.lock"
SWEEP_DIR = Path(str(files("engine") / "sweeps"))  # the built-in sweeps, in the package
MAX_RUNS = 200  # a larger grid needs max_runs (--max-runs) raised on purpose
MAX_RANGE_POINTS = 1000
_SWEEP_KEYS = ("name", "description", "preset", "config", "base", "set", "axes", "seeds",
               "max_runs")


class SweepError(ValueError):
    """A sweep that cannot be defined, stored or run as asked; str() is one readable line."""


# ---------------------------------------------------------------------------------------
# Axes


@dataclass(frozen=True)
class Axis:
    """One config field (dotted name, e.g. "data.seen_classes") and its values."""

    field: str
    values: tuple

    @property
    def label(self) -> str:
        return self.field.rsplit(".", 1)[-1]


def _scalar(text: str) -> Any:
    t = text.strip()
    if t.lower() in ("true", "false"):
        return t.lower() == "true"
    for conv in (int, float):
        try:
            return conv(t)
        except ValueError:
            pass
    return t


def _field_default(base: ExperimentConfig, name: str) -> Any:
    """The base config's value of a dotted field; SweepError for an unknown one."""
    node: Any = base.to_dict()
    for part in name.split("."):
        if not isinstance(node, dict) or part not in node or part in ("name", "description"):
            raise SweepError(f"axis {name}: unknown setting{_suggest(base, name)}")
        node = node[part]
    if isinstance(node, dict):
        example = f"{name}.{next(iter(node))}"
        raise SweepError(f"axis {name}: is a section, not a setting (e.g. {example})")
    return node


def _suggest(base: ExperimentConfig, name: str) -> str:
    names = [f"{s}.{k}" for s, d in base.to_dict().items() if isinstance(d, dict) for k in d]
    close = difflib.get_close_matches(name, names + ["seed"], n=1)
    return f" (did you mean {close[0]}?)" if close else ""


def _range(name: str, spec: str, default: Any) -> tuple:
    """lo:hi:n (linear) or lo:hi:n:log (log spacing), both ends included."""
    parts = spec.split(":")
    if len(parts) not in (3, 4) or (len(parts) == 4 and parts[3].strip().lower() != "log"):
        raise SweepError(f"axis {name}: range must be lo:hi:n or lo:hi:n:log, got {spec!r}")
    try:
        lo, hi = float(parts[0]), float(parts[1])
        n = int(parts[2])
    except ValueError:
        raise SweepError(
            f"axis {name}: range must be lo:hi:n or lo:hi:n:log with numbers, got {spec!r}"
        ) from None
    if not (1 <= n <= MAX_RANGE_POINTS):
        raise SweepError(f"axis {name}: range count n must be in [1, {MAX_RANGE_POINTS}], got {n}")
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise SweepError(f"axis {name}: range bounds must be finite, got {spec!r}")
    log = len(parts) == 4
    if log and (lo <= 0 or hi <= 0):
        raise SweepError(f"axis {name}: a log range needs lo and hi > 0, got {spec!r}")
    if n == 1:
        raw = [lo]
    elif log:
        raw = [math.exp(math.log(lo) + (math.log(hi) - math.log(lo)) * i / (n - 1))
               for i in range(n)]
    else:
        raw = [lo + (hi - lo) * i / (n - 1) for i in range(n)]
    if isinstance(default, bool) or not isinstance(default, (int, float)):
        raise SweepError(f"axis {name}: a range needs a numeric setting; list the values instead")
    if isinstance(default, int):
        return tuple(dict.fromkeys(int(round(v)) for v in raw))
    return tuple(float(f"{v:.6g}") for v in raw)


def _coerce(name: str, value: Any, default: Any) -> Any:
    """A value for the field's type: ints accepted for float fields."""
    if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def make_axis(name: str, values: Any, base: ExperimentConfig) -> Axis:
    """An Axis from a list of values, a comma list "2,5,10" or a range "lo:hi:n[:log]"."""
    name = name.strip()
    if name == "seed":
        default: Any = base.seed
    else:
        default = _field_default(base, name)
    if isinstance(values, str):
        text = values.strip()
        if not text:
            raise SweepError(f"axis {name}: no values")
        if ":" in text and "," not in text:
            vals = _range(name, text, default)
        else:
            items = [v for v in text.split(",")]
            if any(not v.strip() for v in items):
                raise SweepError(f"axis {name}: empty value in {text!r}")
            vals = tuple(_scalar(v) for v in items)
    elif isinstance(values, (list, tuple)):
        vals = tuple(values)
    else:
        vals = (values,)
    if not vals:
        raise SweepError(f"axis {name}: no values (an empty list)")
    vals = tuple(_coerce(name, v, default) for v in vals)
    dup = [v for v in set(vals) if vals.count(v) > 1]
    if dup:
        raise SweepError(f"axis {name}: value {dup[0]!r} is listed twice")
    return Axis(name, vals)


def parse_vary(text: str, base: ExperimentConfig) -> Axis:
    """FIELD=VALUES as given to --vary."""
    if "=" not in text:
        raise SweepError(f"--vary {text!r}: expected FIELD=VALUES, e.g. data.seen_classes=2,5,10")
    name, values = text.split("=", 1)
    if not name.strip():
        raise SweepError(f"--vary {text!r}: no field name before '='")
    return make_axis(name, values, base)


def parse_set(text: str) -> tuple[str, Any]:
    """FIELD=VALUE as given to --set."""
    if "=" not in text or not text.split("=", 1)[0].strip():
        raise SweepError(f"--set {text!r}: expected FIELD=VALUE, e.g. probe.seen_classes=2")
    name, value = text.split("=", 1)
    return name.strip(), _scalar(value)


# ---------------------------------------------------------------------------------------
# The sweep and its grid


@dataclass(frozen=True)
class RunPoint:
    """One run of the grid: its id, axis values, seed and fully resolved config."""

    id: str
    values: dict
    seed: int
    config: ExperimentConfig


def _fmt_value(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)


# Settings added after sweeps were first recorded, with the value every earlier record
# implies: left out of the digest at that value, so an older sweep folder still finds its
# runs (and --resume does not redo them).
LATER_SETTINGS = {("data", "validation_classes"): 0}


def config_hash(config: ExperimentConfig) -> str:
    """A digest of what a run computes (its name and description aside)."""
    d = config.to_dict()
    d.pop("name", None)
    d.pop("description", None)
    for (section, key), old in LATER_SETTINGS.items():
        if d[section].get(key) == old:
            del d[section][key]
    blob = json.dumps(d, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:10]


def run_id(values: dict, seed: int, config: ExperimentConfig) -> str:
    """A readable folder name (axis values and seed) ending in the config's hash."""
    parts = [f"{k.rsplit('.', 1)[-1]}-{_fmt_value(v)}" for k, v in values.items() if k != "seed"]
    parts.append(f"seed-{seed}")
    slug = re.sub(r"[^A-Za-z0-9_.+-]", "_", "_".join(parts))[:80]
    return f"{slug}_{config_hash(config)}"


@dataclass
class Sweep:
    """A base config, axes and a number of seeds (base.seed, base.seed + 1, ...)."""

    base: ExperimentConfig
    axes: list[Axis] = field(default_factory=list)
    seeds: int = 1
    name: str = "sweep"
    description: str = ""
    max_runs: int = MAX_RUNS

    @property
    def size(self) -> int:
        return math.prod(len(a.values) for a in self.axes) * self.seeds

    def roles(self) -> list[str]:
        """For each axis (and the seeds, when several), which random roles it changes:
        "data.seen_classes: the seen classes' gammas are added/removed, ..."."""
        return axes_roles([a.field for a in self.axes], self.seeds)

    @property
    def seed_values(self) -> list[int]:
        return [self.base.seed + k for k in range(self.seeds)]

    def check(self) -> None:
        """Everything but the per-point validation: axes, seeds and the grid's size."""
        if isinstance(self.seeds, bool) or not isinstance(self.seeds, int) or not (
            1 <= self.seeds <= 1000
        ):
            raise SweepError(f"seeds: must be an integer in [1, 1000], got {self.seeds!r}")
        if isinstance(self.max_runs, bool) or not isinstance(self.max_runs, int) or (
            self.max_runs < 1
        ):
            raise SweepError(f"max_runs: must be a positive integer, got {self.max_runs!r}")
        seen = set()
        for a in self.axes:
            if a.field in seen:
                raise SweepError(f"axis {a.field}: given twice")
            seen.add(a.field)
            if not a.values:
                raise SweepError(f"axis {a.field}: no values (an empty list)")
        if "seed" in seen and self.seeds != 1:
            raise SweepError("axis seed: cannot be combined with seeds > 1 (use one or the other)")
        if self.size > self.max_runs:
            sizes = " x ".join(f"{len(a.values)} {a.label}" for a in self.axes)
            raise SweepError(
                f"grid of {self.size} runs ({sizes} x {self.seeds} seeds) is over the limit "
                f"of {self.max_runs}; raise it with --max-runs {self.size} (max_runs)"
            )

    def points(self, runnable: bool = False) -> list[RunPoint]:
        """The validated grid, axes in order, seeds innermost. Each axis value is first
        checked alone against the base (so the message names that axis), then every point
        with the config's own validation; any failure is a SweepError naming the axis.
        With `runnable`, every point must also be able to run here (check_runnable)."""
        self.check()
        for a in self.axes:
            for v in a.values:
                try:
                    self.base.replace(**{a.field: v})
                except ConfigError as exc:
                    hint = "" if exc.field == a.field else (
                        f" (change {exc.field} in the base, e.g. --set {exc.field}=...)")
                    raise SweepError(f"axis {a.field} = {_fmt_value(v)}: {exc}{hint}") from None
        out = []
        combos = itertools.product(*(a.values for a in self.axes))
        for combo in combos:
            values = {a.field: v for a, v in zip(self.axes, combo, strict=True)}
            for seed in ([values["seed"]] if "seed" in values else self.seed_values):
                changes = {**values, "seed": seed}
                if self.name:
                    changes["name"] = self.name[:80]
                try:
                    cfg = self.base.replace(**changes)
                except ConfigError as exc:
                    where = ", ".join(f"{k} = {_fmt_value(v)}" for k, v in values.items())
                    raise SweepError(f"axes {where}: {exc}") from None
                out.append(RunPoint(run_id(values, seed, cfg), values, seed, cfg))
        ids = [p.id for p in out]
        if len(set(ids)) != len(ids):
            raise SweepError("two grid points resolve to the same config; remove the duplicate")
        if runnable:
            check_runnable_points(out)
        return out

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "description": self.description,
            "seeds": self.seeds,
            "max_runs": self.max_runs,
            "axes": {a.field: list(a.values) for a in self.axes},
            "base": self.base.to_dict(),
        }

    def to_toml(self) -> str:
        return tomli_w.dumps(self.to_dict())


def check_runnable_points(points: Sequence[RunPoint]) -> None:
    """SweepError naming the grid point whose config cannot run on this machine."""
    for p in points:
        try:
            check_runnable(p.config)
        except ConfigError as exc:
            where = ", ".join(f"{k} = {_fmt_value(v)}" for k, v in p.values.items())
            raise SweepError(f"axes {where}: {exc}" if where else str(exc)) from None


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


def sweep_from_dict(d: dict, where: Path | None = None, *, preset: str | None = None,
                    config: Path | None = None, sets: Sequence[tuple[str, Any]] = (),
                    vary: Sequence[str] = (), seeds: int | None = None,
                    max_runs: int | None = None) -> Sweep:
    """A Sweep from a sweep TOML's table, with command-line changes applied on top
    (preset/config replace the base, sets change it, vary adds or replaces axes)."""
    unknown = [k for k in d if k not in _SWEEP_KEYS]
    if unknown:
        raise SweepError(f"{unknown[0]}: unknown sweep setting (allowed: {', '.join(_SWEEP_KEYS)})")
    bases = [k for k in ("preset", "config", "base") if k in d]
    if len(bases) > 1:
        raise SweepError(f"{bases[1]}: give only one of preset, config and base")
    try:
        if preset is not None:
            base = load_preset(preset)
        elif config is not None:
            base = load(config)
        elif "base" in d:
            if not isinstance(d["base"], dict):
                raise SweepError("base: must be a table (a full experiment config)")
            base = from_dict(d["base"])
        elif "preset" in d:
            base = load_preset(str(d["preset"]))
        elif "config" in d:
            path = Path(str(d["config"]))
            if where is not None and not path.is_absolute():
                path = where.parent / path
            base = load(path)
        else:
            base = default_config()
    except ConfigError as exc:
        raise SweepError(f"base config: {exc}") from None
    fixed = _flatten(d.get("set", {}) if isinstance(d.get("set", {}), dict) else {"set": None})
    fixed.update(dict(sets))
    for k, v in fixed.items():
        if k in ("name", "description"):
            continue
        try:
            base = base.replace(**{k: v})
        except ConfigError as exc:
            raise SweepError(f"set {k} = {_fmt_value(v)}: {exc}") from None
    axes_table = d.get("axes", {})
    if not isinstance(axes_table, dict):
        raise SweepError("axes: must be a table of FIELD = [values] or \"lo:hi:n[:log]\"")
    axes = [make_axis(k, v, base) for k, v in _flatten(axes_table).items()]
    for text in vary:
        a = parse_vary(text, base)
        axes = [x for x in axes if x.field != a.field] + [a]
    name = d.get("name") or (where.stem if where is not None else "sweep")
    sw = Sweep(
        base=base, axes=axes,
        seeds=d.get("seeds", 1) if seeds is None else seeds,
        name=str(name), description=str(d.get("description", "")),
        max_runs=d.get("max_runs", MAX_RUNS) if max_runs is None else max_runs,
    )
    sw.check()
    return sw


def read_sweep_file(path: str | os.PathLike[str]) -> dict:
    """A sweep TOML's table; SweepError naming the file when it cannot be read."""
    from .guard import FolderError, parse_toml

    try:
        return parse_toml(read_text(path), path)  # nesting checked before tomllib
    except ConfigError as exc:
        raise SweepError(str(exc)) from None
    except FolderError as exc:
        raise SweepError(str(exc)) from None


def builtin_sweeps() -> list[str]:
    return sorted(p.stem for p in SWEEP_DIR.glob("*.toml"))


def find_sweep_file(name_or_path: str | os.PathLike) -> Path:
    """A sweep TOML by path, or a built-in one by name (engine/sweeps/NAME.toml)."""
    p = Path(name_or_path)
    if p.is_file():
        return p
    builtin = SWEEP_DIR / f"{name_or_path}.toml"
    if builtin.is_file():
        return builtin
    raise SweepError(
        f"--sweep {name_or_path}: no such file or built-in sweep "
        f"(built-in: {', '.join(builtin_sweeps())})"
    )


def load_sweep(path: str | os.PathLike, **changes: Any) -> Sweep:
    """A sweep from a TOML file (a built-in preset or a folder's sweep.toml)."""
    from .guard import FolderError, inside

    path = Path(path)
    if path.is_dir():
        path = path / SWEEP_TOML
        if not os.path.lexists(path):
            raise SweepError(f"{path.parent} is not a sweep folder (no {SWEEP_TOML})")
        try:
            inside(path.parent, path)  # a sweep.toml symlinked out of its folder
        except FolderError as exc:
            raise SweepError(str(exc)) from None
    return sweep_from_dict(read_sweep_file(path), path, **changes)
