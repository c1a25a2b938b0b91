"""Cost of one snapshot's measurements (engine.measure.Measurer.measure) on a preset.

Builds the preset's run (probe set, fit rows, validation rows, untrained network), embeds
the probe once and times Measurer.measure on that embedding, one BLAS thread as in
training. Prints one
JSON line: median and min wall milliseconds over --repeat calls, the median CPU
milliseconds of this process (steadier than wall time on a shared machine), and the load
average.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.config import load_preset  # noqa: E402
from engine.experiment import Experiment  # noqa: E402
from engine.measure import Measurer  # noqa: E402
from engine.training import build_fit_rows, build_validation  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="default")
    ap.add_argument("--repeat", type=int, default=15)
    args = ap.parse_args()
    torch.set_num_threads(1)
    exp = Experiment(load_preset(args.preset))
    fit = build_fit_rows(exp.config, exp.family)
    val = build_validation(exp.config, exp.family)
    with torch.no_grad():
        emb = exp.model.embed(torch.from_numpy(exp.probe.x)).numpy()
        logits = exp.model.head(torch.from_numpy(emb[exp.probe.seen])).numpy()
        fit_emb = exp.model.embed(torch.from_numpy(fit.x)).numpy()
        val_emb = None if val is None else exp.model.embed(torch.from_numpy(val.x)).numpy()
    with threadpool_limits(limits=1, user_api="blas"):
        m = Measurer(exp.config, exp.probe, emb.shape[1], fit=fit, validation=val)
        m.measure(emb, logits, fit_emb, 1.0, 1.0, val_emb)  # the untrained one, and warm-up
        times, cpu = [], []
        for _ in range(args.repeat):
            t, c = time.perf_counter(), time.process_time()
            m.measure(emb, logits, fit_emb, 1.0, 1.0, val_emb)
            times.append(time.perf_counter() - t)
            cpu.append(time.process_time() - c)
    print(json.dumps({
        "preset": args.preset, "probe_rows": len(exp.probe),
        "validation_rows": 0 if val is None else len(val),
        "measure_ms_median": round(1000 * statistics.median(times), 1),
        "measure_ms_min": round(1000 * min(times), 1),
        "cpu_ms_median": round(1000 * statistics.median(cpu), 1),
        "loadavg_1min": round(os.getloadavg()[0], 2),
    }))


if __name__ == "__main__":
    main()
