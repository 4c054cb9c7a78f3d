"""An experiment's pictures: every run's training curves on one set of axes, and their confusion matrices."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from dermlens.evaluation.plots import draw_series, history_series, new_figure, save_figure

_PANELS = (("val_balanced_accuracy", "Validation balanced accuracy"), ("val_macro_auc", "Validation macro AUC"),
           ("train_loss", "Training loss"), ("val_loss", "Validation loss"))


def plot_overlaid_curves(histories: dict[str, Sequence[dict[str, Any]]], path: str | os.PathLike[str]) -> Path:
    """Four panels (validation balanced accuracy and AUC, training and validation loss per epoch),
    one line per run.

    >>> import tempfile
    >>> rows = {"a": [{"epoch": 0, "val_balanced_accuracy": 0.4}, {"epoch": 1, "val_balanced_accuracy": 0.5}]}
    >>> plot_overlaid_curves(rows, tempfile.mkdtemp() + "/curves.png").name
    'curves.png'
    """
    from matplotlib.ticker import MaxNLocator

    figure = new_figure(11.0, 8.0)
    for axes, (key, title) in zip(figure.subplots(2, 2).ravel(), _PANELS):
        draw_series(axes, {name: history_series(rows, key) for name, rows in histories.items()},
                    xlabel="Epoch (0 = linear head on cached features)", title=title)
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    return save_figure(figure, path)


def plot_confusion_grid(matrices: dict[str, tuple[np.ndarray, Sequence[str]]],
                        path: str | os.PathLike[str]) -> Path:
    """Row-normalised confusion matrices (each row: one true class; the diagonal is its recall), one
    panel per run."""
    columns = min(3, max(1, len(matrices)))
    rows = math.ceil(len(matrices) / columns)
    figure = new_figure(4.2 * columns, 3.9 * rows)
    grid = np.atleast_1d(figure.subplots(rows, columns)).ravel()
    for axes, (name, (matrix, classes)) in zip(grid, matrices.items()):
        matrix = np.asarray(matrix, dtype=float)
        normalised = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
        axes.imshow(normalised, vmin=0, vmax=1, cmap="Blues")
        for (i, j), value in np.ndenumerate(normalised):
            axes.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=6,
                      color="white" if value > 0.6 else "black")
        ticks = range(len(classes))
        axes.set_xticks(ticks, classes, fontsize=7, rotation=45)
        axes.set_yticks(ticks, classes, fontsize=7)
        axes.set(title=name, xlabel="predicted", ylabel="true")
    for axes in grid[len(matrices):]:
        axes.set_axis_off()
    return save_figure(figure, path)
