"""Stage 2: fine-tune with augmentation, a schedule, a time budget, and a checkpoint every epoch."""

from __future__ import annotations

import time

import torch
from torch import nn

from dermlens.progress import say
from dermlens.training.checkpoint import atomic_save, read_checkpoint
from dermlens.training.loop import train_epoch
from dermlens.training.schedule import epoch_order, lr_factor
from dermlens.training.stages import freeze, set_train_mode, trainable_prefixes

LAST = "last.pt"


def _resume(trainer, optimizer, generator) -> tuple[int, int]:
    """Restore model, optimiser, history and random state from last.pt: (next epoch, step)."""
    path = trainer.out_dir / LAST
    if not path.is_file():
        return 1, 0
    state = read_checkpoint(path)
    if state["info"]["config"] != trainer.config.to_dict():
        from dermlens.errors import ConfigError

        raise ConfigError(f"{trainer.out_dir} holds a run with another configuration; "
                          f"use a new --out folder (or delete {path} to start over)")
    trainer.model.load_state_dict(state["state_dict"])
    optimizer.load_state_dict(state["optimizer"])
    generator.set_state(state["generator"])
    trainer.history = state["history"]
    trainer.best_score = state["best_score"]
    say(f"resuming {trainer.out_dir} after epoch {state['epoch']}")
    return state["epoch"] + 1, state["step"]


def run_finetuning(trainer) -> None:
    config, t = trainer.config, trainer.config.training
    model, data, dist = trainer.model, trainer.data, trainer.dist
    prefixes = trainable_prefixes(trainer.spec, t.finetune, t.finetune_stages)
    n_trainable = freeze(model, prefixes)
    say(f"fine-tuning {n_trainable:,} parameters ({t.finetune}) for up to {t.epochs} epochs")
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=t.lr,
                                  weight_decay=t.weight_decay)
    generator = torch.Generator().manual_seed(t.seed + dist.rank)
    first_epoch, step = _resume(trainer, optimizer, generator)
    wrapped = dist.wrap(model)
    loss_fn = nn.CrossEntropyLoss(weight=trainer.loss_weights(), label_smoothing=t.label_smoothing)
    train = data.split.train
    steps_per_epoch = max(1, len(train) // dist.world_size // t.batch_size)
    total_steps = steps_per_epoch * t.epochs
    counter = {"step": step}

    def on_step() -> None:
        counter["step"] += 1
        for group in optimizer.param_groups:
            group["lr"] = t.lr * lr_factor(counter["step"], total_steps, t.warmup_steps, t.schedule)

    counter["step"] -= 1
    on_step()  # the schedule applies from the first step, also after a resume
    last_epoch_minutes = 0.0
    for epoch in range(first_epoch, t.epochs + 1):
        over_budget = bool(t.max_minutes) and trainer.minutes() + last_epoch_minutes > t.max_minutes
        if dist.agree(over_budget):
            say(f"stopping before epoch {epoch}: the {t.max_minutes:g}-minute budget would be exceeded")
            break
        started = time.monotonic()
        set_train_mode(model, prefixes)
        order = train[epoch_order(data.targets[train], t.sampling, t.seed, epoch, dist.rank,
                                  dist.world_size)]
        row = train_epoch(wrapped, trainer.normalizer, data.images, data.targets, order,
                          metadata=data.metadata, batch_size=t.batch_size,
                          augment_config=t.augment, optimizer=optimizer, on_step=on_step,
                          loss_fn=loss_fn, generator=generator,
                          description=f"Epoch {epoch}/{t.epochs}")
        if dist.is_main:
            trainer.record({"epoch": epoch, "stage": "finetune", **row,
                            "lr": optimizer.param_groups[0]["lr"]})
            atomic_save({"format": "dermlens-checkpoint", "version": 1, "info": trainer.info.to_dict(),
                         "state_dict": model.state_dict(), "optimizer": optimizer.state_dict(),
                         "generator": generator.get_state(), "history": trainer.history,
                         "best_score": trainer.best_score, "epoch": epoch, "step": counter["step"]},
                        trainer.out_dir / LAST)
        dist.barrier()
        last_epoch_minutes = (time.monotonic() - started) / 60
    freeze(model, ("",))
