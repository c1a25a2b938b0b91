"""The run record's costs: bytes per snapshot, opening and scrubbing a recorded run, and
training throughput with recording on against off (same process, interleaved rounds).

Prints one JSON object:
- bytes_per_snapshot: mean size of snapshots/<step>.npz on the default preset (target
  <= 300 KB); bytes_per_snapshot_float32: the same snapshot with a float32 embedding,
  compressed (the lossless alternative); probe_bytes: probe.npz, written once per run.
- float16_max_figure_change: how far each figure would move if recomputed from the
  float16 embedding the record keeps (the figures shown are measured live and stored
  exactly, so a reopened run shows the same numbers regardless).
- open_s: open a 200-snapshot run and load its last snapshot (target <= 1 s);
  scrub_s: median time to load a random step of the reopened run with its cached frame
  (target <= 100 ms). Both read files the OS has cached (the run was just written).
- recording_ratio: training steps/s with the record written as it trains over steps/s
  without, the median over pairs of back-to-back rounds (so load from other processes
  hits both halves of a pair alike; the best-of ratio beside it); target >= 0.95.
  recording_share: the share of a recorded run's wall time spent in RunWriter.append,
  which other load cannot fake (1 - share is the ratio on an idle machine).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import engine  # noqa: E402,F401  (thread settings before torch, BLAS, numba load)

# isort: split
import numpy as np  # noqa: E402
import torch  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from engine import metrics  # noqa: E402
from engine.config import load_preset  # noqa: E402
from engine.experiment import Experiment  # noqa: E402
from engine.measure import Measurer  # noqa: E402
from engine.record import open_run
from engine.record_writer import RunWriter  # noqa: E402


def train(cfg, out: Path | None) -> tuple[float, float, list, object]:
    """(steps/s, seconds inside append, snapshots, run info) of one run, recorded into
    `out`."""
    exp = Experiment(cfg)
    writer = None if out is None else RunWriter(out, cfg, device=str(exp.device))
    appending = 0.0
    snaps = []
    start = time.perf_counter()
    for snap in exp.run():
        if writer is not None:
            t = time.perf_counter()
            writer.append(snap, exp.info)
            appending += time.perf_counter() - t
        snaps.append(snap)
    if writer is not None:
        writer.finish("finished")
    return cfg.train.steps / (time.perf_counter() - start), appending, snaps, exp.info


def float16_drift(cfg, snaps, run) -> dict[str, float]:
    """Max change of every figure recomputed from the float16 copy of the embedding."""
    exp = Experiment(cfg)
    m = Measurer(cfg, exp.probe, exp.model.head.in_features)
    worst: dict[str, float] = {}
    n_seen = int(exp.probe.seen.sum())
    logits = np.zeros((n_seen, cfg.data.seen_classes), np.float32)
    with threadpool_limits(limits=1, user_api="blas"):
        for s in snaps:
            half = s.embedding.astype(np.float16).astype(np.float32)
            a, b = m.measure(s.embedding, logits), m.measure(half, logits)
            for k, v in a.items():
                if k == "train_accuracy" or np.asarray(v).dtype.kind not in "fiu":
                    continue  # from the head's logits, or not a number
                d = float(np.max(np.abs(np.asarray(v) - np.asarray(b[k]))))
                worst[k] = max(worst.get(k, 0.0), d)
            if s.step == 0:
                d = abs(metrics.oneshot_accuracy(half, m.episodes) - run.oneshot_untrained)
                worst["oneshot_untrained"] = d
    return {k: round(v, 6) for k, v in worst.items()}


def float32_size(snap, tmp: Path) -> int:
    """A live snapshot's arrays, float32 embedding kept, compressed (the lossless option)."""
    arrays = {f.name: getattr(snap, f.name) for f in dataclasses.fields(snap)
              if isinstance(getattr(snap, f.name), np.ndarray)}
    np.savez_compressed(tmp / "f32.npz", **arrays)
    return (tmp / "f32.npz").stat().st_size


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="default")
    ap.add_argument("--steps", type=int, default=1500, help="steps of each throughput round")
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--snapshots", type=int, default=200, help="snapshots of the opened run")
    ap.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    base = load_preset(args.preset)
    with tempfile.TemporaryDirectory(prefix="gsh-bench-runs-") as tmp_name:
        tmp = Path(tmp_name)
        # A run of `snapshots` snapshots (every 5 steps) to size, open and scrub.
        every = 5
        big = base.replace(**{"train.steps": every * (args.snapshots - 1),
                              "train.snapshot_every": every})
        run = tmp / "big"
        train(big, run)
        files = sorted((run / "snapshots").glob("*.npz"))
        sizes = [f.stat().st_size for f in files]

        t = time.perf_counter()
        reader = open_run(run)
        last = reader.snapshot(reader.steps[-1])
        open_s = time.perf_counter() - t
        assert last.step == reader.steps[-1] and len(reader.steps) == args.snapshots

        rng = random.Random(0)
        for step in reader.steps:  # the projection cache, as the app leaves it
            reader.write_frame("embedding", step, np.zeros((len(reader.probe), 2)), "umap")
        reopened = open_run(run)
        scrubs = []
        for step in rng.sample(reopened.steps, 20):
            t = time.perf_counter()
            snap = reopened.snapshot(step)
            frame = reopened.read_frame("embedding", step)
            scrubs.append(time.perf_counter() - t)
            assert snap.step == step and frame is not None

        # Throughput, recording on vs off, interleaved so machine load hits both.
        cfg = base.replace(**{"train.steps": args.steps})
        train(cfg.replace(**{"train.steps": 50}), None)  # warm up
        on, off, shares = [], [], []
        snaps = []
        for i in range(args.rounds):
            rate, appending, snaps, info = train(cfg, tmp / f"round{i}")
            on.append(rate)
            shares.append(appending * rate / cfg.train.steps)
            off.append(train(cfg, None)[0])
        drift = float16_drift(cfg, snaps, info)
        pairs = [a / b for a, b in zip(on, off, strict=True)]
        print(json.dumps({
            "bytes_per_snapshot": round(statistics.mean(sizes)),
            "bytes_per_snapshot_max": max(sizes),
            "bytes_per_snapshot_float32": float32_size(snaps[-1], tmp),
            "probe_bytes": (run / "probe.npz").stat().st_size,
            "embedding_dtype": str(np.load(files[-1])["embedding"].dtype),
            "float16_max_figure_change": drift,
            "open_s": round(open_s, 4),
            "scrub_s": round(statistics.median(scrubs), 4),
            "scrub_max_s": round(max(scrubs), 4),
            "recording_ratio": round(statistics.median(pairs), 3),
            "recording_ratio_best": round(max(on) / max(off), 3),
            "recording_share": round(statistics.median(shares), 4),
            "recorded_steps_per_s": [round(r, 1) for r in on],
            "unrecorded_steps_per_s": [round(r, 1) for r in off],
            "torch_threads": torch.get_num_threads(),
            "preset": args.preset,
            "steps": args.steps,
            "rounds": args.rounds,
            "snapshots_opened": args.snapshots,
        }))


if __name__ == "__main__":
    main()
