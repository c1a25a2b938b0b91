"""Reading a run record: run.json checked, the config, history and snapshot list on open,
arrays on demand, every file through engine.guard and sized by the run's own config. The
layout is engine.record_format's; engine.record_writer writes it."""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import math
import os
import re
import stat
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from . import guard
from .config import ConfigError, ExperimentConfig, from_dict
from .record_format import (
    CONFIG,
    DID_NOT_FINISH,
    HALF_PRECISION,
    HISTORY,
    MAX_TEXT,
    PROBE,
    RUN_JSON,
    SCHEMA_VERSION,
    SNAPSHOTS,
    STATUSES,
    RunRecordError,
    from_fields,
    history_columns,
    read_frame,
    split_meta,
    write_frame,
    writer_alive,
)
from .snapshot import ProbeSet, RunInfo, Snapshot

JSON_MAX = 1 << 20  # run.json, metrics.json: a few KB when GSH Lab writes them
CONFIG_MAX = 256 * 1024  # config.toml: under 1 KB when GSH Lab writes it
MAX_HISTORY_ROWS = 50_000  # a run of more snapshots would fill over 10 GB
DAMAGED = "damaged"  # the status shown for a run.json that cannot be read
_STEP = re.compile(r"[0-9]{1,12}")
_TEXT_COLUMNS = ("collapsed",)


def _parse_cell(v: str) -> Any:
    for conv in (int, float):
        try:
            return conv(v)
        except ValueError:
            pass
    return v


def _number(v: str) -> float | None:
    """A history cell as a float ("" and "nan" are NaN); None when it is not a number."""
    if v == "":
        return math.nan
    try:
        return float(v)
    except ValueError:
        return None


class _Sizes:
    """What a run's config implies: probe rows n, probe classes C, class pairs P, and the
    byte budgets of its NPZ files (twice the arrays' implied size plus room for meta)."""

    def __init__(self, cfg: ExperimentConfig):
        self.C = cfg.probe.seen_classes + cfg.data.unseen_classes
        self.n = self.C * cfg.probe.per_class
        self.P = self.C * (self.C - 1) // 2
        d, e = cfg.data, cfg.model.embed_dim
        self.embed_dim = e
        probe = self.n * (d.x_dim + d.theta_dim + 2) + self.C * (d.gamma_dim + 2) + 3 * self.P
        snap = self.n * e + self.C * self.C + 2 * self.P
        self.probe_bytes = 16 * probe + (256 << 10)
        self.snapshot_bytes = 16 * snap + (256 << 10)
        every = max(cfg.train.snapshot_every, 1)
        self.total_steps = cfg.train.steps
        self.max_rows = min(MAX_HISTORY_ROWS, cfg.train.steps // every + 2)

    PROBE_SPEC: guard.Spec = {
        "x": ("f", (None, None)), "label": ("iu", (None,)), "seen": ("b", (None,)),
        "theta": ("f", (None, None)), "classes": ("iu", (None,)), "class_seen": ("b", (None,)),
        "gamma": ("f", (None, None))}

    @staticmethod
    def snapshot_spec(n: int, C: int) -> guard.Spec:
        """A snapshot's arrays as its run's probe set implies (n rows, C classes)."""
        return {"embedding": ("f", (n, None)), "collision_matrix": ("f", (C, C)),
                "pair_collision": ("f", (C * (C - 1) // 2,))}


def read_run_json(path: str | os.PathLike) -> dict:
    """A run folder's run.json, checked: a table with an integer schema_version this
    version reads, and its other fields of the right types (a wrong one is dropped: a
    status that is not one of STATUSES reads as "damaged", a `final` that is not a table
    as none). RunRecordError when it is missing or unreadable; FileNotFoundError when
    the folder has none."""
    path = Path(path)
    info_path = path / RUN_JSON
    try:
        info = guard.parse_json(guard.read_text(info_path, path, JSON_MAX, "a run.json"),
                                info_path)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise RunRecordError(f"{info_path} cannot be read ({exc.strerror or exc})") from None
    if not isinstance(info, dict):
        raise RunRecordError(f"{info_path} is not a table of fields")
    version = info.get("schema_version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise RunRecordError(f"{info_path} has an invalid schema_version {str(version)[:20]!r}")
    if version > SCHEMA_VERSION:
        raise RunRecordError(
            f"{path} was recorded by a newer GSH Lab (run schema {version}; this "
            f"version reads up to {SCHEMA_VERSION}): update GSH Lab to open it"
        )
    clean = dict(info)
    status = info.get("status", "running")
    clean["status"] = status if status in STATUSES else DAMAGED
    if not isinstance(info.get("error"), (str, type(None))):
        clean["error"] = str(info.get("error"))[:MAX_TEXT]
    if status not in STATUSES:
        clean["error"] = f"run.json: status {str(status)[:40]!r} is not a GSH Lab status"
    for key in ("final", "versions"):
        if not isinstance(info.get(key), (dict, type(None))):
            clean[key] = None
    for key in ("name", "family", "created", "finished", "device", "host"):
        if key in info and not isinstance(info[key], (str, type(None))):
            clean[key] = str(info[key])[:200]
    for key in ("steps", "seed", "pid"):
        v = info.get(key)
        if key in info and (isinstance(v, bool) or not isinstance(v, (int, type(None)))):
            clean[key] = None
    return clean




def warn_problems(reader: RunReader, say: Callable[[str], object]) -> None:
    """Name a run's damaged parts, one `say(line)` each (the first five and a count)."""
    for p in reader.problems[:5]:
        say(f"gsh-lab: warning: {p}")
    if len(reader.problems) > 5:
        say(f"gsh-lab: warning: and {len(reader.problems) - 5} more damaged parts")


def open_run(path: str | os.PathLike) -> RunReader:
    """Open a run folder: run.json, config and history now, arrays on demand."""
    return RunReader(path)


class RunReader:
    """A recorded run, read lazily and guardedly (engine.guard). Summary on open: `info`
    (run.json), `status`, `display_status`, `config`, `rows` (history), `steps`
    (snapshots on disk), `problems` (damaged or missing files, each named). On demand:
    `run_info` (probe set, sizes, baselines), `snapshot(step)`, `latest()`,
    `read_frame(...)`; `refresh()` picks up snapshots a live writer added since. For
    notebooks: `history` (columns as numpy arrays), `arrays(step)` (a snapshot's arrays
    by name), `metrics` (final figures).

    A damaged required file (run.json, config.toml, probe.npz) is a RunRecordError; a
    damaged snapshot, frame or history row is skipped and named in `problems`."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        if not self.path.is_dir():
            raise RunRecordError(f"{self.path} is not a folder")
        try:
            info = read_run_json(self.path)
        except FileNotFoundError:
            raise RunRecordError(f"{self.path} is not a GSH Lab run (no {RUN_JSON})") from None
        self.info: dict = info
        self.schema_version = info["schema_version"]
        cfg_path = self.path / CONFIG
        try:
            text = guard.read_text(cfg_path, self.path, CONFIG_MAX, "a run's config")
            self.config = from_dict(guard.parse_toml(text, cfg_path))
        except FileNotFoundError:
            raise RunRecordError(f"{cfg_path} is missing") from None
        except ConfigError as exc:
            raise RunRecordError(f"{cfg_path}: {exc}") from None
        except (OSError, RecursionError) as exc:
            raise RunRecordError(f"{cfg_path} cannot be read ({exc})") from None
        self.sizes = _Sizes(self.config)
        self._run_info: RunInfo | None = None
        self._shape: tuple[int, int] | None = None  # the probe's rows and classes
        self._bad: dict[int, str] = {}  # step -> why its snapshot cannot be read
        self.problems: list[str] = []
        self.rows: list[dict] = []
        self.steps: list[int] = []
        self.refresh()

    # summary

    @property
    def status(self) -> str:
        return self.info.get("status", "running")

    @property
    def error(self) -> str | None:
        return self.info.get("error")

    @property
    def live(self) -> bool:
        """A writer is still recording this run."""
        return self.status == "running" and writer_alive(self.path)

    @property
    def display_status(self) -> str:
        """The status for people: "did not finish" for a run whose writer is gone."""
        if self.status == "running" and not writer_alive(self.path):
            return DID_NOT_FINISH
        return self.status

    @property
    def name(self) -> str:
        return self.path.name

    def _snapshot_files(self) -> dict[int, Path]:
        """Snapshot files by step: names of ASCII digits, steps within the run, at most
        as many as the run can make (the listing stops there)."""
        on_disk: dict[int, Path] = {}
        folder = self.path / SNAPSHOTS
        try:
            guard.inside(self.path, folder)
            entries = os.scandir(folder)
        except (OSError, RunRecordError) as exc:
            if not isinstance(exc, FileNotFoundError):
                self.problems.append(f"{folder}: {exc}; no snapshot read")
            return on_disk
        with entries:
            for i, entry in enumerate(entries):
                if i > 4 * self.sizes.max_rows + 1000 or len(on_disk) > self.sizes.max_rows:
                    self.problems.append(f"{folder} holds more files than the run can make; "
                                         "the rest is ignored")
                    break
                stem, dot, ext = entry.name.partition(".")
                if ext != "npz":
                    continue
                if not _STEP.fullmatch(stem) or int(stem) > self.sizes.total_steps:
                    self.problems.append(f"{folder / entry.name[:60]} is not a snapshot of "
                                         "this run; skipped")
                    continue
                on_disk[int(stem)] = Path(entry.path)
        return on_disk

    def refresh(self) -> list[int]:
        """Re-read run.json, history.csv and the snapshot list; returns new steps."""
        with contextlib.suppress(OSError, RunRecordError):
            info = read_run_json(self.path)
            if info.get("schema_version") == self.schema_version:
                self.info = info
        problems: list[str] = []
        self.problems = problems
        on_disk = self._snapshot_files()
        rows = self._read_history()
        row_steps = {r.get("step") for r in rows}
        known = set(self.steps)
        steps = []
        for step in sorted(on_disk):
            if step not in known and step not in self._bad:
                why = self._check_snapshot(step, on_disk[step])
                if why is not None:
                    self._bad[step] = why
            if step in self._bad:
                problems.append(self._bad[step])
                continue
            steps.append(step)
            if step not in row_steps:  # killed between the snapshot and its history row
                try:
                    rows.append(self._scalars_of(step))
                except RunRecordError:
                    problems.append(self._bad.get(step, f"snapshot {on_disk[step]} is damaged"))
                    steps.pop()
        missing = [r.get("step") for r in rows if r.get("step") not in on_disk]
        for gone in missing[:3]:
            problems.append(f"snapshot {self.path / SNAPSHOTS / f'{gone}.npz'} is missing; "
                            "its figures are in history.csv")
        if len(missing) > 3:
            problems.append(f"and {len(missing) - 3} more snapshots are missing; their "
                            "figures are in history.csv")
        rows.sort(key=lambda r: r.get("step", 0))
        new = [s for s in steps if s not in known]
        self.rows, self.steps = rows, steps
        return new

    def _check_snapshot(self, step: int, path: Path) -> str | None:
        """Why the snapshot file cannot be read, from its stat and zip directory (cheap:
        nothing is unpacked; the arrays are checked when read), or None."""
        try:
            st = os.lstat(path)  # listed inside the folder: only a link needs resolving
            if stat.S_ISLNK(st.st_mode):
                st = guard.check_regular(path, self.path)
                path = guard.real(path)
            elif not stat.S_ISREG(st.st_mode):
                raise RunRecordError(f"{path} is not a regular file: refused")
            if st.st_size > self._snapshot_limit():
                raise RunRecordError(f"{path} is larger than a snapshot of this run can be")
            with zipfile.ZipFile(path) as zf:
                names = {i.filename for i in zf.infolist()}
            missing = [k for k in _Sizes.snapshot_spec(0, 0) if f"{k}.npy" not in names]
            if missing:
                raise RunRecordError(f"{path} lacks the array {missing[0]!r}")
        except (OSError, RunRecordError, zipfile.BadZipFile, ValueError) as exc:
            text = str(exc) if isinstance(exc, RunRecordError) else \
                f"{path} is truncated or corrupt"
            return f"snapshot {step}: {text}; skipped"
        return None

    def _snapshot_limit(self) -> int:
        extra = self.sizes.probe_bytes if self.schema_version == 1 else 0
        return self.sizes.snapshot_bytes + extra

    def _read_history(self) -> list[dict]:
        """history.csv rows, parsed strictly and in bounded memory: at most as many rows
        as the run makes snapshots (the rest is ignored and named), each row's step an
        integer within the run, numbers as numbers; a bad row is skipped and named; a
        partial last line (a row being appended) is dropped."""
        path = self.path / HISTORY
        limit = self.sizes.max_rows
        try:
            lines = guard.text_lines(path, self.path, limit * guard.MAX_LINE,
                                     2 * limit + 100)
            reader = csv.reader(lines)
            header = next(reader, None)
        except FileNotFoundError:
            return []
        except (OSError, RunRecordError, csv.Error) as exc:
            self.problems.append(f"history.csv: {exc}; read from the snapshots instead")
            return []
        if not header or "step" not in header or len(header) > 200:
            self.problems.append(f"{path} has no step column; read from the snapshots instead")
            return []
        numeric = set(Snapshot.SCALARS) - set(_TEXT_COLUMNS)
        rows: list[dict] = []
        seen: set[int] = set()
        bad = 0
        try:
            for cells in reader:
                if len(rows) >= limit:
                    self.problems.append(f"{path} has more rows than this run makes "
                                         f"({limit}); the rest is ignored")
                    break
                row = self._history_row(header, cells, numeric)
                if row is None or row["step"] in seen:
                    bad += 1
                    continue
                seen.add(row["step"])
                rows.append(row)
        except (RunRecordError, csv.Error) as exc:
            self.problems.append(f"history.csv: {exc}; the rest is ignored")
        if bad:
            self.problems.append(f"{path}: {bad} damaged rows skipped")
        return rows

    def _history_row(self, header: list[str], cells: list[str], numeric: set) -> dict | None:
        if len(cells) != len(header):
            return None
        row: dict = {}
        for k, v in zip(header, cells, strict=True):
            if k == "step":
                if not _STEP.fullmatch(v) or int(v) > self.sizes.total_steps:
                    return None
                row[k] = int(v)
            elif k in numeric:
                x = _number(v)
                if x is None:
                    return None
                row[k] = int(x) if x.is_integer() and "." not in v and "e" not in v.lower() \
                    else x
            elif k in _TEXT_COLUMNS:
                row[k] = v[:500]
            else:
                row[k] = _parse_cell(v[:500])
        return row

    def _scalars_of(self, step: int) -> dict:
        snap = self.snapshot(step)
        return snap.scalars()

    # arrays on demand

    @property
    def run_info(self) -> RunInfo:
        """What is fixed for the run (probe set, sizes, baselines), from probe.npz, its
        arrays checked against the config's sizes."""
        if self._run_info is None:
            path = self.path / PROBE
            try:
                arrays = guard.load_npz(path, self.path, self.sizes.probe_bytes,
                                        _Sizes.PROBE_SPEC, what="this run's probe")
            except FileNotFoundError:
                raise RunRecordError(f"{path} is missing: the run has no snapshot yet") \
                    from None
            except OSError as exc:
                raise RunRecordError(f"{path} cannot be read ({exc})") from None
            arrays, meta = split_meta(arrays, path)
            shape = self._shape = self._probe_shape(arrays, path)
            run = meta.pop("run", None)
            if run is None and self.schema_version == 1:  # fixed fields in every snapshot
                meta.pop("baselines", None)
                run_arrays, run = self._schema1_fields()
                arrays = {**run_arrays, **arrays}
            if not isinstance(run, dict):
                raise RunRecordError(f"{path}: meta lacks the run's fields")
            self._check_probe(arrays, path, shape[1])
            probe_names = {f.name for f in dataclasses.fields(ProbeSet)}
            probe = from_fields(ProbeSet, {**{k: v for k, v in arrays.items() if k in probe_names},
                                           **meta}, str(path))
            run_arrays = {k: v for k, v in arrays.items() if k not in probe_names}
            info = from_fields(RunInfo, {**run, **run_arrays, "probe": probe}, str(path))
            for name in ("ways", "episodes", "bits", "tables"):
                if not 1 <= getattr(info, name) <= 10**6:
                    raise RunRecordError(f"{path}: {name} is {getattr(info, name)}, out of range")
            self._run_info = info
        return self._run_info

    @staticmethod
    def _probe_shape(arrays: dict, path: Path) -> tuple[int, int]:
        """(rows, classes) of a probe set whose arrays agree with each other."""
        n, C = len(arrays["label"]), len(arrays["classes"])
        for name, size in (("x", n), ("seen", n), ("theta", n), ("class_seen", C),
                           ("gamma", C)):
            if len(arrays[name]) != size:
                raise RunRecordError(f"{path}: {name} has {len(arrays[name])} rows, the probe "
                                     f"set {size}")
        if n == 0 or C < 2:
            raise RunRecordError(f"{path}: the probe set is empty")
        return n, C

    def _check_probe(self, arrays: dict, path: Path, C: int) -> None:
        P = C * (C - 1) // 2
        a = arrays.get("pair_angle")
        if a is None or a.shape != (P,) or a.dtype.kind != "f":
            raise RunRecordError(f"{path}: pair_angle is missing or not {P} angles")
        for name in ("raw_pair_collision", "raw_pair_embed_angle"):
            a = arrays.get(name)
            if a is not None and a.shape not in ((0,), (P,)):
                raise RunRecordError(f"{path}: {name} has shape {a.shape}, expected ({P},)")
        guard.finite(arrays, ("x", "theta", "gamma", "pair_angle"), path)

    @property
    def probe(self) -> ProbeSet:
        return self.run_info.probe

    def _schema1_fields(self) -> tuple[dict, dict]:
        """A schema-1 record's probe and run fields, from its first readable snapshot."""
        for step in self.steps:
            try:
                arrays, meta = self._load_snapshot(step)
            except RunRecordError:
                continue
            meta.pop("baselines", None)
            probe_names = {f.name for f in dataclasses.fields(ProbeSet)}
            return {k: v for k, v in arrays.items() if k not in probe_names}, meta
        raise RunRecordError(f"{self.path} has no readable snapshot to take its run from")

    def _load_snapshot(self, step: int, extra: guard.Spec | None = None,
                       ) -> tuple[dict[str, np.ndarray], dict]:
        path = self.path / SNAPSHOTS / f"{int(step)}.npz"
        if step in self._bad:
            raise RunRecordError(self._bad[step])
        if self._shape is None:  # the probe set first: a snapshot is checked against it
            self.run_info  # noqa: B018 - raises RunRecordError for a damaged probe.npz
        assert self._shape is not None  # read with the probe set
        spec = {**_Sizes.snapshot_spec(*self._shape), **(extra or {})}
        try:
            arrays = guard.load_npz(path, self.path, self._snapshot_limit(), spec,
                                    what="a snapshot of this run")
            arrays, meta = split_meta(arrays, path)
            guard.finite(arrays, ("embedding",), path)
            if meta.get("step") != step:
                raise RunRecordError(f"{path}: its step field is {str(meta.get('step'))[:20]}")
        except FileNotFoundError:
            raise RunRecordError(f"snapshot {path} is missing") from None
        except (OSError, RunRecordError) as exc:
            why = str(exc) if isinstance(exc, RunRecordError) else f"{path} cannot be read"
            self._damaged(step, f"snapshot {step}: {why}; skipped")
            raise RunRecordError(f"snapshot {step}: {why}") from None
        for name in HALF_PRECISION:
            if name in arrays and arrays[name].dtype == np.float16:
                arrays[name] = arrays[name].astype(np.float32)
        return arrays, meta

    def _damaged(self, step: int, why: str) -> None:
        """Remember a snapshot that cannot be read: named in problems, out of `steps`."""
        self._bad[step] = why
        if why not in self.problems:
            self.problems.append(why)
        if step in self.steps:
            self.steps = [s for s in self.steps if s != step]

    def snapshot(self, step: int) -> Snapshot:
        """The Snapshot at `step`, equal to the live one (embedding at float16 precision)."""
        arrays, meta = self._load_snapshot(step)
        path = self.path / SNAPSHOTS / f"{int(step)}.npz"
        try:
            return from_fields(Snapshot, {**meta, **arrays}, f"snapshot {path}")
        except RunRecordError as exc:
            self._damaged(step, f"{exc}; skipped")
            raise

    def latest(self) -> Snapshot | None:
        """The last recorded snapshot that opens (None for a run with none); a damaged
        probe.npz raises RunRecordError (every snapshot needs it)."""
        if self.steps:
            self.run_info  # noqa: B018
        for step in reversed(list(self.steps)):
            try:
                return self.snapshot(step)
            except RunRecordError:
                continue
        return None

    def read_frame(self, key: str, step: int | None) -> tuple[np.ndarray, str] | None:
        points = self._shape[0] if self._shape is not None else len(self.probe)
        return read_frame(self.path, key, step, points=points)

    # the notebook API: plain numpy arrays and dicts

    @property
    def history(self) -> dict[str, np.ndarray]:
        """history.csv as columns: one numpy array per figure, a row per snapshot in step
        order (`step` as int64, figures as float64, `collapsed` as strings)."""
        columns = list(self.rows[0]) if self.rows else history_columns()
        out = {}
        for c in columns:
            values = [r.get(c) for r in self.rows]
            if c == "step":
                out[c] = np.array(values, dtype=np.int64)
            elif c == "collapsed":
                out[c] = np.array(["" if v is None else str(v) for v in values], dtype=str)
            else:
                out[c] = np.array([v if isinstance(v, (int, float)) else np.nan
                                   for v in values], dtype=np.float64)
        return out

    def arrays(self, step: int) -> dict[str, np.ndarray]:
        """The arrays of the snapshot at `step` (embedding as float32, collision_matrix,
        pair_collision, ...) by name."""
        return self._load_snapshot(step)[0]

    @property
    def metrics(self) -> dict | None:
        """The final figures (metrics.json's summary) of a run that ended, else None."""
        final = self.info.get("final")
        return final if isinstance(final, dict) else None

    def write_frame(self, key: str, step: int | None, coords: np.ndarray, method: str) -> Path:
        return write_frame(self.path, key, step, coords, method)
