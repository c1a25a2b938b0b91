"""RunSession: the run on screen, live or reopened, as one object.

It owns the run's config and RunInfo (what is fixed for the run: probe set, sizes,
baselines), its record folder (engine.record), its SnapshotStore (every row and step;
a few whole snapshots in memory, the rest read back from the record), its projection
frames (asked of the window's projection service, kept in memory and cached into the
record's frames/ so a reopened run does not run UMAP again) and the View on screen.
A live run's snapshots are written by the training worker; a reopened run's come from
the record; everything downstream (panels, timeline, exports, screenshots) reads the
session the same way.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from app.store import DEFAULT_CAPACITY, Frame, SnapshotStore
from app.view import View
from engine.config import ExperimentConfig
from engine.snapshot import RunInfo, Snapshot

if TYPE_CHECKING:
    from engine.record import RunReader


def new_record_dir(runs_dir: Path, name: str, seed: int) -> Path:
    """A fresh folder name for a run under `runs_dir` (created by the run's writer)."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    safe = "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in name)[:40]
    base = f"{stamp}-{safe or 'run'}-seed{seed}"
    path, n = runs_dir / base, 1
    while path.exists():
        n += 1
        path = runs_dir / f"{base}-{n}"
    return path


class Projector(Protocol):
    """What a session asks of the window's projection service (app.projector)."""

    failure: str | None  # why the worker was given up on (PCA only), else None

    def request(self, key: str, step: int | None, points: np.ndarray,
                full: bool = False) -> None: ...


class RunSession:
    """One run's record folder, store, frames and the View on screen. `record_error` says
    why it is not (or no longer) being recorded; training and the timeline in memory go
    on regardless. `projector` is the window's projection service (app.projector), shared
    by the sessions it shows: one worker process, its frames tagged by run."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY, config: ExperimentConfig | None = None,
                 projector: Projector | None = None) -> None:
        self.config = config  # the run's resolved config (None: no run yet)
        self.run_info: RunInfo | None = None  # from the engine or the record
        self.store = SnapshotStore(capacity)
        self.record_dir: Path | None = None
        self.record_error: str | None = None
        self.reader: RunReader | None = None  # the record of a reopened run
        self.projector = projector
        self.collapsed_at: int | None = None  # the first step a collapsed snapshot has
        self.shown: View | None = None  # what the panels show

    @classmethod
    def live(cls, runs_dir: Path, config: ExperimentConfig, capacity: int = DEFAULT_CAPACITY,
             projector: Projector | None = None) -> RunSession:
        """A session for `config` about to train, recorded under `runs_dir` when it can be."""
        session = cls(capacity, config, projector)
        try:
            Path(runs_dir).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            session.record_error = (f"this run is not being recorded: cannot create the "
                                    f"runs folder {runs_dir} ({exc.strerror or exc})")
        else:
            session.record_dir = new_record_dir(Path(runs_dir), config.name, config.seed)
        return session

    @classmethod
    def open(cls, path: str | Path, capacity: int = DEFAULT_CAPACITY,
             projector: Projector | None = None) -> RunSession:
        """A recorded run; RunRecordError or OSError say why it cannot be shown."""
        from engine.record import open_run
        from engine.record_format import RunRecordError

        reader = open_run(path)
        if not reader.steps:
            raise RunRecordError(f"{reader.path} has no snapshot yet")
        session = cls(capacity, reader.config, projector)
        session.run_info = reader.run_info
        session.store.load(reader)
        if session.store.latest is None:
            raise RunRecordError(f"no snapshot of {reader.path} can be read")
        session.record_dir, session.reader = reader.path, reader
        session.collapsed_at = next(
            (r["step"] for r in session.store.rows if r.get("collapsed")), None)
        return session

    @property
    def recorded(self) -> bool:
        return self.record_dir is not None and self.record_error is None

    def _recording_to(self) -> Path | None:
        """The record folder while the run is being recorded."""
        return self.record_dir if self.record_error is None else None

    def stop_recording(self, message: str) -> None:
        self.record_error = message

    def add_snapshot(self, snapshot: Snapshot) -> None:
        """A live snapshot (already written to the record by the worker); its frame is
        asked for at once."""
        if snapshot.collapsed and self.collapsed_at is None:
            self.collapsed_at = snapshot.step
        self.store.add(snapshot)
        self.project(snapshot)
        record_dir = self._recording_to()
        if self.store.reader is None and record_dir is not None:
            from engine.record import open_run
            from engine.record_format import RunRecordError

            try:  # evicted snapshots and frames are read back from the record
                self.store.attach(open_run(record_dir))
            except (OSError, RunRecordError) as exc:
                self.stop_recording(f"cannot read this run's record back: {exc}")

    def add_frame(self, frame: Frame) -> None:
        """A projection frame: kept in memory and cached into the record."""
        self.store.set_frame(frame)
        record_dir = self._recording_to()
        if record_dir is not None and not frame.method.endswith("full"):
            from engine.record_format import RunRecordError, write_frame

            try:  # reopening the run shows this frame without running UMAP again
                write_frame(record_dir, frame.key, frame.step, frame.coords, frame.method)
            except (OSError, RunRecordError):
                pass  # only a cache (never written through a symlink): recomputed on reopening

    # -- projections -------------------------------------------------------------------
    def project(self, snapshot: Snapshot, full: bool = False) -> None:
        """Ask for the frame of `snapshot`'s embedding (full: a full-quality UMAP)."""
        if self.projector is not None:
            self.projector.request("embedding", snapshot.step, snapshot.embedding, full=full)

    def project_input(self, x: np.ndarray | None = None) -> None:
        """Ask for the frame of the probe's raw inputs (`x`: before the RunInfo arrives)."""
        if x is None and self.run_info is not None:
            x = self.run_info.probe.x
        if self.projector is not None and x is not None:
            self.projector.request("raw", None, x)

    def project_missing(self, snapshot: Snapshot) -> None:
        """Ask only for the frames of `snapshot` that neither memory nor the record has,
        or has only as a PCA stand-in for a UMAP that was still starting."""
        if self._wanting(self.store.raw_frame):
            self.project_input()
        if self._wanting(self.store.recorded_frame(snapshot.step)):
            self.project(snapshot)

    def _failed(self) -> bool:
        return self.projector is not None and self.projector.failure is not None

    def _stand_in(self, method: str) -> bool:
        """A frame made by `method` only stands in for the UMAP the run asks for."""
        wanted = self.config.projection.method if self.config is not None else None
        return wanted == "umap" and not method.startswith("umap")

    def _wanting(self, frame: Frame | None) -> bool:
        return frame is None or (self._stand_in(frame.method) and not self._failed())

    def frames_ready(self, step: int) -> bool:
        """Both projections of `step` are at hand in the run's method (the embedding's
        exactly at `step`; a PCA stand-in for a UMAP still starting does not count)."""
        return not self._wanting(self.store.raw_frame) and not self._wanting(
            self.store.frames.get(step))

    # -- the View on screen ------------------------------------------------------------
    def show(self, snapshot: Snapshot) -> View:
        """Make `snapshot` (with the nearest frame computed for it) the View on screen."""
        if self.config is None or self.run_info is None:
            raise RuntimeError("a View needs the run's config and RunInfo")
        store = self.store
        frame = store.frame_for(snapshot.step)
        index = store.index_of(snapshot.step)
        self.shown = View(
            config=self.config, run=self.run_info, snapshot=snapshot, rows=store.rows,
            steps=store.steps, index=len(store.steps) - 1 if index is None else index,
            frame=frame, raw_frame=store.raw_frame,
            projection_note=self._projection_note(frame.method if frame is not None else None),
            collapsed_at=self.collapsed_at,
        )
        return self.shown

    def _projection_note(self, method: str | None) -> str:
        """"UMAP starting…" while PCA stands in for a UMAP that is still compiling."""
        if self._failed():
            return "projection worker failed: PCA only (Run > Retry projection)"
        if method is not None and self._stand_in(method):
            return "UMAP starting…"
        return ""
