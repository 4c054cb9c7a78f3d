"""An exponential moving average of the weights, evaluated and kept instead of the raw weights.

Short CPU fine-tuning ends while the weights still jump from batch to batch; the average of the
last few hundred steps is a steadier model (Polyak averaging, as timm's ModelEmaV3 does).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn


class WeightAverage:
    """EMA of the trainable parameters; ``decay`` 0 turns it off."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = decay
        self.updates = 0
        self.shadow = {name: p.detach().clone() for name, p in model.named_parameters()
                       if p.requires_grad} if decay > 0 else {}

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        if not self.shadow:
            return
        self.updates += 1
        # early on, average over fewer steps so the first epochs are not dominated by the start
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        for name, parameter in model.named_parameters():
            if name in self.shadow:
                self.shadow[name].lerp_(parameter.detach(), 1 - decay)

    @contextmanager
    def applied(self, model: nn.Module) -> Iterator[None]:
        """Inside the block the model holds the averaged weights; the live ones come back after."""
        if not self.shadow:
            yield
            return
        parameters = dict(model.named_parameters())
        live = {name: parameters[name].detach().clone() for name in self.shadow}
        with torch.no_grad():
            for name, value in self.shadow.items():
                parameters[name].copy_(value)
        try:
            yield
        finally:
            with torch.no_grad():
                for name, value in live.items():
                    parameters[name].copy_(value)

    def state_dict(self) -> dict:
        return {"updates": self.updates, "shadow": self.shadow}

    def load_state_dict(self, state: dict) -> None:
        self.updates = state["updates"]
        self.shadow = {name: value.clone() for name, value in state["shadow"].items()}
