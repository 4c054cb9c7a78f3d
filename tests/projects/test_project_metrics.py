"""Per-tag precision and recall at a threshold, average precision and the confusion matrix."""

import numpy as np
import pytest

from dermlens.projects.metrics import compare, held_out_record, metrics_at


def record():
    truth = np.array([[1, 0], [1, 0], [0, 1], [0, 1]], bool)
    probabilities = np.array([[0.9, 0.1], [0.4, 0.6], [0.2, 0.8], [0.7, 0.3]])
    return held_out_record(["akiec", "bkl"], [1, 2, 3, 4], truth, probabilities, validation="test")


def test_precision_and_recall_follow_the_threshold():
    at_half = metrics_at(record(), 0.5)
    akiec = at_half["tags"][0]
    assert (akiec["precision"], akiec["recall"]) == (0.5, 0.5)  # predicted: images 1 and 4; right: 1
    assert at_half["confusion_matrix"]["counts"] == [[1, 1], [1, 1]]
    strict = metrics_at(record(), 0.85)
    assert strict["tags"][0]["precision"] == 1.0 and strict["tags"][0]["recall"] == 0.5
    assert strict["tags"][1]["precision"] is None  # nothing predicted: precision is undefined, not 0
    assert strict["recall"] == pytest.approx(0.25)


def test_average_precision_does_not_depend_on_the_threshold():
    ap = record()["average_precision"]
    assert metrics_at(record(), 0.1)["tags"][0]["average_precision"] == ap["akiec"]
    assert ap["akiec"] == pytest.approx((1.0 + 2 / 3) / 2)


def test_compare_gives_the_change_per_tag():
    rows = compare(metrics_at(record(), 0.5), metrics_at(record(), 0.85))
    assert rows[0]["precision"]["change"] == pytest.approx(0.5)
