"""Quick iterations: a linear head on the frozen pretrained backbone's pooled features.

Features are computed once per image and backbone and kept in the object store under the image's
content hash, so a second iteration on mostly the same images only computes the new ones. The head
is a logistic regression (one softmax over the tags of a multiclass project, one sigmoid per tag of a
multilabel one) with tags weighted equally; its regularisation is chosen by 5-fold cross-validation,
and the out-of-fold probabilities are what the iteration's metrics are computed from: every image is
scored by a head that never saw it.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence

import numpy as np

from dermlens.data.images import Preprocessing
from dermlens.inference.calibration import softmax
from dermlens.projects.schema import FEATURES_PREFIX
from dermlens.storage import ObjectStore

Report = Callable[[float, str], None]
REGULARISATION = (0.02, 0.1, 0.5)  # inverse L2 strengths (C) on standardised features
FOLDS = 5
INPUT_SIZE = 224


def preprocessing_for(backbone: str) -> Preprocessing:
    from dermlens.models import get_backbone

    spec = get_backbone(backbone)
    return Preprocessing(height=INPUT_SIZE, width=INPUT_SIZE, mean=spec.mean, std=spec.std)


def feature_key(backbone: str, sha256: str) -> str:
    return f"{FEATURES_PREFIX}{backbone}-{INPUT_SIZE}-{sha256}.npy"


def image_features(backbone: str, hashes: Sequence[str], blobs: ObjectStore, report: Report,
                   *, batch_size: int = 32) -> np.ndarray:
    """(N, n_features) pooled features of the stored images ``hashes``; cached ones are read back.

    New ones go through ONNX Runtime, as the learning core's cached features do
    (`dermlens.training.onnx_runtime.pooled_features`), with PyTorch as the fallback.
    """
    import torch

    from dermlens.models import create_model
    from dermlens.projects.intake import read_stored
    from dermlens.projects.schema import image_key
    from dermlens.training.onnx_runtime import pooled_features

    found: dict[str, np.ndarray] = {}
    for sha in dict.fromkeys(hashes):
        key = feature_key(backbone, sha)
        if blobs.exists(key):
            found[sha] = np.load(io.BytesIO(blobs.get(key)))
    missing = [sha for sha in dict.fromkeys(hashes) if sha not in found]
    if missing:
        preprocessing = preprocessing_for(backbone)
        model = create_model(backbone, n_classes=2, pretrained=True).eval()
        chunks = [missing[start:start + batch_size] for start in range(0, len(missing), batch_size)]

        def batches():
            done = 0
            for chunk in chunks:
                yield np.stack([preprocessing.prepare(read_stored(blobs.get(image_key(sha)))) for sha in chunk])
                done += len(chunk)
                report(done / len(missing), f"extracting features: {done} of {len(missing)} new images")

        features = pooled_features(model, batches(), preprocessing.normalize)
        if features is None:
            with torch.inference_mode():
                features = np.concatenate([model.features(torch.from_numpy(preprocessing.normalize(b))).numpy()
                                           for b in batches()])
        for sha, row in zip(missing, features):
            out = io.BytesIO()
            np.save(out, row.astype(np.float32))
            blobs.put(feature_key(backbone, sha), out.getvalue())
            found[sha] = row
    return np.stack([found[sha] for sha in hashes]).astype(np.float32)


def _folds(truth: np.ndarray, multiclass: bool, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    from sklearn.model_selection import KFold, StratifiedKFold

    n = len(truth)
    k = min(FOLDS, n)
    if multiclass:
        smallest = int(np.bincount(truth.argmax(axis=1)).min())
        splitter = StratifiedKFold(n_splits=max(2, min(k, smallest)), shuffle=True, random_state=seed)
        return list(splitter.split(np.zeros(n), truth.argmax(axis=1)))
    return list(KFold(n_splits=k, shuffle=True, random_state=seed).split(np.zeros(n)))


class LinearHead:
    """Standardisation plus logistic regression, folded into one linear layer (weights, bias)."""

    def __init__(self, strength: float, multiclass: bool) -> None:
        self.strength = strength
        self.multiclass = multiclass

    def fit(self, features: np.ndarray, truth: np.ndarray) -> LinearHead:
        from sklearn.linear_model import LogisticRegression

        self.mean = features.mean(axis=0)
        self.scale = features.std(axis=0) + 1e-6
        x = (features - self.mean) / self.scale
        n_tags = truth.shape[1]
        weights, bias = np.zeros((n_tags, x.shape[1])), np.zeros(n_tags)
        if self.multiclass:
            model = LogisticRegression(C=self.strength, class_weight="balanced", max_iter=3000)
            model.fit(x, truth.argmax(axis=1))
            if n_tags == 2:  # scikit-learn keeps one row for two classes: logits (0, z)
                weights[1], bias[1] = model.coef_[0], model.intercept_[0]
            else:
                weights, bias = model.coef_, model.intercept_
        else:
            for k in range(n_tags):
                column = truth[:, k]
                if column.all() or not column.any():
                    bias[k] = 10.0 if column.all() else -10.0
                    continue
                model = LogisticRegression(C=self.strength, class_weight="balanced", max_iter=3000)
                model.fit(x, column.astype(int))
                weights[k], bias[k] = model.coef_[0], model.intercept_[0]
        # logits = ((f - mean) / scale) @ W.T + b = f @ (W / scale).T + (b - (W / scale) @ mean)
        self.weights = weights / self.scale
        self.bias = bias - self.weights @ self.mean
        return self

    def logits(self, features: np.ndarray) -> np.ndarray:
        return features @ self.weights.T + self.bias

    def probabilities(self, features: np.ndarray) -> np.ndarray:
        return tag_probabilities(self.logits(features), self.multiclass)


def tag_probabilities(logits: np.ndarray, multiclass: bool, temperature: float = 1.0) -> np.ndarray:
    """Softmax over the tags at the model's temperature (multiclass) or a sigmoid per tag (multilabel)."""
    if multiclass:
        return softmax(logits, temperature)
    return 1.0 / (1.0 + np.exp(-np.asarray(logits, np.float64)))


def _log_loss(truth: np.ndarray, probabilities: np.ndarray, multiclass: bool) -> float:
    p = np.clip(probabilities, 1e-7, 1 - 1e-7)
    if multiclass:
        return float(-np.log((p * truth).sum(axis=1)).mean())
    return float(-(truth * np.log(p) + (1 - truth) * np.log(1 - p)).mean())


def fit_quick_head(features: np.ndarray, truth: np.ndarray, multiclass: bool,
                   report: Report) -> tuple[LinearHead, np.ndarray, dict]:
    """Choose the regularisation by cross-validated log loss; -> (head on all images, out-of-fold
    probabilities of the chosen setting, what was chosen)."""
    folds = _folds(truth, multiclass)
    best: tuple[float, float, np.ndarray] | None = None
    losses = {}
    for step, strength in enumerate(REGULARISATION):
        held_out = np.zeros(truth.shape, float)
        for train, test in folds:
            head = LinearHead(strength, multiclass).fit(features[train], truth[train])
            held_out[test] = head.probabilities(features[test])
        loss = _log_loss(truth, held_out, multiclass)
        losses[strength] = round(loss, 4)
        if best is None or loss < best[0]:
            best = (loss, strength, held_out)
        report((step + 1) / len(REGULARISATION), f"cross-validating the head ({step + 1} of {len(REGULARISATION)})")
    _, strength, held_out = best
    head = LinearHead(strength, multiclass).fit(features, truth)
    return head, held_out, {"regularisation": strength, "cross_validated_log_loss": losses, "folds": len(folds)}
