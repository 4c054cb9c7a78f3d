"""Iteration metrics: precision and recall per tag at a probability threshold, average precision per tag
and its mean, and the confusion matrix, all from the held-out probabilities an iteration keeps.

A tag counts as predicted for an image when its probability reaches the threshold (as in the cloud
service the seed paper used), so moving the threshold trades precision for recall. Average precision
does not depend on the threshold.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def _safe_ratio(numerator: float, denominator: float) -> float | None:
    return None if denominator == 0 else float(numerator / denominator)


def average_precision_score(is_tag: np.ndarray, scores: np.ndarray) -> float | None:
    """Area under the precision-recall curve (scikit-learn's step-wise definition); None without positives."""
    from sklearn.metrics import average_precision_score as sklearn_ap

    if not is_tag.any():
        return None
    return float(sklearn_ap(is_tag, scores))


def held_out_record(tags: Sequence[str], image_ids: Sequence[int], truth: np.ndarray,
                    probabilities: np.ndarray, *, validation: str) -> dict:
    """What an iteration stores: the per-image held-out probabilities (so any threshold can be scored
    later) and the threshold-free numbers."""
    truth = np.asarray(truth, bool)
    probabilities = np.asarray(probabilities, float)
    ap = {tag: average_precision_score(truth[:, k], probabilities[:, k]) for k, tag in enumerate(tags)}
    known = [v for v in ap.values() if v is not None]
    return {"tags": list(tags), "validation": validation, "n_images": len(image_ids),
            "image_ids": [int(i) for i in image_ids], "truth": truth.astype(int).tolist(),
            "probabilities": np.round(probabilities, 5).tolist(),
            "average_precision": ap, "mean_average_precision": float(np.mean(known)) if known else None}


def metrics_at(record: dict, threshold: float = 0.5, *, multiclass: bool = True) -> dict:
    """Precision and recall per tag and overall (micro-averaged) at ``threshold``, with AP and the
    confusion matrix (rows: true tag, columns: most probable tag; multiclass only)."""
    tags = record["tags"]
    truth = np.asarray(record["truth"], bool).reshape(-1, len(tags))
    probabilities = np.asarray(record["probabilities"], float).reshape(-1, len(tags))
    predicted = probabilities >= threshold
    per_tag = []
    for k, tag in enumerate(tags):
        tp = int((predicted[:, k] & truth[:, k]).sum())
        fp = int((predicted[:, k] & ~truth[:, k]).sum())
        fn = int((~predicted[:, k] & truth[:, k]).sum())
        per_tag.append({"tag": tag, "images": int(truth[:, k].sum()), "precision": _safe_ratio(tp, tp + fp),
                        "recall": _safe_ratio(tp, tp + fn), "average_precision": record["average_precision"][tag],
                        "true_positives": tp, "false_positives": fp, "false_negatives": fn})
    tp = sum(t["true_positives"] for t in per_tag)
    fp = sum(t["false_positives"] for t in per_tag)
    fn = sum(t["false_negatives"] for t in per_tag)
    result = {"threshold": float(threshold), "validation": record["validation"], "n_images": record["n_images"],
              "precision": _safe_ratio(tp, tp + fp), "recall": _safe_ratio(tp, tp + fn),
              "mean_average_precision": record["mean_average_precision"], "tags": per_tag}
    if multiclass and len(truth):
        true_index = truth.argmax(axis=1)
        guess = probabilities.argmax(axis=1)
        matrix = np.zeros((len(tags), len(tags)), int)
        np.add.at(matrix, (true_index, guess), 1)
        result["confusion_matrix"] = {"labels": tags, "counts": matrix.tolist()}
        result["accuracy"] = float((true_index == guess).mean())
    return result


def compare(first: dict, second: dict) -> list[dict]:
    """Per-tag differences between two iterations' metrics at the same threshold (second minus first)."""
    rows = []
    by_tag = {t["tag"]: t for t in first["tags"]}
    for tag in second["tags"]:
        before = by_tag.get(tag["tag"], {})
        row = {"tag": tag["tag"]}
        for name in ("precision", "recall", "average_precision"):
            a, b = before.get(name), tag.get(name)
            row[name] = {"first": a, "second": b, "change": None if a is None or b is None else b - a}
        rows.append(row)
    return rows
