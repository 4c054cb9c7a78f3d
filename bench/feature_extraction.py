"""Feature-extraction throughput of the cached-head stage (target: >= 60 images/s on 2 CPU cores).

    python bench/feature_extraction.py [--images 1000] [--backbone efficientnet_lite0]

Reads real HAM10000 images from ../shared/datasets/ham10000, decodes them at the model input
size (the default recipe's unless --height/--width say otherwise), and times
`predict_logits(..., features_only=True)`, the code path `dermlens train` uses.
Decoding is timed separately (it happens once per dataset; later runs read the image cache).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("DERMLENS_QUIET", "1")
HAM = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "ham10000"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--backbone", default="efficientnet_lite0")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--height", type=int, default=0, help="default: the default recipe's")
    parser.add_argument("--width", type=int, default=0)
    args = parser.parse_args()

    import torch

    from dermlens.data.imagecache import load_images
    from dermlens.data.images import Preprocessing
    from dermlens.data.readers import read_dataset
    from dermlens.models import create_model, get_backbone
    from dermlens.training.augment import Normalizer
    from dermlens.training.config import DataConfig
    from dermlens.training.loop import predict_logits

    height, width = args.height or DataConfig().height, args.width or DataConfig().width
    spec = get_backbone(args.backbone)
    dataset = read_dataset(HAM)
    paths = dataset.paths[: args.images]
    preprocessing = Preprocessing(height, width, spec.mean, spec.std)
    started = time.perf_counter()
    images = load_images(paths, preprocessing, cache_dir=None)
    decode = len(paths) / (time.perf_counter() - started)
    model = create_model(args.backbone, 7).to(memory_format=torch.channels_last)
    normalizer = Normalizer(spec.mean, spec.std)
    predict_logits(model, normalizer, images[:64], features_only=True)  # warm-up
    started = time.perf_counter()
    features = predict_logits(model, normalizer, images, batch_size=args.batch_size, features_only=True)
    seconds = time.perf_counter() - started
    assert features.shape == (len(paths), model.n_features) and np.isfinite(features).all()
    print(f"backbone            {args.backbone}")
    print(f"torch threads       {torch.get_num_threads()}")
    print(f"images              {len(paths)} HAM10000 images at {width}x{height}")
    print(f"decode + resize     {decode:.0f} images/s")
    print(f"feature extraction  {len(paths) / seconds:.1f} images/s (target >= 60)")


if __name__ == "__main__":
    main()
