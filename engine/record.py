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
import errno
import io
import json
import math
import os
import platform
import re
import socket
import stat
import zipfile
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from . import figures, guard, hashing
from .atomic import LockBusy, atomic_write, atomic_write_text, hold_lock
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


# A run folder that cannot be read or written as asked; str() is one readable line. The
# guarded reader's error is the same class, so every refusal it makes is one of these.
RunRecordError = guard.FolderError


class OutputNotEmpty(RunRecordError):
    """The output folder holds files already and overwriting was not asked for."""


# ---------------------------------------------------------------------------------------
# The one writer of each file format (CLI, record and app exports all call these)


def history_columns() -> list[str]:
    return list(Snapshot.SCALARS)


def csv_text(rows: list[dict], columns: list[str], header: bool = True) -> str:
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
    return atomic_write_text(path, csv_text(rows, history_columns(), header=True))


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
        "validation": {"classes": run.validation_classes},  # for choices, never the claim
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


_MAX_TEXT = 10_000  # characters of a string field read from a record


def _field_value(kind: str, v: Any, name: str, what: str) -> Any:
    """A stored field's value checked against its dataclass type (as written in the
    source: "int", "float", "str", "bool", "list[str]", "tuple[int, int] | None", an
    array); RunRecordError naming the field otherwise."""
    def bad() -> RunRecordError:
        shown = repr(v)
        return RunRecordError(f"{what}: {name} is {shown[:40]}, not a valid {kind}")

    if kind in ("int", "float", "bool") and isinstance(v, np.ndarray) and v.ndim == 0:
        v = v.item()
    if kind == "int":
        if isinstance(v, bool) or not isinstance(v, int) or abs(v) > 10**15:
            raise bad()
        return v
    if kind == "float":
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise bad()
        return float(v)
    if kind == "bool":
        if not isinstance(v, bool):
            raise bad()
        return v
    if kind == "str":
        if not isinstance(v, str) or len(v) > _MAX_TEXT:
            raise bad()
        return v
    if kind == "list[str]":
        if not isinstance(v, list) or len(v) > _MAX_TEXT or not all(
                isinstance(x, str) and len(x) < 200 for x in v):
            raise bad()
        return v
    if kind.startswith("tuple[int, int]"):
        if v is None and "None" in kind:
            return None
        if not (isinstance(v, (list, tuple)) and len(v) == 2 and all(
                isinstance(x, int) and not isinstance(x, bool) and 0 < x <= 4096 for x in v)):
            raise bad()
        return tuple(v)
    if kind == "np.ndarray":
        if not isinstance(v, np.ndarray):
            raise bad()
        return v
    return v


def _build(cls: type, values: dict, what: str) -> Any:
    """cls(**values) for the fields cls has, each checked against its type; a missing
    required field or a wrong type is a RunRecordError."""
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name in values:
            kwargs[f.name] = _field_value(str(f.type), values[f.name], f.name, what)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise RunRecordError(f"{what} lacks the field {f.name!r}")
    return cls(**kwargs)


def _split_meta(arrays: dict[str, np.ndarray], path) -> tuple[dict[str, np.ndarray], dict]:
    """An NPZ's arrays and its JSON `meta` (a dict; checked for nesting first)."""
    meta_array = arrays.pop("meta", None)
    if meta_array is None:
        return arrays, {}
    if meta_array.dtype.kind != "U" or meta_array.ndim != 0:
        raise RunRecordError(f"{path}: meta is not a text entry")
    meta = guard.parse_json(str(meta_array[()]), f"{path} (meta)")
    if not isinstance(meta, dict):
        raise RunRecordError(f"{path}: meta is not a table of fields")
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
    if not key.isidentifier() or not key.isascii():
        raise ValueError(f"frame key must be a plain name, got {key!r}")
    return f"{key}.npz" if step is None else f"{key}-{int(step)}.npz"


def write_frame(run_dir: str | os.PathLike, key: str, step: int | None,
                coords: np.ndarray, method: str) -> Path:
    """Cache a 2-D projection of the probe points: of the embedding at `step`
    (key "embedding") or of the raw input (key "raw", step None). Only into a real
    frames/ folder of the run: a symlinked frames/ (or frame file) is refused
    (RunRecordError), never written through."""
    folder = guard.write_dir(run_dir, FRAMES)
    target = guard.writable_file(folder / _frame_name(key, step))
    arrays = {"coords": np.asarray(coords, dtype=np.float32), "method": np.asarray(str(method))}
    return atomic_write(target, lambda tmp: np.savez(tmp, **arrays))


FRAME_SPEC = {"coords": ("f", (None, 2)), "method": ("U", ())}


def read_frame(run_dir: str | os.PathLike, key: str, step: int | None,
               points: int | None = None) -> tuple[np.ndarray, str] | None:
    """(coords, method) of a cached frame, or None when absent, unreadable, of another
    size than `points` or not finite (the frame is then computed again)."""
    path = Path(run_dir) / FRAMES / _frame_name(key, step)
    limit = 64 * 1024 + 8 * 2 * (points if points is not None else 1_000_000)
    try:
        arrays = guard.load_npz(path, run_dir, limit, FRAME_SPEC, what="a frame")
        coords, method = arrays["coords"], str(arrays["method"][()])
        guard.finite(arrays, ("coords",), path)
    except (OSError, RunRecordError):
        return None
    if (points is not None and len(coords) != points) or len(method) > 100:
        return None
    return coords, method


# ---------------------------------------------------------------------------------------
# Writing a run


def _clear_record(path: Path) -> None:
    """Remove a previous run's record files (and nothing else) before --force reuse. A
    symlinked snapshots/ or frames/ is refused: their targets are never touched."""
    for sub in (SNAPSHOTS, FRAMES):
        with contextlib.suppress(FileNotFoundError):
            if stat.S_ISLNK(os.lstat(path / sub).st_mode):
                raise OutputNotEmpty(f"{path / sub} is a symlink: GSH Lab does not replace a "
                                     "run through it; remove it or choose another folder")
    for name in RECORD_FILES:
        with contextlib.suppress(FileNotFoundError):
            (path / name).unlink()  # a symlink itself, never its target
    for sub, ok in ((SNAPSHOTS, lambda p: p.stem.isdigit()), (FRAMES, lambda p: True)):
        folder = path / sub
        if folder.is_dir() and not folder.is_symlink():
            for f in folder.glob("*.npz"):
                if ok(f):
                    f.unlink()
            with contextlib.suppress(OSError):
                folder.rmdir()


def check_output(path: str | os.PathLike, force: bool = False) -> bool:
    """Raise OutputNotEmpty for a folder with files in it unless `force`; True when a
    forced write will replace a previous record."""
    path = Path(path)
    if path.exists() and not path.is_dir():  # a file or a device (/dev/full): no folder
        raise OutputNotEmpty(f"{path} is not a folder; choose a new or empty folder")
    try:
        busy = path.is_dir() and any(path.iterdir())
    except OSError as exc:
        raise _oserror(exc, path) from exc
    if busy and force and path.is_symlink():
        raise OutputNotEmpty(f"{path} is a symlink: --force does not replace a run through it")
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
        guard.write_dir(self.path, SNAPSHOTS)
        self._history_path = self.path / HISTORY
        self._columns = history_columns()
        try:
            self._history = self._history_path.open("w", encoding="utf-8", newline="")
            self._history.write(csv_text([], self._columns, header=True))
            self._history.flush()
        except OSError as exc:
            raise _oserror(exc, self._history_path) from exc
        self.last: Snapshot | None = None
        self.run_info: RunInfo | None = None
        self.count = 0
        self.finished = False

    def _take_lock(self):
        path = self.path / LOCK
        try:  # a file system without locks: record anyway, unlocked
            return hold_lock(path, f"{socket.gethostname()} {os.getpid()}\n", unlocked_ok=True)
        except LockBusy:
            raise OutputNotEmpty(f"{self.path} is being recorded by another process") from None
        except OSError as exc:
            if exc.errno == errno.EINVAL:
                raise OutputNotEmpty(f"{path} is not a regular file: refused") from None
            raise _oserror(exc, path) from exc

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
            self._history.write(csv_text([snap.scalars()], self._columns, header=False))
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
# Reading a run: every file through engine.guard, sized by the run's own config

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
        clean["error"] = str(info.get("error"))[:_MAX_TEXT]
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


def writer_alive(path: str | os.PathLike) -> bool:
    """True while a RunWriter (in any process on this machine) holds the run's lock. A
    lock that is not a regular file inside the run (a FIFO, a symlink) holds nothing."""
    return lock_held(Path(path) / LOCK, path)


def lock_held(lock: Path, path: str | os.PathLike) -> bool:
    """True while some process holds the lock file `lock` of the folder `path` (a run's
    writer lock, a running sweep's lock); a FIFO or a symlink holds nothing."""
    if fcntl is None:
        return lock.exists()
    try:
        guard.check_regular(lock, path)
        fd = os.open(lock, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0)
                     | getattr(os, "O_NONBLOCK", 0))
    except (OSError, RunRecordError):
        return False
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:  # held (or no locks on this file system: a lock file left = alive)
            return True
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def warn_problems(reader: RunReader, say) -> None:
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
        for step in missing[:3]:
            problems.append(f"snapshot {self.path / SNAPSHOTS / f'{step}.npz'} is missing; "
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
            arrays, meta = _split_meta(arrays, path)
            self._shape = self._probe_shape(arrays, path)
            run = meta.pop("run", None)
            if run is None and self.schema_version == 1:  # fixed fields in every snapshot
                meta.pop("baselines", None)
                run_arrays, run = self._schema1_fields()
                arrays = {**run_arrays, **arrays}
            if not isinstance(run, dict):
                raise RunRecordError(f"{path}: meta lacks the run's fields")
            self._check_probe(arrays, path)
            probe_names = {f.name for f in dataclasses.fields(ProbeSet)}
            probe = _build(ProbeSet, {**{k: v for k, v in arrays.items() if k in probe_names},
                                      **meta}, str(path))
            run_arrays = {k: v for k, v in arrays.items() if k not in probe_names}
            info = _build(RunInfo, {**run, **run_arrays, "probe": probe}, str(path))
            for name in ("ways", "episodes", "bits", "tables"):
                if not 1 <= getattr(info, name) <= 10**6:
                    raise RunRecordError(f"{path}: {name} is {getattr(info, name)}, out of range")
            self._run_info = info
        return self._run_info

    @staticmethod
    def _probe_shape(arrays: dict, path) -> tuple[int, int]:
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

    def _check_probe(self, arrays: dict, path) -> None:
        C = self._shape[1]
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
        spec = {**_Sizes.snapshot_spec(*self._shape), **(extra or {})}
        try:
            arrays = guard.load_npz(path, self.path, self._snapshot_limit(), spec,
                                    what="a snapshot of this run")
            arrays, meta = _split_meta(arrays, path)
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
            return _build(Snapshot, {**meta, **arrays}, f"snapshot {path}")
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
