"""The run record's files: their names and formats, the (de)serialisation of Snapshot,
ProbeSet and RunInfo, the cached 2-D frames and the writer's lock. engine.record_writer
writes a run, engine.record reads it.

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

import csv
import dataclasses
import io
import json
import os
import stat
from pathlib import Path
from typing import Any

import numpy as np

from . import figures, guard, hashing
from .atomic import atomic_write, atomic_write_text
from .snapshot import ProbeSet, RunInfo, Snapshot

try:  # POSIX: a lock the kernel drops when the writer dies, however it dies
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]  # an optional module: None off POSIX

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
EMBEDDINGS_KEYS = ("embedding", "hash_center", "raw", "label", "seen", "theta", "classes",
                   "class_seen", "gamma", "step")
EMBEDDINGS_OPTIONAL = ("embedding_2d", "input_2d")


# A run folder that cannot be read or written as asked; str() is one readable line. The
# guarded reader's error is the same class, so every refusal it makes is one of these.
RunRecordError = guard.FolderError



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
        "step": np.asarray(snap.step, dtype=np.int64),
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
    # numpy's stubs would match the arrays to savez's allow_pickle (numpy >= 2.1) too
    return atomic_write(path, lambda tmp: np.savez_compressed(tmp, **arrays))  # type: ignore[arg-type]


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
        path, json.dumps(jsonable(metrics_dict(snap, run, seconds)), indent=2))


# ---------------------------------------------------------------------------------------
# Generic (de)serialisation of the Snapshot, ProbeSet and RunInfo dataclasses


def jsonable(v: Any) -> Any:
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, dict):
        return {k: jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [jsonable(x) for x in v]
    return v


def split_fields(obj: Any, skip: tuple[str, ...] = ()) -> tuple[dict[str, np.ndarray], dict]:
    """A dataclass's ndarray fields and its other fields (JSON-ready)."""
    arrays, meta = {}, {}
    for f in dataclasses.fields(obj):
        if f.name in skip:
            continue
        v = getattr(obj, f.name)
        if isinstance(v, np.ndarray):
            arrays[f.name] = v
        else:
            meta[f.name] = jsonable(v)
    return arrays, meta


def pack_npz(arrays: dict[str, np.ndarray], meta: dict) -> dict[str, np.ndarray]:
    if "meta" in arrays:
        raise ValueError("a field named 'meta' would clash with the record's metadata")
    return {**arrays, "meta": np.asarray(json.dumps(meta))}


MAX_TEXT = 10_000  # characters of a string field read from a record


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
        if not isinstance(v, str) or len(v) > MAX_TEXT:
            raise bad()
        return v
    if kind == "list[str]":
        if not isinstance(v, list) or len(v) > MAX_TEXT or not all(
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


def from_fields(cls: type, values: dict, what: str) -> Any:
    """cls(**values) for the fields cls has, each checked against its type; a missing
    required field or a wrong type is a RunRecordError."""
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name in values:
            kwargs[f.name] = _field_value(str(f.type), values[f.name], f.name, what)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise RunRecordError(f"{what} lacks the field {f.name!r}")
    return cls(**kwargs)


def split_meta(arrays: dict[str, np.ndarray], path: Path
               ) -> tuple[dict[str, np.ndarray], dict]:
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

def with_filename(exc: OSError, path: Path) -> OSError:
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
    return atomic_write(target, lambda tmp: np.savez(tmp, **arrays))  # type: ignore[arg-type]


FRAME_SPEC: guard.Spec = {"coords": ("f", (None, 2)), "method": ("U", ())}


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
