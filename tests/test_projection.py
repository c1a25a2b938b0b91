"""The projection service: shapes and labels, latest-wins, worker death, shutdown, alignment."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time

import numpy as np
import pytest

from engine import projection_maths
from engine.projection import (
    ProjectionResult,
    ProjectionService,
    exact_knn,
    pca_2d,
    procrustes_align,
)


def clustered(n: int = 300, dim: int = 16, classes: int = 6, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(0.0, 6.0, size=(classes, dim))
    label = np.arange(n) % classes
    return (centres[label] + rng.normal(size=(n, dim))).astype(np.float32)


def wait_for(svc: ProjectionService, until, timeout: float = 30.0) -> list[ProjectionResult]:
    """Poll like the GUI's timer does, collecting results until `until(results)` holds."""
    got: list[ProjectionResult] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got.extend(svc.poll())
        if until(got):
            return got
        time.sleep(0.01)
    raise AssertionError(f"timed out; got {[(r.request_id, r.method) for r in got]}")


def displacement(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b, axis=1).mean())


# -- numerics --------------------------------------------------------------------------


def test_procrustes_undoes_rotation_reflection_scale_and_shift():
    rng = np.random.default_rng(1)
    ref = rng.normal(size=(200, 2)).astype(np.float32)
    angle = 2.1
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    mirror = np.array([[1.0, 0.0], [0.0, -1.0]])
    moved = 3.5 * ref @ rot @ mirror + np.array([10.0, -4.0])
    moved += rng.normal(0.0, 0.05, size=moved.shape)  # the next frame is never identical

    aligned = procrustes_align(moved, ref)

    assert aligned.shape == ref.shape and aligned.dtype == np.float32
    assert displacement(aligned, ref) < 0.1 * displacement(moved, ref)
    assert displacement(aligned, ref) < 0.05


def test_procrustes_leaves_mismatched_frames_alone():
    a = np.ones((5, 2), np.float32)
    b = np.zeros((6, 2), np.float32)
    np.testing.assert_array_equal(procrustes_align(a, b), a)


def test_pca_2d_is_deterministic_and_spans_the_widest_directions():
    x = clustered()
    first, again = pca_2d(x), pca_2d(x.copy())
    np.testing.assert_array_equal(first, again)
    assert first.shape == (len(x), 2) and first.dtype == np.float32
    # The two components carry the largest variances, in order.
    var = first.var(0)
    assert var[0] >= var[1] > 0


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
@pytest.mark.parametrize("group", [32, 3])  # 3: the two-stage selection, padded columns
def test_exact_knn_matches_brute_force_across_blocks(monkeypatch, metric, group):
    # A tiny block budget forces many row blocks: results must not depend on blocking.
    n = 301
    monkeypatch.setattr(projection_maths, "_KNN_BLOCK_BYTES", 4 * n * 7)
    monkeypatch.setattr(projection_maths, "_KNN_GROUP", group)
    x = clustered(n=n, seed=3)
    idx, dist = exact_knn(x, 8, metric)

    xx = x.astype(np.float64)
    if metric == "cosine":
        u = xx / np.linalg.norm(xx, axis=1, keepdims=True)
        full = 1.0 - u @ u.T
    else:
        full = np.linalg.norm(xx[:, None, :] - xx[None, :, :], axis=2)
    np.fill_diagonal(full, -1.0)
    expect = np.argsort(full, axis=1)[:, :8]
    assert idx.shape == dist.shape == (n, 8)
    np.testing.assert_array_equal(idx[:, 0], np.arange(n))  # self first, as umap expects
    assert np.all(dist[:, 0] == 0.0)
    assert (np.sort(idx, 1) == np.sort(expect, 1)).mean() > 0.99
    exp_d = np.take_along_axis(full, expect, 1)[:, 1:]
    np.testing.assert_allclose(dist[:, 1:], exp_d, rtol=1e-3, atol=1e-3)


def test_knn_overlap_is_the_share_of_edges_the_two_graphs_have_in_common():
    rng = np.random.default_rng(3)
    n, k = 5000, 15
    a = np.stack([rng.choice(60, k, replace=False) for _ in range(n)]).astype(np.int32)
    b = np.stack([rng.choice(60, k, replace=False) for _ in range(n)]).astype(np.int32)
    shared = sum(len(set(ra) & set(rb)) for ra, rb in zip(a, b, strict=True))
    assert projection_maths._knn_overlap(a, b) == shared / (n * k)
    assert projection_maths._knn_overlap(a, a) == 1.0
    assert projection_maths._knn_overlap(a, b[:10]) == 0.0


def test_bad_parameters_are_rejected_before_any_process_starts():
    with pytest.raises(ValueError):
        ProjectionService(method="tsne")
    with pytest.raises(ValueError):
        ProjectionService(metric="manhattan")
    assert multiprocessing.active_children() == []


# -- the service -----------------------------------------------------------------------


def test_pca_results_have_the_right_shape_and_label():
    x = clustered(n=120)
    with ProjectionService(method="pca") as svc:
        svc.submit(7, x, key="embedding")
        svc.submit(8, x[:50], key="raw", full=True)
        got = wait_for(svc, lambda rs: {r.key for r in rs} == {"embedding", "raw"})
    by_key = {r.key: r for r in got}
    emb, raw = by_key["embedding"], by_key["raw"]
    assert (emb.request_id, emb.coords.shape, emb.method, emb.full) == (7, (120, 2), "pca", False)
    assert (raw.request_id, raw.coords.shape, raw.method, raw.full) == (8, (50, 2), "pca", True)
    assert emb.coords.dtype == np.float32 and np.isfinite(emb.coords).all()
    assert emb.seconds >= 0.0
    np.testing.assert_allclose(raw.coords, pca_2d(x[:50]), atol=1e-4)


def test_a_burst_of_requests_yields_only_the_last_one():
    frames = [clustered(n=2000, dim=64, seed=s) for s in range(20)]
    with ProjectionService(method="pca") as svc:
        for i, frame in enumerate(frames):
            svc.submit(i, frame)
        got = wait_for(svc, lambda rs: any(r.request_id == 19 for r in rs))
        time.sleep(0.2)
        got += svc.poll()
    ids = [r.request_id for r in got]
    assert ids[-1] == 19
    # At most the one already in the worker when the burst began slips through.
    assert len(ids) <= 2 and set(ids) <= {0, 19}
    # It is frame 19's projection (up to the similarity that aligns it to frame 0).
    mapped = procrustes_align(pca_2d(frames[19]), got[-1].coords)
    assert displacement(mapped, got[-1].coords) < 1e-3 * np.abs(got[-1].coords).mean()


def test_new_frames_are_aligned_to_the_previous_frame_of_their_key():
    x = clustered(n=400, dim=16)
    # Re-weighting the features turns the principal axes: an unaligned frame would rotate.
    y = x * np.linspace(0.5, 1.5, x.shape[1], dtype=np.float32)
    with ProjectionService(method="pca") as svc:
        svc.submit(1, x)
        first = wait_for(svc, lambda rs: len(rs) == 1)[0]
        svc.submit(2, y)
        second = wait_for(svc, lambda rs: len(rs) == 1)[0]
        svc.reset()  # a new probe set: nothing to align to any more
        svc.submit(3, y)
        after_reset = wait_for(svc, lambda rs: len(rs) == 1)[0]
    unaligned = pca_2d(y)
    assert displacement(second.coords, first.coords) < 0.5 * displacement(unaligned, first.coords)
    np.testing.assert_allclose(after_reset.coords, unaligned, atol=1e-3)


def test_a_killed_worker_is_replaced_and_the_next_request_succeeds():
    x = clustered(n=200)
    with ProjectionService(method="pca") as svc:
        svc.submit(1, x)
        wait_for(svc, lambda rs: len(rs) == 1)
        old_pid = svc.pid
        os.kill(old_pid, signal.SIGKILL)
        time.sleep(0.3)
        svc.submit(2, x)
        got = wait_for(svc, lambda rs: any(r.request_id == 2 for r in rs))
        assert svc.restarts == 1
        assert svc.error is not None and "died" in svc.error
        assert svc.pid != old_pid
        assert got[-1].coords.shape == (200, 2)

        # Killed with a request in flight: that request is re-sent to the replacement.
        svc.submit(3, x)
        os.kill(svc.pid, signal.SIGKILL)
        got = wait_for(svc, lambda rs: any(r.request_id == 3 for r in rs))
        assert got[-1].coords.shape == (200, 2)
        assert svc.restarts in (1, 2)  # 1 if request 3 was answered before the kill landed


def test_shutdown_leaves_no_child_and_is_idempotent():
    svc = ProjectionService(method="pca")
    pid = svc.pid
    assert [p.pid for p in multiprocessing.active_children()] == [pid]
    svc.shutdown()
    svc.shutdown()
    assert multiprocessing.active_children() == []
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    with pytest.raises(RuntimeError):
        svc.submit(1, clustered(n=10))
    assert svc.poll() == []


def test_pca_serves_while_umap_warms_up_then_umap_takes_over():
    """One worker's whole life: PCA stand-in, UMAP upgrade, warm refresh, raw cache."""
    x = clustered(n=400, dim=32, classes=8)
    with ProjectionService(method="umap", n_neighbors=10, seed=0) as svc:
        svc.submit(1, x)
        first = wait_for(svc, lambda rs: len(rs) >= 1)[0]
        # The worker needs seconds to import umap and compile; the first frame must not wait.
        assert first.method == "pca" and first.request_id == 1
        assert first.coords.shape == (400, 2)

        # Once warm, the same request is answered again, by UMAP.
        upgraded = wait_for(svc, lambda rs: any(r.method == "umap" for r in rs), timeout=120)
        umap_frame = [r for r in upgraded if r.method == "umap"][-1]
        assert svc.umap_ready
        assert umap_frame.request_id == 1 and umap_frame.coords.shape == (400, 2)
        # UMAP separates the classes: each point's nearest 2-D neighbour shares its class.
        label = np.arange(400) % 8
        c = umap_frame.coords
        d = np.linalg.norm(c[:, None] - c[None, :], axis=2)
        np.fill_diagonal(d, np.inf)
        assert (label[d.argmin(1)] == label).mean() > 0.9

        # A refresh of slightly moved points starts warm and stays where it was.
        moved = x + np.random.default_rng(5).normal(0, 0.05, x.shape).astype(np.float32)
        svc.submit(2, moved)
        refresh = wait_for(svc, lambda rs: any(r.request_id == 2 for r in rs), timeout=60)[-1]
        assert refresh.method == "umap"
        spread = float(np.linalg.norm(c - c.mean(0), axis=1).mean())
        assert displacement(refresh.coords, c) < 0.3 * spread

        # The raw projection is computed once; identical points come back from the cache.
        svc.submit(3, x, key="raw")
        raw = wait_for(svc, lambda rs: any(r.key == "raw" for r in rs), timeout=60)[-1]
        assert raw.method == "umap"
        svc.submit(4, x.copy(), key="raw")
        cached = svc.poll()
        assert [(r.request_id, r.key, r.method) for r in cached] == [(4, "raw", "umap")]
        np.testing.assert_array_equal(cached[0].coords, raw.coords)

        # A full-quality refit on demand, here with the cosine metric.
        svc.set_params(metric="cosine")
        svc.submit(5, x, full=True)
        final = wait_for(svc, lambda rs: any(r.request_id == 5 for r in rs), timeout=60)[-1]
        assert (final.method, final.full, final.coords.shape) == ("umap", True, (400, 2))
        assert np.isfinite(final.coords).all()
        assert svc.error is None


def test_a_refresh_frame_takes_smaller_steps_from_the_previous_layout(monkeypatch):
    from engine import projection_worker as worker

    calls: list[dict] = []

    def fake_umap(points, **kwargs):
        calls.append(kwargs)
        return pca_2d(points)

    monkeypatch.setattr(worker, "umap_2d", fake_umap)
    params = {"method": "umap", "n_neighbors": 10, "min_dist": 0.1, "metric": "euclidean",
              "seed": 0}
    x = clustered(n=300, seed=4)
    projector = worker._Projector()
    projector.run(worker.Job(1, "embedding", x, False, params, 0), True)
    projector.run(worker.Job(2, "embedding", x + 0.001, False, params, 0), True)
    projector.run(worker.Job(3, "embedding", x, True, params, 0), True)
    cold, refresh, full = calls
    assert cold["learning_rate"] == 1.0 and cold["n_epochs"] == projection_maths.COLD_EPOCHS
    assert refresh["learning_rate"] == projection_maths.REFRESH_LEARNING_RATE
    assert refresh["n_epochs"] == projection_maths.warm_epochs(300)
    assert isinstance(refresh["init"], np.ndarray)
    assert full["learning_rate"] == 1.0 and full["n_epochs"] is None  # umap's defaults


def test_worker_progress_bars_make_no_semaphore(monkeypatch):
    """The UMAP worker's tqdm lock is a thread lock: no named semaphore for the resource
    tracker to report as leaked when the worker leaves with os._exit."""
    import multiprocessing
    from multiprocessing import resource_tracker

    from tqdm import std

    from engine.projection_worker import thread_lock_for_progress_bars

    registered = []
    # The worker is spawned, and only a spawned process's locks are named semaphores.
    monkeypatch.setattr(multiprocessing, "RLock", multiprocessing.get_context("spawn").RLock)
    monkeypatch.setattr(resource_tracker, "register",
                        lambda name, rtype: registered.append((name, rtype)))
    for cls, attr in ((std.tqdm, "_lock"), (std.TqdmDefaultWriteLock, "mp_lock")):
        if attr in vars(cls):
            monkeypatch.delattr(cls, attr)
    thread_lock_for_progress_bars()
    with std.tqdm(range(2), disable=True):
        pass
    assert registered == []
