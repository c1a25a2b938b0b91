"""Every random stream of a run, derived from its master seed with numpy's SeedSequence.

Stream k of seed s is SeedSequence(s).spawn(...)[k], so runs with seeds s and s + 1 share
no stream (with seed + k offsets, neighbouring seeds reused each other's streams), and the
same seed always reproduces the same run. Names are append-only: a new stream goes at
the end so existing runs keep their numbers.
"""

from __future__ import annotations

from collections.abc import Iterable

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
    "bootstrap",  # resamples of classes and episodes behind the 95% intervals
    "probe_unseen",  # the probe's unseen rows: their poses theta (and noise)
    "validation",  # the validation classes' rows: their poses theta (and noise)
    "validation_episodes",  # one-shot episodes over the validation classes
    "lsh_spread",  # the 200 fresh draws of tables behind a sampled figure's spread
)

# A family's random roles, each its own stream of the family seed, so that changing one
# setting (data.seen_classes) leaves the others' draws alone: the generator map, the
# seen classes' gammas (class i's is row i), the unseen classes' gammas (class j's is
# row j), the validation classes' gammas (class k's is row k), and for digits the images
# picked as seen and as unseen classes.
FAMILY_ROLES = ("generator", "seen_gamma", "unseen_gamma", "seen_images", "unseen_images",
                "validation_gamma")


def stream_seed(seed: int, name: str) -> int:
    """A 63-bit seed (valid for torch and numpy) for stream `name` of master `seed`."""
    return _child(seed, STREAMS.index(name))


def role_seed(family_seed: int, role: str) -> int:
    """The seed of one of a family's random roles (FAMILY_ROLES)."""
    return _child(family_seed, FAMILY_ROLES.index(role))


def _child(seed: int, key: int) -> int:
    child = np.random.SeedSequence(int(seed), spawn_key=(key,))
    return int(child.generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))


# What a sweep axis changes among the random roles, most specific first: a config field
# (dotted) or section ("data") maps to one line. engine.sweep_spec.axis_roles reads it.
AXIS_ROLES = (
    ("seed", "every random role (generator, gammas, probe poses, training batches, "
             "initial weights, episodes, hyperplanes)"),
    ("data.seen_classes", "the seen classes' gammas are added/removed, with the training "
                          "batches and the network's head; generator, validation classes, "
                          "unseen classes and unseen probe rows unchanged"),
    ("data.validation_classes", "the validation classes are added/removed, with their rows "
                                "and episodes; generator, seen and unseen classes, probe set, "
                                "training batches and initial weights unchanged"),
    ("data.unseen_classes", "the unseen classes are added/removed, with their probe rows and "
                            "the episodes; generator, seen classes, training batches and "
                            "initial weights unchanged"),
    ("data", "the task changes (generator, gammas, probe rows, training data); streams of "
             "initial weights, episodes and hyperplanes unchanged"),
    ("model", "the network changes (initial weights from the same stream); data, probe set, "
              "training batches and episodes unchanged"),
    ("train", "the training schedule changes (batches from the same stream); data, probe set "
              "and initial weights unchanged"),
    ("hashing", "only the hash (hyperplanes from the same streams); data, training and "
                "network unchanged"),
    ("probe", "the probe set's rows or episodes change; data, training batches and initial "
              "weights unchanged"),
    ("projection", "only the 2-D view; nothing random in the run"),
    ("name", "nothing random (a label)"),
    ("description", "nothing random (a label)"),
)


def axis_roles(field: str) -> str:
    """Which random roles changing config `field` ("data.seen_classes", "seed") changes."""
    for key, text in AXIS_ROLES:
        if field == key or field.startswith(key + "."):
            return text
    return "not known"


def axes_roles(fields: Iterable[str], seeds: int = 1) -> list[str]:
    """"field: roles" for each axis field, and for the seeds when there are several."""
    names = list(fields) + (["seed"] if seeds > 1 else [])
    return [f"{f}: {axis_roles(f)}" for f in dict.fromkeys(names)]
