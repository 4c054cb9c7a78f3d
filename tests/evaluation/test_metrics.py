"""Metrics against scikit-learn and against values worked out by hand."""

import json
import warnings

import numpy as np
import pytest
from sklearn import metrics as skm

from dermlens.evaluation import balanced_accuracy_score, classification_metrics

CLASSES = ("mel", "nv", "bcc")

# Hand-made 3-class case. Predictions (argmax) per true class:
#   mel (4 images): mel, mel, mel, nv   -> recall 3/4
#   nv  (2 images): nv, mel             -> recall 1/2
#   bcc (4 images): bcc x 4             -> recall 1
# BMA = (0.75 + 0.5 + 1) / 3 = 0.75; accuracy = 8 / 10.
Y_TRUE = np.array([0, 0, 0, 0, 1, 1, 2, 2, 2, 2])
PROBABILITIES = np.array([
    [0.7, 0.2, 0.1],
    [0.6, 0.3, 0.1],
    [0.5, 0.1, 0.4],
    [0.3, 0.6, 0.1],
    [0.2, 0.7, 0.1],
    [0.5, 0.4, 0.1],
    [0.1, 0.1, 0.8],
    [0.2, 0.2, 0.6],
    [0.3, 0.1, 0.6],
    [0.1, 0.3, 0.6],
])


def test_balanced_accuracy_by_hand_and_against_sklearn():
    y_pred = PROBABILITIES.argmax(axis=1)
    assert balanced_accuracy_score(Y_TRUE, y_pred) == pytest.approx(0.75)
    assert balanced_accuracy_score(Y_TRUE, y_pred) == pytest.approx(skm.balanced_accuracy_score(Y_TRUE, y_pred))


def test_balanced_accuracy_ignores_classes_absent_from_y_true():
    # Class 1 never occurs in y_true but is predicted once: recalls are 2/3 (class 0) and 1 (class 2).
    y_true = np.array([0, 0, 0, 2, 2])
    y_pred = np.array([0, 0, 1, 2, 2])
    assert balanced_accuracy_score(y_true, y_pred, n_classes=3) == pytest.approx((2 / 3 + 1) / 2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sklearn warns that y_pred has a class y_true lacks
        expected = skm.balanced_accuracy_score(y_true, y_pred)
    assert balanced_accuracy_score(y_true, y_pred, n_classes=3) == pytest.approx(expected)


def test_balanced_accuracy_rejects_labels_out_of_range():
    with pytest.raises(ValueError, match="below 2"):
        balanced_accuracy_score([0, 1, 2], [0, 1, 1], n_classes=2)


def test_classification_metrics_hand_computed_values():
    metrics = classification_metrics(Y_TRUE, PROBABILITIES, CLASSES)
    assert metrics["accuracy"] == pytest.approx(0.8)
    assert metrics["balanced_accuracy"] == pytest.approx(0.75)
    assert metrics["confusion_matrix"] == [[3, 1, 0], [1, 1, 0], [0, 0, 4]]
    mel = metrics["per_class"]["mel"]
    # mel: TP 3, FN 1, FP 1 (an nv), TN 5 -> precision 3/4, specificity 5/6, F1 = 2*3/(2*3+1+1).
    assert mel["support"] == 4
    assert mel["precision"] == pytest.approx(0.75)
    assert mel["recall"] == pytest.approx(0.75)
    assert mel["specificity"] == pytest.approx(5 / 6)
    assert mel["f1"] == pytest.approx(0.75)
    assert metrics["per_class"]["bcc"]["specificity"] == pytest.approx(1.0)


def test_classification_metrics_match_sklearn():
    metrics = classification_metrics(Y_TRUE, PROBABILITIES, CLASSES)
    y_pred = PROBABILITIES.argmax(axis=1)
    precision, recall, f1, support = skm.precision_recall_fscore_support(Y_TRUE, y_pred)
    for index, code in enumerate(CLASSES):
        row = metrics["per_class"][code]
        assert row["precision"] == pytest.approx(precision[index])
        assert row["recall"] == pytest.approx(recall[index])
        assert row["f1"] == pytest.approx(f1[index])
        assert row["support"] == support[index]
        is_class = Y_TRUE == index
        assert row["auc"] == pytest.approx(skm.roc_auc_score(is_class, PROBABILITIES[:, index]))
        assert row["average_precision"] == pytest.approx(
            skm.average_precision_score(is_class, PROBABILITIES[:, index]))
    assert metrics["macro_auc"] == pytest.approx(
        skm.roc_auc_score(Y_TRUE, PROBABILITIES, multi_class="ovr", average="macro"))
    assert metrics["macro_average_precision"] == pytest.approx(
        np.mean([metrics["per_class"][code]["average_precision"] for code in CLASSES]))
    assert metrics["confusion_matrix"] == skm.confusion_matrix(Y_TRUE, y_pred).tolist()
    assert metrics["left_out_of_macro"] == {"auc": [], "average_precision": []}


def test_class_missing_from_y_true_is_none_and_left_out_of_macro():
    y_true = np.array([0, 0, 2, 2, 2])  # no "nv"
    probabilities = np.array([
        [0.8, 0.1, 0.1],
        [0.4, 0.5, 0.1],
        [0.1, 0.2, 0.7],
        [0.3, 0.1, 0.6],
        [0.6, 0.1, 0.3],
    ])
    metrics = classification_metrics(y_true, probabilities, CLASSES)
    nv = metrics["per_class"]["nv"]
    assert nv["support"] == 0
    assert nv["auc"] is None and nv["average_precision"] is None and nv["recall"] is None
    assert nv["specificity"] == pytest.approx(4 / 5)  # one image wrongly called nv
    assert metrics["left_out_of_macro"] == {"auc": ["nv"], "average_precision": ["nv"]}
    expected_auc = np.mean([skm.roc_auc_score(y_true == index, probabilities[:, index]) for index in (0, 2)])
    assert metrics["macro_auc"] == pytest.approx(expected_auc)
    assert metrics["balanced_accuracy"] == pytest.approx((1 / 2 + 2 / 3) / 2)
    json.dumps(metrics, allow_nan=False)  # raises if any NaN slipped through


def test_metrics_are_json_serialisable_plain_types():
    metrics = classification_metrics(Y_TRUE, PROBABILITIES, CLASSES)
    assert json.loads(json.dumps(metrics, allow_nan=False)) == metrics
    assert type(metrics["per_class"]["mel"]["support"]) is int
    assert type(metrics["accuracy"]) is float


@pytest.mark.parametrize(
    ("y_true", "probabilities", "classes", "message"),
    [
        ([0, 1], [[2.0, -1.0], [0.5, 3.0]], ("mel", "nv"), "non-negative"),
        ([0, 1], [[0.9, 0.3], [0.5, 0.5]], ("mel", "nv"), "sum to 1"),
        ([0, 1], [[0.9, 0.1], [0.5, 0.5]], ("mel", "nv", "bcc"), "3 classes given"),
        ([0, 2], [[0.9, 0.1], [0.5, 0.5]], ("mel", "nv"), "below 2"),
        ([0, 1, 1], [[0.9, 0.1], [0.5, 0.5]], ("mel", "nv"), "3 entries"),
    ],
)
def test_bad_inputs_raise_clear_errors(y_true, probabilities, classes, message):
    with pytest.raises(ValueError, match=message):
        classification_metrics(y_true, probabilities, classes)


def test_melanoma_vs_naevus_auc_matches_scikit_learn_on_the_two_classes():
    from sklearn.metrics import roc_auc_score

    from dermlens.evaluation.metrics import melanoma_vs_naevus_auc

    rng = np.random.default_rng(7)
    labels = rng.integers(0, 3, 300)
    probabilities = rng.dirichlet([1, 1, 1], 300)
    classes = ("nv", "bcc", "mel")
    keep = labels != 1
    share = probabilities[keep, 2] / (probabilities[keep, 2] + probabilities[keep, 0])
    expected = roc_auc_score(labels[keep] == 2, share)
    assert melanoma_vs_naevus_auc(labels, probabilities, classes) == pytest.approx(expected)
    assert classification_metrics(labels, probabilities, classes)["melanoma_vs_naevus_auc"] == pytest.approx(expected)
    assert melanoma_vs_naevus_auc(labels, probabilities, ("a", "b", "c")) is None
    assert melanoma_vs_naevus_auc(np.zeros(5, int), probabilities[:5], classes) is None


def test_decisions_replace_the_argmax_for_accuracy_but_not_for_auc():
    probabilities = np.array([[0.7, 0.3], [0.6, 0.4], [0.2, 0.8]])
    plain = classification_metrics([0, 1, 1], probabilities, ("nv", "mel"))
    shifted = classification_metrics([0, 1, 1], probabilities, ("nv", "mel"), decisions=[0, 1, 1])
    assert plain["balanced_accuracy"] == pytest.approx(0.75)
    assert shifted["balanced_accuracy"] == pytest.approx(1.0)
    assert shifted["macro_auc"] == plain["macro_auc"]
    with pytest.raises(ValueError):
        classification_metrics([0, 1, 1], probabilities, ("nv", "mel"), decisions=[0, 1])
