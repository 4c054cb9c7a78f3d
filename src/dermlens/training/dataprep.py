"""Everything a run needs from its data: the dataset, a saved split, decoded images, metadata."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dermlens.data.dataset import LabelledImages
from dermlens.data.images import Preprocessing
from dermlens.errors import ConfigError
from dermlens.progress import say
from dermlens.training.config import RunConfig

SPLIT_FILE = "split.json"


@dataclass
class PreparedData:
    dataset: LabelledImages
    split: object  # dermlens.data.splits.Split
    targets: np.ndarray
    images: np.ndarray  # uint8 (N, H, W, 3), possibly memory-mapped
    metadata: np.ndarray | None
    preprocessing: Preprocessing
    images_key: str = ""


def prepare_data(config: RunConfig, out_dir: Path, write: bool = True) -> PreparedData:
    """Read the dataset, reuse or draw the grouped split (saved in the run folder), load images.

    Under DDP only rank 0 writes (``write``); the split is drawn from the seed, so every rank has it.
    """
    from dermlens.data.metadata import metadata_matrix
    from dermlens.data.readers import read_dataset
    from dermlens.data.selection import Selection, select
    from dermlens.data.splits import grouped_split, load_split, save_split
    from dermlens.models import get_backbone
    from dermlens.data.imagecache import default_cache_dir, images_key, load_images

    if not config.data.path:
        raise ConfigError("no dataset given: pass --data PATH (or set data.path in the config)")
    dataset = read_dataset(config.data.path, images_dir=config.data.images or None)
    selection = Selection.from_settings(config.data)
    if selection:
        whole = len(dataset)
        dataset = select(dataset, selection)
        say(f"selected {len(dataset)} of {whole} images: {selection.describe()}")
    saved = out_dir / SPLIT_FILE
    if saved.is_file():
        split = load_split(saved, dataset)
    elif config.data.split_file:  # a split of the whole dataset also serves a selection of it
        split = load_split(Path(config.data.split_file), dataset, part=bool(selection))
    else:
        split = grouped_split(dataset, fractions=config.data.fractions, seed=config.data.seed)
    if write:
        save_split(split, dataset, saved)
    counts = {name: len(getattr(split, name)) for name in ("train", "val", "test")}
    say(f"{len(dataset)} images, {len(dataset.classes)} classes; split {counts} (grouped, seed "
        f"{config.data.seed}) saved to {saved}")
    if len(split.val) == 0:
        raise ConfigError("the validation split is empty: the best checkpoint is chosen on it; "
                          "give data.fractions a validation share above 0")
    spec = get_backbone(config.model.backbone)
    preprocessing = Preprocessing(height=config.data.height, width=config.data.width,
                                  mean=spec.mean, std=spec.std,
                                  colour_constancy=config.data.colour_constancy)
    cache_dir = Path(config.data.cache_dir) if config.data.cache_dir else default_cache_dir()
    images = load_images(dataset.paths, preprocessing, cache_dir)
    metadata = metadata_matrix(dataset.metadata, len(dataset)) if config.model.use_metadata else None
    return PreparedData(dataset, split, dataset.targets, images, metadata, preprocessing,
                        images_key(dataset.paths, preprocessing))
