"""The evaluation folder, the figures on their own, and the ISIC submission file."""

import csv
import json

import numpy as np
import pytest

from dermlens.evaluation import (
    ISIC_2018_COLUMNS,
    evaluate_predictions,
    plot_training_curves,
    write_isic_submission,
)

HAM_CLASSES = ("mel", "nv", "bcc", "akiec", "bkl", "df", "vasc")
DISCLAIMER_SENTENCE = "dermlens is decision support, not a diagnosis."
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
FIGURES = ("confusion_matrix.png", "confusion_matrix_normalized.png", "roc.png", "precision_recall.png",
           "reliability.png")


@pytest.fixture(scope="module")
def predictions():
    """60 images over the seven HAM10000 classes, with no dermatofibroma (df) among them."""
    rng = np.random.default_rng(7)
    present = [index for index, code in enumerate(HAM_CLASSES) if code != "df"]
    y_true = rng.choice(present, size=60)
    logits = rng.normal(size=(60, len(HAM_CLASSES)))
    logits[np.arange(60), y_true] += 2.0  # a model that is right most of the time
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    image_ids = [f"ISIC_{index:07d}" for index in range(60)]
    return y_true, probabilities, image_ids


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory, predictions):
    y_true, probabilities, image_ids = predictions
    out = tmp_path_factory.mktemp("report")
    metrics = evaluate_predictions(y_true, probabilities, HAM_CLASSES, out, title="Test run",
                                   image_ids=image_ids, source_note="synthetic predictions <unit test>")
    return out, metrics


def test_report_writes_every_file(report_dir):
    out, _ = report_dir
    for name in ("metrics.json", "report.md", "report.html", "predictions.csv", *FIGURES):
        assert (out / name).stat().st_size > 0, name
    for name in FIGURES:
        assert (out / name).read_bytes().startswith(PNG_MAGIC), name


def test_metrics_json_matches_returned_metrics(report_dir):
    out, metrics = report_dir
    saved = json.loads((out / "metrics.json").read_text())
    assert {key: saved[key] for key in metrics} == metrics
    assert 0.0 <= metrics["ece"] <= 1.0
    assert saved["per_class"]["df"]["auc"] is None
    assert metrics["left_out_of_macro"]["auc"] == ["df"]
    assert DISCLAIMER_SENTENCE in saved["disclaimer"]


def test_html_is_self_contained_with_embedded_images_and_disclaimer(report_dir):
    out, _ = report_dir
    page = (out / "report.html").read_text()
    assert page.count('src="data:image/png;base64,') == len(FIGURES)
    assert DISCLAIMER_SENTENCE in page
    assert "<script" not in page.lower()
    assert 'src="http' not in page and "<link" not in page
    assert "<style>" in page
    assert "synthetic predictions &lt;unit test&gt;" in page  # user text is escaped


def test_markdown_has_tables_links_disclaimer_and_left_out_note(report_dir):
    out, metrics = report_dir
    text = (out / "report.md").read_text()
    assert text.startswith("# Test run")
    assert DISCLAIMER_SENTENCE in text
    assert "| class | support | sensitivity | specificity | precision | F1 | AUC | AP |" in text
    assert f"| Balanced multiclass accuracy (BMA) | {metrics['balanced_accuracy']:.3f} |" in text
    assert "| df | 0 |" in text
    assert "AUC is undefined for df" in text
    for name in FIGURES:
        assert f"]({name})" in text
    nv_row = metrics["confusion_matrix"][HAM_CLASSES.index("nv")]
    assert "| nv | " + " | ".join(map(str, nv_row)) + " |" in text


def test_predictions_csv_has_one_row_per_image(report_dir, predictions):
    out, _ = report_dir
    y_true, probabilities, image_ids = predictions
    with (out / "predictions.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["image_id", "true_label", "predicted_label", *(f"prob_{c}" for c in HAM_CLASSES)]
    assert [row["image_id"] for row in rows] == image_ids
    assert [row["true_label"] for row in rows] == [HAM_CLASSES[label] for label in y_true]
    assert [row["predicted_label"] for row in rows] == [HAM_CLASSES[i] for i in probabilities.argmax(axis=1)]
    assert float(rows[0]["prob_mel"]) == pytest.approx(probabilities[0, 0], abs=1e-6)


def test_report_without_image_ids_writes_no_predictions_csv(tmp_path):
    evaluate_predictions([0, 1, 1, 0], [[0.7, 0.3], [0.2, 0.8], [0.4, 0.6], [0.9, 0.1]], ("mel", "nv"), tmp_path)
    assert (tmp_path / "report.html").exists()
    assert not (tmp_path / "predictions.csv").exists()


def test_training_curves_plot_whatever_is_there(tmp_path):
    rows = [
        {"epoch": 1, "train_loss": 1.3, "val_loss": 1.2, "train_accuracy": 0.4, "val_balanced_accuracy": 0.3},
        {"epoch": 2, "train_loss": 0.9, "val_loss": None, "train_accuracy": 0.6},
        {"epoch": 3, "train_loss": 0.7, "val_loss": 0.8, "val_accuracy": float("nan")},
    ]
    path = plot_training_curves(rows, tmp_path / "curves" / "training.png")
    assert path.read_bytes().startswith(PNG_MAGIC)
    assert plot_training_curves([], tmp_path / "empty.png").read_bytes().startswith(PNG_MAGIC)


def test_isic_submission_header_and_column_order(tmp_path):
    shuffled = ("vasc", "nv", "mel", "df", "bkl", "bcc", "akiec")
    probabilities = np.array([[0.01, 0.02, 0.03, 0.04, 0.05, 0.06, 0.79]])
    path = write_isic_submission(["ISIC_0034524"], probabilities, shuffled, tmp_path / "submission.csv")
    lines = path.read_text().splitlines()
    assert lines[0] == "image,MEL,NV,BCC,AKIEC,BKL,DF,VASC"
    assert tuple(lines[0].split(",")[1:]) == ISIC_2018_COLUMNS
    # MEL is shuffled column 2 (0.03), NV 1, BCC 5, AKIEC 6, BKL 4, DF 3, VASC 0.
    assert lines[1] == "ISIC_0034524,0.030000,0.020000,0.060000,0.790000,0.050000,0.040000,0.010000"


@pytest.mark.parametrize(
    ("classes", "message"),
    [
        (("mel", "nv", "bcc", "akiec", "bkl", "df"), "missing: VASC"),
        (("mel", "nv", "bcc", "akiec", "bkl", "df", "vasc", "scc"), "extra: SCC"),
        (("mel", "nv", "bcc", "akiec", "bkl", "df", "unk"), "missing: VASC; extra: UNK"),
        (("mel", "MEL", "nv", "bcc", "akiec", "bkl", "df", "vasc"), "repeated: MEL"),
    ],
)
def test_isic_submission_rejects_other_class_lists(tmp_path, classes, message):
    probabilities = np.full((1, len(classes)), 1.0 / len(classes))
    with pytest.raises(ValueError, match=message):
        write_isic_submission(["ISIC_0000000"], probabilities, classes, tmp_path / "submission.csv")
    assert not (tmp_path / "submission.csv").exists()
