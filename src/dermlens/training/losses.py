"""Losses for imbalanced classes: class-weighted cross-entropy, or logit adjustment."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from dermlens.training.config import TrainingConfig
from dermlens.training.schedule import class_weights


class LogitAdjustedLoss(nn.Module):
    """Cross-entropy on ``logits + log(prior)`` (Menon et al., 2021, "Long-tail learning via logit
    adjustment"): the model learns balanced logits, so argmax at prediction time targets balanced
    accuracy, without the gradient noise of weighting a rare class 50 times more than a common one."""

    def __init__(self, prior: np.ndarray, label_smoothing: float = 0.0, tau: float = 1.0) -> None:
        super().__init__()
        self.register_buffer("offset", tau * torch.log(torch.tensor(prior, dtype=torch.float32) + 1e-12))
        self.label_smoothing = label_smoothing

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return nn.functional.cross_entropy(logits + self.offset, targets,
                                           label_smoothing=self.label_smoothing)


def effective_prior(train_targets: np.ndarray, n_classes: int, config: TrainingConfig) -> np.ndarray:
    """The class distribution the loss effectively saw: counts x loss weights x sampling weights.

    A model trained on it predicts that prior; dividing it out (post-hoc logit adjustment) aims the
    decision at balanced accuracy. Uniform for balanced weighting, oversampling or logit adjustment.
    """
    counts = np.bincount(train_targets, minlength=n_classes).astype(np.float64)
    if config.imbalance_loss == "logit_adjusted":
        return np.full(n_classes, 1.0 / n_classes)
    prior = (counts * class_weights(train_targets, n_classes, config.class_weighting)
             * class_weights(train_targets, n_classes, config.sampling))
    prior = np.maximum(prior, 1e-12)
    return prior / prior.sum()


def imbalance_loss(train_targets: np.ndarray, n_classes: int, config: TrainingConfig) -> nn.Module:
    """The loss a run trains with, from its class counts and config."""
    if config.imbalance_loss == "logit_adjusted":
        counts = np.bincount(train_targets, minlength=n_classes).astype(np.float64)
        return LogitAdjustedLoss(counts / counts.sum(), config.label_smoothing)
    weights = class_weights(train_targets, n_classes, config.class_weighting)
    return nn.CrossEntropyLoss(weight=torch.tensor(weights, dtype=torch.float32),
                               label_smoothing=config.label_smoothing)
