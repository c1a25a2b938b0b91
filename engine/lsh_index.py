"""The LSH index's figures for any bits and tables, from a snapshot the app already has
(the run's own one-shot episodes and hyperplane seeds): numpy only, no torch, so a window
computes them without loading torch. A run's measurements (engine.measure) measure the
recorded b and L."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from . import hashing
from .config import ExperimentConfig
from .measure import probe_episodes
from .seeds import stream_seed
from .snapshot import ProbeSet, Snapshot


def lsh_figures(snapshot: Snapshot, probe: ProbeSet, cfg: ExperimentConfig, bits: int,
                tables: int) -> dict:
    """LSH-index one-shot figures (hashing.lsh_index_oneshot) of a snapshot's embedding
    and of the raw input for any bits and tables, on the run's own episodes and hyperplane
    seeds: {"trained": {...}, "raw": {...}}. No retraining; about as costly as a snapshot's
    one-shot measurement."""
    episodes = probe_episodes(cfg, probe)
    center = hashing.center_of(snapshot.embedding, snapshot.hash_center)
    raw_center = None if not len(snapshot.hash_center) else hashing.seen_center(
        probe.x, probe.seen)  # a record before schema 3 hashed around the mean of all rows
    return {
        "trained": hashing.lsh_index_oneshot(
            snapshot.embedding, episodes, bits, tables, stream_seed(cfg.seed, "simhash"),
            center=center),
        "raw": hashing.lsh_index_oneshot(
            probe.x, episodes, bits, tables, stream_seed(cfg.seed, "raw_simhash"),
            center=raw_center),
    }


def lsh_spreads(snapshot: Snapshot, probe: ProbeSet, cfg: ExperimentConfig, bits: int,
                tables: int, sides: tuple[str, ...] = ("trained", "raw"),
                should_stop: Callable[[], bool] | None = None) -> dict:
    """Where the LSH index's one draw of tables could have landed: the 5th and 95th
    percentiles of recall, candidates per query and hash-only one-shot over
    hashing.SPREAD_DRAWS fresh draws of `tables` x `bits` (hashing.lsh_spread), on the
    run's episodes and hash centres: {side: {figure: (lo, hi)}}. About a second per side
    on a default run: the app asks for it lazily, in a worker."""
    episodes = probe_episodes(cfg, probe)
    seed = stream_seed(cfg.seed, "lsh_spread")
    out = {}
    if "trained" in sides:
        out["trained"] = hashing.lsh_spread(
            snapshot.embedding, episodes, bits, tables, seed,
            center=hashing.center_of(snapshot.embedding, snapshot.hash_center),
            should_stop=should_stop)
    if "raw" in sides:
        raw_center = None if not len(snapshot.hash_center) else hashing.seen_center(
            probe.x, probe.seen)
        out["raw"] = hashing.lsh_spread(probe.x, episodes, bits, tables, seed + 1,
                                        center=raw_center, should_stop=should_stop)
    return out


def lsh_pairs(snapshot: Snapshot, probe: ProbeSet, cfg: ExperimentConfig,
              episodes: list | None = None, raw: np.ndarray | None = None,
              index: tuple | None = None) -> dict:
    """Per-pair agreements p_i (hashing.lsh_pair_agreements) of each query with its own
    exemplar over the run's episodes, centred as the LSH index hashes them:
    {"trained": p, "raw": p}. From these, hashing.lsh_theory_over_pairs gives the recall
    expected over hyperplanes for any b and L (the mean of 1 - (1 - p_i^b)^L). The raw
    input's p_i are the same for every snapshot of a run: `raw` from an earlier one is
    reused as it is, and so is `index` (hashing.lsh_pair_index of the episodes)."""
    episodes = probe_episodes(cfg, probe) if episodes is None else episodes
    index = hashing.lsh_pair_index(episodes) if index is None else index
    center = hashing.center_of(snapshot.embedding, snapshot.hash_center)
    if raw is None:
        raw_center = None if not len(snapshot.hash_center) else hashing.seen_center(
            probe.x, probe.seen)
        raw = hashing.lsh_pair_agreements(probe.x, episodes, raw_center, index)
    return {"trained": hashing.lsh_pair_agreements(snapshot.embedding, episodes, center,
                                                   index),
            "raw": raw}
