"""Comparing recorded runs, Qt-free: which runs (sweep folders add all theirs), a colour
and a short name per run from the parameters that differ ("depth=4 · seed 1"), the
parameter diff table with each run's final figures, the nearest recorded step of each
run to a chosen one, the collision heatmap of run A minus run B, and one-shot
differences with a 95% interval.

One-shot intervals come from the run's own episodes: the record holds the snapshot's
embedding and the probe set, and the episodes are drawn again from the run's seed
(engine.training.probe_episodes' rule), so each episode's accuracy is measured anew
(from the float16 embedding: within about 0.01 of the recorded figure). Two runs that
share a probe set (same data and probe settings and seed) are scored on the very same
episodes, so their difference is paired, episode by episode; other pairs are compared
as independent samples (Welch).
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
from .metrics import oneshot_episodes
from .record import RUN_JSON, RunReader, RunRecordError, open_run
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


# Student's t 97.5% quantiles for 1..30 degrees of freedom (a 95% two-sided interval).
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201,
         2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069,
         2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042)


def t_quantile_975(df: int) -> float:
    """Student's t 97.5% quantile for `df` degrees of freedom: tabulated to 30, a
    Cornish-Fisher expansion above (error < 1e-4 there; scipy.stats costs 2 s to import)."""
    if df < 1:
        return math.inf
    if df <= len(_T975):
        return _T975[df - 1]
    z = 1.959964
    return (z + (z ** 3 + z) / (4 * df) + (5 * z ** 5 + 16 * z ** 3 + 3 * z) / (96 * df ** 2)
            + (3 * z ** 7 + 19 * z ** 5 + 17 * z ** 3 - 15 * z) / (384 * df ** 3))


@dataclass(frozen=True)
class Estimate:
    """A figure with its 95% interval [low, high] over `n` episodes."""

    value: float
    low: float
    high: float
    n: int
    paired: bool = False  # a difference measured episode by episode on shared episodes

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2

    def text(self, digits: int = 3, signed: bool = False) -> str:
        """"0.912 ± 0.031" (signed: "+0.120 ± 0.045", for a difference)."""
        if not math.isfinite(self.value):
            return "–"
        value = f"{self.value:+.{digits}f}" if signed else f"{self.value:.{digits}f}"
        half = self.half_width
        return f"{value} ± {half:.{digits}f}" if math.isfinite(half) else f"{value} ± ∞"


def mean_interval(values: np.ndarray) -> Estimate:
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    n = len(v)
    if n == 0:
        return Estimate(math.nan, math.nan, math.nan, 0)
    m = float(v.mean())
    if n == 1:
        return Estimate(m, -math.inf, math.inf, 1)
    h = t_quantile_975(n - 1) * float(v.std(ddof=1)) / math.sqrt(n)
    return Estimate(m, m - h, m + h, n)


def difference_interval(a: np.ndarray, b: np.ndarray, paired: bool) -> Estimate:
    """a - b with a 95% interval: paired (episode by episode) or Welch's."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if paired and len(a) == len(b):
        e = mean_interval(a - b)
        return Estimate(e.value, e.low, e.high, e.n, paired=True)
    na, nb = len(a), len(b)
    d = float(a.mean() - b.mean()) if na and nb else math.nan
    if na < 2 or nb < 2:
        return Estimate(d, -math.inf, math.inf, min(na, nb))
    va, vb = float(a.var(ddof=1)) / na, float(b.var(ddof=1)) / nb
    se = math.sqrt(va + vb)
    if se == 0:
        return Estimate(d, d, d, min(na, nb))
    df = (va + vb) ** 2 / (va ** 2 / (na - 1) + vb ** 2 / (nb - 1))
    h = t_quantile_975(max(int(df), 1)) * se
    return Estimate(d, d - h, d + h, min(na, nb))


def episode_accuracies(embedding: np.ndarray, run: RunInfo,
                       config: ExperimentConfig) -> np.ndarray:
    """Each of the run's one-shot episodes' accuracy on `embedding` (cosine nearest
    exemplar among the episode's classes), the episodes drawn as the run drew them."""
    probe = run.probe
    unseen = np.flatnonzero(~np.asarray(probe.class_seen, dtype=bool))
    ways = min(config.probe.ways, len(unseen))
    if ways < 2:
        return np.zeros(0)
    episodes = oneshot_episodes(probe.class_index, unseen, ways, config.probe.episodes,
                                seed=stream_seed(config.seed, "episodes"))
    f = np.asarray(embedding, dtype=np.float64)
    norms = np.linalg.norm(f, axis=1, keepdims=True)
    f = f / np.where(norms > 0, norms, 1.0)
    out = np.empty(len(episodes))
    for i, (support, queries, targets) in enumerate(episodes):
        guess = np.argmax(f[queries] @ f[support].T, axis=1)
        out[i] = float(np.mean(guess == targets)) if len(queries) else math.nan
    return out


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
    _accuracies: dict[int, np.ndarray] = field(default_factory=dict, repr=False)

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

    def episode_accuracies(self, step: int) -> np.ndarray:
        """One-shot accuracy per episode at the recorded `step` (cached)."""
        if step not in self._accuracies:
            try:
                snap = self.reader.snapshot(step)
                acc = episode_accuracies(snap.embedding, self.reader.run_info,
                                         self.reader.config)
            except RunRecordError:  # a damaged snapshot or probe set: no figure
                acc = np.zeros(0)
            self._accuracies[step] = acc
        return self._accuracies[step]

    def oneshot(self, step: int | None = None) -> Estimate:
        """One-shot accuracy (unseen classes) at `step` (default: the last) with its
        95% interval over the run's episodes."""
        step = self.steps[-1] if step is None else self.nearest(step)
        if step is None:
            return Estimate(math.nan, math.nan, math.nan, 0)
        return mean_interval(self.episode_accuracies(step))


def same_probe_set(a: ExperimentConfig, b: ExperimentConfig) -> bool:
    """Runs of these configs share their probe set and one-shot episodes: the same data
    and probe settings and seed."""
    fa, fb = config_fields(a), config_fields(b)
    keys = [k for k in fa if k.startswith(("data.", "probe.")) or k == "seed"]
    return all(fa[k] == fb.get(k) for k in keys)


def shares_probe(a: ComparedRun, b: ComparedRun) -> bool:
    return same_probe_set(a.config, b.config)


def same_probe_classes(a: RunInfo, b: RunInfo) -> bool:
    """The same probe classes in the same matrix order (ids and seen/unseen split)."""
    return (np.array_equal(np.asarray(a.probe.classes), np.asarray(b.probe.classes))
            and np.array_equal(np.asarray(a.probe.class_seen), np.asarray(b.probe.class_seen)))


@dataclass(frozen=True)
class HeatmapDifference:
    """Collision heatmap of run A minus run B at the steps shown (A's and B's)."""

    matrix: np.ndarray
    step_a: int
    step_b: int
    n_seen: int
    shared_probe: bool  # same probe set (same gammas), not only the same class layout

    @property
    def largest(self) -> float:
        return float(np.max(np.abs(self.matrix))) if self.matrix.size else 0.0


# The diff table's figure columns: (header, how it is read from a history row + RunInfo)
FIGURE_COLUMNS = ("one-shot", "± 95%", "unseen collision ratio", "gamma R²", "theta R²")


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
                   + ["status", "steps", *FIGURE_COLUMNS, f"one-shot − {ref.name}"])
        rows = []
        for run in self.runs:
            r = run.reader
            last = r.rows[-1] if r.rows else {}
            est = run.oneshot()
            values = self.values(run)
            diff = self.oneshot_difference(run.index, reference) if run is not ref else None
            rows.append(
                [run.name] + [values[f] for f in self.fields]
                + [r.display_status, last.get("step"), est.value, est.half_width,
                   figures.value(last, "collision_ratio"),
                   last.get("gamma_r2_trained", math.nan), last.get("theta_r2_trained", math.nan),
                   diff])
        return columns, rows

    def oneshot_difference(self, a: int, b: int, step: int | None = None) -> Estimate:
        """One-shot of run a minus run b (at the steps nearest `step`, default each run's
        last) with a 95% interval: paired on shared episodes, else Welch's."""
        ra, rb = self.runs[a], self.runs[b]
        sa = ra.steps[-1] if step is None else ra.nearest(step)
        sb = rb.steps[-1] if step is None else rb.nearest(step)
        return difference_interval(ra.episode_accuracies(sa), rb.episode_accuracies(sb),
                                   paired=shares_probe(ra, rb))

    def heatmap_difference(self, a: int, b: int, step: int) -> HeatmapDifference:
        """Collision heatmap of run a minus run b at the steps nearest `step`;
        CompareError when their probe classes differ."""
        ra, rb = self.runs[a], self.runs[b]
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
        return HeatmapDifference(m, snap_a.step, snap_b.step,
                                 int(np.sum(ia.probe.class_seen)), shares_probe(ra, rb))


def open_comparison(paths: Sequence[str | os.PathLike]) -> Comparison:
    """Open 2..8 runs (sweep folders add all their runs) for comparison."""
    return Comparison([open_run(p) for p in run_paths(paths)])


def table_csv(columns: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """The diff table as CSV text (numbers in full; a difference as value, low, high)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    head = list(columns[:-1]) + [columns[-1], f"{columns[-1]} low", f"{columns[-1]} high"]
    w.writerow(head)
    for row in rows:
        out = []
        for v in row[:-1]:
            out.append("" if v is None else (repr(float(v)) if isinstance(v, float) else v))
        d = row[-1]
        out += ["", "", ""] if d is None else [repr(d.value), repr(d.low), repr(d.high)]
        w.writerow(out)
    return buf.getvalue()


def write_table_csv(path: str | os.PathLike, columns, rows) -> Path:
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
