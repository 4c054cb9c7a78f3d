"""End to end on real HAM10000 images: fit, the run folder, evaluation, ONNX export, resuming.

The training tests use ``ham_small`` (105 real images, 15 per class) and a few optimiser steps, so they
check the plumbing, not accuracy.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from dermlens.data.labels import HAM10000_CLASSES
from dermlens.errors import ConfigError
from dermlens.training.config import load_config

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
RUN_FILES = ("best.pt", "last.pt", "config.yaml", "split.json", "history.csv", "training_curves.png",
             "summary.json", "evaluation/report.html", "evaluation/report.md", "evaluation/metrics.json",
             "evaluation/predictions.csv")


def tiny_config(data: Path, cache_dir: Path, *extra: str):
    """quick.yaml plus a head stage and one short fine-tuning epoch of the last two stages."""
    return load_config(CONFIGS / "quick.yaml", [
        f"data.path={data}", f"data.cache_dir={cache_dir}", "data.fractions=0.6,0.2,0.2",
        "training.head_epochs=3", "training.finetune=last", "training.finetune_stages=2",
        "training.epochs=1", "training.batch_size=16", "training.warmup_steps=2", "data.colour_constancy=6",
        *extra])


def read_history(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "history.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def copy_run(run_dir: Path, tmp_path: Path) -> Path:
    """Tests that write into a run folder work on a copy, so the shared run stays as fit left it."""
    return Path(shutil.copytree(run_dir, tmp_path / "run"))


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def trained_with_lrs(ham_small, cache_dir, tmp_path_factory):
    """One tiny training run shared by the tests of this module: (config, Run, learning rate of
    each fine-tuning step)."""
    import dermlens.training.finetune as finetune
    from dermlens.training.fit import fit

    config = tiny_config(ham_small, cache_dir)
    step_lrs: list[float] = []
    real_train_epoch = finetune.train_epoch

    def recording_train_epoch(*args, **kwargs):
        optimizer, on_step = kwargs["optimizer"], kwargs["on_step"]

        def on_step_after_recording() -> None:
            step_lrs.append(optimizer.param_groups[0]["lr"])  # the rate the step just taken used
            on_step()

        return real_train_epoch(*args, **{**kwargs, "on_step": on_step_after_recording})

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(finetune, "train_epoch", recording_train_epoch)
        run = fit(config, tmp_path_factory.mktemp("fit") / "run")
    return config, run, step_lrs


@pytest.fixture(scope="module")
def trained(trained_with_lrs):
    """(config, Run) of the shared training run."""
    config, run, _ = trained_with_lrs
    return config, run


@pytest.fixture(scope="module")
def dataset(ham_small):
    from dermlens.data.readers import read_dataset

    return read_dataset(ham_small)


def test_scratch_training_needs_finetune_all(tmp_path):
    from dermlens.training.fit import fit

    config = load_config(CONFIGS / "scratch.yaml", [f"data.path={tmp_path}", "training.finetune=last"])
    with pytest.raises(ConfigError, match="finetune=all"):
        fit(config, tmp_path / "run")
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_run_folder_holds_everything(trained):
    config, run = trained
    assert run.best_checkpoint == run.out_dir / "best.pt"
    missing = [name for name in RUN_FILES if not (run.out_dir / name).is_file()]
    assert not missing
    assert (run.out_dir / "training_curves.png").read_bytes().startswith(b"\x89PNG")
    assert load_config(run.out_dir / "config.yaml") == config


@pytest.mark.slow
def test_split_keeps_each_lesion_on_one_side(trained, ham_small):
    _, run = trained
    with open(ham_small / "labels.csv", newline="") as handle:
        lesion_of = {row["image_id"]: row["lesion_id"] for row in csv.DictReader(handle)}
    split = json.loads((run.out_dir / "split.json").read_text())
    sides = {name: {lesion_of[i] for i in ids} for name, ids in split["subsets"].items()}
    assert set(sides) == {"train", "val", "test"} and all(sides.values())
    assert not sides["train"] & sides["val"]
    assert not sides["train"] & sides["test"]
    assert not sides["val"] & sides["test"]
    image_ids = [i for ids in split["subsets"].values() for i in ids]
    assert sorted(image_ids) == sorted(lesion_of)  # every image once
    assert split["group_by"] == "lesion_id"


@pytest.mark.slow
def test_best_checkpoint_carries_what_it_needs(trained):
    import torch

    from dermlens.models import get_backbone
    from dermlens.training.checkpoint import load_model

    config, run = trained
    model, info = load_model(run.best_checkpoint)
    assert not model.training
    assert info.classes == HAM10000_CLASSES
    assert (info.preprocessing.height, info.preprocessing.width) == (config.data.height, config.data.width)
    spec = get_backbone("efficientnet_lite0")
    assert info.preprocessing.mean == spec.mean and info.preprocessing.std == spec.std
    assert info.backbone == "efficientnet_lite0"
    assert info.config == config.to_dict()
    assert 0.05 <= info.temperature <= 20
    assert info.metrics["held_out_subset"] == "test"
    assert 0.0 <= info.metrics["test"]["balanced_accuracy"] <= 1.0
    with torch.no_grad():
        probabilities = model(torch.zeros(2, 3, 150, 200)).softmax(1)
    assert probabilities.shape == (2, 7)


@pytest.mark.slow
def test_history_has_a_head_row_and_a_finetune_row(trained):
    _, run = trained
    rows = read_history(run.out_dir)
    assert [(r["stage"], r["epoch"]) for r in rows] == [("head", "0"), ("finetune", "1")]
    assert [(r["stage"], r["epoch"]) for r in run.history] == [("head", 0), ("finetune", 1)]
    for row in rows:
        assert 0.0 <= float(row["val_balanced_accuracy"]) <= 1.0
        assert float(row["val_loss"]) > 0
    assert float(rows[1]["train_loss"]) > 0 and float(rows[1]["lr"]) >= 0


@pytest.mark.slow
def test_every_finetuning_step_learns(trained_with_lrs):
    """The schedule spans the steps actually taken: no step runs at a learning rate of zero.

    An epoch of n images in batches of b takes ceil(n / b) steps (only a last batch of a single
    image is dropped), not n // b.
    """
    config, run, step_lrs = trained_with_lrs
    train_size = len(json.loads((run.out_dir / "split.json").read_text())["subsets"]["train"])
    batch = config.training.batch_size
    expected_steps = train_size // batch + (train_size % batch > 1)
    assert len(step_lrs) == expected_steps * config.training.epochs
    assert all(lr > 0 for lr in step_lrs), step_lrs


@pytest.mark.slow
def test_held_out_metrics(trained):
    _, run = trained
    metrics = json.loads((run.out_dir / "evaluation" / "metrics.json").read_text())
    assert 0.0 <= metrics["balanced_accuracy"] <= 1.0
    assert metrics["balanced_accuracy"] == pytest.approx(run.test_metrics["balanced_accuracy"])
    split = json.loads((run.out_dir / "split.json").read_text())
    assert np.sum(metrics["confusion_matrix"]) == len(split["subsets"]["test"])
    summary = json.loads((run.out_dir / "summary.json").read_text())
    assert summary["test"]["balanced_accuracy"] == pytest.approx(metrics["balanced_accuracy"])
    assert summary["selected_stage"] in ("head", "finetune")


@pytest.mark.slow
def test_evaluate_model_on_the_same_data(trained, dataset, tmp_path):
    from dermlens.evaluation.model_eval import evaluate_model

    _, run = trained
    metrics = evaluate_model(run.best_checkpoint, dataset, tmp_path / "eval", isic_submission=True)
    assert 0.0 <= metrics["balanced_accuracy"] <= 1.0
    assert np.sum(metrics["confusion_matrix"]) == len(dataset) == 105
    for name in ("metrics.json", "report.html", "report.md", "predictions.csv", "isic_submission.csv"):
        assert (tmp_path / "eval" / name).is_file(), name
    lines = (tmp_path / "eval" / "isic_submission.csv").read_text().splitlines()
    assert lines[0] == "image,MEL,NV,BCC,AKIEC,BKL,DF,VASC" and len(lines) == 106
    row = [float(v) for v in lines[1].split(",")[1:]]
    assert sum(row) == pytest.approx(1.0, abs=1e-5)


@pytest.mark.slow
def test_evaluation_reproduces_the_training_test_score(trained, dataset, tmp_path):
    """Training scores cached, resized images in torch; evaluation reads the files again in numpy:
    the held-out probabilities must agree."""
    from dermlens.evaluation.model_eval import evaluate_model

    _, run = trained
    test_ids = json.loads((run.out_dir / "split.json").read_text())["subsets"]["test"]
    position = {image_id: i for i, image_id in enumerate(dataset.ids)}
    test_set = dataset.subset([position[i] for i in test_ids])
    metrics = evaluate_model(run.best_checkpoint, test_set, tmp_path / "eval")
    assert metrics["balanced_accuracy"] == pytest.approx(run.test_metrics["balanced_accuracy"])

    def probabilities(folder: Path) -> dict[str, list[float]]:
        with open(folder / "predictions.csv", newline="") as handle:
            return {row["image_id"]: [float(row[f"prob_{c}"]) for c in HAM10000_CLASSES]
                    for row in csv.DictReader(handle)}

    during_training = probabilities(run.out_dir / "evaluation")
    after = probabilities(tmp_path / "eval")
    assert set(after) == set(during_training) == set(test_ids)
    for image_id in test_ids:
        np.testing.assert_allclose(after[image_id], during_training[image_id], atol=1e-5)


@pytest.mark.slow
def test_onnx_export_gives_the_checkpoint_probabilities(trained, dataset, tmp_path):
    from dermlens.evaluation.model_eval import load_scorer, score_dataset
    from dermlens.export.onnx import export_onnx
    from dermlens.inference.onnx_model import OnnxModel

    _, run = trained
    onnx_path = export_onnx(run.best_checkpoint, tmp_path / "export" / "model.onnx")
    assert onnx_path == tmp_path / "export" / "model.onnx" and onnx_path.is_file()
    exported = OnnxModel.load(onnx_path)
    checkpoint = load_scorer(run.best_checkpoint)
    assert exported.classes == checkpoint.classes == HAM10000_CLASSES
    assert exported.preprocessing == checkpoint.preprocessing
    assert exported.temperature == pytest.approx(checkpoint.temperature)

    expected = score_dataset(checkpoint, dataset)
    got = score_dataset(load_scorer(onnx_path), dataset)  # batches of 64 and 41: a dynamic batch axis
    assert got.shape == expected.shape == (105, 7)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4)
    np.testing.assert_allclose(got.sum(axis=1), 1.0, atol=1e-6)


@pytest.mark.slow
def test_rerun_with_the_same_config_resumes_without_repeating_epochs(trained, tmp_path, monkeypatch):
    import dermlens.training.finetune as finetune
    from dermlens.training.fit import fit

    config, run = trained
    run_dir = copy_run(run.out_dir, tmp_path)
    before = read_history(run_dir)
    epochs_trained = []
    monkeypatch.setattr(finetune, "train_epoch", lambda *a, **k: epochs_trained.append(1))
    rerun = fit(config, run_dir)
    assert not epochs_trained  # the one epoch asked for is done already
    rows = read_history(run_dir)
    finetune_epochs = [r["epoch"] for r in rows if r["stage"] == "finetune"]
    assert finetune_epochs == ["1"]
    assert [r["stage"] for r in rows].count("head") == 1
    assert rows == before
    assert len(rerun.history) == len(before)


@pytest.mark.slow
@pytest.mark.parametrize("change", ["training.epochs=2", "training.lr=0.001"])
def test_changed_config_in_the_same_folder_is_an_error(trained, tmp_path, change):
    """A finished or interrupted run continues only with its own config (by design, even to add epochs)."""
    from dermlens.training.fit import fit

    config, run = trained
    run_dir = copy_run(run.out_dir, tmp_path)
    last = (run_dir / "last.pt").read_bytes()
    changed = tiny_config(config.data.path, config.data.cache_dir, change)
    with pytest.raises(ConfigError, match="another configuration"):
        fit(changed, run_dir)
    assert (run_dir / "last.pt").read_bytes() == last


@pytest.mark.slow
def test_rejected_config_leaves_the_run_folder_as_it_was(trained, tmp_path):
    from dermlens.training.fit import fit

    config, run = trained
    run_dir = copy_run(run.out_dir, tmp_path)
    changed = tiny_config(config.data.path, config.data.cache_dir, "training.lr=0.001")
    with pytest.raises(ConfigError):
        fit(changed, run_dir)
    # config.yaml must still describe the run that best.pt and last.pt come from
    assert load_config(run_dir / "config.yaml") == config


@pytest.mark.slow
def test_switching_an_existing_run_to_head_only_is_a_config_error(trained, tmp_path):
    from dermlens.training.fit import fit

    config, run = trained
    run_dir = copy_run(run.out_dir, tmp_path)
    changed = tiny_config(config.data.path, config.data.cache_dir, "training.finetune=none")
    with pytest.raises(ConfigError, match="another configuration"):
        fit(changed, run_dir)


@pytest.mark.slow
def test_fresh_run_ignores_an_earlier_last_checkpoint(trained, tmp_path, monkeypatch):
    """``resume=False`` (``dermlens train --fresh``) trains again instead of resuming from last.pt."""
    import dermlens.training.finetune as finetune
    from dermlens.training.fit import fit

    config, run = trained
    run_dir = copy_run(run.out_dir, tmp_path)
    calls = []
    real_train_epoch = finetune.train_epoch

    def counting_train_epoch(*args, **kwargs):
        calls.append(kwargs["description"])
        return real_train_epoch(*args, **kwargs)

    monkeypatch.setattr(finetune, "train_epoch", counting_train_epoch)
    fresh = fit(config, run_dir, resume=False)
    assert calls == ["Epoch 1/1"]
    assert [(r["stage"], r["epoch"]) for r in fresh.history] == [("head", 0), ("finetune", 1)]


class Interrupted(Exception):
    """Stands in for a kill (Ctrl-C, time limit) in the middle of an epoch."""


def interrupt_in_epoch_2(monkeypatch) -> list[str]:
    """Make fine-tuning die when its second epoch starts; returns the epochs started, as they start."""
    import dermlens.training.finetune as finetune

    real_train_epoch = finetune.train_epoch
    started: list[str] = []

    def dies_in_epoch_2(*args, **kwargs):
        started.append(kwargs["description"])
        if kwargs["description"].startswith("Epoch 2/"):
            raise Interrupted
        return real_train_epoch(*args, **kwargs)

    monkeypatch.setattr(finetune, "train_epoch", dies_in_epoch_2)
    return started


@pytest.mark.slow
def test_interrupted_run_resumes_from_its_last_epoch(ham_small, cache_dir, tmp_path, monkeypatch):
    import dermlens.training.finetune as finetune
    from dermlens.training.checkpoint import read_checkpoint
    from dermlens.training.fit import fit

    config = tiny_config(ham_small, cache_dir, "training.epochs=2")
    run_dir = tmp_path / "run"
    real_train_epoch = finetune.train_epoch
    started = interrupt_in_epoch_2(monkeypatch)
    with pytest.raises(Interrupted):
        fit(config, run_dir)
    assert started == ["Epoch 1/2", "Epoch 2/2"]
    assert read_checkpoint(run_dir / "last.pt")["epoch"] == 1
    first_attempt = read_history(run_dir)
    assert [(r["stage"], r["epoch"]) for r in first_attempt] == [("head", "0"), ("finetune", "1")]

    monkeypatch.setattr(finetune, "train_epoch", real_train_epoch)
    run = fit(config, run_dir)
    rows = read_history(run_dir)
    assert [(r["stage"], r["epoch"]) for r in rows] == [("head", "0"), ("finetune", "1"), ("finetune", "2")]
    assert rows[:2] == first_attempt  # carried over, not recomputed
    assert read_checkpoint(run_dir / "last.pt")["epoch"] == 2
    assert [r["epoch"] for r in run.history] == [0, 1, 2]
    assert (run_dir / "evaluation" / "metrics.json").is_file()


@pytest.mark.slow
def test_a_time_budget_too_short_for_an_epoch_still_ends_with_an_evaluated_model(ham_small, cache_dir, tmp_path):
    """The budget counts the epoch ahead and the evaluation after it: with almost no time the run
    keeps its head-stage model, skips fine-tuning, and still calibrates and evaluates it."""
    from dermlens.training.fit import fit

    run = fit(tiny_config(ham_small, cache_dir, "training.max_minutes=0.001", "training.epochs=3"),
              tmp_path / "budget")
    assert [row["stage"] for row in run.history] == ["head"]
    assert (tmp_path / "budget" / "evaluation" / "metrics.json").is_file()
    summary = json.loads((tmp_path / "budget" / "summary.json").read_text())
    assert summary["selected_stage"] == "head"


@pytest.mark.slow
def test_the_predictor_on_the_export_predicts_as_the_checkpoint(trained, ham_small, tmp_path):
    """Parity on real image files: decoding, colour constancy and resizing read from the ONNX metadata."""
    import dataclasses

    import torch

    from dermlens.data.images import load_rgb
    from dermlens.export.onnx import export_onnx
    from dermlens.export.reference import serving_gates_for
    from dermlens.inference.calibration import softmax
    from dermlens.inference.gates import ServingGates
    from dermlens.inference.predictor import Predictor
    from dermlens.training.checkpoint import load_model

    _, run = trained
    density, gates = serving_gates_for(run.best_checkpoint)  # the run's own data and split
    assert density is not None and gates.not_skin_threshold is not None
    assert 0 < gates.min_confidence < 1
    assert gates.evidence["not_skin"]["validation_rejected"] <= 0.05
    path = export_onnx(run.best_checkpoint, tmp_path / "model.onnx", density=density, gates=gates)
    predictor = Predictor.load(path)
    assert predictor.model.has_not_skin_check
    assert predictor.model.preprocessing.colour_constancy == 6.0
    # every image answered, so that all 30 can be compared (the gates are tested with the real model)
    predictor.model = dataclasses.replace(predictor.model, gates=ServingGates(min_confidence=0.0))
    model, info = load_model(run.best_checkpoint)
    paths = sorted((ham_small / "images").glob("*.jpg"))[:30]
    predictions = predictor.predict_many(paths, progress=False)
    with torch.inference_mode():
        expected = np.concatenate([softmax(model(torch.from_numpy(info.preprocessing(load_rgb(p)))).numpy(),
                                           info.temperature) for p in paths])
    got = np.array([[p.probabilities[c] for c in info.classes] for p in predictions])
    assert np.abs(got - expected).max() < 1e-4
    scores = np.array([p.not_skin_score for p in predictions])
    assert np.isfinite(scores).all() and (scores > 0).all()


@pytest.mark.slow
def test_per_class_decision_rule_is_fitted_on_validation_and_travels_with_the_model(ham_small, cache_dir,
                                                                                   dataset, tmp_path):
    """training.decision_rule=per_class: the refined bias is what the checkpoint stores, what the
    held-out test was measured with, and it scores at least the shared-tau rule on validation."""
    from dermlens.evaluation.model_eval import evaluate_model
    from dermlens.training.checkpoint import load_model
    from dermlens.training.fit import fit

    run = fit(tiny_config(ham_small, cache_dir, "training.epochs=0", "training.finetune=none",
                          "training.decision_rule=per_class"), tmp_path / "run")
    _, info = load_model(run.best_checkpoint)
    summary = json.loads((run.out_dir / "summary.json").read_text())
    assert summary["decision_rule"] == info.metrics["decision_rule"] == "per_class"
    assert info.decision_bias is not None and len(info.decision_bias) == len(HAM10000_CLASSES)

    subsets = json.loads((run.out_dir / "split.json").read_text())["subsets"]
    position = {image_id: i for i, image_id in enumerate(dataset.ids)}

    def scored(subset: str) -> float:
        part = dataset.subset([position[i] for i in subsets[subset]])
        return evaluate_model(run.best_checkpoint, part, tmp_path / subset)["balanced_accuracy"]

    assert scored("test") == pytest.approx(run.test_metrics["balanced_accuracy"])
    assert scored("val") >= run.history[-1]["val_balanced_accuracy"] - 1e-9


class FakeClock:
    """Ten seconds pass at every look at the clock, so a time budget runs out after a known number
    of training steps whatever the machine's speed."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        self.now += 10.0
        return self.now


@pytest.mark.slow
def test_an_epoch_that_overruns_the_budget_is_cut_short_and_the_run_still_ends_evaluated(
        ham_small, cache_dir, tmp_path, monkeypatch):
    """A slow network's first epoch has no earlier epoch to estimate from: it is cut when one more
    step would leave too little time to validate and test, and the model it reached is kept."""
    from dermlens.training.fit import Trainer, fit

    monkeypatch.setattr(Trainer, "clock", staticmethod(FakeClock()))
    run = fit(tiny_config(ham_small, cache_dir, "model.pretrained=false", "training.head_epochs=0",
                          "training.finetune=all", "training.epochs=3", "training.max_minutes=1.5"),
              tmp_path / "run")
    rows = read_history(run.out_dir)
    assert [(r["stage"], r["epoch"]) for r in rows] == [("finetune", "1")]
    assert 0.0 < float(rows[0]["epoch_fraction"]) < 1.0
    assert (run.out_dir / "best.pt").is_file() and (run.out_dir / "evaluation" / "metrics.json").is_file()
    summary = json.loads((run.out_dir / "summary.json").read_text())
    assert summary["selected_epoch"] == 1


@pytest.mark.slow
def test_a_resumed_run_counts_the_minutes_it_spent_before_the_stop(ham_small, cache_dir, tmp_path, monkeypatch):
    from dermlens.training.fit import Trainer, fit

    import dermlens.training.finetune as finetune

    run_dir = tmp_path / "run"
    config = tiny_config(ham_small, cache_dir, "training.epochs=3")
    real_train_epoch = finetune.train_epoch
    interrupt_in_epoch_2(monkeypatch)
    with pytest.raises(Interrupted):
        fit(config, run_dir)
    spent = max(float(r["seconds"]) for r in read_history(run_dir))
    monkeypatch.setattr(finetune, "train_epoch", real_train_epoch)
    seen: list[float] = []
    real_restore = Trainer.restore

    def restore_and_look(self, previous):
        real_restore(self, previous)
        seen.append(self.minutes())

    monkeypatch.setattr(Trainer, "restore", restore_and_look)
    fit(config, run_dir)
    assert seen and seen[0] >= spent / 60
