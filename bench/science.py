"""Does each preset show the phenomenon? Trains every preset headless and prints JSON.

Per preset: the run's metrics.json summary plus a `science` block read from the last
snapshot: one-shot accuracy on unseen classes (trained, untrained, raw input; and the
lift above chance), unseen-unseen SimHash collision rates, the ridge probes' gamma R^2
(unseen classes) and theta R^2 (trained, untrained, raw input), the LSH index's recall,
candidates per query and hash-only one-shot, locality's Spearman correlation, and the
collapse marker. Targets: default preset one-shot >= 0.85 and >= 4x raw input, same-class
collisions >= 10x different-class, within 60 s; digits preset one-shot >= 3x raw input.
One torch thread (small MLPs gain nothing from more, STACK.md). `--table` also prints a
Markdown table to stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import engine  # noqa: E402,F401  (thread settings before torch, BLAS, numba load)

# isort: split
import torch  # noqa: E402

from engine.config import load_preset, preset_names  # noqa: E402
from engine.experiment import Experiment  # noqa: E402
from engine.record import metrics_dict  # noqa: E402


def measure(name: str, seed: int | None) -> dict:
    cfg = load_preset(name)
    if seed is not None:
        cfg = cfg.replace(seed=seed)
    exp = Experiment(cfg)
    start = time.perf_counter()
    for _ in exp.run():
        pass
    last = exp.last
    m = metrics_dict(last, exp.info, time.perf_counter() - start)
    o, c = m["oneshot"], m["collision"]
    m["oneshot_over_raw"] = round(o["trained"] / max(o["raw_input"], 1e-9), 2)
    m["same_over_different"] = round(c["same_class"] / max(c["different_class"], 1e-9), 2)
    m["science"] = science(last, exp.info)
    if name == "digits":
        m["targets_met"] = bool(m["oneshot_over_raw"] >= 3)
    else:
        m["targets_met"] = bool(
            o["trained"] >= 0.85
            and m["oneshot_over_raw"] >= 4
            and m["same_over_different"] >= 10
            and m["seconds"] <= 60
        )
    return m


def science(s, run) -> dict:
    """The issue-11 figures of one snapshot (and its run's baselines), rounded for reading."""
    def r(v: float) -> float:
        return round(float(v), 3)

    chance = 1.0 / run.ways
    return {
        "oneshot": {"trained": r(s.oneshot_trained), "untrained": r(run.oneshot_untrained),
                    "raw": r(run.oneshot_raw), "chance": r(chance),
                    "trained_above_chance": r(s.oneshot_trained - chance),
                    "raw_above_chance": r(run.oneshot_raw - chance)},
        "unseen_collision": {
            "same": r(s.unseen_same_class_collision),
            "different": r(s.unseen_different_class_collision),
            "raw_same": r(run.raw_unseen_same_class_collision),
            "raw_different": r(run.raw_unseen_different_class_collision)},
        "gamma_r2": {"trained": r(s.gamma_r2_trained), "untrained": r(run.gamma_r2_untrained),
                     "raw": r(run.gamma_r2_raw)},
        "theta_r2": {"trained": r(s.theta_r2_trained), "untrained": r(run.theta_r2_untrained),
                     "raw": r(run.theta_r2_raw)},
        "lsh": {"bits": run.bits, "tables": run.tables,
                "recall": r(s.lsh_recall_trained), "candidates": r(s.lsh_candidates_trained),
                "oneshot": r(s.lsh_oneshot_trained), "raw_recall": r(run.lsh_recall_raw),
                "raw_candidates": r(run.lsh_candidates_raw),
                "raw_oneshot": r(run.lsh_oneshot_raw)},
        "locality_spearman": {"unseen": r(s.locality_spearman_unseen),
                              "raw": r(run.locality_spearman_raw)},
        "collapsed": s.collapsed,
    }


def table(out: dict) -> str:
    """A Markdown table of the science blocks (trained / untrained / raw where it applies)."""
    lines = ["| preset | one-shot tr / untr / raw | unseen coll. same / diff | "
             "gamma R^2 tr / raw | theta R^2 tr / raw | LSH recall tr / raw | "
             "candidates tr / raw | seconds |",
             "|---|---|---|---|---|---|---|---|"]
    for key, m in out.items():
        s = m["science"]
        o, u, g, t, h = (s["oneshot"], s["unseen_collision"], s["gamma_r2"], s["theta_r2"],
                         s["lsh"])
        lines.append(
            f"| {key} | {o['trained']:.2f} / {o['untrained']:.2f} / {o['raw']:.2f} "
            f"| {u['same']:.3f} / {u['different']:.3f} | {g['trained']:.2f} / {g['raw']:.2f} "
            f"| {t['trained']:.2f} / {t['raw']:.2f} | {h['recall']:.2f} / {h['raw_recall']:.2f} "
            f"| {h['candidates']:.2f} / {h['raw_candidates']:.2f} | {m['seconds']:.0f} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", action="append", help="preset(s) to run (default: all)")
    ap.add_argument("--seed", type=int, action="append", help="seed(s) (default: preset's)")
    ap.add_argument("--table", action="store_true", help="also print a Markdown table")
    args = ap.parse_args()
    torch.set_num_threads(1)
    out = {}
    for name in args.preset or preset_names():
        for seed in args.seed or [None]:
            key = name if seed is None else f"{name}@seed{seed}"
            out[key] = measure(name, seed)
            print(f"# {key}: {json.dumps(out[key])}", file=sys.stderr, flush=True)
    print(json.dumps(out))
    if args.table:
        print(table(out), file=sys.stderr)


if __name__ == "__main__":
    main()
