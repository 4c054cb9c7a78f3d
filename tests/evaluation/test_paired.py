"""The paired bootstrap: scores agree with scikit-learn, equal models differ by nothing, a clear winner
is told apart from noise and a coin flip is not."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import balanced_accuracy_score, roc_auc_score

from dermlens.evaluation.paired import paired_bootstrap


@pytest.fixture
def answers():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 3, 300)
    noisy = np.eye(3)[y] + rng.normal(0, 0.6, (300, 3))
    probabilities = np.exp(noisy) / np.exp(noisy).sum(1, keepdims=True)
    return y, probabilities.argmax(1), probabilities


def test_scores_match_scikit_learn(answers):
    y, labels, probabilities = answers
    bma = paired_bootstrap(y, labels, probabilities, labels, probabilities, "balanced_accuracy", n_resamples=50)
    auc = paired_bootstrap(y, labels, probabilities, labels, probabilities, "macro_auc", n_resamples=50)
    assert bma.score_a == pytest.approx(balanced_accuracy_score(y, labels))
    assert auc.score_a == pytest.approx(roc_auc_score(y, probabilities, multi_class="ovr", average="macro"))


def test_the_same_model_twice_differs_by_nothing(answers):
    y, labels, probabilities = answers
    result = paired_bootstrap(y, labels, probabilities, labels, probabilities, "macro_auc", n_resamples=100)
    assert (result.difference, result.low, result.high, result.significant) == (0.0, 0.0, 0.0, False)


def test_a_better_model_is_beyond_noise_and_a_relabelled_coin_is_not(answers):
    y, labels, probabilities = answers
    rng = np.random.default_rng(0)
    coin = rng.dirichlet(np.ones(3), len(y))
    other_coin = rng.dirichlet(np.ones(3), len(y))
    better = paired_bootstrap(y, coin.argmax(1), coin, labels, probabilities, "balanced_accuracy")
    assert better.significant and better.low > 0.2
    same = paired_bootstrap(y, coin.argmax(1), coin, other_coin.argmax(1), other_coin, "accuracy")
    assert not same.significant and same.low < 0 < same.high


def test_answers_to_other_images_are_refused(answers):
    y, labels, probabilities = answers
    with pytest.raises(ValueError, match="same images"):
        paired_bootstrap(y, labels, probabilities, labels[:-1], probabilities[:-1], "accuracy")
