"""`fit(config, out_dir) -> Run`: from a labelled dataset to the best checkpoint and its evaluation.

Stages: (1) a linear head on cached features of the frozen pretrained backbone (seconds), then
(2) fine-tuning the last stages or the whole network with augmentation and a class-balanced loss.
The checkpoint kept is the best by validation balanced accuracy; ``last.pt`` is written after every
epoch so a stopped run resumes. Under ``torchrun`` each rank trains on its shard of every epoch.
"""

from __future__ import annotations

import csv
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dermlens.errors import ConfigError
from dermlens.progress import say
from dermlens.training.config import RunConfig, save_config
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


def _validation_scores(logits: np.ndarray, targets: np.ndarray, classes: tuple[str, ...]) -> dict:
    from dermlens.evaluation.metrics import classification_metrics
    from dermlens.inference.calibration import nll_loss, softmax

    metrics = classification_metrics(targets, softmax(logits), classes)
    return {"val_loss": nll_loss(logits, targets, 1.0), "val_accuracy": metrics["accuracy"],
            "val_balanced_accuracy": metrics["balanced_accuracy"], "val_macro_auc": metrics["macro_auc"]}


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

    def __init__(self, config: RunConfig, out_dir: Path, data: PreparedData) -> None:
        import torch

        from dermlens.models import create_model, get_backbone
        from dermlens.training.augment import Normalizer
        from dermlens.training.checkpoint import ModelInfo
        from dermlens.training.distributed import Distributed

        self.config, self.out_dir, self.data = config, out_dir, data
        self.spec = get_backbone(config.model.backbone)
        self.dist = Distributed.from_environment()
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
        self.best_score = -np.inf
        self.started = time.monotonic()

    # -- shared helpers ---------------------------------------------------------------------
    def logits(self, indices: np.ndarray, description: str) -> np.ndarray:
        from dermlens.training.loop import predict_logits

        return predict_logits(self.model, self.normalizer, self.data.images, indices,
                              metadata=self.data.metadata, description=description)

    def record(self, row: dict[str, Any]) -> None:
        """Score the model on validation; keep it as best.pt when the named metric improves."""
        from dermlens.training.checkpoint import save_model

        val = self.data.split.val
        scores = _validation_scores(self.logits(val, "Validating"), self.data.targets[val],
                                    self.data.dataset.classes)
        row = {**row, **scores, "seconds": round(time.monotonic() - self.started, 1)}
        self.history.append(row)
        metric = "val_" + self.config.training.select_metric
        if metric not in row:
            raise ConfigError(f"training.select_metric must be one of balanced_accuracy, accuracy, "
                              f"macro_auc; got {self.config.training.select_metric!r}")
        improved = row[metric] is not None and row[metric] > self.best_score
        if improved:
            self.best_score = row[metric]
            save_model(self.model, self.info, self.out_dir / BEST, epoch=row["epoch"])
        auc = row["val_macro_auc"]
        say(f"[{row['stage']} {row['epoch']}] val balanced accuracy {row['val_balanced_accuracy']:.3f}"
            f"  macro AUC {'n/a' if auc is None else format(auc, '.3f')}  loss {row['val_loss']:.3f}"
            + ("  (best so far, saved)" if improved else ""))
        write_history(self.history, self.out_dir)

    def loss_weights(self):
        import torch

        from dermlens.training.schedule import class_weights

        train_targets = self.data.targets[self.data.split.train]
        weights = class_weights(train_targets, len(self.data.dataset.classes),
                                self.config.training.class_weighting)
        return torch.tensor(weights, dtype=torch.float32)

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
                   lr=t.head_lr, weights=self.loss_weights(), label_smoothing=t.label_smoothing,
                   seed=t.seed)
        self.record({"epoch": 0, "stage": "head"})

    # -- stage 2: fine-tuning ---------------------------------------------------------------
    def fine_tune(self) -> None:
        from dermlens.training.finetune import run_finetuning

        run_finetuning(self)

    def minutes(self) -> float:
        return (time.monotonic() - self.started) / 60


def fit(config: RunConfig, out_dir: str | Path, *, resume: bool = True) -> Run:
    """Train a model as ``config`` says; write everything into ``out_dir``.

    >>> from dermlens.training.config import load_config
    >>> run = fit(load_config("configs/default.yaml", ["data.path=data/ham10000"]), "runs/ham")  # doctest: +SKIP
    >>> run.best_checkpoint                                                                      # doctest: +SKIP
    PosixPath('runs/ham/best.pt')
    """
    import torch

    out_dir = Path(out_dir)
    t = config.training
    if not config.model.pretrained and not config.model.weights_path and t.finetune != "all":
        raise ConfigError("training from scratch needs training.finetune=all (a random backbone "
                          "cannot stay frozen)")
    torch.manual_seed(t.seed)
    if t.threads:
        torch.set_num_threads(t.threads)
    out_dir.mkdir(parents=True, exist_ok=True)
    data = prepare_data(config, out_dir)
    save_config(config, out_dir / "config.yaml")
    trainer = Trainer(config, out_dir, data)
    resumed = (out_dir / LAST).is_file() and resume
    if not resumed and t.head_epochs > 0 and (config.model.pretrained or config.model.weights_path):
        trainer.fit_head()
    if t.finetune != "none" and t.epochs > 0:
        trainer.fine_tune()
    from dermlens.training.finish import finish_run

    run = finish_run(trainer)
    say(f"best checkpoint: {run.best_checkpoint}")
    return run
