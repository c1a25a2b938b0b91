"""Engine behaviour: generators, hashing, one-shot metric, training loop, reproducibility."""

from __future__ import annotations

import dataclasses
import os
import struct
import time

import numpy as np
import pytest
import torch

from engine import hashing, metrics
from engine.config import FAMILIES, DataConfig
from engine.experiment import Experiment
from engine.manifolds import make_family
from engine.snapshot import RunInfo, Snapshot
from engine.training import DivergenceError
from tests.helpers import tiny_config


def test_every_family_has_its_generator():
    from engine.manifolds import FAMILY_CLASSES

    assert list(FAMILY_CLASSES) == list(FAMILIES)


@pytest.mark.parametrize("family", FAMILIES)
def test_generators_are_deterministic_shaped_and_theta_moves_x(family):
    cfg = DataConfig(family=family, seen_classes=4, unseen_classes=2, theta_dim=3)
    fam_a, fam_b = make_family(cfg, seed=7), make_family(cfg, seed=7)
    labels = torch.tensor([0, 0, 1, 5])
    xa, ta = fam_a.sample(labels, torch.Generator().manual_seed(1))
    xb, tb = fam_b.sample(labels, torch.Generator().manual_seed(1))
    assert xa.shape == (4, cfg.x_dim) and ta.shape == (4, 3)
    assert torch.equal(xa, xb) and torch.equal(ta, tb)
    # same gamma (class 0), different theta -> different x
    assert not torch.allclose(xa[0], xa[1])
    # a different seed gives a different family
    xc, _ = make_family(cfg, seed=8).sample(labels, torch.Generator().manual_seed(1))
    assert not torch.allclose(xa, xc)


def test_image_pose_images_are_inspectable_and_pose_changes_them():
    cfg = DataConfig(family="image_pose", seen_classes=3, unseen_classes=2, theta_dim=5)
    fam = make_family(cfg, seed=0)
    assert fam.image_shape == (28, 28)
    assert fam.theta_names == ["rotation", "shift_x", "shift_y", "scale", "brightness"]
    canon = fam.canonical(fam.gamma[:2])
    assert canon.shape == (2, 28, 28) and canon.max() > 0.3
    ident = fam.f(fam.gamma[:1], torch.zeros(1, 5)).reshape(28, 28)
    # identity pose reproduces the canonical image (up to resampling)
    assert torch.allclose(ident, canon[0], atol=0.1)
    rotated = fam.f(fam.gamma[:1], torch.tensor([[2.0, 0, 0, 0, 0]])).reshape(28, 28)
    assert (rotated - ident).abs().mean() > 0.01


def test_noise_is_added_when_configured():
    base = DataConfig(seen_classes=2, unseen_classes=2, noise=0.0)
    noisy = DataConfig(seen_classes=2, unseen_classes=2, noise=0.5)
    labels = torch.tensor([0, 1])
    x0, _ = make_family(base, 0).sample(labels, torch.Generator().manual_seed(0))
    x1, _ = make_family(noisy, 0).sample(labels, torch.Generator().manual_seed(0))
    assert not torch.allclose(x0, x1)


def test_simhash_identical_vectors_always_collide_random_ones_rarely():
    rng = np.random.default_rng(0)
    bits = 6
    h = hashing.SimHash(dim=32, bits=bits, tables=8, seed=0)
    v = rng.standard_normal((1, 32))
    codes = h.codes(np.repeat(v, 10, axis=0))
    assert (codes == codes[0]).all()
    r = h.codes(rng.standard_normal((4000, 32)))
    assert r.min() >= 0 and r.max() < 2**bits
    # random vectors: pairwise collision about 2^-b
    m = hashing.collision_matrix(r, np.zeros(len(r), dtype=np.int64), 1)
    assert abs(m[0, 0] - 2.0**-bits) < 0.4 * 2.0**-bits


def test_collision_matrix_excludes_self_pairs_and_counts_by_class():
    # 2 classes: class 0 all in one bucket, class 1 split over two buckets
    codes = np.array([[0], [0], [0], [1], [2], [2]])
    cls = np.array([0, 0, 0, 1, 1, 1])
    m = hashing.collision_matrix(codes, cls, 2)
    assert m[0, 0] == pytest.approx(1.0)  # 6 ordered pairs, all collide
    assert m[1, 1] == pytest.approx(2 / 6)  # only the (4,5) pair, both orders
    assert m[0, 1] == pytest.approx(0.0) and m[1, 0] == pytest.approx(0.0)
    same, diff = hashing.same_and_different(m, cls)
    assert same == pytest.approx((6 + 2) / 12) and diff == 0.0


def test_theory_curve_matches_measured_simhash_collisions():
    rng = np.random.default_rng(1)
    bits, n = 4, 20000
    a = np.array([1.0, 0.0])
    angle = np.pi / 3
    b = np.array([np.cos(angle), np.sin(angle)])
    hits = 0
    for _ in range(n // 500):
        h = hashing.SimHash(2, bits, 500, seed=int(rng.integers(1 << 30)))
        c = h.codes(np.stack([a, b]))
        hits += (c[0] == c[1]).sum()
    assert hits / n == pytest.approx(hashing.theory_curve(angle, bits), abs=0.02)


def test_oneshot_accuracy_hand_computed_case():
    # 3 classes, 2 rows each; class 2's query points towards class 0's exemplar.
    feats = np.array([[1, 0], [1, 0.1], [0, 1], [0.1, 1], [-1, 0], [1, 0.05]], dtype=float)
    label = np.array([0, 0, 1, 1, 2, 2])
    episodes = [(np.array([0, 2, 4]), np.array([1, 3, 5]), np.array([0, 1, 2]))]
    assert metrics.oneshot_accuracy(feats, episodes) == pytest.approx(2 / 3)
    eps = metrics.oneshot_episodes(label, np.array([0, 1, 2]), ways=3, episodes=4, seed=0)
    assert len(eps) == 4
    for support, queries, targets in eps:
        assert len(support) == 3 and set(targets) == {0, 1, 2}
        assert not set(support) & set(queries)


def test_invariance_ratio_is_zero_for_theta_blind_features():
    label = np.repeat(np.arange(4), 5)
    blind = np.eye(4)[label] * 3.0
    assert metrics.invariance_ratio(blind, label) == pytest.approx(0.0, abs=1e-9)
    rng = np.random.default_rng(0)
    noisy = rng.standard_normal((20, 8))
    assert metrics.invariance_ratio(noisy, label) > 0.8


def test_training_yields_measured_snapshots_and_learns():
    exp = Experiment(tiny_config(**{"train.steps": 200, "train.snapshot_every": 50}))
    snaps = list(exp.run())
    assert [s.step for s in snaps] == [0, 50, 100, 150, 200]
    assert snaps[-1].done and not snaps[0].done
    assert exp.history == [s.scalars() for s in snaps] and exp.last is snaps[-1]
    last, first = snaps[-1], snaps[0]
    n, c = len(exp.probe), len(exp.probe.classes)
    assert last.embedding.shape == (n, 16)
    assert last.collision_matrix.shape == (c, c)
    info = exp.info
    assert info.probe is exp.probe and info.total_steps == 200 and info.device == "cpu"
    assert info.pair_angle.shape == last.pair_collision.shape == (c * (c - 1) // 2,)
    assert last.loss < first.loss
    assert last.train_accuracy > first.train_accuracy
    assert info.oneshot_untrained == first.oneshot_trained  # step 0 is the untrained net
    # a snapshot carries only what changes per snapshot; the run's fixed part is RunInfo
    assert not {f.name for f in dataclasses.fields(Snapshot)} & {
        f.name for f in dataclasses.fields(RunInfo)}
    assert 0 <= last.different_class_collision <= 1
    assert isinstance(last.scalars()["loss"], float)


def test_same_seed_gives_identical_metrics_and_other_seed_differs():
    a = list(Experiment(tiny_config()).run())[-1]
    b = list(Experiment(tiny_config()).run())[-1]
    c = list(Experiment(tiny_config(seed=5)).run())[-1]
    assert a.scalars() | {"seconds": 0, "steps_per_s": 0} == b.scalars() | {
        "seconds": 0,
        "steps_per_s": 0,
    }
    np.testing.assert_array_equal(a.embedding, b.embedding)
    assert a.loss != c.loss


def test_divergence_stops_with_error_and_keeps_earlier_snapshots():
    cfg = tiny_config(
        **{"train.lr": 1e4, "train.optimizer": "sgd", "train.steps": 400,
           "train.snapshot_every": 1}
    )
    exp = Experiment(cfg)
    seen = []
    with pytest.raises(DivergenceError) as info:
        for s in exp.run():
            seen.append(s)
    assert "diverged" in str(info.value) and "train.lr" in str(info.value)
    assert len(seen) >= 1 and exp.history == [s.scalars() for s in seen]
    assert info.value.step > seen[-1].step


def test_request_stop_ends_with_a_final_snapshot():
    exp = Experiment(tiny_config(**{"train.steps": 1000}))
    for s in exp.run(measure_beside=False):
        if s.step == 20:
            exp.request_stop()
    assert exp.last.done and exp.last.step == 21 and exp.history[-1]["step"] == 21
    # Measured beside training, the loop has trained on by the time snapshot 20 arrives
    # (at most two snapshots in flight): the stop still ends in order, with a final one.
    exp = Experiment(tiny_config(**{"train.steps": 1000}))
    every = exp.config.train.snapshot_every
    for s in exp.run():
        if s.step == 20:
            exp.request_stop()
    steps = [h["step"] for h in exp.history]
    assert steps == sorted(steps) and steps[:3] == [0, every, 2 * every]
    assert exp.last.done and 20 < exp.last.step <= 20 + 2 * every + 1


def _same_value(a, b, name: str) -> None:
    """Equal to the bit: arrays by dtype, shape and bytes, floats by their bytes (nan
    included), containers element by element."""
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        a, b = np.asarray(a), np.asarray(b)
        assert (a.dtype, a.shape) == (b.dtype, b.shape), name
        assert a.tobytes() == b.tobytes(), name
    elif isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), name
        for k in a:
            _same_value(a[k], b[k], f"{name}.{k}")
    elif isinstance(a, list | tuple):
        assert type(a) is type(b) and len(a) == len(b), name
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _same_value(x, y, f"{name}[{i}]")
    elif isinstance(a, float):
        assert type(a) is type(b) and struct.pack("<d", a) == struct.pack("<d", b), name
    else:
        assert type(a) is type(b) and a == b, name


def test_measuring_beside_training_gives_the_in_line_figures():
    from engine.figures import RUN_FIGURES, SNAPSHOT_FIGURES

    cfg = tiny_config(**{"train.steps": 120, "train.snapshot_every": 20})
    beside, in_line = Experiment(cfg), Experiment(cfg)
    a, b = list(beside.run()), list(in_line.run(measure_beside=False))
    assert [s.step for s in a] == [s.step for s in b] == list(range(0, 121, 20))
    snapshot_fields = {f.name for f in dataclasses.fields(Snapshot)}
    run_fields = {f.name for f in dataclasses.fields(RunInfo)}
    # every figure of the table is a field compared here
    assert {f.name for f in SNAPSHOT_FIGURES} <= snapshot_fields
    assert {f.name for f in RUN_FIGURES} <= run_fields
    for x, y in zip(a, b, strict=True):
        for name in snapshot_fields - {"seconds", "steps_per_s"}:  # timings differ
            _same_value(getattr(x, name), getattr(y, name), f"step {x.step}: {name}")
    assert np.isfinite(a[-1].val_oneshot_trained) and np.isfinite(a[-1].gamma_r2_trained)
    for name in run_fields - {"probe"}:  # the same probe set, built from the seed
        _same_value(getattr(beside.info, name), getattr(in_line.info, name), name)


def test_samples_are_fresh_poses_of_the_requested_classes():
    exp = Experiment(tiny_config(**{"data.family": "image_pose", "data.theta_dim": 3}))
    x, theta, label = exp.samples([0, 7], per_class=4)
    assert x.shape == (8, 28 * 28) and theta.shape == (8, 3)
    assert list(label) == [0] * 4 + [7] * 4
    assert exp.probe.image_shape == (28, 28)


def test_neighbouring_seeds_share_no_random_stream():
    from engine.seeds import STREAMS, stream_seed

    for s in (0, 1, 7, 2**31 - 1):
        mine = {stream_seed(s, n) for n in STREAMS}
        assert len(mine) == len(STREAMS)  # streams of one run differ
        theirs = {stream_seed(s + 1, n) for n in STREAMS}
        assert not mine & theirs  # seed s+1 reuses none of seed s's streams
    assert stream_seed(3, "probe") == stream_seed(3, "probe")
    # Neighbouring seeds draw different classes, not shifted copies of each other's.
    a = Experiment(tiny_config(seed=1))
    b = Experiment(tiny_config(seed=2))
    assert not np.allclose(a.family.gamma[:5].numpy(), b.family.gamma[:5].numpy())


def test_axis_roles_say_what_an_axis_changes_and_the_claims_hold():
    from engine.compare import config_fields
    from engine.config import default_config
    from engine.seeds import axis_roles

    for field in config_fields(default_config()):  # every setting has its line
        assert axis_roles(field) != "not known", field
    assert axis_roles("seed").startswith("every random role")
    assert "unseen classes and unseen probe rows unchanged" in axis_roles("data.seen_classes")
    assert "probe set" in axis_roles("model.width") and "unchanged" in axis_roles("model.width")
    # data.seen_classes: unseen probe rows (x, theta, their gammas) byte-identical
    a = Experiment(tiny_config(**{"data.seen_classes": 6}))
    b = Experiment(tiny_config(**{"data.seen_classes": 9}))
    ua, ub = np.flatnonzero(~a.probe.seen), np.flatnonzero(~b.probe.seen)
    assert len(ua) == len(ub) > 0
    assert a.probe.x[ua].tobytes() == b.probe.x[ub].tobytes()
    assert a.probe.theta[ua].tobytes() == b.probe.theta[ub].tobytes()
    ga = a.probe.gamma[a.probe.class_index[ua]]
    gb = b.probe.gamma[b.probe.class_index[ub]]
    assert ga.tobytes() == gb.tobytes()
    # model.*: the probe set is byte-identical, the network is not
    c = Experiment(tiny_config(**{"model.width": 16}))
    d = Experiment(tiny_config(**{"model.width": 24}))
    for key in ("x", "label", "seen", "theta", "classes", "class_seen", "gamma"):
        assert getattr(c.probe, key).tobytes() == getattr(d.probe, key).tobytes(), key
    assert c.model.state_dict().keys() == d.model.state_dict().keys()
    assert any(v.shape != d.model.state_dict()[k].shape for k, v in c.model.state_dict().items())
    # train.*: the network's initial weights unchanged
    e = Experiment(tiny_config(**{"train.lr": 0.01}))
    f = Experiment(tiny_config(**{"train.lr": 0.002}))
    assert all((v == f.model.state_dict()[k]).all() for k, v in e.model.state_dict().items())


def _children() -> set[int]:
    import psutil

    return {p.pid for p in psutil.Process().children()
            if "resource_tracker" not in " ".join(p.cmdline())}


def test_abort_ends_the_run_and_its_measurement_process():
    before = _children()
    exp = Experiment(tiny_config(**{"train.steps": 100_000}))
    steps = []
    for s in exp.run():
        steps.append(s.step)
        assert _children() - before  # measured beside training, in a process of its own
        exp.abort()
    assert steps == [0] and not exp.last.done  # no final snapshot
    assert not _children() - before


def test_closing_the_run_ends_its_measurement_process():
    before = _children()
    run = Experiment(tiny_config(**{"train.steps": 100_000})).run()
    assert next(run).step == 0
    run.close()
    assert not _children() - before


def _measure_process():
    """A measurement process set up for a tiny run; (process, probe, config, zero seen
    logits). The caller closes it."""
    from engine.measure import MeasureProcess
    from engine.training import build_fit_rows, build_validation

    exp = Experiment(tiny_config())
    cfg, probe = exp.config, exp.probe
    p = MeasureProcess()
    p.setup(cfg, probe, cfg.model.embed_dim, build_fit_rows(cfg, exp.family),
            build_validation(cfg, exp.family))
    logits = np.zeros((int(probe.seen.sum()), cfg.data.seen_classes), np.float32)
    return p, probe, cfg, logits


def test_an_error_while_measuring_is_raised_where_training_waits_for_it():
    p, probe, cfg, logits = _measure_process()
    try:
        wrong = np.zeros((len(probe) - 1, cfg.model.embed_dim), np.float32)  # a row short
        failed = p.submit(wrong, logits, None, 1.0, 1.0, None)
        with pytest.raises((IndexError, ValueError)) as info:
            failed.result(timeout=60)
        assert any("in the measurement process" in n for n in info.value.__notes__)
        # the process measures on after it
        right = np.zeros((len(probe), cfg.model.embed_dim), np.float32)
        figures, _ = p.submit(right, logits, None, 1.0, 1.0, None).result(timeout=60)
        assert 0 <= figures["oneshot_trained"] <= 1
    finally:
        p.close()
    assert p._proc.returncode is not None


@pytest.mark.skipif(not hasattr(os, "nice"), reason="POSIX priorities")
@pytest.mark.parametrize("niceness", ["10", "0"])
def test_helper_processes_yield_the_cores_to_training_and_the_gui(monkeypatch, niceness):
    """The measurement process and the projection worker lower their own priority by
    GSH_HELPER_NICENESS (10 unless set), so the GUI thread and training get a core
    first; 0 keeps them at the caller's. Read once each has answered a request."""
    from engine.projection import ProjectionService

    monkeypatch.setenv("GSH_HELPER_NICENESS", niceness)
    expected = min(19, os.getpriority(os.PRIO_PROCESS, 0) + int(niceness))

    measuring, probe, cfg, logits = _measure_process()
    try:
        embedding = np.zeros((len(probe), cfg.model.embed_dim), np.float32)
        measuring.submit(embedding, logits, None, 1.0, 1.0, None).result(timeout=60)
        assert os.getpriority(os.PRIO_PROCESS, measuring._proc.pid) == expected
    finally:
        measuring.close()
    with ProjectionService(method="pca") as svc:
        svc.submit(1, np.random.default_rng(0).normal(size=(40, 8)), key="embedding")
        deadline = time.monotonic() + 60
        while not svc.poll() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert svc.pid is not None
        assert os.getpriority(os.PRIO_PROCESS, svc.pid) == expected
