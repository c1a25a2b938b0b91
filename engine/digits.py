"""The digit split of the digits_pose family, checked without loading anything.

engine.resources.check_runnable asks it wherever a run starts (the parameter panel asks
on every edit), so it must not import torch or read the images: the bundled data set's
size per digit is fixed (a test compares DIGIT_COUNTS with the images themselves).
"""

from __future__ import annotations

import numpy as np

from .config import ConfigError, DataConfig, digit_list

# scikit-learn's load_digits: images per digit 0..9 (1,797 in all)
DIGIT_COUNTS = np.array([178, 182, 177, 183, 181, 182, 181, 179, 174, 180])


def unseen_quota(unseen: list[int], n: int) -> list[int]:
    """Unseen classes per unseen digit: balanced, the first digits take the remainder."""
    return [n // len(unseen) + (k < n % len(unseen)) for k in range(len(unseen))]


def check_digits(cfg: DataConfig) -> None:
    """ConfigError unless the bundled digits hold enough images for the configured split."""
    seen = digit_list("data.seen_digits", cfg.seen_digits)
    unseen = digit_list("data.unseen_digits", cfg.unseen_digits)
    counts = DIGIT_COUNTS
    most = int(counts[unseen].min()) * len(unseen)
    if cfg.unseen_classes > most:
        raise ConfigError(
            "data.unseen_classes",
            f"must be in [2, {most}]: the bundled digits hold at least {most // len(unseen)} "
            f"images of each unseen digit ({cfg.unseen_digits}), got {cfg.unseen_classes}",
        )
    quota = unseen_quota(unseen, cfg.unseen_classes)
    taken = sum(q for d, q in zip(unseen, quota, strict=True) if d in seen)
    available = int(counts[seen].sum()) - taken
    if cfg.seen_classes > available:
        raise ConfigError(
            "data.seen_classes",
            f"must be in [2, {available}]: the bundled digits hold {available} images of "
            f"the seen digits {cfg.seen_digits} (one class each), got {cfg.seen_classes}",
        )
    if cfg.seen_classes + cfg.validation_classes > available:
        most = available - cfg.seen_classes
        raise ConfigError(
            "data.validation_classes",
            f"must be in [0, {most}]: validation classes are images of the seen digits "
            f"{cfg.seen_digits} not among the {cfg.seen_classes} seen classes, got "
            f"{cfg.validation_classes}",
        )
