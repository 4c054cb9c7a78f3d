"""Evaluation of skin-lesion predictions: metrics, calibration, figures, reports and ISIC submissions.

Pure numpy, scikit-learn and matplotlib, so it runs wherever predictions do; no torch needed.

>>> from dermlens.evaluation import classification_metrics
>>> classification_metrics([0, 1], [[0.9, 0.1], [0.2, 0.8]], ("mel", "nv"))["balanced_accuracy"]
1.0
"""

from dermlens.evaluation.calibration import expected_calibration_error, reliability_curve
from dermlens.evaluation.metrics import balanced_accuracy_score, classification_metrics
from dermlens.evaluation.plots import (
    plot_confusion_matrix,
    plot_precision_recall_curves,
    plot_reliability_diagram,
    plot_roc_curves,
    plot_training_curves,
)
from dermlens.evaluation.report import evaluate_predictions
from dermlens.evaluation.submission import ISIC_2018_COLUMNS, write_isic_submission

__all__ = [
    "ISIC_2018_COLUMNS",
    "balanced_accuracy_score",
    "classification_metrics",
    "evaluate_predictions",
    "expected_calibration_error",
    "plot_confusion_matrix",
    "plot_precision_recall_curves",
    "plot_reliability_diagram",
    "plot_roc_curves",
    "plot_training_curves",
    "reliability_curve",
    "write_isic_submission",
]
