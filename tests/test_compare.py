"""Comparing runs without Qt: which runs, short names from what differs, the diff table,
nearest steps, heatmap differences and one-shot differences with intervals, and the
notebook reader (engine.record.open_run)."""

from __future__ import annotations

import csv
import io
import shutil

import numpy as np
import pytest

from engine import compare
from engine.record import open_run
from tests.helpers import record_tiny_run, tiny_config


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Three tiny runs: depth 2 seed 0, depth 1 seed 0, depth 2 seed 1 (a sweep folder
    holds the first two)."""
    root = tmp_path_factory.mktemp("cmp")
    sweep = root / "sweep"
    (sweep / "runs").mkdir(parents=True)
    (sweep / "sweep.toml").write_text("# a sweep folder\n")
    a = record_tiny_run(sweep / "runs" / "a")
    b = record_tiny_run(sweep / "runs" / "b", **{"model.depth": 1})
    c = record_tiny_run(root / "c", seed=1, **{"train.steps": 30})
    return {"a": a, "b": b, "c": c, "sweep": sweep, "root": root}


def test_open_run_gives_history_columns_arrays_by_step_and_metrics(runs):
    r = open_run(runs["a"])
    h = r.history
    assert h["step"].dtype == np.int64 and list(h["step"]) == [0, 10, 20, 30, 40]
    assert h["oneshot_trained"].dtype == np.float64
    assert h["oneshot_trained"][-1] == pytest.approx(r.rows[-1]["oneshot_trained"])
    arrays = r.arrays(20)
    assert arrays["embedding"].dtype == np.float32
    assert arrays["collision_matrix"].shape == (11, 11)  # 5 seen + 6 unseen probe classes
    assert r.metrics["oneshot"]["trained"] == pytest.approx(h["oneshot_trained"][-1])
    assert r.config.model.depth == 2


def test_short_names_say_what_differs_and_colours_are_distinct(runs):
    cmp = compare.open_comparison([runs["a"], runs["b"], runs["c"]])
    assert cmp.fields == ["model.depth", "train.steps", "seed"]
    assert [r.name for r in cmp.runs] == ["depth=2 · steps=40 · seed 0",
                                          "depth=1 · steps=40 · seed 0",
                                          "depth=2 · steps=30 · seed 1"]
    assert len({r.colour for r in cmp.runs}) == 3


def test_a_sweep_folder_adds_all_its_runs_and_bad_input_is_named(runs, tmp_path):
    assert [p.name for p in compare.run_paths([runs["sweep"]])] == ["a", "b"]
    assert [p.name for p in compare.run_paths([runs["sweep"], runs["c"], runs["a"]])] == [
        "a", "b", "c"]  # the same run twice counts once
    with pytest.raises(compare.CompareError, match="2 to 8 different runs, got 1"):
        compare.run_paths([runs["a"], runs["a"]])
    with pytest.raises(compare.CompareError, match="neither a GSH Lab run"):
        compare.run_paths([runs["a"], tmp_path])
    many = []
    for i in range(9):
        many.append(shutil.copytree(runs["c"], tmp_path / f"r{i}"))
    with pytest.raises(compare.CompareError, match="got 9"):
        compare.run_paths(many)


def test_identical_settings_are_named_by_folder():
    cfgs = [tiny_config(), tiny_config()]
    assert compare.short_names(cfgs, ["mon", "tue"]) == ["mon", "tue"]
    two = [tiny_config(**{"data.seen_classes": 12, "probe.seen_classes": 6}), tiny_config()]
    assert compare.short_names(two, ["x", "y"]) == [
        "data.seen_classes=12 · probe.seen_classes=6",
        "data.seen_classes=10 · probe.seen_classes=5"]


def test_nearest_step():
    assert compare.nearest_step([0, 10, 20], 14) == 10
    assert compare.nearest_step([0, 10, 20], 15) == 10  # a tie: the earlier step
    assert compare.nearest_step([0, 10, 20], 99) == 20
    assert compare.nearest_step([], 5) is None


def test_the_oneshot_tally_reproduces_the_recorded_figure_and_interval(runs):
    cmp = compare.open_comparison([runs["a"], runs["b"]])
    for run in cmp.runs:
        last = run.reader.rows[-1]
        t = run.tally(run.steps[-1])
        assert t.episodes == 10 and t.counts.sum() > 0
        # measured again from the float16 embedding: the recorded one-shot, within 0.01
        assert t.accuracy == pytest.approx(last["oneshot_trained"], abs=0.01)
        est = run.oneshot()  # the recorded figure and interval
        assert (est.value, est.low, est.high) == (
            last["oneshot_trained"], last["oneshot_trained_ci_lo"],
            last["oneshot_trained_ci_hi"])
        again = compare.tally_estimate(t)  # the same bootstrap from the record: close to it
        assert again.low == pytest.approx(est.low, abs=0.03)
        assert again.high == pytest.approx(est.high, abs=0.03)


def test_the_diff_table_holds_differing_fields_and_final_figures(runs, tmp_path):
    cmp = compare.open_comparison([runs["a"], runs["b"]])
    columns, rows = cmp.table()
    assert columns[:2] == ["run", "depth"]
    assert "steps" in columns and "same/different collisions (unseen)" in columns
    assert [r[1] for r in rows] == ["2", "1"]
    last = cmp.runs[1].reader.rows[-1]
    ratio = rows[1][columns.index("same/different collisions (unseen)")]
    assert ratio == pytest.approx(last["unseen_same_class_collision"]
                                  / last["unseen_different_class_collision"])
    assert rows[0][-1] is None  # the reference run
    d = rows[1][-1]
    assert d.paired  # same data, probe and seed: the same episodes
    tallies = [run.tally(run.steps[-1]) for run in cmp.runs]
    assert d.value == pytest.approx(tallies[1].accuracy - tallies[0].accuracy)
    assert d.low <= d.value <= d.high
    text = compare.write_table_csv(tmp_path / "t.csv", columns, rows).read_text()
    head = next(csv.reader(io.StringIO(text)))
    assert head[-3:] == [columns[-1], f"{columns[-1]} low", f"{columns[-1]} high"]
    one = columns[columns.index("one-shot, trained")]
    assert [one, f"{one} low", f"{one} high"] == head[head.index(one):head.index(one) + 3]
    assert len(text.splitlines()) == 3


def test_paired_and_unpaired_bootstrap_differences():
    rng = np.random.default_rng(0)
    counts = np.full((50, 8), 4.0)
    easy = rng.uniform(0.3, 1.0, (50, 1))  # some episodes are hard for both runs
    hits_a = np.round(counts * np.clip(easy + 0.1, 0, 1))
    hits_b = np.round(counts * easy)
    a = compare.Tally(hits_a.sum() / counts.sum(), hits_a, counts, 1)
    b = compare.Tally(hits_b.sum() / counts.sum(), hits_b, counts, 2)
    paired = compare.difference(a, b, paired=True)
    unpaired = compare.difference(a, b, paired=False)
    assert paired.value == pytest.approx(unpaired.value) and paired.paired
    assert paired.low > 0  # same draws for both: the shared difficulty cancels
    assert unpaired.high - unpaired.low > 2 * (paired.high - paired.low)
    assert compare.Estimate(0.5, 0.4, 0.6).text() == "0.500 [0.400, 0.600]"
    assert compare.Estimate(0.1, -0.02, 0.2).text(2, signed=True) == "+0.10 [-0.02, +0.20]"


def test_heatmap_difference_needs_a_shared_probe_set(runs, tmp_path):
    cmp = compare.open_comparison([runs["a"], runs["b"], runs["c"]])
    d = cmp.heatmap_difference(0, 1, 22)
    assert (d.step_a, d.step_b) == (20, 20)
    a20 = cmp.runs[0].reader.snapshot(20).collision_matrix
    b20 = cmp.runs[1].reader.snapshot(20).collision_matrix
    assert np.allclose(d.matrix, a20 - b20)
    assert d.n_seen == 5
    with pytest.raises(compare.CompareError, match="share a probe set .* differ in seed$"):
        cmp.heatmap_difference(0, 2, 40)  # another seed: other probe points
    other = record_tiny_run(tmp_path / "more", **{"data.unseen_classes": 7})
    cmp2 = compare.open_comparison([runs["a"], other])
    with pytest.raises(compare.CompareError, match="differ in data.unseen_classes"):
        cmp2.heatmap_difference(0, 1, 40)


def test_smoothing_is_a_debiased_moving_average():
    y = np.array([1.0, 1.0, np.nan, 1.0])
    assert np.allclose(compare.smooth(y, 0.9), [1, 1, np.nan, 1], equal_nan=True)
    z = compare.smooth(np.array([0.0, 1.0]), 0.5)
    assert z[1] == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="smoothing"):
        compare.smooth(y, 1.0)
