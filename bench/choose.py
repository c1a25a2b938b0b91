"""Choices made on validation classes, never on the unseen ones (docs/figures.md).

`choose.py --lda [--preset P ...] [--seeds N]` scores the learned linear baseline (LDA of
the raw input fitted on the probe's seen rows) with each shrinkage of SHRINKAGES on the
preset's *validation* classes (their own rows and episodes; no training needed) and
prints one JSON line, then a table: validation one-shot, mean ± s.d. over the seeds, per
shrinkage. The shrinkage kept in engine/metrics.py is the one with the highest mean over
the presets.

`choose.py --sweep DIR` prints a recorded sweep's validation figures per grid point (one
JSON line, then a table): how a preset's knob (the digits theta scale) is chosen, with
`main.py sweep --preset digits --vary data.theta_scale=...`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import engine  # noqa: E402,F401  (thread settings before torch, BLAS, numba load)

SHRINKAGES: tuple[float | str, ...] = (0.001, 0.01, 0.03, 0.1, 0.3, "auto")


def lda_on_validation(name: str, seed: int) -> dict:
    """Validation one-shot of the learned linear baseline at each shrinkage."""
    from engine.config import load_preset
    from engine.experiment import build_probe
    from engine.manifolds import make_family
    from engine.measure import validation_episodes
    from engine.metrics import LearnedLinear, oneshot_accuracy
    from engine.seeds import stream_seed
    from engine.training import build_validation

    cfg = load_preset(name).replace(seed=seed)
    family = make_family(cfg.data, seed=stream_seed(cfg.seed, "family"))
    probe, val = build_probe(cfg, family), build_validation(cfg, family)
    if val is None:
        raise SystemExit(f"preset {name} has no validation classes")
    episodes = validation_episodes(cfg, val)
    seen = probe.seen
    out = {"raw": oneshot_accuracy(val.x, episodes)}
    for s in SHRINKAGES:
        lin = LearnedLinear(probe.x[seen], probe.label[seen], shrinkage=s)
        out[str(s)] = oneshot_accuracy(lin.transform(val.x), episodes)
    return out


def _cell(v: list[float]) -> str:
    a = np.asarray(v)
    return f"{a.mean():.2f} ± {a.std(ddof=1):.2f}" if len(a) > 1 else f"{a.mean():.2f}"


def lda_table(names: list[str], seeds: int) -> int:
    from engine.config import load_preset

    res = {n: [lda_on_validation(n, load_preset(n).seed + k) for k in range(seeds)]
           for n in names}
    print(json.dumps(res))
    keys = ["raw", *map(str, SHRINKAGES)]
    print("| preset | raw input | " + " | ".join(f"shrinkage {k}" for k in keys[1:]) + " |")
    print("|---" * (len(keys) + 1) + "|")
    for n, runs in res.items():
        print(f"| {n} | " + " | ".join(_cell([r[k] for r in runs]) for k in keys) + " |")
    means = {k: float(np.mean([r[k] for runs in res.values() for r in runs]))
             for k in keys[1:]}
    print("mean over presets and seeds: " + ", ".join(f"{k} {v:.3f}" for k, v in means.items())
          + f"; highest: {max(means, key=means.get)}")
    return 0


VALIDATION_COLUMNS = ("val_oneshot_trained", "val_oneshot_raw", "val_oneshot_learned_linear",
                      "val_oneshot_untrained", "val_collision_ratio")


def sweep_table(folder: Path) -> int:
    from engine.sweep_summary import read_summary

    rows = read_summary(folder)
    axes = [k for k in rows[0] if "." in k] if rows else []
    picked = [{**{a: r.get(a) for a in axes}, "seed": r.get("seed"),
               **{c: r.get(c) for c in VALIDATION_COLUMNS}} for r in rows]
    print(json.dumps(picked, default=str))
    print("| " + " | ".join([*axes, "seed", *VALIDATION_COLUMNS]) + " |")
    print("|---" * (len(axes) + 1 + len(VALIDATION_COLUMNS)) + "|")
    for r in picked:
        cells = [str(r[a]) for a in axes] + [str(r["seed"])]
        cells += [f"{float(r[c]):.3f}" for c in VALIDATION_COLUMNS]
        print("| " + " | ".join(cells) + " |")
    return 0


def main() -> int:
    from engine.config import preset_names

    ap = argparse.ArgumentParser()
    ap.add_argument("--lda", action="store_true", help="the LDA shrinkage on validation")
    ap.add_argument("--preset", action="append", help="preset(s) (default: all)")
    ap.add_argument("--seeds", type=int, default=3, help="seeds per preset (default 3)")
    ap.add_argument("--sweep", metavar="DIR", help="a sweep's validation figures")
    args = ap.parse_args()
    if args.sweep:
        return sweep_table(Path(args.sweep))
    if args.lda:
        return lda_table(args.preset or preset_names(), args.seeds)
    ap.error("say --lda or --sweep DIR")
    return 2


if __name__ == "__main__":
    sys.exit(main())
