"""Evaluate a checkpoint (.pt) or an exported model (.onnx) on any labelled dataset."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from dermlens.data.dataset import LabelledImages
from dermlens.data.images import Preprocessing
from dermlens.errors import DatasetError, ModelFileError


@dataclass
class Scorer:
    """The least a model must offer to be evaluated: its classes, preprocessing and logits."""

    classes: tuple[str, ...]
    preprocessing: Preprocessing
    temperature: float
    logits: Callable[..., np.ndarray]  # (images, metadata or None) -> logits
    name: str
    uses_metadata: bool = False
    decision_bias: np.ndarray | None = None  # see dermlens.inference.decision


def load_scorer(path: str | Path) -> Scorer:
    """A `Scorer` for a dermlens checkpoint (needs torch) or ONNX export (ONNX Runtime only)."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"model file {path} does not exist")
    if path.suffix == ".onnx":
        from dermlens.inference.onnx_model import OnnxModel

        model = OnnxModel.load(path)
        return Scorer(model.classes, model.preprocessing, model.temperature,
                      lambda batch, metadata=None: model.logits(batch), path.name,
                      decision_bias=model.decision_bias)
    import torch

    from dermlens.training.checkpoint import load_model

    network, info = load_model(path)

    def logits(batch: np.ndarray, metadata: np.ndarray | None = None) -> np.ndarray:
        with torch.inference_mode():
            rows = None if metadata is None else torch.from_numpy(metadata)
            return network(torch.from_numpy(batch), rows).numpy()

    return Scorer(info.classes, info.preprocessing, info.temperature, logits, path.name,
                  uses_metadata=info.n_metadata > 0,
                  decision_bias=None if info.decision_bias is None else np.asarray(info.decision_bias))


def score_dataset(scorer: Scorer, dataset: LabelledImages, *, batch_size: int = 64,
                  cache_dir: Path | None = None, tta: bool = False) -> np.ndarray:
    """Calibrated probabilities (N, n_classes) for every image of ``dataset``, with a progress bar.

    ``tta`` averages the logits over four flips (test-time augmentation; 4x the compute).
    """
    from dermlens.data.imagecache import load_images
    from dermlens.inference.calibration import softmax
    from dermlens.inference.tta import flip_views
    from dermlens.progress import track

    from dermlens.data.metadata import metadata_matrix

    images = load_images(dataset.paths, scorer.preprocessing, cache_dir)
    # a model trained with patient metadata gets the dataset's (unknown where a column is missing)
    metadata = metadata_matrix(dataset.metadata, len(dataset)) if scorer.uses_metadata else None
    chunks = [np.arange(i, min(i + batch_size, len(images))) for i in range(0, len(images), batch_size)]
    logits = []
    for chunk in track(chunks, "Predicting", total=len(chunks)):
        batch = scorer.preprocessing.normalize(np.asarray(images[chunk]))
        views = flip_views(batch) if tta else [batch]
        rows = None if metadata is None else metadata[chunk]
        logits.append(np.mean([scorer.logits(np.ascontiguousarray(v), rows) for v in views], axis=0))
    return softmax(np.concatenate(logits), scorer.temperature)


def evaluate_model(model_path: str | Path, dataset: LabelledImages, out_dir: str | Path, *,
                   isic_submission: bool = False, cache_dir: Path | None = None,
                   tta: bool = False) -> dict[str, Any]:
    """Metrics, plots and report of a model on a dataset, written to ``out_dir``.

    >>> from dermlens.data.readers import read_dataset                                   # doctest: +SKIP
    >>> evaluate_model("runs/ham/best.pt", read_dataset("data/ham10000"), "eval/")      # doctest: +SKIP
    """
    from dermlens.evaluation.report import evaluate_predictions
    from dermlens.evaluation.submission import write_isic_submission

    scorer = load_scorer(model_path)
    try:
        dataset = dataset.with_classes(scorer.classes)
    except ValueError as error:
        raise DatasetError(f"the dataset does not fit the model {scorer.name}: {error}") from None
    probabilities = score_dataset(scorer, dataset, cache_dir=cache_dir, tta=tta)
    decisions = None
    if scorer.decision_bias is not None:
        from dermlens.inference.decision import decide

        # log p = logits / T - const, so argmax(logits + b) = argmax(log p + b / T)
        decisions = decide(np.log(np.clip(probabilities, 1e-300, 1.0)), scorer.decision_bias / scorer.temperature)
    out_dir = Path(out_dir)
    metrics = evaluate_predictions(
        dataset.targets, probabilities, scorer.classes, out_dir,
        title=f"dermlens evaluation of {scorer.name}" + (" (flip test-time augmentation)" if tta else ""),
        image_ids=list(dataset.ids),
        source_note=f"{len(dataset)} images from {dataset.source or 'the given dataset'}"
                    + ("; decisions favour rare classes (the model's decision bias)" if decisions is not None else ""),
        decisions=decisions)
    if isic_submission:
        write_isic_submission(list(dataset.ids), probabilities, scorer.classes,
                              out_dir / "isic_submission.csv")
    return metrics
