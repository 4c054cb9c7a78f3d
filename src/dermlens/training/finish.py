"""After training: calibrate the best model on validation, evaluate it on the test split, save it."""

from __future__ import annotations

import json

import numpy as np


from dermlens.progress import say


def finish_run(trainer):
    from dermlens.evaluation.calibration import expected_calibration_error
    from dermlens.evaluation.report import evaluate_predictions
    from dermlens.inference.calibration import fit_temperature, softmax
    from dermlens.inference.decision import decide
    from dermlens.training.checkpoint import load_model, save_model
    from dermlens.training.fit import BEST, Run, write_history

    out_dir, data, classes = trainer.out_dir, trainer.data, trainer.data.dataset.classes
    if not trainer.dist.is_main:
        return Run(out_dir, out_dir / BEST)
    model, info = load_model(out_dir / BEST)
    trainer.model = model
    val, test = data.split.val, data.split.test
    val_logits = trainer.logits(val, "Calibrating on validation")
    temperature = fit_temperature(val_logits, data.targets[val])
    calibration = {
        "temperature": temperature,
        "val_ece_before": expected_calibration_error(data.targets[val], softmax(val_logits)),
        "val_ece_after": expected_calibration_error(data.targets[val], softmax(val_logits, temperature)),
    }
    held_out, subset = (test, "test") if len(test) else (val, "validation")
    logits = trainer.logits(held_out, f"Evaluating on {subset}") if len(test) else val_logits
    bias = None if info.decision_bias is None else np.asarray(info.decision_bias)
    metrics = evaluate_predictions(
        data.targets[held_out], softmax(logits, temperature), classes, out_dir / "evaluation",
        decisions=decide(logits, bias),
        title=f"dermlens {info.backbone} on the held-out {subset} split",
        image_ids=[data.dataset.ids[i] for i in held_out],
        source_note=f"{len(held_out)} images of {data.dataset.source or 'the dataset'}, "
                    f"grouped split (no lesion in two subsets); temperature {temperature:.3f}")
    metric = "val_" + trainer.config.training.select_metric
    best_row = max(trainer.history, key=lambda r: -np.inf if r[metric] is None else r[metric])
    info.temperature = temperature
    info.metrics = {"held_out_subset": subset, "n_held_out": int(len(held_out)),
                    "selected_epoch": best_row["epoch"], "selected_stage": best_row["stage"],
                    "prior_tau": best_row.get("prior_tau", 0.0),
                    "validation": {k: v for k, v in best_row.items() if k.startswith("val_")},
                    subset: {k: metrics[k] for k in ("accuracy", "balanced_accuracy", "macro_auc",
                                                     "macro_average_precision", "ece") if k in metrics},
                    "calibration": calibration, "minutes": round(trainer.minutes(), 2)}
    save_model(model, info, out_dir / BEST)
    (out_dir / "summary.json").write_text(json.dumps(info.metrics, indent=2))
    write_history(trainer.history, out_dir)
    auc = "n/a" if metrics["macro_auc"] is None else f"{metrics['macro_auc']:.3f}"
    say(f"{subset}: balanced accuracy {metrics['balanced_accuracy']:.3f}, macro AUC "
        f"{auc}, accuracy {metrics['accuracy']:.3f} "
        f"({trainer.minutes():.1f} min); report in {out_dir / 'evaluation' / 'report.html'}")
    return Run(out_dir, out_dir / BEST, trainer.history, metrics, trainer.minutes())
