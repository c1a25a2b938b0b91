"""The table of figures (engine/figures.py) agrees with the records that read it."""

from __future__ import annotations

import dataclasses
import math

import pytest

from engine import figures
from engine.record_format import metrics_dict
from engine.snapshot import RunInfo, Snapshot


def test_every_figure_has_its_field_and_one_json_path():
    snap_fields = {f.name for f in dataclasses.fields(Snapshot)}
    run_fields = {f.name for f in dataclasses.fields(RunInfo)}
    for f in figures.SNAPSHOT_FIGURES:
        assert f.name in snap_fields and not f.per_run, f.name
    for f in figures.RUN_FIGURES:
        assert f.name in run_fields and f.per_run, f.name
    paths = [f.json for f in figures.FIGURES.values() if f.json]
    assert len(paths) == len(set(paths))
    for f in figures.FIGURES.values():
        assert set(f.baselines) <= {g.name for g in figures.RUN_FIGURES}, f.name
        assert f.classes in ("all", "seen", "unseen", "validation"), f.name
    for r in figures.RATIOS:
        assert r.numerator in figures.FIGURES and r.denominator in figures.FIGURES


def test_snapshot_and_runinfo_columns_come_from_the_table():
    names = tuple(f.name for f in figures.SNAPSHOT_FIGURES)
    assert Snapshot.SCALARS[3 : 3 + len(names)] == names
    assert Snapshot.SCALARS[3 + len(names)] == "collapsed"
    assert Snapshot.SCALARS[4 + len(names):] == tuple(
        c for f in figures.SNAPSHOT_FIGURES for c in f.ci_columns)
    assert RunInfo.BASELINES == tuple(f.name for f in figures.RUN_FIGURES)


@pytest.mark.parametrize(("a", "b", "want"), [
    (0.5, 0.25, 2.0), (0.5, 0.0, math.nan), (0.0, 0.0, math.nan), (0.5, -1.0, math.nan),
    (None, 0.1, math.nan), ("0.3", "0.1", 3.0), ("", 0.1, math.nan),
    (math.inf, 0.1, math.nan), (math.nan, 0.1, math.nan),
])
def test_one_zero_division_rule(a, b, want):
    got = figures.ratio(a, b)
    assert (math.isnan(got) and math.isnan(want)) or got == pytest.approx(want)


def test_value_reads_figures_and_ratios_from_a_row():
    r = figures.RATIO["collision_ratio"]
    row = {r.numerator: "0.4", r.denominator: 0.1, "loss": "1.5"}
    assert figures.value(row, "collision_ratio") == pytest.approx(4.0)
    assert figures.value(row, "loss") == 1.5
    assert math.isnan(figures.value(row, "oneshot_trained"))
    assert figures.derived(row)["collision_ratio"] == pytest.approx(4.0)


def test_metrics_json_holds_every_figure_at_its_path(tmp_path):
    from tests.test_app import handmade_run, handmade_snapshot

    run = handmade_run()
    snap = handmade_snapshot(run=run)
    tree = metrics_dict(snap, run, 1.0)
    for f in figures.FIGURES.values():
        if f.json:
            source = run if f.per_run else snap
            want = getattr(source, f.name)
            got = figures.json_get(tree, f.name)
            assert got == want or (math.isnan(got) and math.isnan(want)), f.name


def test_recorded_collision_figures_recompute_from_embeddings_npz(tmp_path):
    """The issue's check: embeddings.npz's embedding minus its hash_center, mean of
    (1 - angle/pi)^bits over unseen pairs, gives metrics.json's unseen figures; the centre
    is the seen rows' mean."""
    import json

    import numpy as np

    import main
    from tests.helpers import tiny_config

    conf = tmp_path / "tiny.toml"
    tiny_config().save(conf)
    out = tmp_path / "run"
    assert main.main(["run", "--config", str(conf), "--steps", "20", "--out", str(out),
                      "--quiet"]) == 0
    z = np.load(out / "embeddings.npz")
    m = json.loads((out / "metrics.json").read_text())
    emb, seen, label = z["embedding"].astype(np.float64), z["seen"], z["label"]
    assert np.allclose(z["hash_center"], emb[seen].mean(0), atol=1e-5)
    assert not np.allclose(z["hash_center"], emb.mean(0), atol=1e-3)
    v = emb - z["hash_center"]
    u = v / np.linalg.norm(v, axis=1, keepdims=True)
    p = (1 - np.arccos(np.clip(u @ u.T, -1, 1)) / np.pi) ** m["collision"]["bits"]
    unseen = ~seen
    same = (label[:, None] == label[None, :]) & ~np.eye(len(label), dtype=bool)
    both = unseen[:, None] & unseen[None, :]
    c = m["collision"]
    assert abs(p[both & same].mean() - c["unseen_same_class"]) < 0.005
    assert abs(p[both & ~same & ~np.eye(len(label), dtype=bool)].mean()
               - c["unseen_different_class"]) < 0.005


@pytest.mark.parametrize("family", ["random_relu", "digits_pose"])
def test_more_seen_classes_keep_the_generator_and_the_unseen_classes(family):
    """Every random role draws from its own stream: runs differing only in
    data.seen_classes share the generator map and the unseen classes' probe rows."""
    import numpy as np

    from engine.experiment import Experiment
    from tests.helpers import tiny_config

    extra = ({"data.family": "digits_pose", "data.theta_dim": 5, "data.image_size": 16}
             if family == "digits_pose" else {})
    a, b = (Experiment(tiny_config(**{**extra, "data.seen_classes": n})) for n in (10, 14))
    pa, pb = a.probe, b.probe
    for field in ("x", "theta"):
        assert getattr(pa, field)[~pa.seen].tobytes() == getattr(pb, field)[~pb.seen].tobytes()
    assert pa.gamma[~pa.class_seen].tobytes() == pb.gamma[~pb.class_seen].tobytes()
    assert np.array_equal(a.family.gamma[:10], b.family.gamma[:10])  # seen class i's too
    assert not np.array_equal(pa.x[pa.seen], pb.x[pb.seen])  # the seen classes do change


def test_two_runs_differing_in_seen_classes_record_identical_unseen_rows(tmp_path):
    import numpy as np

    import main
    from tests.helpers import tiny_config

    for n in (10, 14):
        conf = tmp_path / f"{n}.toml"
        tiny_config(**{"data.seen_classes": n}).save(conf)
        assert main.main(["run", "--config", str(conf), "--steps", "10",
                          "--out", str(tmp_path / str(n)), "--quiet"]) == 0
    a, b = (np.load(tmp_path / str(n) / "probe.npz") for n in (10, 14))
    for field in ("x", "theta"):
        assert a[field][~a["seen"]].tobytes() == b[field][~b["seen"]].tobytes()
    assert a["gamma"][~a["class_seen"]].tobytes() == b["gamma"][~b["class_seen"]].tobytes()
