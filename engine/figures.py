"""The table of figures: every number a run records, declared once.

A Figure is one scalar measured per snapshot (a Snapshot field and history.csv column) or
once per run (a RunInfo baseline: the untrained network, the raw input). Each entry says
what it is called, which classes it is measured on, its range, which way is better, the
baselines it is read against and where it sits in metrics.json. Snapshot.SCALARS,
RunInfo.BASELINES, metrics.json, the curves, a sweep's summary, the Runs dock and the
captions all read this table; a derived figure (a ratio of two figures) is computed in
one place, `derived`, with one rule for a zero denominator.

Adding a figure: measure it (engine/measure.py's Measurer), give it a field in Snapshot
or RunInfo and one entry here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

NAN = float("nan")


@dataclass(frozen=True)
class Figure:
    name: str  # Snapshot (per snapshot) or RunInfo (per run) attribute; history column
    label: str  # short words for axes, tables and keys
    classes: str  # which probe classes/rows it is measured on: unseen, seen, all, ...
    lo: float = NAN  # the range its values lie in (nan: unbounded that way)
    hi: float = NAN
    higher_is_better: bool | None = True  # None: neither (loss, a count)
    baselines: tuple[str, ...] = ()  # names of the run figures it is read against
    json: str = ""  # dotted path in metrics.json ("" = not there)
    per_run: bool = False  # a RunInfo baseline, constant over the run
    ci: bool = False  # has a 95% bootstrap interval (Snapshot.ci95, RunInfo.baseline_ci95)

    @property
    def ci_columns(self) -> tuple[str, ...]:
        """Its interval's history columns (none without an interval)."""
        return (f"{self.name}_ci_lo", f"{self.name}_ci_hi") if self.ci else ()

    @property
    def ci_json(self) -> str:
        """Where its interval sits in metrics.json: beside it, `ci95` for a trained
        figure (oneshot.ci95), `<leaf>_ci95` otherwise."""
        if not (self.ci and self.json):
            return ""
        head, _, leaf = self.json.rpartition(".")
        name = "ci95" if leaf == "trained" else f"{leaf}_ci95"
        return f"{head}.{name}" if head else name


@dataclass(frozen=True)
class Ratio:
    """A derived figure: numerator / denominator, both figures of the table."""

    name: str
    label: str
    classes: str
    numerator: str
    denominator: str
    higher_is_better: bool = True


def _coll(name: str, label: str, classes: str, json: str, higher: bool,
          baselines: tuple[str, ...] = (), per_run: bool = False, ci: bool = False) -> Figure:
    return Figure(name, label, classes, 0.0, 1.0, higher, baselines, json, per_run, ci)


# Per-snapshot figures, in history.csv's column order (after step, seconds, steps_per_s;
# collapsed comes last).
SNAPSHOT_FIGURES: tuple[Figure, ...] = (
    Figure("loss", "training loss", "seen", 0.0, NAN, False, (), "loss"),
    Figure("train_accuracy", "head accuracy (seen)", "seen", 0.0, 1.0, True, (),
           "train_accuracy"),
    Figure("oneshot_trained", "one-shot, trained", "unseen", 0.0, 1.0, True,
           ("oneshot_untrained", "oneshot_raw", "oneshot_learned_linear"), "oneshot.trained",
           ci=True),
    _coll("same_class_collision", "same-class collisions (all classes)", "all",
          "collision.same_class", True, ("raw_same_class_collision",)),
    _coll("different_class_collision", "different-class collisions (all classes)", "all",
          "collision.different_class", False, ("raw_different_class_collision",)),
    Figure("invariance_trained", "theta-invariance (unseen)", "unseen", 0.0, NAN, False,
           ("invariance_raw", "invariance_learned_linear"), "invariance.trained"),
    _coll("seen_same_class_collision", "same-class collisions (seen)", "seen",
          "collision.seen_same_class", True),
    _coll("seen_different_class_collision", "different-class collisions (seen)", "seen",
          "collision.seen_different_class", False),
    _coll("unseen_same_class_collision", "same-class collisions (unseen)", "unseen",
          "collision.unseen_same_class", True,
          ("raw_unseen_same_class_collision", "learned_linear_unseen_same_class_collision"),
          ci=True),
    _coll("unseen_different_class_collision", "different-class collisions (unseen)",
          "unseen", "collision.unseen_different_class", False,
          ("raw_unseen_different_class_collision",
           "learned_linear_unseen_different_class_collision"), ci=True),
    Figure("gamma_r2_trained", "gamma R², trained", "unseen", NAN, 1.0, True,
           ("gamma_r2_untrained", "gamma_r2_raw"), "probes.gamma_r2.trained", ci=True),
    Figure("theta_r2_trained", "theta R², trained", "all", NAN, 1.0, False,
           ("theta_r2_untrained", "theta_r2_raw"), "probes.theta_r2.trained"),
    Figure("locality_spearman_unseen", "locality Spearman (unseen)", "unseen", -1.0, 1.0,
           False, ("locality_spearman_raw",), "locality_spearman.unseen"),
    Figure("lsh_recall_trained", "LSH recall (sampled, one draw)", "unseen", 0.0, 1.0, True,
           ("lsh_recall_raw",), "lsh_index.trained.recall"),
    Figure("lsh_candidates_trained", "LSH candidates per query (sampled, one draw)", "unseen",
           0.0, NAN, None,
           ("lsh_candidates_raw",), "lsh_index.trained.candidates"),
    Figure("lsh_oneshot_trained", "LSH one-shot (sampled, one draw)", "unseen", 0.0, 1.0, True,
           ("lsh_oneshot_raw",), "lsh_index.trained.oneshot"),
    Figure("lsh_bit_agreement_trained", "LSH bit agreement", "unseen", 0.0, 1.0, True,
           ("lsh_bit_agreement_raw",), "lsh_index.trained.bit_agreement"),
    Figure("lsh_recall_theory_trained", "LSH recall expected", "unseen", 0.0, 1.0, True,
           ("lsh_recall_theory_raw",), "lsh_index.trained.recall_theory"),
    Figure("theta_r2_unseen_trained", "theta R² (unseen rows)", "unseen", NAN, 1.0, False,
           ("theta_r2_unseen_untrained", "theta_r2_unseen_raw"),
           "probes.theta_r2_unseen.trained"),
    Figure("theta_r2_seen_trained", "theta R² (seen rows)", "seen", NAN, 1.0, False,
           ("theta_r2_seen_untrained", "theta_r2_seen_raw"), "probes.theta_r2_seen.trained"),
    Figure("within_share_trained", "variance within classes (unseen)", "unseen", 0.0, 1.0,
           False, ("within_share_untrained", "within_share_raw"),
           "within_class_share.trained"),
    Figure("val_oneshot_trained", "one-shot, trained (validation)", "validation", 0.0, 1.0,
           True, ("val_oneshot_untrained", "val_oneshot_raw", "val_oneshot_learned_linear"),
           "validation.oneshot.trained"),
    _coll("val_same_class_collision", "same-class collisions (validation)", "validation",
          "validation.collision.same_class", True),
    _coll("val_different_class_collision", "different-class collisions (validation)",
          "validation", "validation.collision.different_class", False),
)


def _run(name: str, label: str, classes: str, json: str, lo: float = NAN, hi: float = NAN,
         higher: bool | None = True, ci: bool = False) -> Figure:
    return Figure(name, label, classes, lo, hi, higher, (), json, True, ci)


# Per-run baselines (RunInfo), in probe.npz's and a sweep summary's order.
RUN_FIGURES: tuple[Figure, ...] = (
    _run("oneshot_untrained", "untrained", "unseen", "oneshot.untrained", 0.0, 1.0, ci=True),
    _run("gamma_r2_untrained", "gamma R², untrained", "unseen",
         "probes.gamma_r2.untrained", hi=1.0, ci=True),
    _run("theta_r2_untrained", "theta R², untrained", "all", "probes.theta_r2.untrained",
         hi=1.0, higher=False),
    _run("oneshot_raw", "raw input", "unseen", "oneshot.raw_input", 0.0, 1.0, ci=True),
    _coll("raw_same_class_collision", "same, raw", "all", "collision.raw_same_class",
          True, per_run=True),
    _coll("raw_different_class_collision", "diff., raw", "all",
          "collision.raw_different_class", False, per_run=True),
    _coll("raw_unseen_same_class_collision", "same, raw (unseen)", "unseen",
          "collision.raw_unseen_same_class", True, per_run=True),
    _coll("raw_unseen_different_class_collision", "diff., raw (unseen)", "unseen",
          "collision.raw_unseen_different_class", False, per_run=True),
    _run("invariance_raw", "raw input", "unseen", "invariance.raw_input", 0.0,
         higher=False),
    _run("gamma_r2_raw", "gamma R², raw", "unseen", "probes.gamma_r2.raw_input", hi=1.0,
         ci=True),
    _run("theta_r2_raw", "theta R², raw", "all", "probes.theta_r2.raw_input", hi=1.0,
         higher=False),
    _run("locality_spearman_raw", "raw input", "unseen", "locality_spearman.raw_input",
         -1.0, 1.0, higher=False),
    _run("lsh_recall_raw", "LSH recall, raw (sampled, one draw)", "unseen",
         "lsh_index.raw.recall", 0.0, 1.0),
    _run("lsh_candidates_raw", "LSH candidates, raw (sampled, one draw)", "unseen",
         "lsh_index.raw.candidates", 0.0, higher=None),
    _run("lsh_oneshot_raw", "LSH one-shot, raw (sampled, one draw)", "unseen",
         "lsh_index.raw.oneshot", 0.0, 1.0),
    _run("lsh_bit_agreement_raw", "LSH bit agreement, raw", "unseen",
         "lsh_index.raw.bit_agreement", 0.0, 1.0),
    _run("lsh_recall_theory_raw", "LSH recall expected, raw", "unseen",
         "lsh_index.raw.recall_theory", 0.0, 1.0),
    _run("theta_r2_unseen_untrained", "theta R², untrained (unseen)", "unseen",
         "probes.theta_r2_unseen.untrained", hi=1.0, higher=False),
    _run("theta_r2_seen_untrained", "theta R², untrained (seen)", "seen",
         "probes.theta_r2_seen.untrained", hi=1.0, higher=False),
    _run("within_share_untrained", "untrained", "unseen", "within_class_share.untrained",
         0.0, 1.0, higher=False),
    _run("theta_r2_unseen_raw", "theta R², raw (unseen)", "unseen",
         "probes.theta_r2_unseen.raw_input", hi=1.0, higher=False),
    _run("theta_r2_seen_raw", "theta R², raw (seen)", "seen",
         "probes.theta_r2_seen.raw_input", hi=1.0, higher=False),
    _run("within_share_raw", "raw input", "unseen", "within_class_share.raw_input",
         0.0, 1.0, higher=False),
    _run("oneshot_learned_linear", "learned linear", "unseen", "oneshot.learned_linear",
         0.0, 1.0, ci=True),
    _coll("learned_linear_unseen_same_class_collision", "same, learned linear (unseen)",
          "unseen", "collision.learned_linear_unseen_same_class", True, per_run=True),
    _coll("learned_linear_unseen_different_class_collision",
          "diff., learned linear (unseen)", "unseen",
          "collision.learned_linear_unseen_different_class", False, per_run=True),
    _run("invariance_learned_linear", "learned linear", "unseen",
         "invariance.learned_linear", 0.0, higher=False),
    _run("val_oneshot_untrained", "untrained (validation)", "validation",
         "validation.oneshot.untrained", 0.0, 1.0),
    _run("val_oneshot_raw", "raw input (validation)", "validation",
         "validation.oneshot.raw_input", 0.0, 1.0),
    _run("val_oneshot_learned_linear", "learned linear (validation)", "validation",
         "validation.oneshot.learned_linear", 0.0, 1.0),
)

# Derived figures. collision_ratio stands for the claim, so it is on unseen classes.
RATIOS: tuple[Ratio, ...] = (
    Ratio("collision_ratio", "same/different collisions (unseen)", "unseen",
          "unseen_same_class_collision", "unseen_different_class_collision"),
    Ratio("collision_ratio_all", "same/different collisions (all classes)", "all",
          "same_class_collision", "different_class_collision"),
    Ratio("raw_collision_ratio", "same/different collisions, raw (unseen)", "unseen",
          "raw_unseen_same_class_collision", "raw_unseen_different_class_collision"),
    Ratio("learned_linear_collision_ratio",
          "same/different collisions, learned linear (unseen)", "unseen",
          "learned_linear_unseen_same_class_collision",
          "learned_linear_unseen_different_class_collision"),
    Ratio("val_collision_ratio", "same/different collisions (validation)", "validation",
          "val_same_class_collision", "val_different_class_collision"),
)

FIGURES: dict[str, Figure] = {f.name: f for f in (*SNAPSHOT_FIGURES, *RUN_FIGURES)}
RATIO: dict[str, Ratio] = {r.name: r for r in RATIOS}


def ratio(numerator: Any, denominator: Any) -> float:
    """numerator / denominator; nan unless both are finite numbers and the denominator is
    above zero (the one rule for every derived ratio)."""
    try:
        a, b = float(numerator), float(denominator)
    except (TypeError, ValueError):
        return NAN
    if not (math.isfinite(a) and math.isfinite(b)) or b <= 0:
        return NAN
    return a / b


def derived(values: Mapping[str, Any]) -> dict[str, float]:
    """Every Ratio computable from `values` (figure name -> value), by name."""
    return {r.name: ratio(values.get(r.numerator), values.get(r.denominator))
            for r in RATIOS}


def value(values: Mapping[str, Any], name: str) -> float:
    """A figure or derived ratio from a row of figures (history row, summary row), as a
    float (nan when missing or not a number)."""
    if name in RATIO:
        r = RATIO[name]
        return ratio(values.get(r.numerator), values.get(r.denominator))
    try:
        return float(values.get(name))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return NAN


def expected_rates(snapshot: Any) -> bool:
    """True when a snapshot's collision rates are expectations over hyperplanes (schema
    3, with a hash centre); older records hold one draw of tables."""
    return bool(getattr(snapshot, "hash_center", ()).__len__())


def higher_is_better(name: str) -> bool:
    """Which way a figure or ratio improves (True for neither)."""
    if name in RATIO:
        return RATIO[name].higher_is_better
    f = FIGURES.get(name)
    return True if f is None or f.higher_is_better is None else f.higher_is_better


def label(name: str) -> str:
    if name in RATIO:
        return RATIO[name].label
    f = FIGURES.get(name)
    return f.label if f is not None else name


def baselines(name: str) -> tuple[str, ...]:
    f = FIGURES.get(name)
    return f.baselines if f is not None else ()


def json_get(tree: Mapping[str, Any], name: str) -> Any:
    """A figure's value in a metrics.json tree (None when absent)."""
    node: Any = tree
    for part in FIGURES[name].json.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def json_tree(values: Mapping[str, Any], skeleton: dict,
              ci95: Mapping[str, Any] | None = None) -> dict:
    """metrics.json's tree: `skeleton` (its fixed entries, in order) with every figure of
    `values` that has a json path set at that path, and its 95% interval [lo, hi] (from
    `ci95`, by figure name) beside it."""
    def put(path: str, v: Any) -> None:
        *parents, leaf = path.split(".")
        node = skeleton
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = v

    for f in (*SNAPSHOT_FIGURES, *RUN_FIGURES):
        if not f.json or f.name not in values:
            continue
        put(f.json, values[f.name])
        if f.ci_json:
            put(f.ci_json, [float(v) for v in (ci95 or {}).get(f.name, (NAN, NAN))])
    return skeleton


def ci_row(ci95: Mapping[str, Any], figures: tuple[Figure, ...]) -> dict[str, float]:
    """The history columns of the figures' intervals (nan where not measured)."""
    row = {}
    for f in figures:
        if f.ci:
            lo, hi = ci95.get(f.name, (NAN, NAN))
            row[f.ci_columns[0]], row[f.ci_columns[1]] = float(lo), float(hi)
    return row
