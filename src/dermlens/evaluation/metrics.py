"""Classification metrics for skin-lesion predictions: thin wrappers over scikit-learn.

Everything `classification_metrics` returns is plain Python (float, int, None, list, dict), so it can
go straight into JSON. A value that is undefined, such as the AUC of a class with no positive example,
is None rather than NaN, and macro averages leave it out.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from sklearn import metrics as skm

#: How far a row of probabilities may be from summing to 1 (float32 softmax outputs are not exact).
ROW_SUM_TOLERANCE = 1e-3


def _as_labels(values: ArrayLike, name: str, n_classes: int | None = None) -> np.ndarray:
    labels = np.asarray(values)
    if labels.ndim != 1 or labels.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D array of class indices, got shape {labels.shape}")
    if labels.dtype.kind == "f" and np.all(np.isfinite(labels)) and np.all(labels == np.round(labels)):
        labels = labels.astype(np.int64)
    if labels.dtype.kind not in "iu":
        raise ValueError(f"{name} must hold integer class indices, got dtype {labels.dtype}")
    if labels.min() < 0 or (n_classes is not None and labels.max() >= n_classes):
        upper = "" if n_classes is None else f" and below {n_classes}"
        raise ValueError(f"{name} class indices must be 0 or more{upper}; found {labels.min()}..{labels.max()}")
    return labels


def check_predictions(
    y_true: ArrayLike, probabilities: ArrayLike, classes: Sequence[str] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Validate and convert the (y_true, probabilities) pair every evaluation function takes.

    Catches the usual mistakes early with a message that says what to fix: logits passed instead of
    probabilities, a class list that does not match the probability columns, labels out of range.

    >>> y, p = check_predictions([0, 1], [[0.9, 0.1], [0.2, 0.8]], classes=("mel", "nv"))
    >>> y.tolist(), p.shape
    ([0, 1], (2, 2))
    """
    probs = np.asarray(probabilities, dtype=np.float64)
    if probs.ndim != 2 or probs.shape[1] < 2:
        raise ValueError(f"probabilities must have shape (n_images, n_classes >= 2), got {probs.shape}")
    if classes is not None and len(classes) != probs.shape[1]:
        raise ValueError(f"{len(classes)} classes given but probabilities have {probs.shape[1]} columns")
    labels = _as_labels(y_true, "y_true", n_classes=probs.shape[1])
    if len(labels) != len(probs):
        raise ValueError(f"y_true has {len(labels)} entries but probabilities have {len(probs)} rows")
    if not np.all(np.isfinite(probs)) or probs.min() < 0:
        raise ValueError("probabilities must be finite and non-negative")
    row_error = np.abs(probs.sum(axis=1) - 1.0)
    if row_error.max() > ROW_SUM_TOLERANCE:
        row = int(row_error.argmax())
        raise ValueError(
            f"each row of probabilities must sum to 1, but row {row} sums to {probs[row].sum():.4f}; "
            "apply softmax to logits first"
        )
    return labels, probs


def balanced_accuracy_score(y_true: ArrayLike, y_pred: ArrayLike, n_classes: int | None = None) -> float:
    """ISIC 2018 balanced multiclass accuracy: the mean recall over the classes present in ``y_true``.

    This is the challenge's headline metric because HAM10000 is dominated by naevi, so plain accuracy
    rewards a model that ignores rare cancers. Same value as scikit-learn's ``balanced_accuracy_score``.
    ``n_classes`` bounds the valid class indices; it is inferred from the labels when None.

    >>> balanced_accuracy_score([0, 0, 0, 0, 1, 1], [0, 0, 0, 1, 1, 0])  # (3/4 + 1/2) / 2
    0.625
    """
    truth = _as_labels(y_true, "y_true", n_classes)
    predicted = _as_labels(y_pred, "y_pred", n_classes)
    if len(truth) != len(predicted):
        raise ValueError(f"y_true has {len(truth)} entries but y_pred has {len(predicted)}")
    if n_classes is None:
        n_classes = int(max(truth.max(), predicted.max())) + 1
    matrix = skm.confusion_matrix(truth, predicted, labels=np.arange(n_classes))
    support = matrix.sum(axis=1)
    present = support > 0
    return float(np.mean(np.diag(matrix)[present] / support[present]))


def _binary_auc(is_class: np.ndarray, scores: np.ndarray) -> float:
    """One-vs-rest ROC AUC, NaN when the class has no positives or no negatives."""
    if is_class.all() or not is_class.any():
        return math.nan
    return float(skm.roc_auc_score(is_class, scores))


def _binary_average_precision(is_class: np.ndarray, scores: np.ndarray) -> float:
    """One-vs-rest average precision, NaN when the class has no positives."""
    if not is_class.any():
        return math.nan
    return float(skm.average_precision_score(is_class, scores))


def _json_number(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def _macro(values: Sequence[float], classes: Sequence[str]) -> tuple[float | None, list[str]]:
    """Mean over the defined values, and the classes that were left out because theirs was NaN."""
    defined = [value for value in values if math.isfinite(value)]
    left_out = [code for code, value in zip(classes, values) if not math.isfinite(value)]
    return (float(np.mean(defined)) if defined else None), left_out


def classification_metrics(
    y_true: ArrayLike, probabilities: ArrayLike, classes: Sequence[str], decisions: ArrayLike | None = None
) -> dict[str, Any]:
    """Accuracy, balanced accuracy, macro AUC / AP, per-class scores and the confusion matrix.

    The predicted class is the most probable one unless ``decisions`` gives it (a model whose decision
    rule favours rare classes, see `dermlens.inference.decision`); the ranking metrics always use the
    probabilities. AUC and AP are one-vs-rest; a class with no
    positives (or, for AUC, no negatives) gets None and is listed under ``left_out_of_macro``.
    Confusion-matrix rows are true classes, columns predicted classes.

    >>> m = classification_metrics([0, 1, 1], [[0.8, 0.2], [0.3, 0.7], [0.6, 0.4]], ("mel", "nv"))
    >>> m["accuracy"], m["balanced_accuracy"], m["per_class"]["nv"]["recall"]
    (0.6666666666666666, 0.75, 0.5)
    """
    labels, probs = check_predictions(y_true, probabilities, classes)
    classes = [str(code) for code in classes]
    y_pred = probs.argmax(axis=1) if decisions is None else _as_labels(decisions, "decisions", len(classes))
    if len(y_pred) != len(labels):
        raise ValueError(f"{len(y_pred)} decisions given for {len(labels)} predictions")
    indices = np.arange(len(classes))
    matrix = skm.confusion_matrix(labels, y_pred, labels=indices)
    precision, recall, f1, support = skm.precision_recall_fscore_support(
        labels, y_pred, labels=indices, zero_division=np.nan
    )
    false_positives = matrix.sum(axis=0) - np.diag(matrix)
    negatives = len(labels) - support
    with np.errstate(invalid="ignore", divide="ignore"):
        specificity = (negatives - false_positives) / negatives
    auc = [_binary_auc(labels == index, probs[:, index]) for index in indices]
    average_precision = [_binary_average_precision(labels == index, probs[:, index]) for index in indices]
    macro_auc, auc_left_out = _macro(auc, classes)
    macro_ap, ap_left_out = _macro(average_precision, classes)
    per_class = {
        code: {
            "support": int(support[index]),
            "precision": _json_number(precision[index]),
            "recall": _json_number(recall[index]),
            "specificity": _json_number(specificity[index]),
            "f1": _json_number(f1[index]),
            "auc": _json_number(auc[index]),
            "average_precision": _json_number(average_precision[index]),
        }
        for index, code in enumerate(classes)
    }
    return {
        "n_samples": int(len(labels)),
        "classes": classes,
        "accuracy": float(np.mean(y_pred == labels)),
        "balanced_accuracy": balanced_accuracy_score(labels, y_pred, n_classes=len(classes)),
        "macro_auc": macro_auc,
        "macro_average_precision": macro_ap,
        "left_out_of_macro": {"auc": auc_left_out, "average_precision": ap_left_out},
        "per_class": per_class,
        "confusion_matrix": matrix.astype(int).tolist(),
        "melanoma_vs_naevus_auc": melanoma_vs_naevus_auc(labels, probs, classes),
    }


def melanoma_vs_naevus_auc(y_true: ArrayLike, probabilities: ArrayLike, classes: Sequence[str]) -> float | None:
    """AUC of p(mel) / (p(mel) + p(nv)) on the melanomas and naevi only: the ISIC 2016-2017 question.

    None when the classes lack ``mel`` or ``nv`` or the data lacks either.

    >>> melanoma_vs_naevus_auc([0, 1, 2], [[0.6, 0.3, 0.1], [0.2, 0.7, 0.1], [0.1, 0.1, 0.8]], ("mel", "nv", "bcc"))
    1.0
    """
    classes = [str(code) for code in classes]
    if "mel" not in classes or "nv" not in classes:
        return None
    labels, probs = np.asarray(y_true), np.asarray(probabilities, np.float64)
    mel, nv = classes.index("mel"), classes.index("nv")
    keep = (labels == mel) | (labels == nv)
    if not (labels[keep] == mel).any() or not (labels[keep] == nv).any():
        return None
    share = probs[keep, mel] / np.maximum(probs[keep, mel] + probs[keep, nv], 1e-12)
    return _json_number(_binary_auc(labels[keep] == mel, share))
