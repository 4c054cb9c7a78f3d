"""Learning-rate schedules, class weights and per-epoch sample orders."""

from __future__ import annotations

import math

import numpy as np

from dermlens.training.config import Schedule, Weighting


def lr_factor(step: int, total_steps: int, warmup_steps: int, schedule: Schedule) -> float:
    """Multiplier of the base learning rate at ``step`` (linear warm-up, then the schedule)."""
    if schedule == "onecycle":
        peak = max(1, int(0.3 * total_steps))
        if step < peak:
            return 0.04 + 0.96 * step / peak
        progress = (step - peak) / max(1, total_steps - peak)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    if schedule == "constant":
        return 1.0
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def class_weights(targets: np.ndarray, n_classes: int, weighting: Weighting) -> np.ndarray:
    """Per-class loss weights: 1, inverse frequency ("balanced") or its square root; mean 1 over images."""
    counts = np.bincount(targets, minlength=n_classes).astype(np.float64)
    if weighting == "none":
        return np.ones(n_classes)
    weights = np.where(counts > 0, counts.sum() / np.maximum(counts, 1) / n_classes, 0.0)
    if weighting == "sqrt":
        weights = np.sqrt(weights)
    return weights / (weights[targets].mean())


def epoch_order(targets: np.ndarray, sampling: Weighting, seed: int, epoch: int,
                rank: int = 0, world_size: int = 1) -> np.ndarray:
    """Indices of one epoch: a shuffle, or a class-weighted draw with replacement (oversampling).

    Every rank draws the same order from (seed, epoch) and keeps its own equal-length shard, as
    DistributedSampler does, so the loop runs unchanged under torchrun.
    """
    rng = np.random.default_rng([seed, epoch])
    n = len(targets)
    if sampling == "none":
        order = rng.permutation(n)
    else:
        per_image = class_weights(targets, int(targets.max()) + 1, sampling)[targets]
        order = rng.choice(n, size=n, replace=True, p=per_image / per_image.sum())
    usable = len(order) - len(order) % world_size
    return order[:usable][rank::world_size]
