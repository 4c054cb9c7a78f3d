"""After training: calibrate the best model on validation, evaluate it on the test split, save it."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dermlens.progress import say
from dermlens.training.decision_rule import DecisionRule


@dataclass
class HeldOut:
    """What `calibrate_and_test` measured: the fitted temperature and the held-out metrics."""

    temperature: float
    calibration: dict
    subset: str  # "test", or "validation" when the split has no test part
    n_images: int
    metrics: dict
    decision_bias: tuple[float, ...] | None  # the decision rule the metrics were measured with

    def summary(self) -> dict:
        keys = ("accuracy", "balanced_accuracy", "macro_auc", "macro_average_precision", "ece")
        return {"held_out_subset": self.subset, "n_held_out": self.n_images,
                self.subset: {k: self.metrics[k] for k in keys if k in self.metrics},
                "calibration": self.calibration}


def calibrate_and_test(logits_of: Callable[[np.ndarray, str], np.ndarray], data, decision_bias,
                       out_dir: Path, title: str, val_logits: np.ndarray | None = None,
                       rule: DecisionRule = "prior") -> HeldOut:
    """Fit the temperature on validation, then evaluate on the test split (validation when there is
    none) into ``out_dir / "evaluation"``; ``logits_of(indices, label)`` runs the model.

    With ``rule="per_class"`` the decision bias (none: zeros) is refined class by class on
    validation (`dermlens.training.decision_rule`) before the test."""
    from dermlens.evaluation.calibration import expected_calibration_error
    from dermlens.evaluation.report import evaluate_predictions
    from dermlens.inference.calibration import fit_temperature, softmax
    from dermlens.inference.decision import decide

    val, test = data.split.val, data.split.test
    if val_logits is None:
        val_logits = logits_of(val, "Calibrating on validation")
    temperature = fit_temperature(val_logits, data.targets[val])
    calibration = {
        "temperature": temperature,
        "val_ece_before": expected_calibration_error(data.targets[val], softmax(val_logits)),
        "val_ece_after": expected_calibration_error(data.targets[val], softmax(val_logits, temperature)),
    }
    held_out, subset = (test, "test") if len(test) else (val, "validation")
    logits = logits_of(held_out, f"Evaluating on {subset}") if len(test) else val_logits
    bias = None if decision_bias is None else np.asarray(decision_bias, np.float64)
    if rule == "per_class":
        from dermlens.training.decision_rule import refine_decision_bias

        # refined on calibrated logits, so the grid of shifts means the same for every model
        start = None if bias is None else bias / temperature
        bias = refine_decision_bias(val_logits / temperature, data.targets[val], start) * temperature
    metrics = evaluate_predictions(
        data.targets[held_out], softmax(logits, temperature), data.dataset.classes, out_dir / "evaluation",
        decisions=decide(logits, bias), title=f"{title} on the held-out {subset} split",
        image_ids=[data.dataset.ids[i] for i in held_out],
        source_note=f"{len(held_out)} images of {data.dataset.source or 'the dataset'}, "
                    f"grouped split (no lesion in two subsets); temperature {temperature:.3f}")
    return HeldOut(temperature, calibration, subset, len(held_out), metrics,
                   None if bias is None else tuple(bias.tolist()))


def report_held_out(result: HeldOut, minutes: float, out_dir: Path) -> None:
    auc = "n/a" if result.metrics["macro_auc"] is None else f"{result.metrics['macro_auc']:.3f}"
    say(f"{result.subset}: balanced accuracy {result.metrics['balanced_accuracy']:.3f}, macro AUC "
        f"{auc}, accuracy {result.metrics['accuracy']:.3f} "
        f"({minutes:.1f} min); report in {out_dir / 'evaluation' / 'report.html'}")


def finish_run(trainer):
    from dermlens.training.checkpoint import load_model, save_model
    from dermlens.training.fit import BEST, Run, write_history

    out_dir = trainer.out_dir
    if not trainer.dist.is_main:
        return Run(out_dir, out_dir / BEST)
    model, info = load_model(out_dir / BEST)
    trainer.model = model
    t = trainer.config.training
    rule = t.decision_rule if t.prior_correction else "prior"
    result = calibrate_and_test(trainer.logits, trainer.data, info.decision_bias, out_dir,
                                f"dermlens {info.backbone}", rule=rule)
    metric = "val_" + trainer.config.training.select_metric
    best_row = max(trainer.history, key=lambda r: -np.inf if r[metric] is None else r[metric])
    info.temperature, info.decision_bias = result.temperature, result.decision_bias
    info.metrics = {**result.summary(), "selected_epoch": best_row["epoch"],
                    "selected_stage": best_row["stage"], "prior_tau": best_row.get("prior_tau", 0.0),
                    "decision_rule": rule,
                    "validation": {k: v for k, v in best_row.items() if k.startswith("val_")},
                    "minutes": round(trainer.minutes(), 2)}
    save_model(model, info, out_dir / BEST)
    (out_dir / "summary.json").write_text(json.dumps(info.metrics, indent=2))
    write_history(trainer.history, out_dir)
    report_held_out(result, trainer.minutes(), out_dir)
    return Run(out_dir, out_dir / BEST, trainer.history, result.metrics, trainer.minutes())
