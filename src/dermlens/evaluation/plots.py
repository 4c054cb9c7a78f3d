"""PNG figures for an evaluation: confusion matrix, ROC / precision-recall, reliability, training curves.

Figures are built with ``matplotlib.figure.Figure`` and its Agg canvas, never through pyplot, so
plotting works without a display, leaves no open figures behind, is safe in a web server's threads
and does not switch the backend of a notebook that happens to call it. Matplotlib is imported
inside the functions so that importing ``dermlens.evaluation`` stays fast.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike
from sklearn import metrics as skm

from dermlens.evaluation.calibration import calibration_error_from_curve, reliability_curve
from dermlens.evaluation.metrics import _binary_auc, _binary_average_precision, check_predictions

if TYPE_CHECKING:
    from matplotlib.figure import Figure

_DPI = 110


def new_figure(width: float, height: float) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def save_figure(figure: Figure, path: str | os.PathLike[str]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # No "Software" metadata, so the same inputs give byte-identical files across matplotlib versions.
    figure.savefig(path, dpi=_DPI, metadata={"Software": None})
    return path


def plot_confusion_matrix(
    cm: ArrayLike, classes: Sequence[str], path: str | os.PathLike[str], normalize: bool = False
) -> Path:
    """Draw a confusion matrix (rows true, columns predicted), as counts or as row fractions.

    Row-normalised, the diagonal is each class's sensitivity, which is what matters for rare classes.

    >>> import tempfile
    >>> out = plot_confusion_matrix([[5, 1], [2, 7]], ("mel", "nv"), tempfile.mkdtemp() + "/cm.png", True)
    >>> out.exists()
    True
    """
    counts = np.asarray(cm, dtype=np.float64)
    if counts.shape != (len(classes), len(classes)):
        raise ValueError(f"confusion matrix has shape {counts.shape}, expected {len(classes)} x {len(classes)}")
    values = counts
    if normalize:
        row_sums = counts.sum(axis=1, keepdims=True)
        values = np.divide(counts, row_sums, out=np.zeros_like(counts), where=row_sums > 0)
    side = max(4.5, 0.7 * len(classes) + 2.5)
    figure = new_figure(side + 1.0, side)
    axes = figure.subplots()
    image = axes.imshow(values, cmap="Blues", vmin=0.0, vmax=1.0 if normalize else max(values.max(), 1.0))
    figure.colorbar(image, ax=axes, shrink=0.8)
    dark_above = (1.0 if normalize else max(values.max(), 1.0)) / 2
    for (row, column), value in np.ndenumerate(values):
        text = f"{value:.2f}" if normalize else f"{int(value)}"
        colour = "white" if value > dark_above else "black"
        axes.text(column, row, text, ha="center", va="center", color=colour, fontsize=9)
    ticks = np.arange(len(classes))
    axes.set_xticks(ticks, labels=list(classes), rotation=45, ha="right")
    axes.set_yticks(ticks, labels=list(classes))
    axes.set_xlabel("Predicted class")
    axes.set_ylabel("True class")
    axes.set_title("Confusion matrix (row-normalised)" if normalize else "Confusion matrix (counts)")
    return save_figure(figure, path)


@dataclass(frozen=True)
class _CurveKind:
    """What differs between a ROC plot and a precision-recall plot."""

    points: Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]
    summary: Callable[[np.ndarray, np.ndarray], float]
    summary_name: str
    x_label: str
    y_label: str
    title: str
    legend_location: str
    chance_diagonal: bool
    undefined_reason: str


_ROC = _CurveKind(
    points=lambda is_class, scores: tuple(skm.roc_curve(is_class, scores)[:2]),
    summary=_binary_auc,
    summary_name="AUC",
    x_label="False positive rate (1 - specificity)",
    y_label="True positive rate (sensitivity)",
    title="ROC curves, one class vs rest",
    legend_location="lower right",
    chance_diagonal=True,
    undefined_reason="needs positives and negatives",
)
_PRECISION_RECALL = _CurveKind(
    points=lambda is_class, scores: tuple(skm.precision_recall_curve(is_class, scores)[1::-1]),
    summary=_binary_average_precision,
    summary_name="AP",
    x_label="Recall (sensitivity)",
    y_label="Precision",
    title="Precision-recall curves, one class vs rest",
    legend_location="lower left",
    chance_diagonal=False,
    undefined_reason="no positives",
)


def _plot_one_vs_rest(
    y_true: ArrayLike, probabilities: ArrayLike, classes: Sequence[str], path: str | os.PathLike[str], kind: _CurveKind
) -> Path:
    labels, probs = check_predictions(y_true, probabilities, classes)
    figure = new_figure(6.5, 5.5)
    axes = figure.subplots()
    for index, code in enumerate(classes):
        is_class = labels == index
        summary = kind.summary(is_class, probs[:, index])
        if math.isnan(summary):
            # Keep the class in the legend so a reader sees it was not forgotten, only undefined.
            axes.plot([], [], linestyle="none", label=f"{code} ({kind.summary_name} n/a: {kind.undefined_reason})")
            continue
        x, y = kind.points(is_class, probs[:, index])
        axes.plot(x, y, linewidth=1.5, label=f"{code} ({kind.summary_name} = {summary:.3f})")
    if kind.chance_diagonal:
        axes.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1, label="chance")
    axes.set(xlim=(0, 1), ylim=(0, 1.02), xlabel=kind.x_label, ylabel=kind.y_label, title=kind.title)
    axes.grid(alpha=0.3)
    axes.legend(loc=kind.legend_location, fontsize=8)
    return save_figure(figure, path)


def plot_roc_curves(
    y_true: ArrayLike, probabilities: ArrayLike, classes: Sequence[str], path: str | os.PathLike[str]
) -> Path:
    """One-vs-rest ROC curve per class, with its AUC in the legend.

    >>> import tempfile
    >>> plot_roc_curves([0, 1, 1], [[0.8, 0.2], [0.3, 0.7], [0.6, 0.4]], ("mel", "nv"),
    ...                 tempfile.mkdtemp() + "/roc.png").name
    'roc.png'
    """
    return _plot_one_vs_rest(y_true, probabilities, classes, path, _ROC)


def plot_precision_recall_curves(
    y_true: ArrayLike, probabilities: ArrayLike, classes: Sequence[str], path: str | os.PathLike[str]
) -> Path:
    """One-vs-rest precision-recall curve per class, with its average precision in the legend.

    More telling than ROC for rare classes such as dermatofibroma, where false positives dominate.

    >>> import tempfile
    >>> plot_precision_recall_curves([0, 1, 1], [[0.8, 0.2], [0.3, 0.7], [0.6, 0.4]], ("mel", "nv"),
    ...                              tempfile.mkdtemp() + "/pr.png").name
    'pr.png'
    """
    return _plot_one_vs_rest(y_true, probabilities, classes, path, _PRECISION_RECALL)


def plot_reliability_diagram(
    y_true: ArrayLike, probabilities: ArrayLike, path: str | os.PathLike[str], n_bins: int = 15
) -> Path:
    """Accuracy against confidence per bin (top), images per bin (bottom), with the ECE in the title.

    >>> import tempfile
    >>> plot_reliability_diagram([0, 1, 1], [[0.8, 0.2], [0.3, 0.7], [0.6, 0.4]],
    ...                          tempfile.mkdtemp() + "/reliability.png", n_bins=5).name
    'reliability.png'
    """
    confidence, accuracy, count = reliability_curve(y_true, probabilities, n_bins)
    ece = calibration_error_from_curve(confidence, accuracy, count)
    left_edges = np.linspace(0.0, 1.0, n_bins + 1)[:-1]
    width = 1.0 / n_bins
    figure = new_figure(5.5, 6.0)
    top, bottom = figure.subplots(2, 1, sharex=True, height_ratios=[3, 1])
    top.bar(left_edges, np.nan_to_num(accuracy), width=width, align="edge", edgecolor="black",
            alpha=0.8, label="accuracy")
    filled = count > 0
    top.plot(confidence[filled], accuracy[filled], "o", color="darkorange", markersize=4,
             label="mean confidence")
    top.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfect calibration")
    top.set(xlim=(0, 1), ylim=(0, 1), ylabel="Accuracy", title=f"Reliability (ECE = {ece:.3f}, {n_bins} bins)")
    top.legend(loc="upper left", fontsize=8)
    bottom.bar(left_edges, count, width=width, align="edge", edgecolor="black", color="grey")
    bottom.set(xlabel="Confidence (top-class probability)", ylabel="Images")
    return save_figure(figure, path)


_LOSS_SERIES = {"train_loss": "train loss", "val_loss": "validation loss"}
_ACCURACY_SERIES = {
    "train_accuracy": "train accuracy",
    "val_accuracy": "validation accuracy",
    "val_balanced_accuracy": "validation balanced accuracy",
}


def history_series(history_rows: Sequence[dict[str, Any]], key: str) -> tuple[list[float], list[float]]:
    """(epochs, values) for one key, skipping rows where it is missing, empty, None or NaN (rows may
    come from history.csv, as strings)."""
    epochs: list[float] = []
    values: list[float] = []
    for position, row in enumerate(history_rows):
        value = row.get(key)
        if value in (None, "") or not math.isfinite(float(value)):
            continue
        epoch = row.get("epoch")
        epochs.append(position + 1 if epoch in (None, "") else float(epoch))
        values.append(float(value))
    return epochs, values


def draw_series(axes, series: dict[str, tuple[list[float], list[float]]], **labels: str) -> None:
    """One line per named series (skipping empty ones), a legend, or "no data"; ``labels`` go to
    ``axes.set`` (title, xlabel, ylabel)."""
    for label, (xs, ys) in series.items():
        if ys:
            axes.plot(xs, ys, marker="o", markersize=3, label=label)
    if axes.lines:
        axes.legend(fontsize=8)
    else:
        axes.text(0.5, 0.5, "no data", ha="center", va="center", transform=axes.transAxes)
    axes.set(**labels)
    axes.grid(alpha=0.3)


def plot_training_curves(history_rows: Sequence[dict[str, Any]], path: str | os.PathLike[str]) -> Path:
    """Loss (left) and accuracy / balanced accuracy (right) per epoch, from a training history.

    Rows may lack any key or hold None; each series is drawn from the rows that have it. A row
    without ``epoch`` is placed by its position (1-based).

    >>> import tempfile
    >>> rows = [{"epoch": 1, "train_loss": 1.2, "val_loss": 1.1, "val_balanced_accuracy": 0.41},
    ...         {"epoch": 2, "train_loss": 0.9, "val_loss": None, "val_balanced_accuracy": 0.55}]
    >>> plot_training_curves(rows, tempfile.mkdtemp() + "/training.png").name
    'training.png'
    """
    from matplotlib.ticker import MaxNLocator

    figure = new_figure(11.0, 4.5)
    panels = zip(figure.subplots(1, 2), (_LOSS_SERIES, _ACCURACY_SERIES), ("Loss", "Accuracy"))
    for axes, series, y_label in panels:
        draw_series(axes, {label: history_series(history_rows, key) for key, label in series.items()},
                    xlabel="Epoch", ylabel=y_label, title=f"{y_label} per epoch")
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    return save_figure(figure, path)
