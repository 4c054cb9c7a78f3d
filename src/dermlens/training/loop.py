"""The pieces of one epoch: a training pass with augmentation, and batched prediction."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from dermlens.models.ensemble import primary_member
from dermlens.progress import track
from dermlens.training.augment import Normalizer, augment, to_float
from dermlens.training.config import AugmentConfig


def _rows(metadata: np.ndarray | None, chunk: np.ndarray) -> torch.Tensor | None:
    return None if metadata is None else torch.from_numpy(metadata[chunk])


def batches(indices: np.ndarray, batch_size: int) -> list[np.ndarray]:
    return [indices[i:i + batch_size] for i in range(0, len(indices), batch_size)]


def train_epoch(model: nn.Module, normalizer: Normalizer, images: np.ndarray, targets: np.ndarray,
                order: np.ndarray, *, metadata: np.ndarray | None, batch_size: int,
                augment_config: AugmentConfig,
                optimizer: torch.optim.Optimizer, on_step, loss_fn: nn.Module,
                generator: torch.Generator, description: str,
                out_of_time: Callable[[int], bool] | None = None) -> dict[str, float]:
    """One pass over ``order``; ``on_step()`` advances the learning-rate schedule.

    ``out_of_time(steps_done)``, asked after every step, ends the pass early (a time budget that an
    epoch overruns); the row then says which ``epoch_fraction`` of the images it saw.
    """
    total_loss, correct, seen = 0.0, 0, 0
    # a last batch of one image would break BatchNorm in train mode
    chunks = [c for c in batches(order, batch_size) if len(c) > 1]
    for step, chunk in enumerate(track(chunks, description, total=len(chunks))):
        chunk = np.sort(chunk)  # memory-mapped arrays read faster in order
        labels = torch.from_numpy(targets[chunk])
        inputs = normalizer(augment(torch.from_numpy(np.asarray(images[chunk])), augment_config, generator))
        logits = model(inputs, _rows(metadata, chunk))
        loss = loss_fn(logits, labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        on_step()
        total_loss += loss.item() * len(chunk)
        correct += int((logits.argmax(1) == labels).sum())
        seen += len(chunk)
        # asked on every rank at every step but the last, so DDP ranks stay in step
        if out_of_time is not None and step + 1 < len(chunks) and out_of_time(step + 1):
            break
    row = {"train_loss": total_loss / max(seen, 1), "train_accuracy": correct / max(seen, 1)}
    if seen < sum(len(c) for c in chunks):
        row["epoch_fraction"] = round(seen / len(order), 3)
    return row


@torch.inference_mode()
def predict_logits(model: nn.Module, normalizer: Normalizer, images: np.ndarray,
                   indices: np.ndarray | None = None, *, metadata: np.ndarray | None = None,
                   batch_size: int = 16,  # larger batches fall out of the CPU caches and run slower
                   description: str = "Predicting", features_only: bool = False) -> np.ndarray:
    """Logits (or pooled features) for ``images[indices]`` in eval mode, no augmentation.

    Pooled features of a frozen network go through ONNX Runtime (faster), logits through PyTorch.
    """
    was_training = model.training
    model.eval()
    indices = np.arange(len(images)) if indices is None else np.asarray(indices)
    outputs = []
    chunks = batches(indices, batch_size)
    if features_only:
        from dermlens.training.onnx_runtime import pooled_features

        def normalize(batch: np.ndarray) -> np.ndarray:
            return normalizer(to_float(torch.from_numpy(batch))).contiguous().numpy()

        features = pooled_features(model, (np.asarray(images[chunk]) for chunk in
                                           track(chunks, description, total=len(chunks))), normalize)
        if features is not None:
            model.train(was_training)
            return features
    for chunk in track(chunks, description, total=len(chunks)):
        inputs = normalizer(to_float(torch.from_numpy(np.asarray(images[chunk]))))
        out = model.features(inputs) if features_only else model(inputs, _rows(metadata, chunk))
        outputs.append(out.float().numpy())
    model.train(was_training)
    if outputs:
        return np.concatenate(outputs)
    width = model.n_features if features_only else primary_member(model).classifier.out_features
    return np.zeros((0, width), np.float32)


def train_head(classifier: nn.Linear, features: np.ndarray, targets: np.ndarray, *,
               epochs: int, lr: float, loss_fn: nn.Module, seed: int) -> None:
    """Fit the linear head on cached backbone features (seconds), in place."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.from_numpy(np.asarray(features, np.float32))
    y = torch.from_numpy(targets)
    optimizer = torch.optim.AdamW(classifier.parameters(), lr=lr, weight_decay=1e-3)
    steps = max(1, len(x) // 256)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs * steps)
    classifier.train()
    for _ in track(range(epochs), "Training head on cached features", total=epochs):
        order = torch.randperm(len(x), generator=generator)
        for chunk in order.split(256):
            # dropout on features stands in for the augmentation the cached stage cannot do
            inputs = nn.functional.dropout(x[chunk], p=0.3, training=True)
            loss = loss_fn(classifier(inputs), y[chunk])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
