"""Validation classes (issue 16): a third split, neither trained on nor reported as unseen,
whose figures presets and targets are chosen on; checked against plain numpy."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from engine import record_format
from engine.config import ConfigError, DataConfig, ExperimentConfig, load_preset, preset_names
from engine.experiment import Experiment
from engine.manifolds import make_family
from engine.seeds import axis_roles, role_seed, stream_seed
from engine.training import build_validation
from tests.helpers import tiny_config

ROOT = Path(__file__).resolve().parent.parent


def test_validation_classes_is_a_checked_setting_that_defaults_to_none():
    assert DataConfig().validation_classes == 0  # what every older record had
    assert ExperimentConfig.from_dict({"data": {}}).data.validation_classes == 0
    for bad in (-1, 1001, 2.5, "3"):
        with pytest.raises(ConfigError) as info:
            tiny_config(**{"data.validation_classes": bad})
        assert info.value.field == "data.validation_classes"
    for name in preset_names():  # every preset keeps classes apart for its choices
        assert load_preset(name).data.validation_classes >= 5, name


def test_validation_gammas_have_their_own_stream_and_change_nothing_else():
    cfg = DataConfig(seen_classes=4, unseen_classes=3, validation_classes=2, gamma_dim=5)
    fam = make_family(cfg, seed=7)
    plain = np.concatenate([
        np.random.default_rng(role_seed(7, r)).standard_normal((n, 5))
        for r, n in (("seen_gamma", 4), ("unseen_gamma", 3), ("validation_gamma", 2))])
    assert np.array_equal(fam.gamma.numpy(), plain.astype(np.float32))
    # data.validation_classes: the probe set, the generator and the network are unchanged
    a = Experiment(tiny_config(**{"data.validation_classes": 0}))
    b = Experiment(tiny_config(**{"data.validation_classes": 4}))
    for key in ("x", "label", "seen", "theta", "classes", "class_seen", "gamma"):
        assert getattr(a.probe, key).tobytes() == getattr(b.probe, key).tobytes(), key
    assert all((v == b.model.state_dict()[k]).all() for k, v in a.model.state_dict().items())
    assert build_validation(a.config, a.family) is None
    v = build_validation(b.config, b.family)
    assert list(v.classes) == [16, 17, 18, 19] and len(v) == 4 * 8 and not v.seen.any()
    assert "validation classes" in axis_roles("data.validation_classes")
    # data.seen_classes: the validation rows (x, theta, gamma) are byte-identical
    c = Experiment(tiny_config(**{"data.validation_classes": 4, "data.seen_classes": 14}))
    w = build_validation(c.config, c.family)
    for key in ("x", "theta", "gamma"):
        assert getattr(v, key).tobytes() == getattr(w, key).tobytes(), key
    g = torch.Generator().manual_seed(stream_seed(b.config.seed, "validation"))
    x, theta = b.family.sample(torch.from_numpy(v.label), g)
    assert np.array_equal(v.x, x.numpy()) and np.array_equal(v.theta, theta.numpy())


def test_digits_validation_classes_are_other_images_of_the_seen_digits():
    base = dict(family="digits_pose", seen_classes=40, unseen_classes=9, theta_dim=5,
                image_size=16, gamma_dim=8)
    a = make_family(DataConfig(**base), seed=2)
    b = make_family(DataConfig(**base, validation_classes=12), seed=2)
    assert np.array_equal(a.rows, b.rows[:49])  # seen and unseen images unchanged
    assert torch.equal(a.gamma, b.gamma[:49])  # and their gammas (PCA of seen digits)
    val = b.rows[49:]
    assert len(set(val)) == 12 and not set(val) & set(b.rows[:49])
    assert set(b.digit[49:]) <= set(range(7))  # seen digits, never 7-9
    c = make_family(DataConfig(**{**base, "seen_classes": 60}, validation_classes=12), seed=2)
    assert np.array_equal(c.rows[69:], val)  # the seen count leaves them alone
    from engine.digits import check_digits

    check_digits(DataConfig(**{**base, "seen_classes": 1200}, validation_classes=64))
    with pytest.raises(ConfigError) as info:
        check_digits(DataConfig(**{**base, "seen_classes": 1200}, validation_classes=65))
    assert info.value.field == "data.validation_classes" and "[0, 64]" in str(info.value)


def _plain_episodes(seed: int, n_classes: int, per: int, ways: int, episodes: int):
    rng = np.random.default_rng(stream_seed(seed, "validation_episodes"))
    out = []
    for _ in range(episodes):
        support, queries, targets = [], [], []
        for k, c in enumerate(rng.choice(np.arange(n_classes), size=ways, replace=False)):
            rows = np.arange(c * per, (c + 1) * per)
            s = rng.choice(rows)
            support.append(s)
            queries.append(rows[rows != s])
            targets.append(np.full(per - 1, k))
        out.append((np.array(support), np.concatenate(queries), np.concatenate(targets)))
    return out


def _plain_oneshot(f, episodes) -> float:
    f = f / np.linalg.norm(f, axis=1, keepdims=True)
    return float(np.mean([np.mean(np.argmax(f[q] @ f[s].T, 1) == t) for s, q, t in episodes]))


def test_validation_figures_match_plain_numpy_and_sklearn(tmp_path):
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

    from engine.metrics import LDA_SHRINKAGE

    exp = Experiment(tiny_config(**{"data.validation_classes": 5, "train.steps": 30}))
    snaps = list(exp.run())
    last, info, cfg = snaps[-1], exp.info, exp.config
    v = build_validation(cfg, exp.family)
    exp.model.eval()
    with torch.no_grad():
        emb = exp.model.embed(torch.from_numpy(v.x)).numpy().astype(np.float64)
    episodes = _plain_episodes(cfg.seed, 5, 8, 5, cfg.probe.episodes)
    assert last.val_oneshot_trained == pytest.approx(_plain_oneshot(emb, episodes), abs=1e-6)
    assert info.val_oneshot_raw == pytest.approx(_plain_oneshot(v.x, episodes), abs=1e-6)
    p = exp.probe
    lda = LinearDiscriminantAnalysis(solver="eigen", shrinkage=LDA_SHRINKAGE).fit(
        p.x[p.seen].astype(np.float64), p.label[p.seen])
    z = lda.transform(v.x.astype(np.float64)) - lda.transform(
        p.x[p.seen].astype(np.float64)).mean(0)  # centred on the seen rows, as docs say
    assert info.val_oneshot_learned_linear == pytest.approx(_plain_oneshot(z, episodes),
                                                            abs=1e-6)
    # expected collisions, hashed around the seen rows' mean embedding (the fixed hash)
    u = emb - last.hash_center
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    rate = (1 - np.arccos(np.clip(u @ u.T, -1, 1)) / np.pi) ** cfg.hashing.bits
    same = v.label[:, None] == v.label[None, :]
    off = ~np.eye(len(u), dtype=bool)
    assert last.val_same_class_collision == pytest.approx(rate[same & off].mean(), abs=1e-5)
    assert last.val_different_class_collision == pytest.approx(rate[~same].mean(), abs=1e-5)
    assert info.val_oneshot_untrained == snaps[0].val_oneshot_trained
    # metrics.json carries them under "validation", labelled apart from the unseen ones
    m = record_format.metrics_dict(last, info, 1.0)
    assert m["validation"]["oneshot"]["trained"] == last.val_oneshot_trained
    assert m["validation"]["collision"]["same_class"] == last.val_same_class_collision
    assert m["validation"]["classes"] == 5
    # without validation classes they are nan, and nothing else moves
    bare = Experiment(tiny_config(**{"train.steps": 30, "data.validation_classes": 0}))
    old = list(bare.run())[-1]
    assert math.isnan(old.val_oneshot_trained) and math.isnan(bare.info.val_oneshot_raw)
    assert old.oneshot_trained == last.oneshot_trained
    assert np.array_equal(old.collision_matrix, last.collision_matrix)


def test_a_run_recorded_before_validation_classes_opens_with_none(tmp_path):
    from engine.record import open_run

    run_dir = shutil.copytree(ROOT / "tests" / "data" / "schema1-run", tmp_path / "old")
    assert "validation_classes" not in (run_dir / "config.toml").read_text()
    r = open_run(run_dir)
    assert r.config.data.validation_classes == 0
    info, last = r.run_info, r.snapshot(20)
    assert math.isnan(info.val_oneshot_raw) and math.isnan(last.val_oneshot_trained)
    again = record_format.metrics_dict(last, info, 1.0)
    assert again["validation"]["classes"] == 0
    assert math.isnan(again["validation"]["oneshot"]["trained"])
    assert json.loads((run_dir / "metrics.json").read_text()).get("validation") is None


# ------------------------------------------------- spread of the sampled (one-draw) figures


def test_lsh_spread_is_the_percentiles_of_a_plain_loop_over_draws():
    from engine.hashing import lsh_spread
    from engine.metrics import oneshot_episodes

    rng = np.random.default_rng(3)
    label = np.repeat(np.arange(6), 7)
    f = (rng.normal(size=(6, 10))[label] + 0.6 * rng.normal(size=(42, 10))).astype(np.float32)
    center = f.mean(0)
    episodes = oneshot_episodes(label, np.arange(6), 4, 5, seed=1)
    bits, tables, draws = 3, 2, 40
    got = lsh_spread(f, episodes, bits, tables, seed=5, center=center, draws=draws)
    planes = np.random.default_rng(5).standard_normal((10, draws * tables * bits)).astype(
        np.float32)
    v = f - center
    unit = f / np.linalg.norm(f, axis=1, keepdims=True)  # nearest by cosine, uncentred
    figs = []
    for d in range(draws):  # one draw of L tables of b hyperplanes at a time
        p = planes[:, d * tables * bits:(d + 1) * tables * bits].reshape(10, tables, bits)
        codes = [tuple(tuple(r) for r in (np.einsum("k,ktb->tb", x, p) > 0)) for x in v]
        recall = cand = hit = n = 0
        for s, q, t in episodes:
            for qi, ti in zip(q, t, strict=True):
                match = [any(a == b for a, b in zip(codes[qi], codes[si], strict=True))
                         for si in s]
                recall += match[ti]
                cand += sum(match)
                if any(match):
                    best = max((unit[qi] @ unit[si], k) for k, si in enumerate(s) if match[k])
                    hit += best[1] == ti
                n += 1
        figs.append((recall / n, cand / n, hit / n))
    lo, hi = np.percentile(np.array(figs), [5, 95], axis=0)
    for k, name in enumerate(("recall", "candidates", "oneshot")):
        assert got[name] == pytest.approx((lo[k], hi[k]), abs=1e-9), name
    # the LSH index (lsh_index_oneshot) hashing with draw 0's planes gives draw 0's figures
    from engine import hashing
    from engine.hashing import lsh_index_oneshot

    orig = hashing.SimHash

    class Planes(orig):  # the planes of draw 0 as a SimHash
        def __init__(self, *_a, **_k):
            self.bits, self.tables = bits, tables
            self.planes = planes[:, :tables * bits].reshape(10, tables, bits).transpose(1, 0, 2)
            self._weights = 1 << np.arange(bits, dtype=np.int64)

    hashing.SimHash = Planes
    try:
        first = lsh_index_oneshot(f, episodes, bits, tables, seed=0, center=center)
    finally:
        hashing.SimHash = orig
    assert (first["recall"], first["candidates"], first["oneshot"]) == pytest.approx(figs[0])


def test_bucket_mates_spread_is_a_plain_count_over_draws():
    from engine.hashing import bucket_mates_spread

    rng = np.random.default_rng(4)
    label = np.repeat(np.arange(5), 6)
    f = rng.normal(size=(30, 6)).astype(np.float32)
    center = f[:12].mean(0)
    got = bucket_mates_spread(f, center, 7, 3, label, seed=2, draws=50)
    planes = np.random.default_rng(2).standard_normal((6, 150)).astype(np.float32)
    v = f - center
    counts = []
    for d in range(50):
        side = v @ planes[:, 3 * d:3 * d + 3] > 0
        mates = [j for j in range(30) if j != 7 and (side[j] == side[7]).all()]
        counts.append((len(mates), sum(label[j] == label[7] for j in mates)))
    lo, hi = np.percentile(np.array(counts, dtype=float), [5, 95], axis=0)
    assert got["all"] == pytest.approx((lo[0], hi[0])) and got["own"] == pytest.approx(
        (lo[1], hi[1]))
    u = v / np.linalg.norm(v, axis=1, keepdims=True)
    p = (1 - np.arccos(np.clip(u @ u[7], -1, 1)) / np.pi) ** 3
    p[7] = 0
    assert got["expected"] == pytest.approx((p.sum(), p[label == label[7]].sum()), abs=1e-4)


def test_the_sweep_table_is_the_mean_and_sd_over_seeds_of_the_summary(tmp_path):
    import importlib.util

    from engine.executors import SerialExecutor
    from engine.sweep import run_sweep
    from engine.sweep_spec import Sweep, make_axis

    base = tiny_config(**{"train.steps": 20})
    sweep = Sweep(base, [make_axis("data.theta_scale", "0.5,2", base)], seeds=2, name="t")
    run_sweep(tmp_path / "s", sweep, SerialExecutor(threads=1))
    spec = importlib.util.spec_from_file_location("science", ROOT / "bench" / "science.py")
    science = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(science)
    text = science.sweep_table(tmp_path / "s")
    from engine.sweep_summary import read_summary

    rows = read_summary(tmp_path / "s")
    for value in (0.5, 2.0):
        v = np.array([float(r["oneshot_trained"]) for r in rows
                      if float(r["data.theta_scale"]) == value])
        assert len(v) == 2 and f"{v.mean():.2f} ± {v.std(ddof=1):.2f}" in text.splitlines()[2]
    assert text.splitlines()[0] == "| theta scale | 0.5 | 2.0 |"
    assert "validation one-shot, trained" in text and "(seeds 0,1; 4 finished runs" in text


def test_a_sweep_recorded_before_validation_classes_still_finds_its_runs():
    import hashlib

    from engine.sweep_spec import config_hash

    cfg = tiny_config(**{"data.validation_classes": 0})
    d = cfg.to_dict()  # the digest as it was computed before the setting existed
    for key in ("name", "description"):
        d.pop(key)
    del d["data"]["validation_classes"]
    blob = json.dumps(d, sort_keys=True, separators=(",", ":"), default=str)
    assert config_hash(cfg) == hashlib.sha256(blob.encode()).hexdigest()[:10]
    assert config_hash(tiny_config(**{"data.validation_classes": 4})) != config_hash(cfg)


def test_episodes_differ_and_the_interval_resamples_their_classes_too():
    from engine import metrics
    from engine.measure import probe_episodes

    for name in preset_names():  # fewer ways than unseen classes: episodes differ
        cfg = load_preset(name)
        assert cfg.probe.ways < cfg.data.unseen_classes, name
    exp = Experiment(tiny_config(**{"probe.ways": 3, "probe.episodes": 40}))
    p = exp.probe
    episodes = probe_episodes(exp.config, p)
    held = {frozenset(p.class_index[s].tolist()) for s, _q, _t in episodes}
    assert len(held) > 5  # not the same classes every time
    rng = np.random.default_rng(0)
    f = rng.normal(size=(len(p), 8)) + 2 * rng.normal(size=(len(p.classes), 8))[p.class_index]
    acc, hits, counts = metrics.oneshot_scores(f, episodes, p.class_index, len(p.classes))
    assert (counts == 0).any()  # a class absent from an episode is not queried there
    lo, hi = metrics.bootstrap_ci(hits, counts, seed=1, draws=4000)
    present = np.flatnonzero(counts.sum(0) > 0)
    plain = []
    for _ in range(4000):  # episodes and queried classes, with replacement
        e = rng.integers(0, len(episodes), len(episodes))
        c = present[rng.integers(0, len(present), len(present))]
        plain.append(hits[e][:, c].sum() / counts[e][:, c].sum())
    plo, phi = np.percentile(plain, [2.5, 97.5])
    assert lo == pytest.approx(plo, abs=0.02) and hi == pytest.approx(phi, abs=0.02)
