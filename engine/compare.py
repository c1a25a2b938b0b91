"""Comparing recorded runs, Qt-free: which runs (sweep folders add all theirs), a colour
and a short name per run from the parameters that differ ("depth=4 · seed 1"), the
parameter diff table with each run's final figures (engine/figures.py names them), the
nearest recorded step of each run to a chosen one, the collision heatmap of run A minus
run B, and one-shot differences with a 95% interval.

Intervals are the figures' own (engine.metrics.bootstrap_ci: resampling the run's
episodes and the unseen classes queried). A run's one-shot tally is measured again from
the record (the snapshot's embedding, the probe set, the episodes drawn from the run's
seed), so a difference is bootstrapped too: two runs that share a probe set (same data
and probe settings and seed) were scored on the very same episodes and classes, so both
are resampled with the same draws (paired); other pairs are resampled independently.
"""

from __future__ import annotations

import contextlib
import csv
import io
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import figures
from .atomic import atomic_write_text
from .config import ExperimentConfig
from .metrics import (
    bootstrap_accuracies,
    bootstrap_ci,
    bootstrap_weights,
    oneshot_episodes,
    oneshot_scores,
    percentile_ci,
)
from .record import RunReader, open_run
from .record_format import RUN_JSON, RunRecordError
from .seeds import stream_seed
from .snapshot import RunInfo, Snapshot

MAX_RUNS = 8
MIN_RUNS = 2
# One colour per compared run, the same in every comparison panel (tab10's strong
# colours without its grey, which the baselines use).
COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b",
           "#e377c2")
# Never a "difference" between runs: free text, and the projection settings (how the
# app draws a run, not what was trained).
IGNORED_FIELDS = ("name", "description")
IGNORED_SECTIONS = ("projection.",)
SWEEP_TOML, SWEEP_RUNS = "sweep.toml", "runs"


class CompareError(ValueError):
    """Runs that cannot be compared as asked; str() is one readable line."""


# ---------------------------------------------------------------------------------------
# Which runs


def run_paths(paths: Sequence[str | os.PathLike]) -> list[Path]:
    """The run folders to compare: each path is a run folder, or a sweep folder whose
    runs are all added (in folder-name order). 2..MAX_RUNS distinct runs, else
    CompareError naming what is wrong."""
    out: list[Path] = []
    for given in paths:
        p = Path(given)
        if not p.is_dir():
            raise CompareError(f"{p} is not a folder (a run or a sweep folder)")
        if (p / SWEEP_TOML).is_file():
            found = sorted(d for d in (p / SWEEP_RUNS).glob("*") if (d / RUN_JSON).is_file()) \
                if (p / SWEEP_RUNS).is_dir() else []
            if not found:
                raise CompareError(f"the sweep folder {p} has no recorded run yet")
            out.extend(found)
        elif (p / RUN_JSON).is_file():
            out.append(p)
        else:
            raise CompareError(f"{p} is neither a GSH Lab run (no {RUN_JSON}) nor a sweep "
                               f"folder (no {SWEEP_TOML})")
    seen: set[Path] = set()
    unique = []
    for p in out:
        key = p.resolve()
        if key not in seen:
            seen.add(key)
            unique.append(p)
    if len(unique) < MIN_RUNS:
        raise CompareError(f"runs: compare needs {MIN_RUNS} to {MAX_RUNS} different runs, "
                           f"got {len(unique)}")
    if len(unique) > MAX_RUNS:
        raise CompareError(f"runs: compare needs {MIN_RUNS} to {MAX_RUNS} runs, got "
                           f"{len(unique)} (choose fewer, or fewer sweep folders)")
    return unique


# ---------------------------------------------------------------------------------------
# What differs


def config_fields(config: ExperimentConfig) -> dict[str, object]:
    """Every setting by its dotted name ("model.depth": 2), seed included."""
    out: dict[str, object] = {}

    def walk(prefix: str, d: dict) -> None:
        for k, v in d.items():
            if isinstance(v, dict):
                walk(f"{prefix}{k}.", v)
            else:
                out[f"{prefix}{k}"] = v

    walk("", config.to_dict())
    return out


def differing_fields(configs: Sequence[ExperimentConfig]) -> list[str]:
    """The settings whose values are not the same in every config (dotted names, in the
    config's order; the seed last, as in "depth=4 · seed 1")."""
    tables = [config_fields(c) for c in configs]
    names = [k for k in tables[0] if k not in IGNORED_FIELDS
             and not k.startswith(IGNORED_SECTIONS)]
    diff = [k for k in names if len({repr(t.get(k)) for t in tables}) > 1]
    if "seed" in diff:
        diff.remove("seed")
        diff.append("seed")
    return diff


def format_value(v: object) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


def field_labels(fields: Sequence[str]) -> dict[str, str]:
    """Short labels: the last part of a dotted name ("depth"), the whole name where two
    fields would share it (data.seen_classes and probe.seen_classes)."""
    leaves = [f.rsplit(".", 1)[-1] for f in fields]
    return {f: (leaf if leaves.count(leaf) == 1 else f) for f, leaf in zip(fields, leaves,
                                                                          strict=True)}


def short_names(configs: Sequence[ExperimentConfig], folders: Sequence[str],
                fields: Sequence[str] | None = None) -> list[str]:
    """A name per run from what differs ("depth=4 · seed 1"); runs whose settings are
    all the same are named by their folders; names stay distinct."""
    fields = differing_fields(configs) if fields is None else list(fields)
    labels = field_labels(fields)
    names = []
    for cfg, folder in zip(configs, folders, strict=True):
        values = config_fields(cfg)
        parts = [f"seed {values[f]}" if f == "seed" else f"{labels[f]}={format_value(values[f])}"
                 for f in fields]
        names.append(" · ".join(parts) if parts else str(folder))
    for i, n in enumerate(names):  # the same settings twice (a rerun): add the folder
        if names.count(n) > 1:
            names[i] = f"{n} · {folders[i]}"
    for i, n in enumerate(names):
        if names[:i].count(n):
            names[i] = f"{n} #{i + 1}"
    return names


# ---------------------------------------------------------------------------------------
# Intervals


@dataclass(frozen=True)
class Estimate:
    """A figure with its 95% interval [low, high] over `n` episodes."""

    value: float
    low: float
    high: float
    n: int = 0
    paired: bool = False  # a difference resampled with the same draws for both runs

    def text(self, digits: int = 3, signed: bool = False) -> str:
        """"0.912 [0.880, 0.941]" (signed: "+0.120 [+0.080, +0.161]", a difference)."""
        if not math.isfinite(self.value):
            return "–"
        f = f"{{:+.{digits}f}}" if signed else f"{{:.{digits}f}}"
        if not (math.isfinite(self.low) and math.isfinite(self.high)):
            return f.format(self.value)
        return f"{f.format(self.value)} [{f.format(self.low)}, {f.format(self.high)}]"


NAN_ESTIMATE = Estimate(math.nan, math.nan, math.nan)


@dataclass(frozen=True)
class Tally:
    """One-shot hits and query counts per (episode, probe class) of a run at a step, and
    its accuracy (engine.metrics.oneshot_scores): what the bootstrap resamples."""

    accuracy: float
    hits: np.ndarray
    counts: np.ndarray
    boot_seed: int

    @property
    def episodes(self) -> int:
        return len(self.counts)


def oneshot_tally(embedding: np.ndarray, run: RunInfo, config: ExperimentConfig) -> Tally:
    """The one-shot tally of `embedding` on the run's episodes, drawn as the run drew
    them (engine.measure.probe_episodes' rule)."""
    probe = run.probe
    unseen = np.flatnonzero(~np.asarray(probe.class_seen, dtype=bool))
    ways = min(config.probe.ways, len(unseen))
    boot = stream_seed(config.seed, "bootstrap")
    if ways < 2:
        return Tally(math.nan, np.zeros((0, 0)), np.zeros((0, 0)), boot)
    episodes = oneshot_episodes(probe.class_index, unseen, ways, config.probe.episodes,
                                seed=stream_seed(config.seed, "episodes"))
    acc, hits, counts = oneshot_scores(embedding, episodes, probe.class_index,
                                       len(probe.classes))
    return Tally(acc, hits, counts, boot)


def tally_estimate(t: Tally) -> Estimate:
    lo, hi = bootstrap_ci(t.hits, t.counts, t.boot_seed) if t.hits.size else (math.nan,) * 2
    return Estimate(t.accuracy, lo, hi, t.episodes)


def difference(a: Tally, b: Tally, paired: bool) -> Estimate:
    """Accuracy a - b with a 95% bootstrap interval: both resampled with the same draws
    of episodes and classes (paired: they were scored on the same ones), else each with
    its own."""
    value = a.accuracy - b.accuracy
    paired = paired and a.counts.shape == b.counts.shape
    wa = bootstrap_weights(a.counts, a.boot_seed) if a.hits.size else None
    wb = wa if paired else (bootstrap_weights(b.counts, b.boot_seed + 1)
                            if b.hits.size else None)
    if wa is None or wb is None:
        return Estimate(value, math.nan, math.nan, min(a.episodes, b.episodes), paired)
    draws = bootstrap_accuracies(a.hits, a.counts, wa) - bootstrap_accuracies(
        b.hits, b.counts, wb)
    lo, hi = percentile_ci(draws)
    return Estimate(value, lo, hi, min(a.episodes, b.episodes), paired)


# ---------------------------------------------------------------------------------------
# The runs side by side


def nearest_step(steps: Sequence[int], step: int) -> int | None:
    """The recorded step nearest `step` (the earlier one on a tie); None without steps."""
    if not len(steps):
        return None
    s = np.asarray(steps)
    i = int(np.argmin(np.abs(s - int(step))))
    return int(s[i])


@dataclass
class ComparedRun:
    """One run of a comparison: its reader, colour and short name."""

    reader: RunReader
    name: str
    colour: str
    index: int
    _tallies: dict[int, Tally] = field(default_factory=dict, repr=False)

    @property
    def path(self) -> Path:
        return self.reader.path

    @property
    def config(self) -> ExperimentConfig:
        return self.reader.config

    @property
    def steps(self) -> list[int]:
        return self.reader.steps

    def nearest(self, step: int) -> int | None:
        return nearest_step(self.reader.steps, step)

    def snapshot_near(self, step: int) -> Snapshot | None:
        """The recorded snapshot nearest `step` (a damaged one: the next nearest)."""
        order = sorted(self.reader.steps, key=lambda s: (abs(s - step), s))
        for s in order:
            try:
                return self.reader.snapshot(s)
            except RunRecordError:
                continue
        return None

    def tally(self, step: int) -> Tally | None:
        """The one-shot tally at the recorded `step` (cached); None for a damaged
        snapshot or probe set."""
        if step not in self._tallies:
            try:
                snap = self.reader.snapshot(step)
                self._tallies[step] = oneshot_tally(snap.embedding, self.reader.run_info,
                                                    self.reader.config)
            except RunRecordError:
                return None
        return self._tallies[step]

    def oneshot(self, step: int | None = None) -> Estimate:
        """One-shot accuracy (unseen classes) at `step` (default: the last) with its 95%
        interval: the recorded one (history.csv), else bootstrapped from the record."""
        step = self.steps[-1] if step is None else self.nearest(step)
        if step is None:
            return NAN_ESTIMATE
        row = next((r for r in self.reader.rows if r.get("step") == step), {})
        lo_col, hi_col = figures.FIGURES["oneshot_trained"].ci_columns
        value, lo, hi = (figures.value(row, k) for k in ("oneshot_trained", lo_col, hi_col))
        if math.isfinite(value) and math.isfinite(lo) and math.isfinite(hi):
            n = self.config.probe.episodes
            return Estimate(value, lo, hi, n)
        t = self.tally(step)
        return NAN_ESTIMATE if t is None else tally_estimate(t)


def probe_set_differences(a: ExperimentConfig, b: ExperimentConfig) -> list[str]:
    """The data, probe and seed settings in which the two configs differ."""
    fa, fb = config_fields(a), config_fields(b)
    keys = [k for k in fa if k.startswith(("data.", "probe.")) or k == "seed"]
    return [k for k in keys if fa[k] != fb.get(k)]


def same_probe_set(a: ExperimentConfig, b: ExperimentConfig) -> bool:
    """Runs of these configs share their probe set and one-shot episodes: the same data
    and probe settings and seed."""
    return not probe_set_differences(a, b)


def shares_probe(a: ComparedRun, b: ComparedRun) -> bool:
    return same_probe_set(a.config, b.config)


def same_probe_classes(a: RunInfo, b: RunInfo) -> bool:
    """The same probe classes in the same matrix order (ids and seen/unseen split)."""
    return (np.array_equal(np.asarray(a.probe.classes), np.asarray(b.probe.classes))
            and np.array_equal(np.asarray(a.probe.class_seen), np.asarray(b.probe.class_seen)))


@dataclass(frozen=True)
class HeatmapDifference:
    """Collision heatmap of run A minus run B (sharing a probe set) at the steps shown
    (A's and B's)."""

    matrix: np.ndarray
    step_a: int
    step_b: int
    n_seen: int

    @property
    def largest(self) -> float:
        return float(np.max(np.abs(self.matrix))) if self.matrix.size else 0.0


# The diff table's figures after the one-shot (engine/figures.py names and labels them)
TABLE_FIGURES = ("collision_ratio", "gamma_r2_trained", "theta_r2_trained")


class Comparison:
    """2..8 recorded runs, each with a colour and a short name from what differs."""

    def __init__(self, readers: Sequence[RunReader]):
        if not MIN_RUNS <= len(readers) <= MAX_RUNS:
            raise CompareError(f"runs: compare needs {MIN_RUNS} to {MAX_RUNS} runs, got "
                               f"{len(readers)}")
        for r in readers:
            if not r.steps:
                raise CompareError(f"{r.path} has no snapshot yet")
        configs = [r.config for r in readers]
        self.fields = differing_fields(configs)
        self.labels = field_labels(self.fields)
        names = short_names(configs, [r.path.name for r in readers], self.fields)
        self.runs = [ComparedRun(r, n, COLOURS[i], i)
                     for i, (r, n) in enumerate(zip(readers, names, strict=True))]

    def __len__(self) -> int:
        return len(self.runs)

    @property
    def what_differs(self) -> str:
        """One line: the differing settings, or that only the folders differ."""
        if not self.fields:
            return "the same settings (runs named by folder)"
        return ", ".join(self.fields)

    def refresh(self) -> dict[int, list[int]]:
        """Re-read every run (a live writer may have added snapshots): new steps by run."""
        out = {}
        for run in self.runs:
            new = run.reader.refresh()
            if new:
                out[run.index] = new
        return out

    def all_steps(self) -> list[int]:
        """Every step some run recorded (the comparison's timeline)."""
        return sorted({s for run in self.runs for s in run.steps})

    def values(self, run: ComparedRun) -> dict[str, str]:
        v = config_fields(run.config)
        return {f: format_value(v[f]) for f in self.fields}

    def table(self, reference: int = 0) -> tuple[list[str], list[list[object]]]:
        """The parameter diff table: a row per run with the differing settings and its
        final figures; the last column is its one-shot difference from run `reference`
        with a 95% interval (paired where they share a probe set)."""
        ref = self.runs[reference]
        columns = (["run"] + [self.labels[f] for f in self.fields]
                   + ["status", "steps", figures.label("oneshot_trained"),
                      *(figures.label(f) for f in TABLE_FIGURES), f"one-shot − {ref.name}"])
        rows = []
        for run in self.runs:
            r = run.reader
            last = r.rows[-1] if r.rows else {}
            values = self.values(run)
            diff = self.oneshot_difference(run.index, reference) if run is not ref else None
            rows.append([run.name] + [values[f] for f in self.fields]
                        + [r.display_status, last.get("step"), run.oneshot()]
                        + [figures.value(last, f) for f in TABLE_FIGURES] + [diff])
        return columns, rows

    def oneshot_difference(self, a: int, b: int, step: int | None = None) -> Estimate:
        """One-shot of run a minus run b (at the steps nearest `step`, default each run's
        last) with a 95% bootstrap interval, paired where they share a probe set."""
        ra, rb = self.runs[a], self.runs[b]
        sa = ra.steps[-1] if step is None else ra.nearest(step)
        sb = rb.steps[-1] if step is None else rb.nearest(step)
        if sa is None or sb is None:
            return NAN_ESTIMATE
        ta, tb = ra.tally(sa), rb.tally(sb)
        if ta is None or tb is None:
            return NAN_ESTIMATE
        return difference(ta, tb, paired=shares_probe(ra, rb))

    def heatmap_difference(self, a: int, b: int, step: int) -> HeatmapDifference:
        """Collision heatmap of run a minus run b at the steps nearest `step`;
        CompareError unless they share a probe set (other probe points, or other classes,
        make the cell-by-cell difference meaningless)."""
        ra, rb = self.runs[a], self.runs[b]
        differ = probe_set_differences(ra.config, rb.config)
        if differ:
            raise CompareError(
                "the difference needs runs that share a probe set (the same data config "
                f"and seed): {ra.name} and {rb.name} differ in {', '.join(differ)}")
        try:
            ia, ib = ra.reader.run_info, rb.reader.run_info
        except RunRecordError as exc:
            raise CompareError(str(exc)) from exc
        if not same_probe_classes(ia, ib):
            raise CompareError(
                f"{ra.name} and {rb.name} have different probe classes "
                f"({len(ia.probe.classes)} vs {len(ib.probe.classes)} classes, or another "
                "seen/unseen split): their heatmaps cannot be subtracted")
        snap_a, snap_b = ra.snapshot_near(step), rb.snapshot_near(step)
        if snap_a is None or snap_b is None:
            raise CompareError("a run has no readable snapshot")
        m = (np.asarray(snap_a.collision_matrix, dtype=np.float64)
             - np.asarray(snap_b.collision_matrix, dtype=np.float64))
        return HeatmapDifference(m, snap_a.step, snap_b.step, int(np.sum(ia.probe.class_seen)))


def open_comparison(paths: Sequence[str | os.PathLike]) -> Comparison:
    """Open 2..8 runs (sweep folders add all their runs) for comparison."""
    return Comparison([open_run(p) for p in run_paths(paths)])


def table_csv(columns: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """The diff table as CSV text: numbers in full, a figure with an interval as three
    columns (value, low, high)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    estimate = [any(isinstance(r[j], Estimate) for r in rows) for j in range(len(columns))]
    head = []
    for name, est in zip(columns, estimate, strict=True):
        head += [name, f"{name} low", f"{name} high"] if est else [name]
    w.writerow(head)
    for row in rows:
        out: list[object] = []
        for v, est in zip(row, estimate, strict=True):
            if est:
                out += ([repr(v.value), repr(v.low), repr(v.high)] if isinstance(v, Estimate)
                        else ["", "", ""])
            elif isinstance(v, float):
                out.append(repr(v))
            else:
                out.append("" if v is None else v)
        w.writerow(out)
    return buf.getvalue()


def write_table_csv(path: str | os.PathLike, columns: Sequence[str],
                    rows: Sequence[Sequence[object]]) -> Path:
    return atomic_write_text(path, table_csv(columns, rows))


def smooth(y: np.ndarray, weight: float) -> np.ndarray:
    """TensorBoard's smoothing: an exponential moving average, debiased at the start
    (weight 0: the curve itself, up to 0.99); NaN points are skipped, not spread."""
    if not 0 <= weight < 1:
        raise ValueError(f"smoothing must be in [0, 0.99], got {weight}")
    y = np.asarray(y, dtype=np.float64)
    if weight == 0:
        return y.copy()
    out = np.full_like(y, np.nan)
    acc, norm = 0.0, 0.0
    for i, v in enumerate(y):
        if not math.isfinite(v):
            continue
        acc = acc * weight + (1 - weight) * v
        norm = norm * weight + (1 - weight)
        out[i] = acc / norm
    return out


def projection(reader: RunReader, step: int, compute: bool = False,
               write_cache: bool = True) -> tuple[np.ndarray, str]:
    """The 2-D projection of the run's representation at the recorded `step`: the frame
    the run's record caches, else, with `compute`, one made in the run's own method
    (UMAP or PCA; written to the cache), else a PCA stand-in ("pca stand-in")."""
    from .animation import _project
    from .projection_maths import pca_2d

    cached = reader.read_frame("embedding", step)
    if cached is not None:
        return np.asarray(cached[0], dtype=np.float64), cached[1]
    embedding = reader.snapshot(step).embedding
    if not compute:
        return pca_2d(embedding), "pca stand-in"
    coords, method = _project(np.asarray(embedding, dtype=np.float32), reader.config, None)
    if write_cache:
        with contextlib.suppress(OSError):
            reader.write_frame("embedding", step, coords, method)
    return np.asarray(coords, dtype=np.float64), method
