"""Compare decision rules of exported models (and of their averages) on a split's validation and test images.

    python scripts/decision_rules.py MODEL.onnx [MODEL.onnx ...] --split RUN/split.json \
        [--data ../shared/datasets/ham10000] [--pairs]

For each model, and with ``--pairs`` for the average of each pair's calibrated probabilities, it prints
the test balanced accuracy of the decision rules of `dermlens.training.decision_rule`, both chosen on
the validation images only:

- ``prior``: one prior-correction strength tau for all classes;
- ``per_class``: that bias refined class by class;

then two checks of whether ``per_class`` is worth having: the mean gain (and its spread) when both rules
are fitted on a random half of the validation images and scored on the other half (10 halvings), and
the ceiling: ``per_class`` fitted on the test images themselves, which no real rule can beat.

The models must have been trained on the split's training images (the split's seed and fractions);
checkpoints (.pt, with torch) work as well as exports (.onnx). The shared tau here corrects for the
plain training prior, so its figures can differ by a point from those a run reports for itself (a run
with square-root class weights corrects for the prior its weighted loss saw).
"""

from __future__ import annotations

import argparse
import itertools
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass
class Scores:
    """Calibrated log-probabilities of one model (or average) on the validation and test images."""

    name: str
    val: np.ndarray
    test: np.ndarray


def log_probabilities(model_path: Path, dataset) -> np.ndarray:
    from dermlens.evaluation.model_eval import load_scorer, score_dataset

    scorer = load_scorer(model_path)
    return np.log(np.clip(score_dataset(scorer, dataset.with_classes(scorer.classes)), 1e-300, 1.0))


def rows_for(scores: Scores, val_targets: np.ndarray, test_targets: np.ndarray, log_prior: np.ndarray) -> dict:
    from dermlens.inference.decision import decide, decision_bias
    from dermlens.training.decision_rule import balanced_accuracy_of, best_prior_tau, refine_decision_bias

    n = scores.val.shape[1]

    def bma(z: np.ndarray, y: np.ndarray, bias: np.ndarray | None) -> float:
        return balanced_accuracy_of(y, decide(z, bias), n)

    def fitted(z: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        shared = decision_bias(log_prior, best_prior_tau(z, y, log_prior))
        return shared, refine_decision_bias(z, y, shared)

    shared, per_class = fitted(scores.val, val_targets)
    gains = []
    for halving in range(10):
        order = np.random.default_rng(100 + halving).permutation(len(val_targets))
        fit_on, score_on = order[: len(order) // 2], order[len(order) // 2:]
        half_shared, half_per_class = fitted(scores.val[fit_on], val_targets[fit_on])
        gains.append(bma(scores.val[score_on], val_targets[score_on], half_per_class)
                     - bma(scores.val[score_on], val_targets[score_on], half_shared))
    ceiling = refine_decision_bias(scores.test, test_targets, None)
    return {"model": scores.name, "prior": bma(scores.test, test_targets, shared),
            "per_class": bma(scores.test, test_targets, per_class),
            "half_validation_gain": float(np.mean(gains)), "half_validation_sd": float(np.std(gains)),
            "ceiling": bma(scores.test, test_targets, ceiling)}


def main() -> int:
    from dermlens.data.readers import read_dataset
    from dermlens.data.splits import load_split
    from dermlens.training.decision_rule import log_class_prior

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", type=Path, nargs="+")
    parser.add_argument("--split", type=Path, required=True, help="the models' split.json")
    parser.add_argument("--data", default="../shared/datasets/ham10000")
    parser.add_argument("--pairs", action="store_true", help="also the average of every pair of models")
    args = parser.parse_args()

    dataset = read_dataset(args.data)
    split = load_split(args.split, dataset)
    val, test = dataset.subset(split.val), dataset.subset(split.test)
    log_prior = log_class_prior(dataset.targets[split.train], len(dataset.classes))
    scores = [Scores(path.parent.name if path.stem in ("model", "best") else path.stem,
                     log_probabilities(path, val), log_probabilities(path, test)) for path in args.models]
    if args.pairs:
        for a, b in itertools.combinations(list(scores), 2):
            scores.append(Scores(f"{a.name} + {b.name}",
                                 *(np.log((np.exp(x) + np.exp(y)) / 2) for x, y in ((a.val, b.val), (a.test, b.test)))))
    print("| model | prior (tau) | per_class | difference | half-validation gain | ceiling (fitted on test) |")
    print("|---|---|---|---|---|---|")
    for one in scores:
        row = rows_for(one, val.targets, test.targets, log_prior)
        print(f"| {row['model']} | {row['prior']:.3f} | {row['per_class']:.3f} | "
              f"{row['per_class'] - row['prior']:+.3f} | {row['half_validation_gain']:+.3f} ± "
              f"{row['half_validation_sd']:.3f} | {row['ceiling']:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
