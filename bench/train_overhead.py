"""Engine training throughput (snapshots on, projection off) against a bare torch loop.

Both loops train the same model on the same generated data with the same optimiser; the
engine also measures a Snapshot every train.snapshot_every steps. Prints one JSON object:
{"engine_steps_per_s", "bare_steps_per_s", "ratio", ...}.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.config import load_preset  # noqa: E402
from engine.experiment import Experiment  # noqa: E402
from engine.training import make_optimizer  # noqa: E402


def engine_rate(cfg) -> float:
    exp = Experiment(cfg)
    start = time.perf_counter()
    for _ in exp.run():
        pass
    return cfg.train.steps / (time.perf_counter() - start)


def bare_rate(cfg) -> float:
    exp = Experiment(cfg)  # same family, same initial model
    model, fam, t = exp.model, exp.family, cfg.train
    opt = make_optimizer(cfg, model)
    loss_fn = nn.CrossEntropyLoss()
    gen = torch.Generator().manual_seed(cfg.seed + 2)
    start = time.perf_counter()
    for _ in range(t.steps):
        labels = torch.randint(0, cfg.data.seen_classes, (t.batch_size,), generator=gen)
        x, _ = fam.sample(labels, gen)
        x, y = x.to(exp.device), labels.to(exp.device)
        loss = loss_fn(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    float(loss.detach())
    return t.steps / (time.perf_counter() - start)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="default")
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    cfg = load_preset(args.preset).replace(**{"train.steps": args.steps})
    bare_rate(cfg.replace(**{"train.steps": 50}))  # warm up allocator and kernels
    engines, bares = [], []
    for _ in range(args.repeats):  # interleaved, so drift in machine load hits both
        bares.append(bare_rate(cfg))
        engines.append(engine_rate(cfg))
    e, b = statistics.median(engines), statistics.median(bares)
    print(json.dumps({
        "engine_steps_per_s": round(e, 1),
        "bare_steps_per_s": round(b, 1),
        "ratio": round(e / b, 3),
        "preset": args.preset,
        "steps": args.steps,
        "snapshot_every": cfg.train.snapshot_every,
        "repeats": args.repeats,
        "torch_threads": torch.get_num_threads(),
    }))


if __name__ == "__main__":
    main()
