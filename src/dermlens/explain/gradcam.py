"""Grad-CAM (Selvaraju et al. 2017) for any layer of a torch model, from the model and a layer name only.

The heatmap of class c at layer L is ReLU(sum_k alpha_ck A_k), where A_k are L's output channels and
alpha_ck the mean over positions of d logit_c / d A_k, upsampled to the input size and divided by its
maximum. At the layer feeding a model's global average pooling this equals the class activation map
the exported ONNX graph computes (`dermlens.export.class_maps`); earlier layers give finer, noisier maps.
Needs torch (``pip install 'dermlens[train]'``); serving does not use this module.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Self

import numpy as np

from dermlens.errors import ConfigError

if TYPE_CHECKING:
    import torch
    from torch import nn


class GradCAM:
    """Hooks on ``model.get_submodule(layer)`` until `close` (or the end of a ``with`` block).

    >>> with GradCAM(model, "backbone.bn2") as cam:   # doctest: +SKIP
    ...     heatmaps = cam(images)                       # (N, H, W) in [0, 1], for each image's top class
    """

    def __init__(self, model: nn.Module, layer: str) -> None:
        self.model = model
        self.layer = layer
        try:
            module = model.get_submodule(layer)
        except AttributeError:
            raise ConfigError(f"the model has no layer {layer!r} for Grad-CAM") from None
        self._activations: torch.Tensor | None = None
        self._gradients: torch.Tensor | None = None
        self._handle = module.register_forward_hook(self._keep)

    def _keep(self, _module, _inputs, output) -> None:
        if isinstance(output, (tuple, list)):
            output = output[0]
        self._activations = output.detach()
        if output.requires_grad:
            output.register_hook(self._keep_gradient)

    def _keep_gradient(self, gradient: torch.Tensor) -> None:
        self._gradients = gradient.detach()

    def __call__(self, images: torch.Tensor, class_index: int | Sequence[int] | None = None) -> np.ndarray:
        """float (N, 3, H, W) model input -> float32 (N, H, W) heatmaps in [0, 1].

        ``class_index``: one class for every image, one per image, or ``None`` for each image's
        highest logit. The model is run in its current mode; put it in ``eval()`` first.
        """
        import torch
        import torch.nn.functional as F

        self._activations = self._gradients = None
        with torch.enable_grad():
            inputs = images.detach().requires_grad_(True)  # gradients flow even through a frozen model
            logits = self.model(inputs)
            if class_index is None:
                targets = logits.argmax(dim=1)
            else:
                indices = [class_index] * len(images) if isinstance(class_index, int) else list(class_index)
                if len(indices) != len(images):
                    raise ValueError(f"{len(indices)} class indices for {len(images)} images")
                targets = torch.as_tensor(indices, device=logits.device)
            self.model.zero_grad(set_to_none=True)
            logits.gather(1, targets[:, None]).sum().backward()
        if self._activations is None or self._gradients is None:
            raise ConfigError(f"layer {self.layer!r} did not take part in the forward pass with gradients")
        weights = self._gradients.mean(dim=(2, 3), keepdim=True)
        cams = F.relu((weights * self._activations).sum(dim=1, keepdim=True))
        cams = F.interpolate(cams, size=images.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
        top = cams.amax(dim=(1, 2), keepdim=True)
        heat = torch.where(top > 0, cams / top.clamp_min(1e-30), torch.zeros_like(cams))
        return heat.float().cpu().numpy()

    def close(self) -> None:
        """Remove the hook; the model is as it was before."""
        self._handle.remove()
        self._activations = self._gradients = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc) -> None:
        self.close()
