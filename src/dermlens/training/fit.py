"""`fit(config, out_dir) -> Run`: from a labelled dataset to the best checkpoint and its evaluation.

Stages: (1) a linear head on cached features of the frozen pretrained backbone (seconds), then
(2) fine-tuning the last stages or the whole network with augmentation and a class-balanced loss.
The checkpoint kept is the best by validation balanced accuracy; ``last.pt`` is written after every
epoch so a stopped run resumes. Under ``torchrun`` each rank trains on its shard of every epoch.
"""

from __future__ import annotations

import csv
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dermlens.errors import ConfigError
from dermlens.progress import say
from dermlens.training.config import RunConfig, same_config, save_config
from dermlens.training.dataprep import PreparedData, prepare_data

BEST = "best.pt"
LAST = "last.pt"


@dataclass
class Run:
    """What a training run produced; ``best_checkpoint`` is always ``out_dir / "best.pt"``."""

    out_dir: Path
    best_checkpoint: Path
    history: list[dict[str, Any]] = field(default_factory=list)
    test_metrics: dict[str, Any] = field(default_factory=dict)
    minutes: float = 0.0


def _validation_scores(logits: np.ndarray, targets: np.ndarray, classes: tuple[str, ...],
                       log_prior: np.ndarray | None) -> dict:
    """Validation metrics: decisions at the prior correction (tau) with the best balanced accuracy;
    AUC and loss from the model's own probabilities (the correction only moves the decision)."""
    from dermlens.evaluation.metrics import classification_metrics
    from dermlens.inference.calibration import nll_loss, softmax
    from dermlens.inference.decision import decide, decision_bias
    from dermlens.training.decision_rule import best_prior_tau

    tau = best_prior_tau(logits, targets, log_prior) if log_prior is not None else 0.0
    decisions = decide(logits, decision_bias(log_prior, tau) if tau else None)
    metrics = classification_metrics(targets, softmax(logits), classes, decisions)
    return {"val_loss": nll_loss(logits, targets, 1.0), "val_accuracy": metrics["accuracy"],
            "val_balanced_accuracy": metrics["balanced_accuracy"], "val_macro_auc": metrics["macro_auc"],
            "prior_tau": tau}


def write_history(history: list[dict[str, Any]], out_dir: Path) -> None:
    from dermlens.evaluation.plots import plot_training_curves

    columns = sorted({k for row in history for k in row}, key=lambda k: (k != "epoch", k != "stage", k))
    with open(out_dir / "history.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(history)
    plot_training_curves(history, out_dir / "training_curves.png")


class Trainer:
    """Holds one run's state between stages; `fit` below is the public entry point."""

    clock = staticmethod(time.monotonic)  # seconds; the time budget is measured on it

    def __init__(self, config: RunConfig, out_dir: Path, data: PreparedData, dist) -> None:
        import torch

        from dermlens.models import create_model, get_backbone
        from dermlens.training.augment import Normalizer
        from dermlens.training.checkpoint import ModelInfo

        self.config, self.out_dir, self.data, self.dist = config, out_dir, data, dist
        self.spec = get_backbone(config.model.backbone)
        self.model = create_model(
            config.model.backbone, len(data.dataset.classes), pretrained=config.model.pretrained,
            weights_path=config.model.weights_path or None, dropout=config.model.dropout,
            n_metadata=0 if data.metadata is None else data.metadata.shape[1])
        self.model = self.model.to(memory_format=torch.channels_last)
        self.normalizer = Normalizer(data.preprocessing.mean, data.preprocessing.std)
        self.info = ModelInfo(backbone=config.model.backbone, classes=data.dataset.classes,
                              preprocessing=data.preprocessing, dropout=config.model.dropout,
                              n_metadata=self.model.n_metadata, config=config.to_dict())
        self.history: list[dict[str, Any]] = []
        self.log_prior = None
        if config.training.prior_correction:
            from dermlens.training.losses import effective_prior

            train_targets = data.targets[data.split.train]
            self.log_prior = np.log(effective_prior(train_targets, len(data.dataset.classes),
                                                    config.training))
        self.best_score = -np.inf
        self.started = self.clock()
        self.validation_minutes = 0.0

    # -- shared helpers ---------------------------------------------------------------------
    def logits(self, indices: np.ndarray, description: str) -> np.ndarray:
        from dermlens.training.loop import predict_logits

        return predict_logits(self.model, self.normalizer, self.data.images, indices,
                              metadata=self.data.metadata, description=description)

    def record(self, row: dict[str, Any]) -> None:
        """Score the model on validation; keep it as best.pt when the named metric improves."""
        from dermlens.inference.decision import decision_bias
        from dermlens.training.checkpoint import save_model

        val = self.data.split.val
        started = self.clock()
        scores = _validation_scores(self.logits(val, "Validating"), self.data.targets[val],
                                    self.data.dataset.classes, self.log_prior)
        self.validation_minutes = (self.clock() - started) / 60
        row = {**row, **scores, "seconds": round(self.clock() - self.started, 1)}
        self.history.append(row)
        metric = "val_" + self.config.training.select_metric
        if metric not in row:
            raise ConfigError(f"training.select_metric must be one of balanced_accuracy, accuracy, "
                              f"macro_auc; got {self.config.training.select_metric!r}")
        improved = row[metric] is not None and row[metric] > self.best_score
        if improved:
            self.best_score = row[metric]
            self.info.decision_bias = (tuple(decision_bias(self.log_prior, row["prior_tau"]).tolist())
                                       if row["prior_tau"] else None)
            save_model(self.model, self.info, self.out_dir / BEST, epoch=row["epoch"])
        auc = row["val_macro_auc"]
        say(f"[{row['stage']} {row['epoch']}] val balanced accuracy {row['val_balanced_accuracy']:.3f}"
            f"  macro AUC {'n/a' if auc is None else format(auc, '.3f')}  loss {row['val_loss']:.3f}"
            + ("  (best so far, saved)" if improved else ""))
        write_history(self.history, self.out_dir)

    def loss(self):
        from dermlens.training.losses import imbalance_loss

        return imbalance_loss(self.data.targets[self.data.split.train], len(self.data.dataset.classes),
                              self.config.training)

    # -- stage 1: linear head on cached features --------------------------------------------
    def fit_head(self) -> None:
        from dermlens.training.features import cached_features
        from dermlens.training.loop import train_head

        t = self.config.training
        train = self.data.split.train
        features = cached_features(self, train)
        if self.data.metadata is not None:
            features = np.concatenate([features, self.data.metadata[train]], axis=1)
        train_head(self.model.classifier, features, self.data.targets[train], epochs=t.head_epochs,
                   lr=t.head_lr, loss_fn=self.loss(), seed=t.seed)
        if self.dist.is_main:
            self.record({"epoch": 0, "stage": "head"})
            self.save_progress(0)

    # -- stage 2: fine-tuning ---------------------------------------------------------------
    def fine_tune(self, previous: dict | None) -> None:
        from dermlens.training.finetune import run_finetuning

        run_finetuning(self, previous)

    # -- resuming ---------------------------------------------------------------------------
    def save_progress(self, epoch: int, **state: Any) -> None:
        """last.pt: the model now, the history and everything else needed to continue after ``epoch``."""
        from dermlens.training.checkpoint import save_model

        save_model(self.model, self.info, self.out_dir / LAST, history=self.history,
                   best_score=self.best_score, epoch=epoch, **state)

    def restore(self, previous: dict) -> None:
        self.model.load_state_dict(previous["state_dict"])
        self.history = previous["history"]
        self.best_score = previous["best_score"]
        # the time budget is the run's, not the session's: minutes spent before the stop count
        self.started -= max((row.get("seconds", 0.0) for row in self.history), default=0.0)

    def minutes(self) -> float:
        return (self.clock() - self.started) / 60

    def finishing_minutes(self) -> float:
        """Time the run still needs after its last epoch: calibration on validation and the test
        evaluation are each about one validation pass. Before the first validation (a network
        trained from scratch has no head stage), a pass is timed on a few validation images."""
        n_val, n_test = len(self.data.split.val), len(self.data.split.test)
        if not self.validation_minutes and n_val:
            probe = self.data.split.val[:32]
            started = self.clock()
            self.logits(probe, "Timing validation")
            self.validation_minutes = (self.clock() - started) / 60 * n_val / len(probe)
        return self.validation_minutes * (1 + n_test / max(n_val, 1)) + 0.2


def _previous_run(config: RunConfig, out_dir: Path, resume: bool, is_main: bool) -> dict | None:
    """The interrupted run to resume in ``out_dir`` (same config only), or None to start afresh."""
    from dermlens.training.checkpoint import read_checkpoint

    last = out_dir / LAST
    if not last.is_file():
        return None
    if not resume:
        if is_main:
            for name in (LAST, BEST):
                (out_dir / name).unlink(missing_ok=True)
        return None
    previous = read_checkpoint(last)
    if not same_config(previous["info"]["config"], config):
        raise ConfigError(f"{out_dir} holds a run with another configuration; use a new --out "
                          f"folder, or --fresh to start this one over")
    say(f"resuming {out_dir} after epoch {previous['epoch']}")
    return previous


def fit(config: RunConfig, out_dir: str | Path, *, resume: bool = True) -> Run:
    """Train a model as ``config`` says; write everything into ``out_dir``.

    >>> from dermlens.training.config import load_config
    >>> run = fit(load_config("configs/single.yaml", ["data.path=data/ham10000"]), "runs/ham")  # doctest: +SKIP
    >>> run.best_checkpoint                                                                      # doctest: +SKIP
    PosixPath('runs/ham/best.pt')
    """
    import torch

    from dermlens.training.distributed import Distributed

    out_dir = Path(out_dir)
    if config.ensemble:
        from dermlens.training.ensemble import fit_ensemble

        return fit_ensemble(config, out_dir, resume=resume)
    t = config.training
    pretrained = config.model.pretrained or bool(config.model.weights_path)
    if not pretrained and t.finetune != "all":
        raise ConfigError("training from scratch needs training.finetune=all (a random backbone "
                          "cannot stay frozen)")
    if not (pretrained and t.head_epochs > 0) and (t.finetune == "none" or t.epochs == 0):
        raise ConfigError("nothing to train: set training.head_epochs above 0 (pretrained backbones) "
                          "or training.epochs above 0 with training.finetune=last or all")
    torch.manual_seed(t.seed)
    if t.threads:
        torch.set_num_threads(t.threads)
    dist = Distributed.from_environment()
    previous = _previous_run(config, out_dir, resume, dist.is_main)
    out_dir.mkdir(parents=True, exist_ok=True)
    data = prepare_data(config, out_dir, write=dist.is_main)
    if dist.is_main:
        save_config(config, out_dir / "config.yaml")
    trainer = Trainer(config, out_dir, data, dist)
    if previous is not None:
        trainer.restore(previous)
    elif t.head_epochs > 0 and pretrained:
        trainer.fit_head()
    if t.finetune != "none" and t.epochs > 0:
        trainer.fine_tune(previous)
    from dermlens.training.finish import finish_run

    run = finish_run(trainer)
    say(f"best checkpoint: {run.best_checkpoint}")
    return run
