"""Which class to name: the most probable one, shifted towards classes that are rare in training.

HAM10000 is two-thirds naevi, so a calibrated model's most probable class is usually "naevus" even
when a melanoma is well within reach. Dividing each class's probability by its training prevalence to
a power tau (post-hoc logit adjustment, Menon et al. 2021) aims the decision at balanced accuracy. The
probabilities themselves stay calibrated: the shift is a separate ``decision_bias`` added to the logits
only to choose the class, chosen on validation data and stored in the model.
"""

from __future__ import annotations

import numpy as np


def decision_bias(log_prior: np.ndarray, tau: float) -> np.ndarray:
    """The logit shift of post-hoc prior correction: ``-tau * log(prior)``."""
    return -float(tau) * np.asarray(log_prior, np.float64)


def decide(logits: np.ndarray, bias: np.ndarray | None = None) -> np.ndarray:
    """Class index per row: argmax of ``logits + bias`` (plain argmax without a bias).

    >>> decide(np.array([[2.0, 1.5]]), np.array([0.0, 1.0])).tolist()
    [1]
    """
    logits = np.asarray(logits, np.float64)
    return (logits if bias is None else logits + np.asarray(bias, np.float64)).argmax(axis=1)
