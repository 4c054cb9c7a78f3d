"""Choose a model's serving thresholds on its own training and validation images.

The not-skin density is fitted to the training split's features; its threshold and the abstention
threshold are read off the validation split; the test split (when there is one) only reports how
often held-out skin images would be turned away.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dermlens.data.dataset import LabelledImages
from dermlens.inference.abstention import confidence_threshold
from dermlens.inference.calibration import softmax
from dermlens.inference.decision import decide
from dermlens.inference.gates import ServingGates
from dermlens.inference.notskin import FeatureDensity, rejection_threshold
from dermlens.inference.quality import QualityThresholds


def features_and_logits(session, prep, images: np.ndarray, indices: np.ndarray, label: str,
                        batch_size: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """Not-skin statistics (`dermlens.export.taps`) and logits of ``images[indices]`` (uint8, prepared),
    computed by ONNX Runtime with a ``session`` of the tapped classifier."""
    from dermlens.progress import track

    features, logits = [], []
    chunks = [indices[i:i + batch_size] for i in range(0, len(indices), batch_size)]
    for chunk in track(chunks, label, total=len(chunks)):
        scores, statistics = session.run(["logits", "statistics"],
                                         {"image": prep.normalize(np.asarray(images[chunk]))})
        features.append(statistics)
        logits.append(scores)
    return np.concatenate(features), np.concatenate(logits)


def abstention_evidence(val_logits: np.ndarray, val_targets: np.ndarray, temperature: float,
                        decision_bias, target_accuracy: float = 0.9) -> dict:
    """The abstention threshold read off validation, with the coverage and accuracy of what the
    predictor really answers there: confident, and the decision rule agreeing with the most probable
    class."""
    val_probabilities = softmax(val_logits, temperature)
    abstention = confidence_threshold(val_probabilities, val_targets, target_accuracy)
    bias = None if decision_bias is None else np.asarray(decision_bias)
    most_probable = val_probabilities.argmax(axis=1)
    answered = ((val_probabilities.max(axis=1) >= abstention["threshold"])
                & (decide(val_logits, bias) == most_probable))
    abstention.update(coverage=float(answered.mean()),
                      accuracy_when_answered=float((most_probable == val_targets)[answered].mean()))
    return abstention


def fit_gates(model, info, dataset: LabelledImages, split, *, cache_dir: Path | None = None,
              max_reject_rate: float = 0.01, target_accuracy: float = 0.9,
              n_components: int = 16) -> tuple[FeatureDensity, ServingGates]:
    """Fit the not-skin density and choose the thresholds of a checkpoint's serving gates."""
    from dermlens.data.imagecache import load_images
    from dermlens.export.taps import TappedClassifier, density_tap
    from dermlens.training.onnx_runtime import onnx_session

    prep = info.preprocessing
    images = load_images(dataset.paths, prep, cache_dir)
    tap = density_tap(model)
    session = onnx_session(TappedClassifier(model, tap), prep.height, prep.width,
                           outputs=("logits", "statistics"))
    train_features, _ = features_and_logits(session, prep, images, np.asarray(split.train),
                                            "Features of the training split")
    density = FeatureDensity.fit(train_features, n_components=n_components)
    val = np.asarray(split.val)
    val_features, val_logits = features_and_logits(session, prep, images, val, "Validation split")
    val_scores = density.score(val_features)
    threshold = rejection_threshold(val_scores, max_reject_rate)
    abstention = abstention_evidence(val_logits, dataset.targets[val], info.temperature, info.decision_bias,
                                     target_accuracy)
    evidence = {"not_skin": {"fitted_on": f"{len(split.train)} training images",
                             "features": f"channel mean and std of backbone.{tap}" if tap
                             else "pooled backbone features",
                             "threshold_quantile": 1.0 - max_reject_rate,
                             "validation_rejected": float(np.mean(val_scores > threshold)),
                             "n_components": int(density.components.shape[1])},
                "uncertain": abstention}
    test = np.asarray(split.test)
    if len(test):
        test_features, _ = features_and_logits(session, prep, images, test, "Test split")
        evidence["not_skin"]["test_rejected"] = float(np.mean(density.score(test_features) > threshold))
    gates = ServingGates(min_confidence=abstention["threshold"], not_skin_threshold=threshold,
                         quality=QualityThresholds(), evidence=evidence)
    return density, gates
