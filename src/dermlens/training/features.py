"""Pooled backbone features of the frozen pretrained network, cached on disk per images and backbone."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from dermlens.data.imagecache import default_cache_dir, save_array


def cached_features(trainer, indices: np.ndarray) -> np.ndarray:
    """Features of ``images[indices]``; a second run on the same data and backbone reads them back."""
    from dermlens.training.loop import predict_logits

    config = trainer.config
    cache_dir = Path(config.data.cache_dir) if config.data.cache_dir else default_cache_dir()
    key = hashlib.sha256(repr((trainer.data.images_key, config.model.backbone,
                               config.model.weights_path, list(map(int, indices)))).encode())
    path = cache_dir / f"features-{key.hexdigest()[:20]}.npy"
    if path.is_file():
        return np.load(path)
    features = predict_logits(trainer.model, trainer.normalizer, trainer.data.images, indices,
                              description="Extracting features", features_only=True)
    save_array(features, path)
    return features
