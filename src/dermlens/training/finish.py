"""After training: calibrate the best model on validation, evaluate it on the test split, save it."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dermlens.inference.matrix_scaling import MatrixScaling
from dermlens.progress import say
from dermlens.training.config import Calibration
from dermlens.training.decision_rule import DecisionRule


@dataclass
class HeldOut:
    """What `calibrate_and_test` measured: the calibration fitted on validation and the held-out metrics."""

    temperature: float
    calibration: dict
    subset: str  # "test", or "validation" when the split has no test part
    n_images: int
    metrics: dict
    decision_bias: tuple[float, ...] | None  # the decision rule the metrics were measured with
    #: the matrix scaling of logits / temperature, when it paid on validation (then the decision bias
    #: is on the recalibrated logits, whose temperature is 1)
    scaling: MatrixScaling | None = None

    @property
    def output_map(self) -> tuple[np.ndarray, np.ndarray] | None:
        """The whole recalibration as one map of the raw logits (temperature folded in), or None."""
        if self.scaling is None:
            return None
        return self.scaling.matrix / self.temperature, self.scaling.bias

    def summary(self) -> dict:
        keys = ("accuracy", "balanced_accuracy", "macro_auc", "macro_average_precision", "ece")
        return {"held_out_subset": self.subset, "n_held_out": self.n_images,
                self.subset: {k: self.metrics[k] for k in keys if k in self.metrics},
                "calibration": self.calibration}


@dataclass
class Calibrated:
    """A calibration fitted on validation: ``apply`` turns raw logits into calibrated ones
    (temperature 1), on which ``decision_bias`` is expressed."""

    temperature: float
    scaling: MatrixScaling | None
    decision_bias: np.ndarray | None
    record: dict

    def apply(self, logits: np.ndarray) -> np.ndarray:
        scaled = np.asarray(logits, np.float64) / self.temperature
        return scaled if self.scaling is None else self.scaling.apply(scaled)


def fit_calibration(val_logits: np.ndarray, val_targets: np.ndarray, train_targets: np.ndarray,
                    decision_bias, *, calibration: Calibration = "temperature",
                    rule: DecisionRule = "prior") -> Calibrated:
    """The temperature, then with ``calibration="matrix"`` a matrix scaling where it pays
    (`dermlens.inference.matrix_scaling`). Matrix-scaled probabilities carry the training data's class
    frequencies, so the decision's prior correction is then chosen again on the recalibrated
    validation logits, replacing ``decision_bias`` (the training's choice, on raw logits). With
    ``rule="per_class"`` the decision bias is refined class by class on validation
    (`dermlens.training.decision_rule`)."""
    from dermlens.evaluation.calibration import expected_calibration_error
    from dermlens.inference.calibration import fit_temperature, softmax
    from dermlens.inference.decision import decision_bias as prior_bias
    from dermlens.inference.matrix_scaling import fit_matrix_scaling
    from dermlens.training.decision_rule import best_prior_tau, log_class_prior

    temperature = fit_temperature(val_logits, val_targets)
    scaling = fit_matrix_scaling(val_logits / temperature, val_targets) if calibration == "matrix" else None
    val_calibrated = Calibrated(temperature, scaling, None, {}).apply(val_logits)
    record = {"method": "temperature" if scaling is None else "matrix", "temperature": temperature,
              "val_ece_before": expected_calibration_error(val_targets, softmax(val_logits)),
              "val_ece_after": expected_calibration_error(val_targets, softmax(val_calibrated))}
    if calibration == "matrix":
        record["val_ece_temperature"] = expected_calibration_error(val_targets, softmax(val_logits, temperature))
    bias = None if decision_bias is None else np.asarray(decision_bias, np.float64) / temperature
    if scaling is not None:
        record.update({"matrix_strength": scaling.strength, "cv_nll": round(scaling.cv_nll, 5),
                       "cv_nll_temperature": round(scaling.cv_nll_temperature, 5)})
        log_prior = log_class_prior(train_targets, val_logits.shape[1])
        record["prior_tau"] = best_prior_tau(val_calibrated, val_targets, log_prior)
        bias = prior_bias(log_prior, record["prior_tau"]) if record["prior_tau"] else None
    if rule == "per_class":
        from dermlens.training.decision_rule import refine_decision_bias

        # refined on calibrated logits, so the grid of shifts means the same for every model
        bias = refine_decision_bias(val_calibrated, val_targets, bias)
    return Calibrated(temperature, scaling, bias, record)


def calibrate_and_test(logits_of: Callable[[np.ndarray, str], np.ndarray], data, decision_bias,
                       out_dir: Path, title: str, val_logits: np.ndarray | None = None,
                       rule: DecisionRule = "prior", calibration: Calibration = "temperature") -> HeldOut:
    """Calibrate on validation (`fit_calibration`), then evaluate on the test split (validation when
    there is none) into ``out_dir / "evaluation"``; ``logits_of(indices, label)`` runs the model."""
    from dermlens.evaluation.report import evaluate_predictions
    from dermlens.inference.calibration import softmax
    from dermlens.inference.decision import decide

    val, test = data.split.val, data.split.test
    if val_logits is None:
        val_logits = logits_of(val, "Calibrating on validation")
    fitted = fit_calibration(val_logits, data.targets[val], data.targets[data.split.train], decision_bias,
                             calibration=calibration, rule=rule)
    held_out, subset = (test, "test") if len(test) else (val, "validation")
    logits = fitted.apply(logits_of(held_out, f"Evaluating on {subset}") if len(test) else val_logits)
    how = f"temperature {fitted.temperature:.3f}" + ("" if fitted.scaling is None else " and matrix scaling")
    metrics = evaluate_predictions(
        data.targets[held_out], softmax(logits), data.dataset.classes, out_dir / "evaluation",
        decisions=decide(logits, fitted.decision_bias), title=f"{title} on the held-out {subset} split",
        image_ids=[data.dataset.ids[i] for i in held_out],
        source_note=f"{len(held_out)} images of {data.dataset.source or 'the dataset'}, "
                    f"grouped split (no lesion in two subsets); {how}")
    bias = fitted.decision_bias
    if bias is not None and fitted.scaling is None:
        bias = bias * fitted.temperature  # a temperature-only model keeps raw logits: so does its bias
    return HeldOut(fitted.temperature, fitted.record, subset, len(held_out), metrics,
                   None if bias is None else tuple(bias.tolist()), fitted.scaling)


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
    rule = t.decision_rule if t.prior_correction or t.calibration == "matrix" else "prior"
    result = calibrate_and_test(trainer.logits, trainer.data, info.decision_bias, out_dir,
                                f"dermlens {info.backbone}", rule=rule, calibration=t.calibration)
    metric = "val_" + trainer.config.training.select_metric
    best_row = max(trainer.history, key=lambda r: -np.inf if r[metric] is None else r[metric])
    info.temperature, info.decision_bias = result.temperature, result.decision_bias
    if result.output_map is not None:
        from dermlens.models.recalibration import apply_output_map

        apply_output_map(model, *result.output_map)
        info.temperature = 1.0
    tau = result.calibration.get("prior_tau", best_row.get("prior_tau", 0.0))  # the tau in effect
    info.metrics = {**result.summary(), "selected_epoch": best_row["epoch"],
                    "selected_stage": best_row["stage"], "prior_tau": tau,
                    "decision_rule": rule,
                    "validation": {k: v for k, v in best_row.items() if k.startswith("val_")},
                    "minutes": round(trainer.minutes(), 2)}
    save_model(model, info, out_dir / BEST)
    (out_dir / "summary.json").write_text(json.dumps(info.metrics, indent=2))
    write_history(trainer.history, out_dir)
    report_held_out(result, trainer.minutes(), out_dir)
    return Run(out_dir, out_dir / BEST, trainer.history, result.metrics, trainer.minutes())
