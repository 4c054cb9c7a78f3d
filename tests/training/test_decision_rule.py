"""The per-class decision rule: coordinate ascent on validation balanced accuracy."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import balanced_accuracy_score

from dermlens.inference.decision import decide, decision_bias
from dermlens.training.decision_rule import (CLASS_SHIFTS, PRIOR_TAUS, _plateau_middle, balanced_accuracy_of,
                                             refine_decision_bias)


def imbalanced_logits(seed: int = 0, n: int = 3000):
    """Three classes (80 / 15 / 5 %): class 1 needs a large push to be named, class 2 almost none,
    so no single prior-correction strength suits both."""
    rng = np.random.default_rng(seed)
    targets = rng.choice(3, size=n, p=[0.80, 0.15, 0.05])
    logits = rng.normal(0.0, 1.0, (n, 3))
    logits[np.arange(n), targets] += np.array([2.0, 0.6, 3.0])[targets]
    logits[:, 1] -= 1.0
    return logits, targets


@pytest.mark.filterwarnings("ignore:y_pred contains classes not in y_true")
def test_balanced_accuracy_of_matches_scikit_learn():
    rng = np.random.default_rng(1)
    targets, decisions = rng.integers(0, 4, 500), rng.integers(0, 4, 500)
    assert np.isclose(balanced_accuracy_of(targets, decisions, 4), balanced_accuracy_score(targets, decisions))
    # a class absent from the targets is left out, as scikit-learn does
    assert np.isclose(balanced_accuracy_of(targets % 3, decisions, 4), balanced_accuracy_score(targets % 3, decisions))


def test_per_class_bias_beats_the_best_shared_tau_and_holds_on_new_data():
    logits, targets = imbalanced_logits(seed=0)
    log_prior = np.log(np.bincount(targets) / len(targets))

    def score(z, y, bias):
        return balanced_accuracy_of(y, decide(z, bias), 3)

    tau = max(PRIOR_TAUS, key=lambda t: score(logits, targets, decision_bias(log_prior, t)))
    start = decision_bias(log_prior, tau)
    refined = refine_decision_bias(logits, targets, start)
    assert score(logits, targets, refined) > score(logits, targets, start) + 0.01
    # fitted on one sample, better on another from the same distribution
    fresh_logits, fresh_targets = imbalanced_logits(seed=1)
    assert score(fresh_logits, fresh_targets, refined) > score(fresh_logits, fresh_targets, start)
    # each entry moved by a grid step at most 2 away from its start
    assert np.all(np.abs(refined - start) <= CLASS_SHIFTS.max() + 1e-9)


def test_refining_never_lowers_balanced_accuracy():
    rng = np.random.default_rng(3)
    for _ in range(5):
        logits, targets = rng.normal(size=(200, 4)), rng.integers(0, 4, 200)
        start = rng.normal(size=4)
        before = balanced_accuracy_of(targets, decide(logits, start), 4)
        after = balanced_accuracy_of(targets, decide(logits, refine_decision_bias(logits, targets, start)), 4)
        assert after >= before


def test_a_tie_takes_the_middle_of_the_plateau_nearest_the_current_shift():
    scores = np.array([0.1, 0.5, 0.5, 0.5, 0.2, 0.5, 0.5, 0.1])
    assert _plateau_middle(scores, current=2) == 2
    assert _plateau_middle(scores, current=6) == 5
    assert _plateau_middle(np.array([0.3, 0.3, 0.3, 0.3, 0.3]), current=0) == 2


def test_the_module_examples_run():
    import doctest

    import dermlens.training.decision_rule as module

    result = doctest.testmod(module)
    assert result.attempted >= 1 and result.failed == 0
