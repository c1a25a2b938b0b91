"""Does each preset show the phenomenon? Trains every preset headless and prints JSON.

Per preset: one-shot accuracy on unseen classes (trained, untrained, raw input), the
same-/different-class SimHash collision rates, theta-invariance, seconds and device,
plus the issue's targets for the default preset: one-shot >= 0.85 and >= 4x raw input,
same-class collisions >= 10x different-class, within 60 s.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

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
    m = metrics_dict(exp.last, time.perf_counter() - start)
    o, c = m["oneshot"], m["collision"]
    m["oneshot_over_raw"] = round(o["trained"] / max(o["raw_input"], 1e-9), 2)
    m["same_over_different"] = round(c["same_class"] / max(c["different_class"], 1e-9), 2)
    m["targets_met"] = bool(
        o["trained"] >= 0.85
        and m["oneshot_over_raw"] >= 4
        and m["same_over_different"] >= 10
        and m["seconds"] <= 60
    )
    return m


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", action="append", help="preset(s) to run (default: all)")
    ap.add_argument("--seed", type=int, action="append", help="seed(s) (default: preset's)")
    args = ap.parse_args()
    out = {}
    for name in args.preset or preset_names():
        for seed in args.seed or [None]:
            key = name if seed is None else f"{name}@seed{seed}"
            out[key] = measure(name, seed)
            print(f"# {key}: {json.dumps(out[key])}", file=sys.stderr, flush=True)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
