"""Every random stream of a run, derived from its master seed with numpy's SeedSequence.

Stream k of seed s is SeedSequence(s).spawn(...)[k], so runs with seeds s and s + 1 share
no stream (with seed + k offsets, neighbouring seeds reused each other's streams), and the
same seed always reproduces the same run. Names are append-only: a new stream goes at
the end so existing runs keep their numbers.
"""

from __future__ import annotations

import numpy as np

STREAMS = (
    "family",  # the generator map f and every class's gamma
    "probe",  # the probe set's poses theta
    "batches",  # training batches: labels and poses
    "model_init",  # the network's initial weights
    "samples",  # Experiment.samples: fresh poses of chosen classes
    "episodes",  # one-shot episodes
    "invariance_rows",  # the subsample the invariance ratio is measured on
    "simhash",  # hyperplanes hashing the embedding
    "raw_simhash",  # hyperplanes hashing the raw input
    "probe_fit",  # the probe's fit rows: samples of many seen classes for the ridge probes
)


def stream_seed(seed: int, name: str) -> int:
    """A 63-bit seed (valid for torch and numpy) for stream `name` of master `seed`."""
    child = np.random.SeedSequence(int(seed), spawn_key=(STREAMS.index(name),))
    return int(child.generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))
