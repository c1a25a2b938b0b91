"""Writing a run record while it trains (RunWriter), and checking an output folder first.
The files' layout and formats are engine.record_format's."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import platform
import socket
import stat
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from types import TracebackType
from typing import TextIO

import numpy as np

from . import guard
from .atomic import LockBusy, atomic_write, atomic_write_text, hold_lock
from .config import ExperimentConfig
from .record_format import (
    CONFIG,
    EMBEDDINGS,
    FRAMES,
    HALF_PRECISION,
    HISTORY,
    LOCK,
    METRICS,
    PROBE,
    RECORD_FILES,
    RUN_JSON,
    SCHEMA_VERSION,
    SNAPSHOTS,
    STATUSES,
    RunRecordError,
    csv_text,
    history_columns,
    jsonable,
    metrics_dict,
    pack_npz,
    split_fields,
    with_filename,
    write_embeddings_npz,
    write_frame,
    write_metrics_json,
    writer_alive,
)
from .snapshot import RunInfo, Snapshot

_HALF_MAX = 6.0e4  # float16 holds values below 65504


class OutputNotEmpty(RunRecordError):
    """The output folder holds files already and overwriting was not asked for."""


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


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
        raise with_filename(exc, path) from exc
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
            raise with_filename(exc, self._history_path) from exc
        self.last: Snapshot | None = None
        self.run_info: RunInfo | None = None
        self.count = 0
        self.finished = False

    def _take_lock(self) -> TextIO:
        path = self.path / LOCK
        try:  # a file system without locks: record anyway, unlocked
            return hold_lock(path, f"{socket.gethostname()} {os.getpid()}\n", unlocked_ok=True)
        except LockBusy:
            raise OutputNotEmpty(f"{self.path} is being recorded by another process") from None
        except OSError as exc:
            if exc.errno == errno.EINVAL:
                raise OutputNotEmpty(f"{path} is not a regular file: refused") from None
            raise with_filename(exc, path) from exc

    def _write_info(self) -> None:
        atomic_write_text(self.path / RUN_JSON, json.dumps(jsonable(self.info), indent=2))

    def append(self, snap: Snapshot, run_info: RunInfo) -> None:
        """Record one snapshot: probe.npz (the run's RunInfo) on the first, then
        snapshots/<step>.npz (atomic) and its history row (appended and flushed). OSError
        names the file."""
        if self.run_info is None:
            self._write_probe(run_info)
            self.run_info = run_info
        arrays, meta = split_fields(snap)
        for name in HALF_PRECISION:
            a = arrays.get(name)
            # float16 only where it holds every value (a collapsing run's can exceed 65504)
            if a is not None and a.dtype.kind == "f" and np.abs(a).max(initial=0) < _HALF_MAX:
                arrays[name] = a.astype(np.float16)
        packed = pack_npz(arrays, meta)
        atomic_write(self.path / SNAPSHOTS / f"{snap.step}.npz",
                     lambda tmp: np.savez(tmp, **packed))  # type: ignore[arg-type]
        try:
            self._history.write(csv_text([snap.scalars()], self._columns, header=False))
            self._history.flush()
        except OSError as exc:
            raise with_filename(exc, self._history_path) from exc
        self.last = snap
        self.count += 1

    def _write_probe(self, run_info: RunInfo) -> None:
        """probe.npz: the ProbeSet's and RunInfo's arrays side by side (their names differ),
        the ProbeSet's other fields in `meta` and RunInfo's under meta["run"]."""
        arrays, meta = split_fields(run_info.probe)
        run_arrays, meta["run"] = split_fields(run_info, skip=("probe",))
        if set(arrays) & set(run_arrays):
            raise ValueError("ProbeSet and RunInfo share an array name")
        packed = pack_npz({**arrays, **run_arrays}, meta)
        atomic_write(self.path / PROBE,
                     lambda tmp: np.savez_compressed(tmp, **packed))  # type: ignore[arg-type]

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
            last, run = self.last, self.run_info
            if last is not None and run is not None:  # set together by append()
                secs = last.seconds if seconds is None else seconds
                try:
                    write_metrics_json(self.path / METRICS, last, run, secs)
                    write_embeddings_npz(self.path / EMBEDDINGS, last, run.probe)
                except OSError as exc:  # still try to record the status below
                    errors.append(exc)
                self.info["final"] = jsonable(metrics_dict(last, run, secs))
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

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if not self.finished:
            if exc is None:
                self.finish("finished")
            elif isinstance(exc, KeyboardInterrupt):
                self.finish("stopped")
            else:
                self.finish("failed", error=f"{type(exc).__name__}: {exc}")
