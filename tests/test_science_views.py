"""The science in the window: the locality panel's two x axes (class-mean embedding angle
with SimHash's curve; gamma angle with Spearman's rho), the probe and unseen-collision
curves, and the status bar's headline with unseen-class collisions beside all."""

from __future__ import annotations

import numpy as np

from tests.helpers import finish_run


def _points(panel):
    xs = np.concatenate([panel.pairs.data["x"], panel.unseen_pairs.data["x"]])
    ys = np.concatenate([panel.pairs.data["y"], panel.unseen_pairs.data["y"]])
    return np.sort(xs), np.sort(ys)


def test_locality_axes_and_spearman(qtbot, window):
    finish_run(qtbot, window)
    snap, panel = window.store.latest, window.locality
    assert panel.axis == "embedding angle" and panel.theory.isVisible()
    xs, ys = _points(panel)
    assert np.allclose(xs, np.sort(snap.pair_embed_angle))
    assert np.allclose(ys, np.sort(snap.pair_collision))
    panel.axis_choice.setCurrentText("gamma angle")
    xs, _ = _points(panel)
    assert np.allclose(xs, np.sort(window.session.run_info.pair_angle))
    assert not panel.theory.isVisible()  # not the reference against gamma angles
    assert f"{snap.locality_spearman_unseen:+.2f}" in panel.info.text()
    raw = window.session.run_info.locality_spearman_raw
    assert f"raw input {raw:+.2f}" in panel.info.text()


def test_probe_and_unseen_collision_curves_and_headline(qtbot, window):
    finish_run(qtbot, window)
    rows, run = window.store.rows, window.session.run_info
    for key in ("gamma_r2_trained", "unseen_same_class_collision"):
        x, y = window.curves.curves[key].getData()
        assert list(x) == [r["step"] for r in rows]
        assert np.allclose(y, [r[key] for r in rows], equal_nan=True), key
    for key in ("theta_r2_raw", "raw_unseen_different_class_collision"):  # flat baselines
        x, y = window.curves.curves[key].getData()
        assert list(x) == [r["step"] for r in rows]
        assert np.allclose(y, getattr(run, key), equal_nan=True), key
    snap = window.store.latest
    text = window.status_figures.text()
    assert f"unseen {snap.unseen_same_class_collision:.2f}/" in text
    assert f"all {snap.same_class_collision:.2f}/" in text
    window.reset()
    assert window.status_figures.text() == ""
