"""The movie of a recorded run, as data (Qt-free): keyframes and interpolated frames.

A keyframe per recorded snapshot: the representation's 2-D projection (from the run's
frame cache; when missing, computed here, warm-started from the previous keyframe's
layout, and written back to the cache), Procrustes-aligned to the previous keyframe so
consecutive keyframes line up, and the headline figures measured at that snapshot. The
input space has one projection for the whole run (its points never move). A Movie turns
the keyframes into fps x seconds frames by linear interpolation between neighbouring
keyframes; every frame carries the figures of the snapshot nearest to it. app/animate.py
draws and encodes the frames. The view (the plotted range) follows the points, also
interpolated, so the clusters fill the frame at every step.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection

import numpy as np

from .config import ConfigError, ExperimentConfig
from .projection_maths import (
    COLD_EPOCHS,
    EXACT_KNN_MAX,
    WARM_EPOCHS,
    exact_knn,
    pca_2d,
    procrustes_align,
    umap_2d,
)
from .record import RunReader
from .record_format import RunRecordError

FPS_RANGE = (1, 60)
SECONDS_RANGE = (1, 600)
FIGURES = ("oneshot_trained", "unseen_same_class_collision",
           "unseen_different_class_collision")  # the claim's figures: unseen classes


class Cancelled(Exception):
    """The caller asked to stop (should_stop() returned True)."""


def check_timing(fps: int, seconds: float) -> int:
    """The frame count of a movie of `seconds` at `fps`; ConfigError names a bad flag."""
    lo, hi = FPS_RANGE
    if isinstance(fps, bool) or not isinstance(fps, int) or not lo <= fps <= hi:
        raise ConfigError("--fps", f"must be an integer in [{lo}, {hi}], got {fps!r}")
    lo, hi = SECONDS_RANGE
    if (isinstance(seconds, bool) or not isinstance(seconds, (int, float))
            or not math.isfinite(seconds) or not lo <= seconds <= hi):
        raise ConfigError("--seconds", f"must be a number in [{lo}, {hi}], got {seconds!r}")
    return max(1, round(fps * seconds))


@dataclass
class Keyframe:
    """One recorded snapshot's projection (aligned to the previous keyframe) and figures."""

    step: int
    coords: np.ndarray  # (n, 2) float32, rows = probe rows
    method: str  # what produced the projection: "umap", "pca" (as cached or computed)
    figures: dict[str, float]  # FIGURES, measured at this snapshot
    computed: bool  # True when projected here (not found in the frame cache)

    @property
    def view(self) -> np.ndarray:
        """(xmin, xmax, ymin, ymax) of the points with a 4% margin."""
        lo, hi = np.nanmin(self.coords, 0), np.nanmax(self.coords, 0)
        pad = 0.04 * np.maximum(hi - lo, 1e-6)
        return np.array([lo[0] - pad[0], hi[0] + pad[0], lo[1] - pad[1], hi[1] + pad[1]])


@dataclass
class MovieFrame:
    index: int
    coords: np.ndarray  # interpolated representation coords
    step: int  # the nearest snapshot: its figures are the ones drawn
    figures: dict[str, float]
    method: str
    position: float  # 0..1 through the recorded timeline
    view: tuple[float, float, float, float]  # (xmin, xmax, ymin, ymax), interpolated too


def _method_matches(cached: str, wanted: str) -> bool:
    return cached.split()[0].lower().startswith(wanted)


def _project(points: np.ndarray, config: ExperimentConfig, init: np.ndarray | None
             ) -> tuple[np.ndarray, str]:
    """The run's projection of `points`: PCA, or UMAP warm-started from `init`."""
    p = config.projection
    n = len(points)
    if p.method != "umap" or n < 4:
        return pca_2d(points), "pca"
    k = max(2, min(p.n_neighbors, n - 1))
    knn = exact_knn(points, k, p.metric) if n <= EXACT_KNN_MAX else None
    start: np.ndarray | str
    if init is not None and init.shape == (n, 2):
        # Snapshots are close in time: a warm layout needs a fraction of a cold fit's epochs.
        epochs, start = 2 * WARM_EPOCHS, init
    else:
        epochs, start = COLD_EPOCHS, "spectral"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # umap: n_jobs with random_state, precomputed kNN
        coords = umap_2d(points, n_neighbors=p.n_neighbors, min_dist=p.min_dist,
                         metric=p.metric, seed=config.seed, n_epochs=epochs, init=start,
                         knn=knn)
    return coords, "umap"


@dataclass
class Keyframes:
    """Everything a movie of one run needs, loaded once."""

    keyframes: list[Keyframe]
    raw: np.ndarray  # input-space projection (n, 2)
    raw_method: str
    ways: int
    bits: int
    oneshot_raw: float  # the run's raw-input baseline, shown beside every frame's one-shot
    total_steps: int
    written: int  # projections computed here and written back to the frame cache


def load_keyframes(
    reader: RunReader,
    *,
    write_cache: bool = True,
    progress: Callable[[int, int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> Keyframes:
    """Keyframes of every readable snapshot of `reader`, in the run's projection method
    (config projection.method). Damaged snapshots are skipped (reader.problems says which);
    a run without any raises RunRecordError. Raises Cancelled when should_stop() is true."""
    steps = list(reader.steps)
    if not steps:
        raise RunRecordError(f"{reader.path} has no snapshot yet: nothing to animate")
    config = reader.config
    wanted = config.projection.method
    rows = {r.get("step"): r for r in reader.rows}
    probe = reader.probe
    n = len(probe.label)
    total = len(steps) + 1
    keyframes: list[Keyframe] = []
    written = 0
    prev: np.ndarray | None = None
    for i, step in enumerate(steps):
        if should_stop is not None and should_stop():
            raise Cancelled
        cached = reader.read_frame("embedding", step)
        computed = cached is None or cached[0].shape != (n, 2) or not _method_matches(
            cached[1], wanted)
        row = rows.get(step)
        if computed or row is None:
            try:
                snap = reader.snapshot(step)
            except RunRecordError:
                continue  # named in reader.problems
            if row is None:
                row = snap.scalars()
        if computed or cached is None:
            coords, method = _project(snap.embedding, config, prev)
        else:
            coords, method = np.asarray(cached[0], dtype=np.float32), cached[1]
        if prev is not None:
            coords = procrustes_align(coords, prev)
        if computed and write_cache:
            try:
                reader.write_frame("embedding", step, coords, method)
                written += 1
            except (OSError, RunRecordError):
                write_cache = False  # a read-only run: keep going without the cache
        prev = coords
        figures = {k: float(row.get(k, float("nan"))) for k in FIGURES}
        keyframes.append(Keyframe(step, coords, method, figures, computed))
        if progress is not None:
            progress(i + 1, total)
    if not keyframes:
        raise RunRecordError(f"{reader.path}: no snapshot could be read "
                             f"({'; '.join(reader.problems[:2])})")
    raw = reader.read_frame("raw", None)
    if raw is None or raw[0].shape != (n, 2) or not _method_matches(raw[1], wanted):
        if should_stop is not None and should_stop():
            raise Cancelled
        raw = _project(probe.x, config, None)
        if write_cache:
            try:
                reader.write_frame("raw", None, *raw)
                written += 1
            except (OSError, RunRecordError):
                pass
    if progress is not None:
        progress(total, total)
    run = reader.run_info
    return Keyframes(
        keyframes=keyframes, raw=np.asarray(raw[0], dtype=np.float32), raw_method=raw[1],
        ways=int(run.ways), bits=int(run.bits), oneshot_raw=float(run.oneshot_raw),
        total_steps=int(config.train.steps), written=written,
    )


class Movie:
    """fps x seconds frames through the keyframes: each interval between two neighbouring
    snapshots gets an equal share of the frames, positions move linearly between them."""

    def __init__(self, keys: Keyframes, fps: int, seconds: float):
        self.n_frames = check_timing(fps, seconds)
        self.keys = keys
        self.fps = fps
        self.seconds = seconds

    def __len__(self) -> int:
        return self.n_frames

    def frame(self, index: int) -> MovieFrame:
        if not 0 <= index < self.n_frames:
            raise IndexError(index)
        ks = self.keys.keyframes
        last = len(ks) - 1
        u = index * last / (self.n_frames - 1) if self.n_frames > 1 else float(last)
        a = min(int(math.floor(u)), last)
        t = u - a
        if a == last or t <= 1e-9:
            coords, near, view = ks[a].coords, ks[a], ks[a].view
        else:
            ka, kb = ks[a], ks[a + 1]
            coords = ((1.0 - t) * ka.coords + t * kb.coords).astype(np.float32)
            near = ka if t < 0.5 else kb
            view = (1.0 - t) * ka.view + t * kb.view
        position = u / last if last else 1.0
        xmin, xmax, ymin, ymax = (float(v) for v in view)
        return MovieFrame(index, coords, near.step, near.figures, near.method, position,
                          (xmin, xmax, ymin, ymax))

    def __iter__(self) -> Iterator[MovieFrame]:
        return (self.frame(i) for i in range(self.n_frames))


def keyframes_child(conn: Connection, run_dir: str) -> None:
    """Process entry point (the app's export): load_keyframes of `run_dir`, reporting
    ("progress", done, total) and then ("done", Keyframes) or ("error", message)."""
    from .record import open_run

    try:
        keys = load_keyframes(open_run(run_dir),
                              progress=lambda done, total: conn.send(("progress", done, total)))
        conn.send(("done", keys))
    except (RunRecordError, ConfigError, OSError, ValueError) as exc:
        conn.send(("error", str(exc)))
    except Exception as exc:  # the app shows it; a bare death would say less
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
    finally:
        conn.close()
