"""The classifier with one more output: channel statistics of an intermediate feature map.

The not-skin check (`dermlens.inference.notskin`) models these statistics (per-channel mean and
standard deviation over the image) rather than the final pooled features: fine-tuning pulls the final
features of any photo towards one of the skin classes, while a middle stage still describes the
image's textures. Measured on the default model: a Gaussian on the final features rejected 48% of
non-skin probes; on ``blocks.5`` statistics, 98%, with 0% of held-out HAM10000 images rejected.
"""

from __future__ import annotations

import torch
from torch import nn

from dermlens.errors import ModelFileError
from dermlens.models.ensemble import primary_member


def channel_statistics(maps: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) -> (N, 2C): each channel's mean, then each channel's standard deviation."""
    return torch.cat([maps.mean(dim=(2, 3)), torch.sqrt(maps.var(dim=(2, 3)) + 1e-6)], dim=1)


class TappedClassifier(nn.Module):
    """``image -> (logits, statistics of backbone.<tap>)``; an empty tap uses the pooled features.

    For an ensemble (`dermlens.models.ensemble`) the statistics are its primary member's, and with
    ``head=True`` a third output is that member's own logits (the class maps are computed from its head).
    """

    def __init__(self, model: nn.Module, tap: str, *, head: bool = False) -> None:
        super().__init__()
        self.model = model
        self.tap = tap
        self.head = head
        self._outputs: dict[str, torch.Tensor] = {}  # the hooks keep only the latest tensors
        primary = primary_member(model)
        try:
            module = primary.backbone.get_submodule(tap) if tap else primary.backbone
        except AttributeError:
            raise ModelFileError(f"the backbone has no module {tap!r} for the not-skin check") from None
        module.register_forward_hook(self._keep("maps"))
        if head:
            primary.classifier.register_forward_hook(self._keep("head"))

    def _keep(self, key: str):
        return lambda _module, _inputs, output: self._outputs.__setitem__(key, output)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        logits = self.model(image)
        maps = self._outputs["maps"]
        statistics = channel_statistics(maps) if self.tap else maps
        return (logits, statistics, self._outputs["head"]) if self.head else (logits, statistics)


def density_tap(model: nn.Module) -> str:
    from dermlens.models import get_backbone

    return get_backbone(model.backbone_name).density_tap if model.backbone_name else ""
