"""Running one iteration: gather the tagged images, train (quick or advanced), keep the model, the
held-out probabilities for the metrics, and the new model's suggestions for untagged images.

The result is a dermlens checkpoint and its ONNX export (the same self-describing format as every
dermlens model, with the tag names as classes), both in the object store.
"""

from __future__ import annotations

import logging
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from dermlens.projects.iterations import Iterations
from dermlens.projects.metrics import held_out_record
from dermlens.projects.quick import Report, fit_quick_head, image_features, preprocessing_for, tag_probabilities
from dermlens.projects.schema import ImageRecord, Iteration, PredictionRecord
from dermlens.projects.store import ProjectStore
from dermlens.storage import ObjectStore

log = logging.getLogger("dermlens.projects")


def _stage(report: Report, start: float, end: float) -> Report:
    return lambda fraction, message: report(start + (end - start) * fraction, message)


def model_keys(iteration: Iteration) -> tuple[str, str]:
    return f"iteration-{iteration.id}-model.onnx", f"iteration-{iteration.id}-checkpoint.pt"


def run_iteration(store: ProjectStore, iteration: Iteration, report: Report) -> dict:
    """Train ``iteration`` and store its model; -> its metrics record. Progress goes to ``report``."""
    config = iteration.config
    tag_ids = list(config["tag_ids"])
    multiclass = config["project_kind"] == "multiclass"
    rows = [(image, tags) for image, tags in store.labelled_images(iteration.project_id)
            if set(tags) & set(tag_ids)]
    truth = np.array([[t in tags for t in tag_ids] for _, tags in rows], bool)
    hashes = [image.sha256 for image, _ in rows]
    from dermlens.inference.onnx_model import OnnxModel

    with tempfile.TemporaryDirectory(prefix="dermlens-iteration-") as folder:
        work = Path(folder)
        held: list[int] = []
        if config["kind"] == "quick":
            features = image_features(config["backbone"], hashes, store.blobs, _stage(report, 0.0, 0.7))
            head, held_out, chosen = fit_quick_head(features, truth, multiclass, _stage(report, 0.7, 0.85))
            report(0.86, "building the model")
            checkpoint = _quick_checkpoint(config, head, work)
            record = held_out_record(config["tags"], [image.id for image, _ in rows], truth, held_out,
                                     validation=f"{chosen['folds']}-fold cross-validation (each image scored "
                                                f"by a head that never saw it)")
            record["training"] = chosen
        else:
            checkpoint, held, training = _fine_tune(store, config, rows, truth, work, _stage(report, 0.0, 0.9))
        report(0.92, "exporting to ONNX")
        onnx_path = _export(checkpoint, work)
        model = OnnxModel.load(onnx_path)
        if held:  # advanced: scored by the exported model on the images fit() held out
            probabilities = stored_probabilities(model, store.blobs, [rows[i][0] for i in held], multiclass)
            record = held_out_record(config["tags"], [rows[i][0].id for i in held], truth[held], probabilities,
                                     validation=f"{len(held)} held-out images (20%, never trained on)")
            record["training"] = training
        model_key, checkpoint_key = model_keys(iteration)
        store.blobs.put(checkpoint_key, checkpoint.read_bytes())
        store.blobs.put(model_key, onnx_path.read_bytes())
        report(0.96, "suggesting tags for untagged images")
        _suggest(store, iteration, model, multiclass)
    return record


def stored_probabilities(model, blobs: ObjectStore, images: list[ImageRecord], multiclass: bool,
                         batch_size: int = 32) -> np.ndarray:
    """(N, n_tags) probabilities of an exported iteration model (an `OnnxModel`) for stored images."""
    from dermlens.projects.intake import read_stored

    preprocessing = model.preprocessing
    logits = [model.logits(preprocessing.normalize(np.stack(
        [preprocessing.prepare(read_stored(blobs.get(image.blob_key))) for image in images[i:i + batch_size]])))
        for i in range(0, len(images), batch_size)]
    return tag_probabilities(np.concatenate(logits), multiclass, model.temperature)


def _quick_checkpoint(config: dict, head, work: Path) -> Path:
    import torch

    from dermlens.models import create_model
    from dermlens.training.checkpoint import ModelInfo, save_model

    model = create_model(config["backbone"], n_classes=len(config["tags"]), pretrained=True, dropout=0.0)
    with torch.no_grad():
        model.classifier.weight.copy_(torch.from_numpy(head.weights.astype(np.float32)))
        model.classifier.bias.copy_(torch.from_numpy(head.bias.astype(np.float32)))
    info = ModelInfo(backbone=config["backbone"], classes=tuple(config["tags"]),
                     preprocessing=preprocessing_for(config["backbone"]), dropout=0.0,
                     config={"project": {"kind": config["project_kind"], "iteration": config["kind"]}})
    path = work / "checkpoint.pt"
    save_model(model.eval(), info, path)
    return path


def _export(checkpoint: Path, work: Path) -> Path:
    from dermlens.export.onnx import export_onnx

    return export_onnx(checkpoint, work / "model.onnx")


def _fine_tune(store: ProjectStore, config: dict, rows, truth: np.ndarray, work: Path,
               report: Report) -> tuple[Path, list[int], dict]:
    """Fine-tune with the learning core (`dermlens.training.fit`) within the time budget; -> the
    checkpoint, the rows fit() held out for validation, and what the training did."""
    from dermlens.data.readers import read_dataset
    from dermlens.data.splits import load_split
    from dermlens.training.checkpoint import load_model, save_model
    from dermlens.training.config import DataConfig, ModelConfig, RunConfig, TrainingConfig
    from dermlens.training.fit import fit

    images = work / "images"
    images.mkdir()
    tokens = [f"tag{k:03d}" for k in range(len(config["tags"]))]  # tag names never meet the label aliases
    lines = ["image_id,label"]
    for (image, _), row in zip(rows, truth):
        (images / image.blob_key).write_bytes(store.blobs.get(image.blob_key))
        lines.append(f"{image.sha256},{tokens[int(row.argmax())]}")
    (work / "labels.csv").write_text("\n".join(lines) + "\n")
    budget = float(config["budget_minutes"])
    run_config = RunConfig(
        data=DataConfig(path=str(work / "labels.csv"), images=str(images), fractions=(0.8, 0.2, 0.0),
                        height=224, width=224, cache_dir=str(work / "cache")),
        model=ModelConfig(backbone=config["backbone"]),
        training=TrainingConfig(head_epochs=30, epochs=6, finetune="last", finetune_stages=4, warmup_steps=20,
                                max_minutes=budget, prior_correction=False, class_weighting="sqrt",
                                # a project's few validation images, and multilabel tags read by a
                                # sigmoid per tag: one temperature, not a matrix
                                calibration="temperature"))
    started = time.monotonic()
    done = threading.Event()

    def tick() -> None:  # fit() reports to the terminal; the job reports elapsed time against the budget
        while not done.wait(5.0):
            minutes = (time.monotonic() - started) / 60
            report(min(minutes / budget, 0.99), f"fine-tuning: {minutes:.1f} of {budget:.0f} minutes")

    ticker = threading.Thread(target=tick, daemon=True)
    ticker.start()
    try:
        run = fit(run_config, work / "run", resume=False)
    finally:
        done.set()
    model, info = load_model(run.best_checkpoint)
    info.classes = tuple(config["tags"])
    info.config = {**info.config, "project": {"kind": config["project_kind"], "iteration": "advanced"}}
    checkpoint = work / "checkpoint.pt"
    save_model(model, info, checkpoint)
    # the validation images are the ones fit() held out (its split file says which)
    dataset = read_dataset(run_config.data.path, images_dir=run_config.data.images)
    row_of = {image.sha256: k for k, (image, _) in enumerate(rows)}
    held = [row_of[dataset.ids[i]] for i in load_split(work / "run" / "split.json", dataset).val]
    training = {"minutes": round(run.minutes, 2), "budget_minutes": budget,
                "selected_epoch": info.metrics.get("selected_epoch")}
    return checkpoint, held, training


def _suggest(store: ProjectStore, iteration: Iteration, model, multiclass: bool) -> None:
    """The new model's guesses for the project's untagged images, kept for the "suggested" view."""
    untagged = store.untagged_images(iteration.project_id)
    if not untagged:
        return
    records = []
    for image, row in zip(untagged, stored_probabilities(model, store.blobs, untagged, multiclass)):
        top = int(row.argmax())
        records.append(PredictionRecord(project_id=iteration.project_id, iteration_id=iteration.id,
                                        image_id=image.id, source="suggestion",
                                        probabilities={t: float(p) for t, p in zip(model.classes, row)},
                                        top_tag=model.classes[top], top_probability=float(row[top])))
    with store.database.session() as session:
        session.add_all(records)
        session.commit()


def train_next(iterations: Iterations) -> Iteration | None:
    """Claim the oldest queued iteration and run it to the end (completed or failed); None if none."""
    iteration = iterations.claim()
    return None if iteration is None else train_claimed(iterations, iteration)


def train_claimed(iterations: Iterations, iteration: Iteration) -> Iteration:
    """Run an iteration this process has claimed to the end; -> it, completed or failed."""
    last = [0.0]

    def report(progress: float, message: str) -> None:
        now = time.monotonic()
        if now - last[0] >= 1.0 or progress >= 0.9:  # at most once a second, besides the last steps
            last[0] = now
            iterations.report(iteration.id, progress, message)

    try:
        record = run_iteration(iterations.store, iteration, report)
    except Exception as error:
        from dermlens.errors import DermlensError

        if not isinstance(error, DermlensError):
            log.exception("iteration %s failed", iteration.id)
        reason = str(error) if isinstance(error, DermlensError) else f"{type(error).__name__}: {error}"
        iterations.fail(iteration.id, f"training failed: {reason}")
        return iterations.by_id(iteration.id)
    model_key, checkpoint_key = model_keys(iteration)
    iterations.finish(iteration.id, metrics=record, model_key=model_key, checkpoint_key=checkpoint_key)
    return iterations.by_id(iteration.id)
