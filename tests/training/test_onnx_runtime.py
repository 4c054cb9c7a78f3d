"""Features extracted through ONNX Runtime are the PyTorch features."""

from __future__ import annotations

import numpy as np
import torch

from dermlens.models import create_model
from dermlens.training.augment import Normalizer
from dermlens.training.loop import predict_logits


def test_onnx_features_match_pytorch_features(ham_small):
    from dermlens.data.images import Preprocessing, load_rgb

    paths = sorted((ham_small / "images").glob("*.jpg"))[:20]
    images = np.stack([Preprocessing(height=96, width=128).prepare(load_rgb(p)) for p in paths])
    model = create_model("efficientnet_lite0", 7).to(memory_format=torch.channels_last)
    normalizer = Normalizer((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    model.train()
    via_onnx = predict_logits(model, normalizer, images, batch_size=8, features_only=True)  # 8, 8 and 4
    assert model.training  # the caller's mode is restored
    with torch.inference_mode():
        model.eval()
        expected = model.features(normalizer(torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255)).numpy()
    assert via_onnx.shape == (20, model.n_features)
    np.testing.assert_allclose(via_onnx, expected, rtol=0, atol=1e-4)
