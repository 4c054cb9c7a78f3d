"""Write predictions in the ISIC 2018 Task 3 submission format, so they can be scored by the challenge."""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike

#: The challenge's fixed column order; it is set by ISIC, not by the model's class order.
ISIC_2018_COLUMNS: tuple[str, ...] = ("MEL", "NV", "BCC", "AKIEC", "BKL", "DF", "VASC")


def _isic_column_order(classes: Sequence[str]) -> list[int]:
    """Index of each ISIC column in the model's classes; ValueError naming what is missing or extra."""
    columns = [str(code).upper() for code in classes]
    missing = [name for name in ISIC_2018_COLUMNS if name not in columns]
    extra = [name for name in columns if name not in ISIC_2018_COLUMNS]
    repeated = sorted({name for name in columns if columns.count(name) > 1})
    if missing or extra or repeated:
        problems = [f"{label}: {', '.join(names)}" for label, names in
                    (("missing", missing), ("extra", extra), ("repeated", repeated)) if names]
        raise ValueError(
            f"an ISIC 2018 submission needs exactly the classes {', '.join(ISIC_2018_COLUMNS)} "
            f"(case-insensitive); the model's classes have {'; '.join(problems)}"
        )
    return [columns.index(name) for name in ISIC_2018_COLUMNS]


def write_isic_submission(
    image_ids: Sequence[str], probabilities: ArrayLike, classes: Sequence[str], path: str | os.PathLike[str]
) -> Path:
    """Write ``image,MEL,NV,BCC,AKIEC,BKL,DF,VASC`` rows, reordering the model's columns as needed.

    Class codes map to columns by upper-casing (``"akiec"`` -> ``AKIEC``); any other class list is
    a ValueError, because the challenge scorer would silently misread it.

    >>> import tempfile
    >>> classes = ("mel", "nv", "bcc", "akiec", "bkl", "df", "vasc")
    >>> out = write_isic_submission(["ISIC_0034524"], [[0.1, 0.6, 0.1, 0.05, 0.1, 0.03, 0.02]], classes,
    ...                             tempfile.mkdtemp() + "/submission.csv")
    >>> out.read_text().splitlines()[0]
    'image,MEL,NV,BCC,AKIEC,BKL,DF,VASC'
    """
    order = _isic_column_order(classes)
    probs = np.asarray(probabilities, dtype=np.float64)
    if probs.ndim != 2 or probs.shape[1] != len(classes):
        raise ValueError(f"probabilities must have shape (n_images, {len(classes)}), got {probs.shape}")
    if len(image_ids) != len(probs):
        raise ValueError(f"{len(image_ids)} image_ids given for {len(probs)} rows of probabilities")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["image", *ISIC_2018_COLUMNS])
        for image_id, row in zip(image_ids, probs[:, order]):
            writer.writerow([image_id, *(f"{value:.6f}" for value in row)])
    return path
