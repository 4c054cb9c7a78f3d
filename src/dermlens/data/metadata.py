"""Patient metadata (age, sex, body site) as a fixed-length numeric vector for the model head."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

SEXES: tuple[str, ...] = ("male", "female")
#: HAM10000 localisation values; anything else counts as "unknown".
SITES: tuple[str, ...] = (
    "abdomen", "acral", "back", "chest", "ear", "face", "foot", "genital", "hand",
    "lower extremity", "neck", "scalp", "trunk", "upper extremity",
)
N_FEATURES = 2 + len(SEXES) + len(SITES)


def _age(value: Any) -> float | None:
    try:
        age = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(age) or not 0 <= age <= 120 else age


def encode_metadata(age: Sequence[Any], sex: Sequence[Any], site: Sequence[Any]) -> np.ndarray:
    """(n, N_FEATURES) float32: age/100, age-missing flag, one-hot sex, one-hot body site.

    >>> encode_metadata([45.0], ["female"], ["back"]).shape == (1, N_FEATURES)
    True
    """
    rows = np.zeros((len(age), N_FEATURES), np.float32)
    for i, (a, s, loc) in enumerate(zip(age, sex, site)):
        value = _age(a)
        rows[i, 0] = 0.5 if value is None else value / 100.0
        rows[i, 1] = value is None
        if str(s).lower() in SEXES:
            rows[i, 2 + SEXES.index(str(s).lower())] = 1.0
        if str(loc).lower() in SITES:
            rows[i, 2 + len(SEXES) + SITES.index(str(loc).lower())] = 1.0
    return rows


def metadata_matrix(metadata: dict[str, Sequence[Any]], n: int) -> np.ndarray:
    """Encode a dataset's metadata columns (missing columns count as unknown)."""
    missing = [None] * n
    return encode_metadata(metadata.get("age", missing), metadata.get("sex", missing),
                           metadata.get("localization", missing))
