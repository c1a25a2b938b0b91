"""Does each preset show the phenomenon? Trains presets headless; checks recorded runs.

`science.py [--preset P ...] [--seeds N]` trains every preset (or the ones named) for N
seeds (the preset's seed and the next N-1) and prints one JSON line: per preset and seed
the run's metrics.json summary. `--table` also prints the README's presets table to
stdout after the JSON: each figure as mean ± s.d. over the seeds, with the learned linear
baseline beside the network; paste it, never type it.

`science.py --sweep-table DIR` prints the README's sweep table from a recorded sweep
(one axis): per axis value, each figure's mean ± s.d. over the seeds, from summary.csv.

`science.py --check RUN` recomputes a recorded run's headline figures from its files
alone (embeddings.npz, probe.npz, config.toml) with plain numpy and scikit-learn, as
docs/figures.md defines them, and prints each beside metrics.json's value with the
difference; it exits 1 when one differs by more than its tolerance.

One torch thread per run (small MLPs gain nothing from more, STACK.md); `--jobs N` runs N
trainings at once in separate processes.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import tomllib
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import engine  # noqa: E402,F401  (thread settings before torch, BLAS, numba load)


def measure(name: str, seed: int | None) -> dict:
    import torch

    from engine.config import load_preset
    from engine.experiment import Experiment
    from engine.record_format import metrics_dict

    torch.set_num_threads(1)
    cfg = load_preset(name)
    if seed is not None:
        cfg = cfg.replace(seed=seed)
    exp = Experiment(cfg)
    start = time.perf_counter()
    for _ in exp.run():
        pass
    m = metrics_dict(exp.last, exp.info, time.perf_counter() - start)
    m["seed"] = cfg.seed
    return m


# (column title, [(words, path in metrics.json)], digits): one README column per entry,
# its cells "trained / baseline ..." with each part mean ± s.d. over seeds.
COLUMNS = [
    ("one-shot trained / untrained / raw / **learned linear**",
     ["oneshot.trained", "oneshot.untrained", "oneshot.raw_input", "oneshot.learned_linear"],
     2),
    ("unseen collisions same / different",
     ["collision.unseen_same_class", "collision.unseen_different_class"], 3),
    ("same/different ratio trained / raw / learned linear",
     ["ratio:collision.unseen_same_class/collision.unseen_different_class",
      "ratio:collision.raw_unseen_same_class/collision.raw_unseen_different_class",
      "ratio:collision.learned_linear_unseen_same_class/"
      "collision.learned_linear_unseen_different_class"], 1),
    ("gamma R² trained / raw", ["probes.gamma_r2.trained", "probes.gamma_r2.raw_input"], 2),
    ("theta R² unseen rows trained / untrained / raw",
     ["probes.theta_r2_unseen.trained", "probes.theta_r2_unseen.untrained",
      "probes.theta_r2_unseen.raw_input"], 2),
    ("variance within classes trained / raw",
     ["within_class_share.trained", "within_class_share.raw_input"], 2),
    ("LSH recall one draw / expected",
     ["lsh_index.trained.recall", "lsh_index.trained.recall_theory"], 2),
    ("validation one-shot trained / raw / learned linear (for choices)",
     ["validation.oneshot.trained", "validation.oneshot.raw_input",
      "validation.oneshot.learned_linear"], 2),
]


def _get(m: dict, path: str) -> float:
    if path.startswith("ratio:"):
        a, b = path[6:].split("/")
        num, den = _get(m, a), _get(m, b)
        return num / den if den > 0 else float("nan")
    node = m
    for part in path.split("."):
        node = node.get(part, {}) if isinstance(node, dict) else {}
    return float(node) if isinstance(node, (int, float)) else float("nan")


def _cell(values: list[float], digits: int) -> str:
    v = np.array([x for x in values if np.isfinite(x)])
    if not len(v):
        return "–"
    sd = v.std(ddof=1) if len(v) > 1 else float("nan")
    return f"{v.mean():.{digits}f} ± {sd:.{digits}f}"


def table(out: dict[str, list[dict]]) -> str:
    """The README's presets table: mean ± s.d. over the seeds of every preset."""
    head = "| preset | " + " | ".join(c[0] for c in COLUMNS) + " |"
    lines = [head, "|---" * (len(COLUMNS) + 1) + "|"]
    for name, runs in out.items():
        cells = [" / ".join(_cell([_get(m, p) for m in runs], d) for p in paths)
                 for _title, paths, d in COLUMNS]
        seeds = ",".join(str(m["seed"]) for m in runs)
        lines.append(f"| {name} (seeds {seeds}) | " + " | ".join(cells) + " |")
    return "\n".join(lines)


# (row title, [summary columns], digits): the README's sweep table, one row per entry,
# each cell "a / b" with each part mean ± s.d. over the seeds at that axis value.
SWEEP_ROWS = [
    ("one-shot, trained", ["oneshot_trained"], 2),
    ("raw input / untrained / learned linear",
     ["oneshot_raw", "oneshot_untrained", "oneshot_learned_linear"], 2),
    ("same/different collisions (unseen), trained / raw",
     ["collision_ratio", "raw_collision_ratio"], 1),
    ("validation one-shot, trained", ["val_oneshot_trained"], 2),
]


def sweep_table(folder: Path) -> str:
    """The README's table of a one-axis sweep (mean ± s.d. over its seeds)."""
    from engine.sweep_spec import load_sweep
    from engine.sweep_summary import read_summary

    sweep = load_sweep(folder)
    axis = next(a.field for a in sweep.axes if a.field != "seed")
    rows = [r for r in read_summary(folder) if r.get("status") == "finished"]
    values = list(dict.fromkeys(r[axis] for r in rows))
    seeds = sorted({int(r["seed"]) for r in rows})

    def cell(v, name: str, digits: int) -> str:
        return _cell([float(r.get(name, "nan") or "nan") for r in rows if r[axis] == v],
                     digits)

    lines = [f"| {axis.rsplit('.', 1)[-1].replace('_', ' ')} | "
             + " | ".join(str(v) for v in values) + " |",
             "|---" * (len(values) + 1) + "|"]
    for title, names, digits in SWEEP_ROWS:
        lines.append(f"| {title} | " + " | ".join(
            " / ".join(cell(v, n, digits) for n in names) for v in values) + " |")
    lines.append(f"\n(seeds {','.join(map(str, seeds))}; {len(rows)} finished runs; "
                 f"{sweep.base.train.steps} steps)")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------
# --check RUN: the headline figures again, from the files alone


def _exact_rates(emb, center, label, rows, bits):
    """Mean of (1 - angle/pi)^bits over same-class and different-class pairs of `rows`."""
    v = emb[rows].astype(np.float64) - center
    u = v / np.linalg.norm(v, axis=1, keepdims=True)
    p = (1 - np.arccos(np.clip(u @ u.T, -1, 1)) / np.pi) ** bits
    same = label[rows][:, None] == label[rows][None, :]
    off = ~np.eye(len(rows), dtype=bool)
    return p[same & off].mean(), p[~same].mean()


def _episodes(cfg: dict, label: np.ndarray, seen: np.ndarray):
    """The run's one-shot episodes, drawn as docs/figures.md says (numpy only)."""
    from engine.seeds import stream_seed

    classes = list(dict.fromkeys(label.tolist()))  # probe order: seen first
    pos = np.array([classes.index(c) for c in label])
    unseen = np.array([k for k, c in enumerate(classes) if not seen[label == c][0]])
    ways = min(cfg["probe"]["ways"], len(unseen))
    rng = np.random.default_rng(stream_seed(cfg["seed"], "episodes"))
    rows_of = {c: np.flatnonzero(pos == c) for c in unseen}
    out = []
    for _ in range(cfg["probe"]["episodes"]):
        support, queries, targets = [], [], []
        for k, c in enumerate(rng.choice(unseen, size=ways, replace=False)):
            s = rng.choice(rows_of[c])
            q = rows_of[c][rows_of[c] != s]
            support.append(s)
            queries.append(q)
            targets.append(np.full(len(q), k))
        out.append((np.array(support), np.concatenate(queries), np.concatenate(targets)))
    return out


def _oneshot(features, episodes) -> float:
    f = features / np.linalg.norm(features, axis=1, keepdims=True)
    return float(np.mean([np.mean(np.argmax(f[q] @ f[s].T, axis=1) == t)
                          for s, q, t in episodes]))


def _lda(x_fit, label_fit, x):
    """The learned linear baseline (docs/figures.md): scikit-learn's LDA on the seen
    rows, centred on their mean."""
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

    from engine.metrics import LDA_SHRINKAGE

    lda = LinearDiscriminantAnalysis(solver="eigen", shrinkage=LDA_SHRINKAGE).fit(
        x_fit, label_fit)
    return lda.transform(x) - lda.transform(x_fit).mean(0)


def check(run: Path, spread: bool = False) -> int:
    m = json.loads((run / "metrics.json").read_text())
    cfg = tomllib.loads((run / "config.toml").read_text())
    z, p = np.load(run / "embeddings.npz"), np.load(run / "probe.npz")
    emb, label, seen = z["embedding"].astype(np.float64), z["label"], z["seen"].astype(bool)
    bits = m["collision"]["bits"]
    unseen_rows, seen_rows = np.flatnonzero(~seen), np.flatnonzero(seen)
    center = emb[seen].mean(0)
    raw = p["x"].astype(np.float64)
    episodes = _episodes(cfg, label, seen)
    lin = _lda(raw[seen_rows], label[seen_rows], raw)
    rows = []

    def row(name, mine, recorded, tol):
        rows.append((name, float(mine), recorded, tol))

    c = m["collision"]
    row("hash_center = mean of seen rows (max |diff|)",
        np.abs(z["hash_center"] - center).max(), 0.0, 1e-4)
    same, diff = _exact_rates(emb, center, label, unseen_rows, bits)
    row("collision.unseen_same_class", same, c["unseen_same_class"], 0.005)
    row("collision.unseen_different_class", diff, c["unseen_different_class"], 0.005)
    same, diff = _exact_rates(emb, center, label, np.arange(len(label)), bits)
    row("collision.same_class (all classes)", same, c["same_class"], 0.005)
    row("collision.different_class (all classes)", diff, c["different_class"], 0.005)
    same, diff = _exact_rates(raw, raw[seen].mean(0), label, unseen_rows, bits)
    row("collision.raw_unseen_same_class", same, c["raw_unseen_same_class"], 0.005)
    row("collision.raw_unseen_different_class", diff, c["raw_unseen_different_class"], 0.005)
    same, diff = _exact_rates(lin, lin[seen].mean(0), label, unseen_rows, bits)
    row("collision.learned_linear_unseen_same_class", same,
        c.get("learned_linear_unseen_same_class"), 0.005)
    row("collision.learned_linear_unseen_different_class", diff,
        c.get("learned_linear_unseen_different_class"), 0.005)
    o = m["oneshot"]
    row("oneshot.trained", _oneshot(emb, episodes), o["trained"], 1e-3)
    row("oneshot.raw_input", _oneshot(raw, episodes), o["raw_input"], 1e-3)
    row("oneshot.learned_linear", _oneshot(lin, episodes), o.get("learned_linear"), 1e-3)
    lo, hi = o.get("ci95", [float("nan")] * 2)
    row("oneshot.trained inside oneshot.ci95", float(lo <= o["trained"] <= hi), 1.0, 0)
    # the LSH index: recall expected over hyperplanes, mean of 1 - (1 - p^b)^L over the
    # (query, true exemplar) pairs
    tables = c["tables"]
    v = emb - center
    u = v / np.linalg.norm(v, axis=1, keepdims=True)
    expected = [1 - (1 - (1 - np.arccos(np.clip((u[q] * u[s[t]]).sum(1), -1, 1)) / np.pi)
                     ** bits) ** tables for s, q, t in episodes]
    row("lsh_index.trained.recall_theory", np.concatenate(expected).mean(),
        m["lsh_index"]["trained"].get("recall_theory"), 1e-3)
    bad = 0
    print(f"{'figure':52s} {'recomputed':>11s} {'recorded':>11s} {'diff':>10s}")
    for name, mine, recorded, tol in rows:
        if recorded is None:
            print(f"{name:52s} {mine:11.5f} {'(absent)':>11s}")
            continue
        d = mine - float(recorded)
        flag = "" if abs(d) <= tol else "  DIFFERS"
        bad += bool(flag)
        print(f"{name:52s} {mine:11.5f} {float(recorded):11.5f} {d:+10.2e}{flag}")
    print(f"{len(rows) - bad} of {len(rows)} figures agree" + (f"; {bad} differ" if bad else ""))
    if spread:  # the one-draw LSH figures against 200 other draws of tables
        from engine.hashing import lsh_spread

        pct = lsh_spread(emb.astype(np.float32), episodes, bits, tables, seed=1,
                         center=center.astype(np.float32))
        for k, (p5, p95) in pct.items():
            print(f"lsh_index.trained.{k} (one draw) {m['lsh_index']['trained'][k]:.3f}; "
                  f"5th-95th percentile over 200 draws of tables {p5:.3f}-{p95:.3f}")
    return 1 if bad else 0


def main() -> int:
    from engine.config import load_preset, preset_names

    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", action="append", help="preset(s) to run (default: all)")
    ap.add_argument("--seeds", type=int, default=1, help="seeds per preset (default 1)")
    ap.add_argument("--jobs", type=int, default=1, help="trainings at once (processes)")
    ap.add_argument("--table", action="store_true", help="also print the README table")
    ap.add_argument("--log", metavar="FILE", help="append each run's figures as it ends")
    ap.add_argument("--table-from", metavar="FILE", help="print the table from a --log file")
    ap.add_argument("--check", metavar="RUN", help="recompute a recorded run's figures")
    ap.add_argument("--sweep-table", metavar="DIR", help="the README table of a sweep")
    ap.add_argument("--spread", action="store_true",
                    help="with --check: the one-draw LSH figures' spread over 200 draws")
    args = ap.parse_args()
    if args.check:
        return check(Path(args.check), args.spread)
    if args.sweep_table:
        print(sweep_table(Path(args.sweep_table)))
        return 0
    if args.table_from:  # runs recorded by --log, one JSON line each
        out: dict[str, list[dict]] = {}
        for line in Path(args.table_from).read_text().splitlines():
            r = json.loads(line)
            out.setdefault(r["preset"], []).append(r["metrics"])
        print(table({n: sorted(runs, key=lambda m: m["seed"]) for n, runs in out.items()}))
        return 0
    names = args.preset or preset_names()
    tasks = [(n, load_preset(n).seed + k) for n in names for k in range(args.seeds)]
    out = {}
    with ProcessPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        futures = {pool.submit(measure, n, s): n for n, s in tasks}
        for future in as_completed(futures):
            m = future.result()
            out.setdefault(futures[future], []).append(m)
            if args.log:  # each run as it finishes, so a long table survives a stop
                with open(args.log, "a", encoding="utf-8") as f:
                    f.write(json.dumps({"preset": futures[future], "metrics": m}) + "\n")
    out = {n: sorted(out[n], key=lambda m: m["seed"]) for n in names if n in out}
    print(json.dumps(out))
    if args.table:
        print(table(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
