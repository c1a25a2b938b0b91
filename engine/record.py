"""The run record: one directory per run, written while it trains, and read back lazily.

Layout (schema_version 3):

    run.json            schema_version, status, error, created/finished, versions, device, host
    config.toml         the fully resolved config (seed and device included)
    probe.npz           what is fixed per run (RunInfo): the probe set, sizes, baselines
    history.csv         one row per snapshot (Snapshot.SCALARS), appended and flushed
    snapshots/<step>.npz  that snapshot's arrays (embedding as float16) and other fields
    frames/<key>-<step>.npz  cached 2-D projections (key "embedding"; "raw.npz" for input)
    metrics.json        summary of the last snapshot, written when the run ends
    embeddings.npz      probe arrays of the last snapshot, written when the run ends

Snapshots and RunInfo are stored generically: every ndarray field goes to the npz, every
other field (floats, ints, strings) to a JSON `meta` entry, so new fields are carried
without edits here. Schema 1 (until RunInfo was split off) repeated the run's fixed
fields in every snapshot; its records are still read. Schema 3 records each snapshot's
`hash_center` and collision rates expected over hyperplanes (engine.hashing); schema 2
records (rates of one drawn set of tables, hashed around the mean of all probe rows) open
as they were recorded. This module is also the one writer
of the history CSV, the embeddings NPZ and metrics.json formats, for the CLI and the app.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import io
import json
import os
import platform
import socket
import tomllib
import zipfile
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from . import figures, hashing
from .atomic import atomic_write, atomic_write_text
from .config import ConfigError, ExperimentConfig, from_dict
from .snapshot import ProbeSet, RunInfo, Snapshot

try:  # POSIX: a lock the kernel drops when the writer dies, however it dies
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

SCHEMA_VERSION = 3
STATUSES = ("running", "finished", "stopped", "diverged", "failed")
DID_NOT_FINISH = "did not finish"  # shown for status "running" with no live writer

RUN_JSON, CONFIG, PROBE, HISTORY = "run.json", "config.toml", "probe.npz", "history.csv"
SNAPSHOTS, FRAMES, METRICS, EMBEDDINGS = "snapshots", "frames", "metrics.json", "embeddings.npz"
LOCK = ".writer.lock"
RECORD_FILES = (RUN_JSON, CONFIG, PROBE, HISTORY, METRICS, EMBEDDINGS, LOCK)

# Stored as float16 (about 3 significant digits): halves a default snapshot to ~260 KB.
# Every figure is measured live from the float32 embedding and stored exactly; bench/runs.py
# reports how far figures recomputed from the float16 copy would move.
HALF_PRECISION = ("embedding",)
_HALF_MAX = 6.0e4
EMBEDDINGS_KEYS = ("embedding", "hash_center", "raw", "label", "seen", "theta", "classes",
                   "class_seen", "gamma", "step")
EMBEDDINGS_OPTIONAL = ("embedding_2d", "input_2d")


class RunRecordError(Exception):
    """A run folder that cannot be read or written as asked; str() is one readable line."""


class OutputNotEmpty(RunRecordError):
    """The output folder holds files already and overwriting was not asked for."""


# ---------------------------------------------------------------------------------------
# The one writer of each file format (CLI, record and app exports all call these)


def history_columns() -> list[str]:
    return list(Snapshot.SCALARS)


def _csv_text(rows: list[dict], columns: list[str], header: bool) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    if header:
        w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def write_history_csv(path: str | os.PathLike, rows: list[dict]) -> Path:
    """history.csv: one row per snapshot, columns Snapshot.SCALARS (atomic)."""
    if not rows:
        raise ValueError("no snapshot yet: there is no history to export")
    return atomic_write_text(path, _csv_text(rows, history_columns(), header=True))


def embeddings_arrays(
    snap: Snapshot, p: ProbeSet,
    embedding_2d: np.ndarray | None = None, input_2d: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """The embeddings NPZ schema: EMBEDDINGS_KEYS, plus the 2-D frames when given."""
    arrays = {
        "embedding": np.asarray(snap.embedding, dtype=np.float32),
        "hash_center": hashing.center_of(snap.embedding, snap.hash_center),
        "raw": p.x, "label": p.label, "seen": p.seen, "theta": p.theta,
        "classes": p.classes, "class_seen": p.class_seen, "gamma": p.gamma,
        "step": np.int64(snap.step),
    }
    if embedding_2d is not None:
        arrays["embedding_2d"] = np.asarray(embedding_2d, dtype=np.float32)
    if input_2d is not None:
        arrays["input_2d"] = np.asarray(input_2d, dtype=np.float32)
    return arrays


def write_embeddings_npz(
    path: str | os.PathLike, snap: Snapshot, probe: ProbeSet,
    embedding_2d: np.ndarray | None = None, input_2d: np.ndarray | None = None,
) -> Path:
    """embeddings.npz of one snapshot (see embeddings_arrays), compressed, atomic."""
    arrays = embeddings_arrays(snap, probe, embedding_2d, input_2d)
    return atomic_write(path, lambda tmp: np.savez_compressed(tmp, **arrays))


def metrics_dict(snap: Snapshot, run: RunInfo, seconds: float) -> dict:
    """The metrics.json summary of a run's last snapshot, beside the run's baselines: every
    figure of engine/figures.py at its json path."""
    skeleton = {
        "steps": snap.step,
        "seconds": round(seconds, 3),
        "device": run.device,
        "train_accuracy": None,
        "loss": None,
        "oneshot": {"trained": None, "untrained": None, "raw_input": None,
                    "ways": run.ways, "episodes": run.episodes},
        "collision": {"bits": run.bits, "tables": run.tables},
    }
    values = {**snap.scalars(), **run.baselines()}
    out = figures.json_tree(values, skeleton, {**run.baseline_ci95, **snap.ci95})
    out["collapsed"] = snap.collapsed
    return out


def write_metrics_json(path: str | os.PathLike, snap: Snapshot, run: RunInfo,
                       seconds: float) -> Path:
    return atomic_write_text(
        path, json.dumps(_jsonable(metrics_dict(snap, run, seconds)), indent=2))


# ---------------------------------------------------------------------------------------
# Generic (de)serialisation of the Snapshot, ProbeSet and RunInfo dataclasses


def _jsonable(v: Any) -> Any:
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, dict):
        return {k: _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    return v


def _split(obj: Any, skip: tuple[str, ...] = ()) -> tuple[dict[str, np.ndarray], dict]:
    """A dataclass's ndarray fields and its other fields (JSON-ready)."""
    arrays, meta = {}, {}
    for f in dataclasses.fields(obj):
        if f.name in skip:
            continue
        v = getattr(obj, f.name)
        if isinstance(v, np.ndarray):
            arrays[f.name] = v
        else:
            meta[f.name] = _jsonable(v)
    return arrays, meta


def _pack(arrays: dict[str, np.ndarray], meta: dict) -> dict[str, np.ndarray]:
    if "meta" in arrays:
        raise ValueError("a field named 'meta' would clash with the record's metadata")
    return {**arrays, "meta": np.asarray(json.dumps(meta))}


def _build(cls: type, values: dict, what: str) -> Any:
    """cls(**values) for the fields cls has; a missing required field is a RunRecordError."""
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name in values:
            v = values[f.name]
            if isinstance(v, list) and str(f.type).startswith("tuple"):
                v = tuple(v)
            kwargs[f.name] = v
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise RunRecordError(f"{what} lacks the field {f.name!r}")
    return cls(**kwargs)


def _load_npz(path: Path) -> tuple[dict[str, np.ndarray], dict]:
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files if k != "meta"}
        meta = json.loads(str(z["meta"][()])) if "meta" in z.files else {}
    return arrays, meta


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _oserror(exc: OSError, path: Path) -> OSError:
    """The same error with the file it concerns (write() errors carry no filename)."""
    if exc.filename:
        return exc
    return OSError(exc.errno, exc.strerror or str(exc), str(path))


def _frame_name(key: str, step: int | None) -> str:
    if not key.isidentifier():
        raise ValueError(f"frame key must be a plain name, got {key!r}")
    return f"{key}.npz" if step is None else f"{key}-{int(step)}.npz"


def write_frame(run_dir: str | os.PathLike, key: str, step: int | None,
                coords: np.ndarray, method: str) -> Path:
    """Cache a 2-D projection of the probe points: of the embedding at `step`
    (key "embedding") or of the raw input (key "raw", step None)."""
    folder = Path(run_dir) / FRAMES
    folder.mkdir(exist_ok=True)
    arrays = {"coords": np.asarray(coords, dtype=np.float32), "method": np.asarray(str(method))}
    return atomic_write(folder / _frame_name(key, step), lambda tmp: np.savez(tmp, **arrays))


def read_frame(run_dir: str | os.PathLike, key: str,
               step: int | None) -> tuple[np.ndarray, str] | None:
    """(coords, method) of a cached frame, or None when absent or unreadable."""
    path = Path(run_dir) / FRAMES / _frame_name(key, step)
    try:
        with np.load(path, allow_pickle=False) as z:
            return z["coords"], str(z["method"][()])
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None


# ---------------------------------------------------------------------------------------
# Writing a run


def _clear_record(path: Path) -> None:
    """Remove a previous run's record files (and nothing else) before --force reuse."""
    for name in RECORD_FILES:
        with contextlib.suppress(FileNotFoundError):
            (path / name).unlink()
    for sub, ok in ((SNAPSHOTS, lambda p: p.stem.isdigit()), (FRAMES, lambda p: True)):
        folder = path / sub
        if folder.is_dir():
            for f in folder.glob("*.npz"):
                if ok(f):
                    f.unlink()
            with contextlib.suppress(OSError):
                folder.rmdir()


def check_output(path: str | os.PathLike, force: bool = False) -> bool:
    """Raise OutputNotEmpty for a folder with files in it unless `force`; True when a
    forced write will replace a previous record."""
    path = Path(path)
    try:
        busy = path.is_dir() and any(path.iterdir())
    except OSError as exc:
        raise _oserror(exc, path) from exc
    if busy and writer_alive(path):
        raise OutputNotEmpty(f"{path} is being recorded by a running process; choose "
                             "another folder")
    if busy and not force:
        raise OutputNotEmpty(
            f"{path} is not empty; choose another folder, or pass --force to replace "
            "the run record in it"
        )
    return busy


class RunWriter:
    """Writes one run's record as it trains: `append(snapshot, run_info)` per snapshot,
    then `finish(status)`. Use as a context manager: an exception marks the run failed.

    While the writer lives it holds an exclusive lock on `.writer.lock`; a reader that
    finds status "running" and the lock free knows the run did not finish.
    """

    def __init__(self, path: str | os.PathLike, config: ExperimentConfig, *,
                 device: str, force: bool = False):
        self.path = Path(path)
        if check_output(self.path, force):
            _clear_record(self.path)
        if config.model.device != device:
            config = config.replace(**{"model.device": device})
        self.config = config
        self.path.mkdir(parents=True, exist_ok=True)
        self._lock = self._take_lock()
        self.info = {
            "schema_version": SCHEMA_VERSION,
            "status": "running",
            "error": None,
            "name": config.name,
            "family": config.data.family,
            "seed": config.seed,
            "steps": config.train.steps,
            "device": device,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "created": _now(),
            "finished": None,
            "versions": {
                "python": platform.python_version(),
                "numpy": np.__version__,
                "torch": _version("torch"),
            },
            "final": None,
        }
        self._write_info()
        atomic_write_text(self.path / CONFIG, config.to_toml())
        (self.path / SNAPSHOTS).mkdir(exist_ok=True)
        self._history_path = self.path / HISTORY
        self._columns = history_columns()
        try:
            self._history = self._history_path.open("w", encoding="utf-8", newline="")
            self._history.write(_csv_text([], self._columns, header=True))
            self._history.flush()
        except OSError as exc:
            raise _oserror(exc, self._history_path) from exc
        self.last: Snapshot | None = None
        self.run_info: RunInfo | None = None
        self.count = 0
        self.finished = False

    def _take_lock(self):
        fh = (self.path / LOCK).open("a", encoding="utf-8")
        if fcntl is not None:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError as exc:
                fh.close()
                raise OutputNotEmpty(f"{self.path} is being recorded by another process") from exc
            except OSError:  # a file system without locks: record anyway, unlocked
                pass
        fh.truncate(0)
        fh.write(f"{socket.gethostname()} {os.getpid()}\n")
        fh.flush()
        return fh

    def _write_info(self) -> None:
        atomic_write_text(self.path / RUN_JSON, json.dumps(_jsonable(self.info), indent=2))

    def append(self, snap: Snapshot, run_info: RunInfo) -> None:
        """Record one snapshot: probe.npz (the run's RunInfo) on the first, then
        snapshots/<step>.npz (atomic) and its history row (appended and flushed). OSError
        names the file."""
        if self.run_info is None:
            self._write_probe(run_info)
            self.run_info = run_info
        arrays, meta = _split(snap)
        for name in HALF_PRECISION:
            a = arrays.get(name)
            # float16 only where it holds every value (a collapsing run's can exceed 65504)
            if a is not None and a.dtype.kind == "f" and np.abs(a).max(initial=0) < _HALF_MAX:
                arrays[name] = a.astype(np.float16)
        packed = _pack(arrays, meta)
        atomic_write(self.path / SNAPSHOTS / f"{snap.step}.npz",
                     lambda tmp: np.savez(tmp, **packed))
        try:
            self._history.write(_csv_text([snap.scalars()], self._columns, header=False))
            self._history.flush()
        except OSError as exc:
            raise _oserror(exc, self._history_path) from exc
        self.last = snap
        self.count += 1

    def _write_probe(self, run_info: RunInfo) -> None:
        """probe.npz: the ProbeSet's and RunInfo's arrays side by side (their names differ),
        the ProbeSet's other fields in `meta` and RunInfo's under meta["run"]."""
        arrays, meta = _split(run_info.probe)
        run_arrays, meta["run"] = _split(run_info, skip=("probe",))
        if set(arrays) & set(run_arrays):
            raise ValueError("ProbeSet and RunInfo share an array name")
        packed = _pack({**arrays, **run_arrays}, meta)
        atomic_write(self.path / PROBE, lambda tmp: np.savez_compressed(tmp, **packed))

    def write_frame(self, key: str, step: int | None, coords: np.ndarray, method: str) -> Path:
        return write_frame(self.path, key, step, coords, method)

    def finish(self, status: str, error: str | None = None, seconds: float | None = None) -> None:
        """End the record: metrics.json and embeddings.npz of the last snapshot, run.json
        with the final status, then release the lock. Safe to call once."""
        if status not in STATUSES[1:]:
            raise ValueError(f"status must be one of {', '.join(STATUSES[1:])}")
        if self.finished:
            return
        self.finished = True
        errors: list[OSError] = []
        try:
            with contextlib.suppress(OSError):
                self._history.close()
            last = self.last
            if last is not None:
                secs = last.seconds if seconds is None else seconds
                run = self.run_info
                try:
                    write_metrics_json(self.path / METRICS, last, run, secs)
                    write_embeddings_npz(self.path / EMBEDDINGS, last, run.probe)
                except OSError as exc:  # still try to record the status below
                    errors.append(exc)
                self.info["final"] = _jsonable(metrics_dict(last, run, secs))
            self.info.update(status=status, error=error, finished=_now())
            try:
                self._write_info()
            except OSError as exc:
                errors.append(exc)
        finally:
            self._release()
        if errors:
            raise errors[0]

    def abandon(self) -> None:
        """Stop recording without finishing (the disk is full, the folder went away):
        release the lock; the record keeps what it has and reads as "did not finish"."""
        self.finished = True
        with contextlib.suppress(OSError):
            self._history.close()
        self._release()

    def _release(self) -> None:
        with contextlib.suppress(OSError):
            (self.path / LOCK).unlink()
        with contextlib.suppress(OSError):
            self._lock.close()

    def __enter__(self) -> RunWriter:
        return self

    def __exit__(self, kind, exc, tb) -> None:
        if not self.finished:
            if exc is None:
                self.finish("finished")
            elif isinstance(exc, KeyboardInterrupt):
                self.finish("stopped")
            else:
                self.finish("failed", error=f"{type(exc).__name__}: {exc}")


# ---------------------------------------------------------------------------------------
# Reading a run


def _parse_cell(v: str) -> Any:
    for conv in (int, float):
        try:
            return conv(v)
        except ValueError:
            pass
    return v


def _read_history(path: Path) -> list[dict]:
    """history.csv rows with numbers parsed; a partial last line is dropped."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    if text and not text.endswith("\n"):
        text = text[: text.rfind("\n") + 1]
    reader = csv.DictReader(io.StringIO(text))
    n = len(reader.fieldnames or [])
    rows = []
    for raw in reader:
        if None in raw or len(raw) != n or any(v is None for v in raw.values()):
            continue
        rows.append({k: _parse_cell(v) for k, v in raw.items()})
    return rows


def writer_alive(path: str | os.PathLike) -> bool:
    """True while a RunWriter (in any process on this machine) holds the run's lock."""
    lock = Path(path) / LOCK
    if fcntl is None:
        return lock.exists()
    try:
        fh = lock.open("r")
    except OSError:
        return False
    with fh:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:  # held (or no locks on this file system: a lock file left = alive)
            return True
        fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
        return False


def open_run(path: str | os.PathLike) -> RunReader:
    """Open a run folder: run.json, config and history now, arrays on demand."""
    return RunReader(path)


class RunReader:
    """A recorded run, read lazily. Summary on open: `info` (run.json), `status`,
    `display_status`, `config`, `rows` (history), `steps` (snapshots on disk),
    `problems` (snapshot files found missing or truncated). On demand: `run_info` (probe
    set, sizes, baselines), `snapshot(step)`, `latest()`, `read_frame(...)`; `refresh()`
    picks up snapshots a live writer added since."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        if not self.path.is_dir():
            raise RunRecordError(f"{self.path} is not a folder")
        info_path = self.path / RUN_JSON
        if not info_path.is_file():
            raise RunRecordError(f"{self.path} is not a GSH Lab run (no {RUN_JSON})")
        try:
            info = json.loads(info_path.read_text(encoding="utf-8"))
            version = info["schema_version"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise RunRecordError(f"{info_path} is unreadable or corrupt ({exc})") from exc
        if not isinstance(version, int) or version < 1:
            raise RunRecordError(f"{info_path} has an invalid schema_version {version!r}")
        if version > SCHEMA_VERSION:
            raise RunRecordError(
                f"{self.path} was recorded by a newer GSH Lab (run schema {version}; this "
                f"version reads up to {SCHEMA_VERSION}): update GSH Lab to open it"
            )
        self.info: dict = info
        self.schema_version = version
        try:
            self.config = from_dict(_read_toml(self.path / CONFIG))
        except ConfigError as exc:
            raise RunRecordError(f"{self.path / CONFIG}: {exc}") from exc
        self._run_info: RunInfo | None = None
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

    def refresh(self) -> list[int]:
        """Re-read run.json, history.csv and the snapshot list; returns new steps."""
        with contextlib.suppress(OSError, ValueError):
            info = json.loads((self.path / RUN_JSON).read_text(encoding="utf-8"))
            if isinstance(info, dict) and info.get("schema_version") == self.schema_version:
                self.info = info
        on_disk = {}
        folder = self.path / SNAPSHOTS
        if folder.is_dir():
            for f in folder.iterdir():
                if f.suffix == ".npz" and f.stem.isdigit():
                    on_disk[int(f.stem)] = f
        rows = _read_history(self.path / HISTORY)
        row_steps = {r.get("step") for r in rows}
        known = set(self.steps)
        problems = []
        steps = []
        for step in sorted(on_disk):
            if step not in known and not zipfile.is_zipfile(on_disk[step]):
                problems.append(f"snapshot {on_disk[step]} is truncated or corrupt; skipped")
                continue
            steps.append(step)
            if step not in row_steps:  # killed between the snapshot and its history row
                try:
                    rows.append(self._scalars_of(step))
                except RunRecordError as exc:
                    problems.append(str(exc))
                    steps.pop()
        for r in rows:
            if r.get("step") not in on_disk:
                problems.append(
                    f"snapshot {folder / (str(r.get('step')) + '.npz')} is missing; "
                    "its figures are in history.csv"
                )
        rows.sort(key=lambda r: r.get("step", 0))
        new = [s for s in steps if s not in known]
        self.rows, self.steps = rows, steps
        self.problems = problems
        return new

    def _scalars_of(self, step: int) -> dict:
        snap = self.snapshot(step)
        return snap.scalars()

    # arrays on demand

    @property
    def run_info(self) -> RunInfo:
        """What is fixed for the run (probe set, sizes, baselines), from probe.npz."""
        if self._run_info is None:
            path = self.path / PROBE
            try:
                arrays, meta = _load_npz(path)
            except FileNotFoundError as exc:
                raise RunRecordError(f"{path} is missing: the run has no snapshot yet") from exc
            except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
                raise RunRecordError(f"{path} is truncated or corrupt ({exc})") from exc
            run = meta.pop("run", None)
            if run is None:  # schema 1: the fixed fields sit in every snapshot too
                meta.pop("baselines", None)
                run = self._schema1_run_fields()
            probe_names = {f.name for f in dataclasses.fields(ProbeSet)}
            probe = _build(ProbeSet, {**{k: v for k, v in arrays.items() if k in probe_names},
                                      **meta}, str(path))
            run_arrays = {k: v for k, v in arrays.items() if k not in probe_names}
            self._run_info = _build(RunInfo, {**run, **run_arrays, "probe": probe}, str(path))
        return self._run_info

    @property
    def probe(self) -> ProbeSet:
        return self.run_info.probe

    def _schema1_run_fields(self) -> dict:
        """A schema-1 record's RunInfo fields, read from its first readable snapshot."""
        for step in self.steps:
            try:
                arrays, meta = self._load_snapshot(step)
            except RunRecordError:
                continue
            return {**meta, **arrays}
        raise RunRecordError(f"{self.path} has no readable snapshot to take its run from")

    def _load_snapshot(self, step: int) -> tuple[dict[str, np.ndarray], dict]:
        path = self.path / SNAPSHOTS / f"{int(step)}.npz"
        try:
            arrays, meta = _load_npz(path)
        except FileNotFoundError as exc:
            raise RunRecordError(f"snapshot {path} is missing") from exc
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
            msg = f"snapshot {path} is truncated or corrupt"
            if not any(p.startswith(msg) for p in self.problems):
                self.problems.append(msg + "; skipped")
            raise RunRecordError(msg) from exc
        for name in HALF_PRECISION:
            if name in arrays and arrays[name].dtype == np.float16:
                arrays[name] = arrays[name].astype(np.float32)
        return arrays, meta

    def snapshot(self, step: int) -> Snapshot:
        """The Snapshot at `step`, equal to the live one (embedding at float16 precision)."""
        arrays, meta = self._load_snapshot(step)
        path = self.path / SNAPSHOTS / f"{int(step)}.npz"
        return _build(Snapshot, {**meta, **arrays}, f"snapshot {path}")

    def latest(self) -> Snapshot | None:
        """The last recorded snapshot that opens (None for a run with none)."""
        for step in reversed(self.steps):
            try:
                return self.snapshot(step)
            except RunRecordError:
                continue
        return None

    def read_frame(self, key: str, step: int | None) -> tuple[np.ndarray, str] | None:
        return read_frame(self.path, key, step)

    def write_frame(self, key: str, step: int | None, coords: np.ndarray, method: str) -> Path:
        return write_frame(self.path, key, step, coords, method)


def _read_toml(path: Path) -> dict:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise RunRecordError(f"{path} cannot be read ({exc.strerror or exc})") from exc
    except tomllib.TOMLDecodeError as exc:
        raise RunRecordError(f"{path} is not valid TOML ({exc})") from exc
