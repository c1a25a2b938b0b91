"""The science of issue 11: real digits, gamma/theta probes, split collisions, LSH index,
deeper generators and the collapse detector."""

from __future__ import annotations

import math
import socket
import urllib.request

import numpy as np
import pytest
import torch

from engine import hashing, metrics
from engine.config import ConfigError, DataConfig
from engine.experiment import Experiment
from engine.lsh_index import lsh_figures
from engine.manifolds import load_digit_images, make_family
from engine.snapshot import RunInfo, Snapshot
from tests.helpers import tiny_config


def digits_cfg(**kw) -> DataConfig:
    base = dict(family="digits_pose", seen_classes=40, unseen_classes=8, theta_dim=5,
                image_size=16, gamma_dim=8)
    return DataConfig(**{**base, **kw})


# ---------------------------------------------------------------------------- digits_pose


def test_digits_come_from_the_bundled_data_without_any_network(monkeypatch):
    def no_network(*a, **k):
        raise AssertionError("digits_pose tried to reach the network")

    monkeypatch.setattr(socket, "socket", no_network)
    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    load_digit_images.cache_clear()
    images, label = load_digit_images()
    assert images.shape == (1797, 8, 8) and label.shape == (1797,)
    assert 0.0 <= images.min() and images.max() <= 1.0
    fam = make_family(digits_cfg(), seed=0)
    assert fam.images.shape == (48, 16, 16)


def test_digits_pose_is_deterministic_and_splits_by_digit_label():
    cfg = digits_cfg(unseen_classes=10)
    a, b = make_family(cfg, seed=3), make_family(cfg, seed=3)
    labels = torch.tensor([0, 5, 40, 49])
    xa, ta = a.sample(labels, torch.Generator().manual_seed(1))
    xb, tb = b.sample(labels, torch.Generator().manual_seed(1))
    assert torch.equal(xa, xb) and torch.equal(ta, tb)
    assert np.array_equal(a.rows, b.rows) and torch.equal(a.gamma, b.gamma)
    assert not np.array_equal(make_family(cfg, seed=4).rows, a.rows)
    # seen classes are images of 0-6, unseen ones images of 7, 8, 9, balanced (4, 3, 3)
    assert set(a.digit[:40]) <= set(range(7))
    assert list(np.bincount(a.digit[40:], minlength=10)[7:]) == [4, 3, 3]
    assert len(set(a.rows)) == 50  # every class is a different image
    # the class is that very image: identity pose gives the upsampled, padded digit
    images, digit_of = load_digit_images()
    assert np.array_equal(digit_of[a.rows], a.digit)
    ident = a.render(torch.tensor([0]), torch.zeros(1, 5)).reshape(16, 16)
    assert torch.allclose(ident, a.images[0], atol=1e-5)
    assert a.images[0].max() > 0.5 and a.images[0][0].abs().sum() == 0  # padded border
    up = torch.nn.functional.interpolate(
        torch.from_numpy(images[a.rows[:1]]).unsqueeze(1), size=(11, 11), mode="bilinear")
    assert torch.allclose(a.images[0, 2:13, 2:13], up[0, 0].clamp(min=0), atol=1e-6)
    # gamma: coordinates on the digits' principal components, distinct per image
    assert a.gamma.shape == (50, 8) and torch.unique(a.gamma, dim=0).shape[0] == 50


def test_digits_split_by_image_shares_digits_but_never_images():
    cfg = digits_cfg(seen_digits="0123456789", unseen_digits="0123456789", unseen_classes=20)
    fam = make_family(cfg, seed=0)
    assert set(fam.digit[40:]) == set(range(10))
    assert not set(fam.rows[:40]) & set(fam.rows[40:])


@pytest.mark.parametrize("change, field_name", [
    ({"seen_classes": 1265}, "data.seen_classes"),  # 1,264 images of 0-6 are bundled
    ({"unseen_classes": 523}, "data.unseen_classes"),  # 3 digits x 174 images at least
    ({"seen_digits": "0a"}, "data.seen_digits"),
    ({"unseen_digits": "77"}, "data.unseen_digits"),
    ({"unseen_digits": ""}, "data.unseen_digits"),
    ({"gamma_dim": 65}, "data.gamma_dim"),
    ({"theta_dim": 6}, "data.theta_dim"),
])
def test_digits_config_is_bounded_by_the_bundled_images(change, field_name):
    from engine.digits import check_digits

    def check(cfg: DataConfig) -> None:
        cfg.validate()  # types and ranges
        check_digits(cfg)  # the split: asked where a run starts

    with pytest.raises(ConfigError) as info:
        check(digits_cfg(**change))
    assert info.value.field == field_name
    check(digits_cfg(seen_classes=1264, unseen_classes=522))  # the bounds themselves


def test_digits_run_trains_and_samples_real_digits():
    exp = Experiment(tiny_config(**{
        "data.family": "digits_pose", "data.seen_classes": 30, "data.unseen_classes": 6,
        "data.theta_dim": 5, "data.image_size": 16, "data.theta_scale": 0.5,
        "train.steps": 20, "probe.ways": 6,
    }))
    snaps = list(exp.run())
    assert exp.info.probe.image_shape == (16, 16)
    x, theta, labels = exp.samples([30, 31], per_class=3)
    assert x.shape == (6, 256) and theta.shape == (6, 5)
    assert set(exp.family.digit[[30, 31]]) <= {7, 8, 9}
    assert math.isfinite(snaps[-1].gamma_r2_trained) and math.isfinite(exp.info.theta_r2_raw)


# ----------------------------------------------------------------------- random_relu depth


def test_random_relu_depth_one_draws_each_role_from_its_stream():
    from engine.seeds import role_seed

    cfg = DataConfig(seen_classes=4, unseen_classes=2, theta_dim=3, gamma_dim=5, input_dim=7)
    fam = make_family(cfg, seed=11)
    gamma = torch.from_numpy(np.concatenate([
        np.random.default_rng(role_seed(11, "seen_gamma")).standard_normal((4, 5)),
        np.random.default_rng(role_seed(11, "unseen_gamma")).standard_normal((2, 5)),
    ]).astype(np.float32))
    g = torch.Generator().manual_seed(role_seed(11, "generator"))
    w1 = torch.randn(8, 128, generator=g) / math.sqrt(8)
    b1 = 0.1 * torch.randn(128, generator=g)
    w2 = torch.randn(128, 7, generator=g) * math.sqrt(2 / 128)
    theta = torch.randn(6, 3)
    expected = torch.relu(torch.cat([gamma, theta], 1) @ w1 + b1) @ w2
    assert torch.equal(fam.gamma, gamma)
    assert torch.allclose(fam.f(fam.gamma, theta), expected)


def test_random_relu_depth_width_and_activation_change_the_map():
    base = DataConfig(seen_classes=4, unseen_classes=2, theta_dim=3)
    theta = torch.randn(6, 3, generator=torch.Generator().manual_seed(0))
    x1 = make_family(base, 0)
    outs = [x1.f(x1.gamma, theta)]
    for change in ({"generator_depth": 3}, {"generator_width": 32},
                   {"generator_activation": "tanh"}):
        fam = make_family(DataConfig(**{**base.__dict__, **change}), 0)
        again = make_family(DataConfig(**{**base.__dict__, **change}), 0)
        x = fam.f(fam.gamma, theta)
        assert torch.equal(x, again.f(again.gamma, theta))
        assert x.shape == outs[0].shape and torch.isfinite(x).all() and x.std() > 0.05
        assert not any(torch.allclose(x, o) for o in outs)
        outs.append(x)
    with pytest.raises(ConfigError, match="data.generator_depth"):
        DataConfig(generator_depth=0).validate()


# --------------------------------------------------------------------------- ridge probes


def test_ridge_probe_reads_a_linear_function_of_gamma_on_unseen_classes():
    rng = np.random.default_rng(0)
    gamma = rng.standard_normal((60, 6))  # 50 fit classes, 10 held-out classes
    mix = rng.standard_normal((6, 32))
    label = np.repeat(np.arange(60), 4)
    emb = gamma[label] @ mix + 0.01 * rng.standard_normal((240, 32))
    fit, test = label < 50, label >= 50
    probe = metrics.RidgeProbe(emb[fit], label[fit])
    assert probe.r2(gamma[label[fit]], emb[test], gamma[label[test]]) > 0.98
    noise = rng.standard_normal((240, 32))
    probe = metrics.RidgeProbe(noise[fit], label[fit])
    assert probe.r2(gamma[label[fit]], noise[test], gamma[label[test]]) < 0.05
    # half the targets readable, half not: in between (10 test classes: a rough half)
    half = np.concatenate([gamma[:, :3], rng.standard_normal((60, 3))], axis=1)
    emb = gamma[label][:, :3] @ mix[:3] + 0.01 * rng.standard_normal((240, 32))
    probe = metrics.RidgeProbe(emb[fit], label[fit])
    assert 0.2 < probe.r2(half[label[fit]], emb[test], half[label[test]]) < 0.7


def test_spearman_matches_the_definition_with_ties():
    a = np.array([1.0, 2.0, 2.0, 3.0, 5.0])
    b = np.array([5.0, 3.0, 3.0, 2.0, 1.0])
    assert metrics.spearman(a, b) == pytest.approx(-1.0)
    assert metrics.spearman(a, a**3) == pytest.approx(1.0)
    assert math.isnan(metrics.spearman(a, np.ones(5)))


# ------------------------------------------------------------------ three-way collisions


def test_collision_rates_split_into_seen_unseen_and_all():
    # classes 0, 1 seen and 2, 3 unseen, two points each, one table
    codes = np.array([[1], [1], [2], [2], [3], [4], [3], [5]])
    class_index = np.repeat(np.arange(4), 2)
    class_seen = np.array([True, True, False, False])
    m = hashing.collision_matrix(codes, class_index, 4)
    split = hashing.split_rates(m, class_index, class_seen)
    assert split == {"seen_same": 1.0, "seen_different": 0.0,
                     "unseen_same": 0.0, "unseen_different": 0.25}
    same, diff = hashing.same_and_different(m, class_index)
    assert same == 0.5 and diff == pytest.approx(1 / 24)  # 1 colliding pair of the 24


def test_class_mean_angles_are_between_centred_class_means():
    f = np.array([[2.0, 0.0], [2.0, 0.0], [0.0, 2.0], [0.0, 2.0], [0.0, 0.0], [0.0, 0.0]])
    f = f + 5.0  # an offset the centring removes
    angles = hashing.class_mean_angles(f, np.repeat(np.arange(3), 2), 3,
                                       np.array([0, 0, 1]), np.array([1, 2, 2]))
    centred = np.array([[4 / 3, -2 / 3], [-2 / 3, 4 / 3], [-2 / 3, -2 / 3]])
    u = centred / np.linalg.norm(centred, axis=1, keepdims=True)
    expected = np.arccos([u[0] @ u[1], u[0] @ u[2], u[1] @ u[2]])
    assert np.allclose(angles, expected)


# --------------------------------------------------------------- exact collision rates


def _plain_exact(f, center, class_index, n_classes, bits):
    """The definition, pair by pair: mean over row pairs of (1 - angle/pi)^bits."""
    v = np.asarray(f, dtype=np.float64) - center
    total = np.zeros((n_classes, n_classes))
    count = np.zeros((n_classes, n_classes))
    for i in range(len(v)):
        for j in range(len(v)):
            if i == j:
                continue
            cos = v[i] @ v[j] / (np.linalg.norm(v[i]) * np.linalg.norm(v[j]))
            p = (1 - np.arccos(np.clip(cos, -1, 1)) / np.pi) ** bits
            total[class_index[i], class_index[j]] += p
            count[class_index[i], class_index[j]] += 1
    return total / np.maximum(count, 1)


def test_exact_collision_matrix_is_the_pairwise_closed_form(monkeypatch):
    rng = np.random.default_rng(3)
    class_index = np.repeat(np.arange(4), [3, 5, 4, 6])
    f = rng.normal(size=(len(class_index), 6)) + 2.0 * rng.normal(size=(4, 6))[class_index]
    center = f[:8].mean(0)
    monkeypatch.setattr(hashing, "EXACT_BLOCK_ROWS", 5)  # several blocks
    m = hashing.exact_collision_matrix(f, center, class_index, 4, bits=3)
    assert np.allclose(m, _plain_exact(f, center, class_index, 4, 3), atol=2e-5)


def test_exact_rates_are_the_mean_of_drawn_tables():
    rng = np.random.default_rng(4)
    class_index = np.repeat(np.arange(3), 6)
    f = rng.normal(size=(18, 5)) + 1.5 * rng.normal(size=(3, 5))[class_index]
    center = f[:6].mean(0)
    exact = hashing.exact_collision_matrix(f, center, class_index, 3, bits=4)
    h = hashing.SimHash(5, bits=4, tables=4000, seed=0)
    drawn = hashing.collision_matrix(h.codes(f - center), class_index, 3)
    assert np.allclose(drawn, exact, atol=0.02)


def test_rows_on_the_hash_centre_collide_as_the_drawn_hash_says():
    """A collapsed network puts every row on the centre: every hyperplane gives them the
    same bits, so they always collide; one such row against another agrees on each bit
    with probability 1/2."""
    rng = np.random.default_rng(6)
    class_index = np.repeat(np.arange(3), 6)
    f = rng.normal(size=(18, 5)).astype(np.float32)
    f[:9] = 0.0  # class 0 and half of class 1 on the centre
    center = np.zeros(5, dtype=np.float32)
    exact = hashing.exact_collision_matrix(f, center, class_index, 3, bits=3)
    assert exact[0, 0] == pytest.approx(1.0)
    h = hashing.SimHash(5, bits=3, tables=4000, seed=0)
    drawn = hashing.collision_matrix(h.codes(f - center), class_index, 3)
    assert np.allclose(drawn, exact, atol=0.02)


def test_the_hash_centre_is_the_seen_rows_mean():
    rng = np.random.default_rng(5)
    f = rng.normal(size=(10, 3)).astype(np.float32)
    seen = np.arange(10) < 4
    assert np.allclose(hashing.seen_center(f, seen), f[:4].mean(0))
    assert np.allclose(hashing.center_of(f, np.zeros(0)), f.mean(0))  # older records


# ----------------------------------------------------------------------------- LSH index


def test_lsh_index_finds_identical_exemplars_and_never_opposite_ones():
    e1 = np.eye(4)[0]
    emb = np.stack([e1, -e1, e1, -e1])  # rows 0, 1 exemplars; 2, 3 queries
    right = [(np.array([0, 1]), np.array([2, 3]), np.array([0, 1]))]
    r = hashing.lsh_index_oneshot(emb, right, bits=8, tables=4, seed=0)
    assert r == {"recall": 1.0, "candidates": 1.0, "oneshot": 1.0, "bit_agreement": 1.0,
                 "recall_theory": 1.0}
    wrong = [(np.array([0, 1]), np.array([2, 3]), np.array([1, 0]))]
    r = hashing.lsh_index_oneshot(emb, wrong, bits=8, tables=4, seed=0)
    assert r == {"recall": 0.0, "candidates": 1.0, "oneshot": 0.0, "bit_agreement": 0.0,
                 "recall_theory": 0.0}


def test_lsh_recall_follows_the_theory_curve_at_a_known_angle():
    rng = np.random.default_rng(1)
    n, dim, angle = 3000, 16, 0.6
    a = rng.standard_normal((n, dim))
    a /= np.linalg.norm(a, axis=1, keepdims=True)
    ortho = rng.standard_normal((n, dim))
    ortho -= (ortho * a).sum(1, keepdims=True) * a
    ortho /= np.linalg.norm(ortho, axis=1, keepdims=True)
    b = np.cos(angle) * a + np.sin(angle) * ortho
    emb = np.concatenate([a, b, -a, -b])  # mirrored rows: the centring changes nothing
    episodes = [(np.array([i]), np.array([n + i]), np.array([0])) for i in range(n)]
    bits, tables = 4, 3
    r = hashing.lsh_index_oneshot(emb, episodes, bits, tables, seed=0)
    p = 1 - angle / np.pi
    assert r["bit_agreement"] == pytest.approx(p, abs=0.01)
    assert r["recall"] == pytest.approx(float(hashing.lsh_theory(p, bits, tables)), abs=0.03)
    assert r["candidates"] == r["recall"] and r["oneshot"] == r["recall"]  # one-way episodes
    assert r["recall_theory"] == pytest.approx(float(hashing.lsh_theory(p, bits, tables)),
                                               abs=1e-4)
    assert hashing.lsh_theory(1.0, 8, 4) == 1.0 and hashing.lsh_theory(0.5, 1, 1) == 0.5


def test_lsh_theory_curve_is_averaged_over_pairs_as_plain_numpy_does():
    rng = np.random.default_rng(3)
    emb = rng.standard_normal((60, 5))
    center = rng.standard_normal(5) * 0.1
    episodes = [(np.array([0, 1, 2]), np.array([10, 11, 12, 13]), np.array([0, 1, 2, 1])),
                (np.array([20, 21]), np.array([30, 31, 32]), np.array([1, 0, 0]))]
    p = hashing.lsh_pair_agreements(emb, episodes, center)
    # plain re-implementation: each query against its own exemplar, centred, angle/pi
    plain = []
    for s, q, t in episodes:
        for qi, ti in zip(q, t, strict=True):
            a, b = emb[qi] - center, emb[s[ti]] - center
            cos = a @ b / np.linalg.norm(a) / np.linalg.norm(b)
            plain.append(1 - np.arccos(np.clip(cos, -1, 1)) / np.pi)
    plain = np.array(plain)
    assert np.allclose(p, plain, atol=1e-5)
    bits, tables = 3, np.arange(1, 9)
    curve = hashing.lsh_theory_over_pairs(p, bits, tables)
    want = [np.mean([1 - (1 - pi ** bits) ** L for pi in plain]) for L in tables]
    assert np.allclose(curve, want, atol=1e-5)
    # any order of whole numbers of tables, and fractional ones, give the same formula
    for odd in ([5, 1, 3], [0.5, 2.0], [4]):
        want = [np.mean([1 - (1 - pi ** bits) ** L for pi in plain]) for L in odd]
        assert np.allclose(hashing.lsh_theory_over_pairs(p, bits, odd), want, atol=1e-5)
    # the index's own expected recall is the curve at its L; above the theory at mean p
    r = hashing.lsh_index_oneshot(emb, episodes, bits, 4, seed=0, center=center)
    assert r["recall_theory"] == pytest.approx(curve[3], abs=1e-5)
    assert curve[3] != pytest.approx(float(hashing.lsh_theory(plain.mean(), bits, 4)),
                                     abs=1e-3)


# ------------------------------------------------------------------- snapshots and collapse


def test_snapshots_carry_the_new_figures_and_lsh_recomputes_them():
    cfg = tiny_config()
    exp = Experiment(cfg)
    snaps = list(exp.run())
    last, first = snaps[-1], snaps[0]
    for name in ("gamma_r2_trained", "theta_r2_trained", "unseen_same_class_collision",
                 "seen_same_class_collision", "lsh_recall_trained",
                 "locality_spearman_unseen", "collapsed"):
        assert name in Snapshot.SCALARS and name in exp.history[-1]
    info = exp.info
    for name in ("gamma_r2_untrained", "gamma_r2_raw", "theta_r2_raw",
                 "raw_unseen_same_class_collision", "lsh_recall_raw"):
        assert name in RunInfo.BASELINES and math.isfinite(info.baselines()[name])
    assert info.gamma_r2_untrained == first.gamma_r2_trained  # step 0 is the untrained net
    c = len(exp.probe.classes)
    assert last.pair_embed_angle.shape == info.pair_angle.shape == (c * (c - 1) // 2,)
    assert info.raw_pair_collision.shape == info.pair_angle.shape
    assert all(s.collapsed == "" for s in snaps)
    again = lsh_figures(last, exp.probe, cfg, cfg.hashing.bits, cfg.hashing.tables)
    assert again["trained"]["recall"] == last.lsh_recall_trained
    assert again["raw"]["candidates"] == info.lsh_candidates_raw
    more = lsh_figures(last, exp.probe, cfg, bits=2, tables=8)  # other b and L
    assert more["trained"]["candidates"] > last.lsh_candidates_trained


def test_collapse_reasons_on_constructed_cases():
    rng = np.random.default_rng(0)
    emb = rng.standard_normal((100, 8))
    codes = rng.integers(0, 256, (100, 4))
    assert metrics.collapse_reason(1.0, 4.0, emb, codes) == ""
    assert "step-0" in metrics.collapse_reason(50.0, 4.0, emb, codes)
    point = np.ones((100, 8)) * 3.0
    assert "point" in metrics.collapse_reason(1.0, 4.0, point, codes)
    one_bucket = codes.copy()
    one_bucket[:95] = 7
    assert "bucket" in metrics.collapse_reason(1.0, 4.0, emb, one_bucket)


def test_collapse_is_marked_at_learning_rate_1000_without_stopping_the_run():
    from engine.config import load_preset

    cfg = load_preset("quick").replace(**{
        "train.lr": 1000.0, "train.steps": 100, "train.snapshot_every": 50,
    })
    snaps = list(Experiment(cfg).run())
    assert snaps[0].collapsed == ""
    assert snaps[-1].done and snaps[-1].step == 100 and snaps[-1].collapsed


def test_digit_counts_used_by_validation_are_the_bundled_ones():
    from sklearn.datasets import load_digits

    from engine.digits import DIGIT_COUNTS

    assert np.bincount(load_digits().target, minlength=10).tolist() == DIGIT_COUNTS.tolist()


# ------------------------------------------------- intervals, learned linear, theta share


def _plain_percentiles(values):
    return np.percentile(values, [2.5, 97.5])


def _plain_r2_resamples(rng, y, pred, row_class, c, draws=20000):
    """R^2 of `draws` plain resamples of the c classes (with replacement), row by row."""
    out = []
    for _ in range(draws):
        rows = np.concatenate([np.flatnonzero(row_class == k) for k in rng.integers(0, c, c)])
        out.append(metrics.r2_score(y[rows], pred[rows]))
    return np.array(out)


def test_oneshot_scores_tally_hits_by_episode_and_query_class():
    rng = np.random.default_rng(6)
    class_index = np.repeat(np.arange(5), 6)
    f = rng.normal(size=(30, 4)) + 1.0 * rng.normal(size=(5, 4))[class_index]
    episodes = metrics.oneshot_episodes(class_index, np.arange(5), 3, 40, seed=1)
    acc, hits, counts = metrics.oneshot_scores(f, episodes, class_index, 5)
    assert acc == metrics.oneshot_accuracy(f, episodes)
    unit = f / np.linalg.norm(f, axis=1, keepdims=True)
    for e, (s, q, t) in enumerate(episodes):
        right = np.argmax(unit[q] @ unit[s].T, axis=1) == t
        for c in range(5):
            mine = class_index[q] == c
            assert counts[e, c] == mine.sum() and hits[e, c] == right[mine].sum()


def test_bootstrap_interval_matches_a_plain_resampling_loop():
    rng = np.random.default_rng(7)
    counts = np.full((30, 8), 9.0)
    hits = rng.binomial(9, rng.uniform(0.3, 0.9, size=8), size=(30, 8)).astype(float)
    lo, hi = metrics.bootstrap_ci(hits, counts, seed=0, draws=4000)
    plain = []
    for _ in range(4000):
        e, c = rng.integers(0, 30, 30), rng.integers(0, 8, 8)
        plain.append(hits[e][:, c].sum() / counts[e][:, c].sum())
    plo, phi = _plain_percentiles(plain)
    assert lo == pytest.approx(plo, abs=0.015) and hi == pytest.approx(phi, abs=0.015)
    assert lo < hits.sum() / counts.sum() < hi


def test_collision_and_r2_intervals_match_plain_class_resampling():
    rng = np.random.default_rng(8)
    c = 6
    m = rng.uniform(0, 0.2, (c, c))
    m = (m + m.T) / 2
    np.fill_diagonal(m, rng.uniform(0.4, 0.9, c))
    counts = np.full(c, 5)
    ci = metrics.collision_ci(m, counts, seed=0, draws=20000)
    same, diff = [], []
    for _ in range(20000):
        k = rng.integers(0, c, c)
        same.append(np.diag(m)[k].mean())
        sub = m[np.ix_(k, k)]
        keep = k[:, None] != k[None, :]
        # pair-weighted over pairs of distinct resampled positions of distinct classes
        if keep.any():
            diff.append(sub[keep].mean())
    assert ci["same"] == pytest.approx(tuple(_plain_percentiles(same)), abs=0.01)
    assert ci["different"] == pytest.approx(tuple(_plain_percentiles(diff)), abs=0.005)
    # R^2 over resampled classes
    row_class = np.repeat(np.arange(c), 10)
    y = rng.normal(size=(60, 2)) + rng.normal(size=(c, 2))[row_class]
    pred = y + 0.5 * rng.normal(size=y.shape)
    lo, hi = metrics.r2_ci(y, pred, row_class, c, seed=0, draws=20000)
    plain = _plain_r2_resamples(rng, y, pred, row_class, c)
    assert (lo, hi) == pytest.approx(tuple(_plain_percentiles(plain)), abs=0.015)


def test_learned_linear_is_lda_on_seen_rows_and_within_share_its_definition():
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

    rng = np.random.default_rng(9)
    label = np.repeat(np.arange(7), 12)
    x = rng.normal(size=(84, 5)) @ rng.normal(size=(5, 5)) + 3 * rng.normal(size=(7, 5))[label]
    lin = metrics.LearnedLinear(x, label)
    lda = LinearDiscriminantAnalysis(solver="eigen", shrinkage=0.1).fit(x, label)
    z = lda.transform(x)
    # scikit-learn's numbers to the bit, without importing it
    assert lin.transform(x).tobytes() == (z - z.mean(0)).astype(np.float32).tobytes()
    assert lin.transform(x).shape == (84, 5)  # every discriminant: min(classes - 1, dims)
    two = label < 2  # two classes: one discriminant
    lin2 = metrics.LearnedLinear(x[two], label[two], shrinkage=0.3)
    lda2 = LinearDiscriminantAnalysis(solver="eigen", shrinkage=0.3).fit(x[two], label[two])
    z2 = lda2.transform(x)
    assert lin2.transform(x).tobytes() == (z2 - lda2.transform(x[two]).mean(0)).astype(
        np.float32).tobytes()
    means = np.stack([x[label == k].mean(0) for k in range(7)])
    share = sum(((x[label == k] - means[k]) ** 2).sum() for k in range(7))
    assert metrics.within_class_share(x, label) == pytest.approx(
        share / ((x - x.mean(0)) ** 2).sum())


def test_mean_interval_over_seeds_is_students_t():
    from scipy import stats

    v = [0.70, 0.85, 0.78]
    mean, lo, hi = metrics.mean_ci(v)
    half = stats.t.ppf(0.975, 2) * np.std(v, ddof=1) / np.sqrt(3)
    assert (mean, lo, hi) == pytest.approx((np.mean(v), np.mean(v) - half, np.mean(v) + half),
                                           abs=1e-3)
    assert math.isnan(metrics.mean_ci([0.5])[1]) and math.isnan(metrics.mean_ci([])[0])


def test_r2_interval_leaves_out_resamples_without_spread():
    """gamma is constant within a class: a resample that drew a single class has no
    spread and no R^2 (its rounding once gave an interval reaching -8.6e15); the interval
    is the plain one over the resamples that have spread, whatever the targets' offset."""
    rng = np.random.default_rng(3)
    c = 3
    row_class = np.repeat(np.arange(c), 6)
    y = (rng.normal(size=(c, 4)) + 50.0)[row_class]  # offset, constant within a class
    pred = y + 0.3 * rng.normal(size=y.shape)
    lo, hi = metrics.r2_ci(y, pred, row_class, c, seed=0, draws=20000)
    plain = _plain_r2_resamples(rng, y, pred, row_class, c)
    assert np.isnan(plain).mean() == pytest.approx(1 / 9, abs=0.01)  # one class drawn
    assert (lo, hi) == pytest.approx(tuple(_plain_percentiles(plain[np.isfinite(plain)])),
                                     abs=0.02)
    assert -10 < lo < hi <= 1
    assert np.isnan(metrics.r2_score(y[:6], pred[:6]))  # one class: no R^2
