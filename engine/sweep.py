"""Sweeps: a base config, axes and seeds; their grid of runs, each a run record on disk.

A sweep folder holds `sweep.toml` (the definition: the fully resolved base config, each
axis's values, the number of seeds), `runs/<id>/` (one run record per grid point, see
engine.record; the id is derived from the point's resolved config, so running the same
sweep again resumes: finished runs are skipped, unfinished ones re-run) and `summary.csv`
(one row per run, rebuilt from the run records). This module owns those two files, the
grid and its validation, training one config into a run folder (`train_run`) and running
a grid through an executor (engine.executors) with progress per snapshot and a
cooperative stop (`run_sweep`, or `start_sweep` for a background thread and a queue).
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import itertools
import json
import math
import os
import queue
import re
import threading
import time
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli_w

from . import figures
from .atomic import atomic_write_text
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
from .threads import available_cores, training_threads

try:  # POSIX: a lock the kernel drops when the sweep's process dies
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

SWEEP_TOML, SUMMARY, RUNS, LOCK = "sweep.toml", "summary.csv", "runs", ".sweep.lock"
SWEEP_DIR = Path(__file__).resolve().parent.parent / "resources" / "sweeps"
MAX_RUNS = 200  # a larger grid needs max_runs (--max-runs) raised on purpose
MAX_RANGE_POINTS = 1000
DONE = ("finished", "diverged")  # a resumed sweep skips these; the others re-run
SUMMARY_FIGURES = (  # the claim's figures first (unseen classes); all classes' labelled
    "oneshot_trained", "oneshot_untrained", "oneshot_raw",
    "unseen_same_class_collision", "unseen_different_class_collision", "collision_ratio",
    "raw_collision_ratio", "same_class_collision", "different_class_collision",
    "collision_ratio_all", "invariance_trained", "invariance_raw",
)
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
    import difflib

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


def config_hash(config: ExperimentConfig) -> str:
    """A digest of what a run computes (its name and description aside)."""
    d = config.to_dict()
    d.pop("name", None)
    d.pop("description", None)
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


def read_sweep_file(path: str | os.PathLike) -> dict:
    """A sweep TOML's table; SweepError naming the file when it cannot be read."""
    try:
        return tomllib.loads(read_text(path))
    except ConfigError as exc:
        raise SweepError(str(exc)) from None
    except tomllib.TOMLDecodeError as exc:
        raise SweepError(f"{path}: not valid TOML ({exc})") from None


def builtin_sweeps() -> list[str]:
    return sorted(p.stem for p in SWEEP_DIR.glob("*.toml"))


def find_sweep_file(name_or_path: str | os.PathLike) -> Path:
    """A sweep TOML by path, or a built-in one by name (resources/sweeps/NAME.toml)."""
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


def load_sweep(path: str | os.PathLike, **changes) -> Sweep:
    """A sweep from a TOML file (a built-in preset or a folder's sweep.toml)."""
    path = Path(path)
    if path.is_dir():
        path = path / SWEEP_TOML
        if not path.is_file():
            raise SweepError(f"{path.parent} is not a sweep folder (no {SWEEP_TOML})")
    return sweep_from_dict(read_sweep_file(path), path, **changes)


# ---------------------------------------------------------------------------------------
# Progress events


@dataclass
class SweepEvent:
    """What a sweep reports: kind "start" (the grid is known), "run_start", "snapshot",
    "run_done" (with the run's status) or "done" (the sweep ended). Every event carries
    the sweep's totals so far: runs_done / runs_total, steps_done / steps_total, eta_s."""

    kind: str
    run_id: str = ""
    step: int = 0
    total_steps: int = 0
    status: str = ""
    error: str | None = None
    figures: dict = field(default_factory=dict)  # loss, one-shot, collisions; baselines
    outcome: dict = field(default_factory=dict)  # run_done: train_run's timings
    runs_done: int = 0
    runs_total: int = 0
    steps_done: int = 0
    steps_total: int = 0
    eta_s: float = float("nan")


EVENT_FIGURES = ("loss", "oneshot_trained", "unseen_same_class_collision",
                 "unseen_different_class_collision", "same_class_collision",
                 "different_class_collision", "invariance_trained", "collapsed")


def snapshot_message(run: str, snap, info) -> dict:
    """The small, picklable progress message a run sends per snapshot: its figures and the
    run's baselines (RunInfo), so a live sweep draws both before the run ends."""
    return {"kind": "snapshot", "run_id": run, "step": int(snap.step),
            "total_steps": int(info.total_steps),
            "figures": {**{k: getattr(snap, k) for k in EVENT_FIGURES}, **info.baselines()}}


@dataclass
class RunTask:
    """What an executor needs to run one grid point (picklable)."""

    run_id: str
    config: dict
    run_dir: str


# ---------------------------------------------------------------------------------------
# summary.csv


def summary_columns(sweep: Sweep) -> list[str]:
    from .snapshot import RunInfo, Snapshot

    head = ["run", *(a.field for a in sweep.axes if a.field != "seed"), "seed", "status",
            "step", "total_steps", *SUMMARY_FIGURES]
    rest = [c for c in (*Snapshot.SCALARS, *RunInfo.BASELINES) if c not in head]
    return [*head, *rest, "error"]


def summary_row(folder: Path, point: RunPoint) -> dict:
    """The summary row of one grid point, read from its run record (status "pending"
    when it has none yet, "unreadable" with the reason when it cannot be opened)."""
    from .record import RunRecordError, open_run

    row: dict = {"run": point.id, **point.values, "seed": point.seed,
                 "total_steps": point.config.train.steps}
    path = folder / RUNS / point.id
    if not (path / "run.json").is_file():
        return {**row, "status": "pending"}
    try:
        run = open_run(path)
    except RunRecordError as exc:
        return {**row, "status": "unreadable", "error": str(exc)}
    last = run.rows[-1] if run.rows else {}
    row.update({k: v for k, v in last.items()})
    row.update(status=run.display_status, error=run.error or "")
    if last:
        try:  # the baselines, from probe.npz
            row.update(run.run_info.baselines())
        except RunRecordError as exc:
            row["error"] = "; ".join(e for e in (row["error"], f"no baselines: {exc}") if e)
    if last:
        row.update(figures.derived(row))
    return row


def summary_text(rows: list[dict], columns: list[str]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def read_summary(folder: str | os.PathLike) -> list[dict]:
    """summary.csv rebuilt from the run records of a sweep folder (and rewritten)."""
    folder = Path(folder)
    sweep = load_sweep(folder)
    rows = [summary_row(folder, p) for p in sweep.points()]
    atomic_write_text(folder / SUMMARY, summary_text(rows, summary_columns(sweep)))
    return rows


# ---------------------------------------------------------------------------------------
# Running a sweep


def _take_lock(folder: Path):
    fh = (folder / LOCK).open("a+", encoding="utf-8")
    if fcntl is not None:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fh.close()
            raise SweepError(f"{folder} is being run by another sweep process") from None
    fh.seek(0)
    fh.truncate()
    fh.write(f"{os.getpid()}\n")
    fh.flush()
    return fh


def prepare(folder: str | os.PathLike, sweep: Sweep | None = None) -> tuple[Sweep, list]:
    """Create or reopen a sweep folder and return (sweep, grid). With `sweep`, a new
    folder (or an empty one) gets its sweep.toml; a folder holding the same sweep is
    resumed; a different sweep or a non-sweep folder with files is refused. Without it,
    the folder's sweep.toml is read (resume). Everything is validated before any run; a
    new sweep's grid must be able to run here (a resumed one is checked by run_sweep, for
    the runs still to do)."""
    folder = Path(folder)
    stored = folder / SWEEP_TOML
    if sweep is None:
        sweep = load_sweep(folder)
        return sweep, sweep.points()
    points = sweep.points()
    if stored.is_file():
        old = read_sweep_file(stored)
        if _definition(old) != _definition(tomllib.loads(sweep.to_toml())):
            raise SweepError(
                f"{folder} holds a different sweep; resume it with --resume {folder}, "
                "or choose another --out"
            )
        if old != tomllib.loads(sweep.to_toml()):  # same grid, new name or limit
            atomic_write_text(stored, sweep.to_toml())
        return sweep, points
    check_runnable_points(points)
    try:
        if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
            raise SweepError(
                f"{folder} is not empty and is not a sweep folder; choose another --out"
            )
        (folder / RUNS).mkdir(parents=True, exist_ok=True)
        atomic_write_text(stored, sweep.to_toml())
    except OSError as exc:
        raise SweepError(f"{exc.filename or folder}: {exc.strerror or exc}") from None
    return sweep, points


def _definition(d: dict) -> dict:
    """What decides a sweep's grid: its base, axes and seeds."""
    return {k: d.get(k) for k in ("base", "axes", "seeds")}


@dataclass
class SweepResult:
    """How a sweep ended: counts per status, its summary rows and wall time."""

    folder: Path
    rows: list[dict]
    counts: dict[str, int]
    skipped: int  # finished before this call (resumed)
    seconds: float
    stopped: bool

    def line(self) -> str:
        parts = [f"{n} {s}" for s, n in sorted(self.counts.items())]
        return (f"{len(self.rows)} runs ({', '.join(parts)}; {self.skipped} done before) in "
                f"{self.seconds:.1f} s; summary in {self.folder / SUMMARY}")


class _Progress:
    """Totals for SweepEvents: runs and steps done, and an ETA from the sweep's rate."""

    def __init__(self, points: list[RunPoint], skipped: set[str]):
        self.total = {p.id: p.config.train.steps for p in points}
        self.step = {p.id: (self.total[p.id] if p.id in skipped else 0) for p in points}
        self.done = set(skipped)
        self.start = time.perf_counter()
        self.base_steps = sum(self.step.values())

    def event(self, **kw) -> SweepEvent:
        steps_done = sum(self.step.values())
        steps_total = sum(self.total.values())
        fresh = steps_done - self.base_steps
        elapsed = time.perf_counter() - self.start
        eta = (steps_total - steps_done) * elapsed / fresh if fresh > 0 else float("nan")
        return SweepEvent(runs_done=len(self.done), runs_total=len(self.total),
                          steps_done=steps_done, steps_total=steps_total, eta_s=eta, **kw)


def run_sweep(folder: str | os.PathLike, sweep: Sweep | None = None, executor=None,
              on_event: Callable[[SweepEvent], None] | None = None,
              stop: threading.Event | None = None) -> SweepResult:
    """Run (or resume) the sweep in `folder` and return how it ended.

    `executor`: an engine.executors.Executor (default: SerialExecutor). `on_event` is
    called in this thread with every SweepEvent. Setting `stop` ends each running run at
    its next snapshot (recorded "stopped") and starts no new one; running the sweep
    again resumes it. summary.csv is rewritten after every run and at the end.
    """
    from .executors import SerialExecutor

    folder = Path(folder).absolute()
    t0 = time.perf_counter()
    sweep, points = prepare(folder, sweep)
    executor = executor or SerialExecutor()
    stop = stop or threading.Event()
    lock = _take_lock(folder)
    try:
        rows = {p.id: summary_row(folder, p) for p in points}
        skipped = {i for i, r in rows.items() if r["status"] in DONE}
        todo = [p for p in points if p.id not in skipped]
        check_runnable_points(todo)
        progress = _Progress(points, skipped)
        columns = summary_columns(sweep)
        by_id = {p.id: p for p in points}

        def write_summary() -> None:
            atomic_write_text(folder / SUMMARY,
                              summary_text([rows[p.id] for p in points], columns))

        def emit(ev: SweepEvent) -> None:
            if on_event is not None:
                on_event(ev)

        def handle(msg: dict) -> None:
            kind, rid = msg["kind"], msg.get("run_id", "")
            if kind == "snapshot":
                progress.step[rid] = msg["step"]
            elif kind == "run_start":
                rows[rid] = {**rows[rid], "status": "running"}
            elif kind == "run_done":
                if msg.get("status") == "skipped":  # stopped before it began: still pending
                    return
                if msg.get("status") != "stopped":
                    progress.done.add(rid)
                    progress.step[rid] = progress.total[rid]
                rows[rid] = summary_row(folder, by_id[rid])
                if rows[rid]["status"] == "pending" and msg.get("error"):
                    rows[rid] = {**rows[rid], "status": "failed", "error": msg["error"]}
                with contextlib.suppress(OSError):
                    write_summary()
            fields = {k: msg[k] for k in ("run_id", "step", "total_steps", "status", "error",
                                         "figures", "outcome") if k in msg}
            emit(progress.event(kind=kind, **fields))

        write_summary()
        emit(progress.event(kind="start"))
        tasks = [RunTask(p.id, p.config.to_dict(), str(folder / RUNS / p.id)) for p in todo]
        if tasks:
            executor.run(tasks, handle, stop)
        rows = {p.id: summary_row(folder, p) for p in points}
        write_summary()
        counts: dict[str, int] = {}
        for r in rows.values():
            counts[r["status"]] = counts.get(r["status"], 0) + 1
        result = SweepResult(folder, [rows[p.id] for p in points], counts, len(skipped),
                             time.perf_counter() - t0, stop.is_set())
        emit(progress.event(kind="done"))
        return result
    finally:
        with contextlib.suppress(OSError):
            (folder / LOCK).unlink()
        lock.close()


class SweepHandle:
    """A sweep running in a background thread (for a GUI): poll `events` (a queue of
    SweepEvent), call `stop()` to end it at the runs' next snapshots, `join()` for the
    SweepResult (re-raising the sweep's error, if any)."""

    def __init__(self, folder, sweep, executor):
        self.events: queue.Queue[SweepEvent] = queue.Queue()
        self._stop = threading.Event()
        self.result: SweepResult | None = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(
            target=self._main, args=(folder, sweep, executor), name="gsh-sweep", daemon=True
        )
        self._thread.start()

    def _main(self, folder, sweep, executor) -> None:
        try:
            self.result = run_sweep(folder, sweep, executor, self.events.put, self._stop)
        except BaseException as exc:  # handed to join()
            self.error = exc

    def stop(self) -> None:
        self._stop.set()

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def join(self, timeout: float | None = None) -> SweepResult | None:
        self._thread.join(timeout)
        if self._thread.is_alive():
            return None
        if self.error is not None:
            raise self.error
        return self.result


def start_sweep(folder: str | os.PathLike, sweep: Sweep | None = None,
                executor=None) -> SweepHandle:
    """Validate now (raising SweepError at once), then run in a background thread."""
    prepare(folder, sweep)
    return SweepHandle(folder, sweep, executor)


# ---------------------------------------------------------------------------------------
# Command line: `main.py sweep`


class _StopOnSignal:
    """SIGINT / SIGTERM while a sweep runs: the first sets `stop` (runs end at their next
    snapshot, recorded stopped); a second interrupts at once."""

    def __init__(self, stop: threading.Event, say: Callable[[str], None]):
        self.stop, self.say = stop, say
        self.received: int | None = None
        self._old: dict = {}

    def __enter__(self):
        import signal

        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, _frame) -> None:
        if self.received is not None:
            raise KeyboardInterrupt
        self.received = signum
        self.stop.set()
        self.say("stopping: each run ends at its next snapshot (again to abort at once)")

    def __exit__(self, *exc) -> None:
        import signal

        for sig, old in self._old.items():
            signal.signal(sig, old)


def sweep_from_args(args) -> tuple[Path, Sweep | None]:
    """The sweep folder and definition from `main.py sweep` arguments (None: resume)."""
    given = [f"--{n.replace('_', '-')}" for n in ("preset", "config", "steps", "seed", "seeds",
                                                   "sweep")
             if getattr(args, n, None) is not None] + (["--vary"] if args.vary else []) + (
        ["--set"] if args.set else [])
    if args.resume is not None:
        if given:
            raise SweepError(f"--resume runs the sweep as stored; {given[0]} cannot change it")
        if args.out is not None:
            raise SweepError("give either --resume FOLDER or --out FOLDER, not both")
        if not (Path(args.resume) / SWEEP_TOML).is_file():
            raise SweepError(f"--resume {args.resume}: not a sweep folder (no {SWEEP_TOML})")
        return args.resume, None
    if args.out is None:
        raise SweepError("--out FOLDER is required (or --resume FOLDER)")
    d, where = {}, None
    if args.sweep is not None:
        where = find_sweep_file(args.sweep)
        d = read_sweep_file(where)
    sets = [parse_set(s) for s in args.set]
    if args.steps is not None:
        sets.append(("train.steps", args.steps))
    if args.seed is not None:
        sets.append(("seed", args.seed))
    sweep = sweep_from_dict(d, where, preset=args.preset, config=args.config, sets=sets,
                            vary=args.vary, seeds=args.seeds, max_runs=args.max_runs)
    if args.sweep is None:
        sweep.name = Path(args.out).name[:80] or "sweep"
    return args.out, sweep


def sweep_main(args) -> int:
    """`main.py sweep`: exit 0 when every run finished, 1 when one failed, diverged or did
    not finish, 2 for bad input (one line), 128 + signal when stopped by SIGINT/SIGTERM."""
    import sys

    from tqdm import tqdm

    from .executors import DaskExecutor, SerialExecutor

    def fail(msg: str) -> int:
        print(f"gsh-lab: error: {msg}", file=sys.stderr)
        return 2

    try:
        folder, sweep = sweep_from_args(args)
        if sweep is None and args.max_runs is not None:
            sweep = load_sweep(folder, max_runs=args.max_runs)
        sweep, points = prepare(folder, sweep)
    except (SweepError, ConfigError) as exc:
        return fail(str(exc))
    todo = sum(1 for p in points if summary_row(Path(folder), p)["status"] not in DONE)
    if args.workers is not None and args.workers < 1:
        return fail(f"--workers: must be at least 1, got {args.workers}")
    if args.scheduler:
        executor = DaskExecutor(workers=args.workers, scheduler=args.scheduler)
    else:
        workers = args.workers or min(available_cores(), max(todo, 1))
        serial = SerialExecutor(threads=training_threads())
        executor = serial if workers == 1 else DaskExecutor(workers)
    bar = tqdm(total=1, unit="step", disable=args.quiet, file=sys.stderr,
               bar_format="{desc} {percentage:3.0f}%|{bar}| {elapsed}<{remaining}")
    stop = threading.Event()

    def on_event(ev: SweepEvent) -> None:
        if ev.kind == "start":
            bar.reset(total=max(ev.steps_total, 1))
        bar.n = ev.steps_done
        bar.set_description_str(f"runs {ev.runs_done}/{ev.runs_total}", refresh=False)
        bar.refresh()
        if ev.kind == "run_done" and ev.status not in ("finished", "stopped", "skipped"):
            bar.write(f"run {ev.run_id}: {ev.status}" + (f": {ev.error}" if ev.error else ""),
                      file=sys.stderr)

    signals = _StopOnSignal(stop, lambda m: bar.write(f"gsh-lab: {m}", file=sys.stderr))
    try:
        with signals:
            result = run_sweep(folder, sweep, executor, on_event, stop)
    except SweepError as exc:
        bar.close()
        return fail(str(exc))
    except KeyboardInterrupt:
        bar.close()
        with contextlib.suppress(Exception):
            read_summary(folder)
        print(f"gsh-lab: sweep aborted; unfinished runs re-run with: main.py sweep --resume "
              f"{folder}", file=sys.stderr)
        return 130
    bar.close()
    print(result.line())
    if signals.received is not None:
        print(f"gsh-lab: sweep stopped; resume with: main.py sweep --resume {folder}",
              file=sys.stderr)
        return 128 + signals.received
    return 0 if set(result.counts) <= {"finished"} else 1
