"""Put a fitted linear recalibration of the logits (`dermlens.inference.matrix_scaling`) into a model.

``logits -> logits @ matrix.T + bias`` is linear, so for a `SkinClassifier` it folds exactly into the
last linear layer: the checkpoint, the exported graph, Grad-CAM's class maps and the predictor see an
ordinary classifier whose logits are already calibrated (temperature 1). An `EnsembleClassifier`
answers with the log of averaged probabilities, which no member's layer can absorb, so it keeps the
map as its output map (stored in its checkpoint's `ModelInfo.output_map`).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


def apply_output_map(model: nn.Module, matrix: np.ndarray, bias: np.ndarray) -> None:
    """Make ``model`` answer ``logits @ matrix.T + bias`` in place of its logits.

    >>> from dermlens.models import create_model                                 # doctest: +SKIP
    >>> model = create_model("efficientnet_lite0", 7)                            # doctest: +SKIP
    >>> apply_output_map(model, np.eye(7) / 0.6, np.zeros(7))  # a temperature of 0.6, folded  # doctest: +SKIP
    """
    from dermlens.inference.matrix_scaling import compose_maps
    from dermlens.models.classifier import SkinClassifier
    from dermlens.models.ensemble import EnsembleClassifier

    matrix = np.asarray(matrix, np.float64)
    bias = np.asarray(bias, np.float64)
    if isinstance(model, EnsembleClassifier):
        if model.output_map is not None:  # the new map reads the old one's output
            matrix, bias = compose_maps((matrix, bias), model.output_map)
        model.set_output_map(matrix, bias)
        return
    if not isinstance(model, SkinClassifier):
        raise TypeError(f"cannot recalibrate a {type(model).__name__}: expected a dermlens classifier")
    layer = model.classifier
    with torch.no_grad():
        weight = torch.from_numpy(matrix @ layer.weight.double().numpy())
        shifted = torch.from_numpy(matrix @ layer.bias.double().numpy() + bias)
        layer.weight.copy_(weight.to(layer.weight.dtype))
        layer.bias.copy_(shifted.to(layer.bias.dtype))
