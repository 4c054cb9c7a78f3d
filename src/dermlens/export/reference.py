"""Find a checkpoint's training data and fit its serving gates on it."""

from __future__ import annotations

from pathlib import Path

from dermlens.errors import DatasetError
from dermlens.inference.gates import ServingGates
from dermlens.inference.notskin import FeatureDensity


def serving_gates_for(checkpoint: str | Path, data: Path | None = None, images: Path | None = None
                      ) -> tuple[FeatureDensity | None, ServingGates | None]:
    """Gates fitted on ``data`` (or the dataset the checkpoint's run recorded) with the run's split.

    Returns (None, None) when no data is given and the run's dataset cannot be found.
    """
    from dermlens.data.readers import read_dataset
    from dermlens.data.selection import Selection, select
    from dermlens.data.splits import grouped_split, load_split
    from dermlens.export.gates import fit_gates
    from dermlens.training.checkpoint import load_model

    model, info = load_model(checkpoint)
    recorded = info.config.get("data", {}) if isinstance(info.config, dict) else {}
    if data is None:
        if not recorded.get("path") or not Path(recorded["path"]).exists():
            return None, None
        data, images = Path(recorded["path"]), Path(recorded["images"]) if recorded.get("images") else None
    try:
        dataset = select(read_dataset(data, images_dir=images), Selection.from_settings(recorded))
        dataset = dataset.with_classes(info.classes)
    except ValueError as error:
        raise DatasetError(f"{data} does not fit the model {checkpoint}: {error}") from None
    split_file = Path(checkpoint).parent / "split.json"
    try:
        split = load_split(split_file, dataset) if split_file.is_file() else None
    except DatasetError:
        split = None  # another dataset than the run's: draw a split of it instead
    if split is None:
        split = grouped_split(dataset, fractions=tuple(recorded.get("fractions", (0.7, 0.15, 0.15))),
                              seed=int(recorded.get("seed", 0)))
    cache = recorded.get("cache_dir")
    return fit_gates(model, info, dataset, split, cache_dir=Path(cache) if cache else None)
