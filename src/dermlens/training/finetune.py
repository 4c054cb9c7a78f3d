"""Stage 2: fine-tune with augmentation, a schedule, a time budget, and a checkpoint every epoch."""

from __future__ import annotations

import torch

from dermlens.progress import say
from dermlens.training.averaging import WeightAverage
from dermlens.training.loop import train_epoch
from dermlens.training.schedule import epoch_order, lr_factor
from dermlens.training.stages import freeze, set_train_mode, trainable_prefixes


def _resume(previous: dict | None, optimizer, generator, average: WeightAverage) -> tuple[int, int]:
    """Optimiser and random state of an interrupted run (the model was restored already):
    (next epoch, step). A run stopped after its head stage starts fine-tuning at epoch 1."""
    if previous is None or "optimizer" not in previous:
        return 1, 0
    optimizer.load_state_dict(previous["optimizer"])
    generator.set_state(previous["generator"])
    if previous.get("weight_average"):
        average.load_state_dict(previous["weight_average"])
    return previous["epoch"] + 1, previous["step"]


def run_finetuning(trainer, previous: dict | None) -> None:
    config, t = trainer.config, trainer.config.training
    model, data, dist = trainer.model, trainer.data, trainer.dist
    prefixes = trainable_prefixes(trainer.spec, t.finetune, t.finetune_stages)
    n_trainable = freeze(model, prefixes)
    say(f"fine-tuning {n_trainable:,} parameters ({t.finetune}) for up to {t.epochs} epochs")
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=t.lr,
                                  weight_decay=t.weight_decay)
    generator = torch.Generator().manual_seed(t.seed + dist.rank)
    average = WeightAverage(model, t.ema_decay)
    first_epoch, step = _resume(previous, optimizer, generator, average)
    wrapped = dist.wrap(model)
    loss_fn = trainer.loss()
    train = data.split.train
    per_rank = len(train) // dist.world_size
    # the loop also runs a last partial batch (all but a batch of one image)
    steps_per_epoch = max(1, per_rank // t.batch_size + int(per_rank % t.batch_size > 1))
    total_steps = steps_per_epoch * t.epochs
    counter = {"step": step}

    def apply_schedule() -> None:
        for group in optimizer.param_groups:
            group["lr"] = t.lr * lr_factor(counter["step"], total_steps, t.warmup_steps, t.schedule)

    def on_step() -> None:
        average.update(model)
        counter["step"] += 1
        apply_schedule()

    apply_schedule()  # the schedule applies from the first step, also on resume
    # a random-initialised network has no statistics worth keeping
    freeze_batchnorm = t.freeze_batchnorm and bool(config.model.pretrained or config.model.weights_path)
    last_epoch_minutes = 0.0
    for epoch in range(first_epoch, t.epochs + 1):
        needed = last_epoch_minutes + trainer.finishing_minutes()
        over_budget = bool(t.max_minutes) and trainer.minutes() + needed > t.max_minutes
        if dist.agree(over_budget):
            say(f"stopping before epoch {epoch}: the {t.max_minutes:g}-minute budget would be exceeded")
            break
        started = trainer.clock()

        def out_of_time(steps_done: int) -> bool:
            """An epoch that overruns the budget anyway (the first one of a slow network, which has
            no earlier epoch to go by) ends when one more step would leave too little time to
            validate and test."""
            step_minutes = (trainer.clock() - started) / 60 / steps_done
            needed = step_minutes + trainer.finishing_minutes()
            return dist.agree(trainer.minutes() + needed > t.max_minutes)

        set_train_mode(model, prefixes, freeze_batchnorm)
        order = train[epoch_order(data.targets[train], t.sampling, t.seed, epoch, dist.rank,
                                  dist.world_size)]
        row = train_epoch(wrapped, trainer.normalizer, data.images, data.targets, order,
                          metadata=data.metadata, batch_size=t.batch_size,
                          augment_config=t.augment, optimizer=optimizer, on_step=on_step,
                          loss_fn=loss_fn, generator=generator,
                          description=f"Epoch {epoch}/{t.epochs}",
                          out_of_time=out_of_time if t.max_minutes else None)
        if dist.is_main:
            with average.applied(model):
                trainer.record({"epoch": epoch, "stage": "finetune", **row,
                                "lr": optimizer.param_groups[0]["lr"]})
            trainer.save_progress(epoch, optimizer=optimizer.state_dict(), step=counter["step"],
                                  generator=generator.get_state(), weight_average=average.state_dict())
        dist.barrier()
        last_epoch_minutes = (trainer.clock() - started) / 60
        if "epoch_fraction" in row:
            say(f"epoch {epoch} cut short after {row['epoch_fraction']:.0%} of its images: the "
                f"{t.max_minutes:g}-minute budget is spent")
            break
    freeze(model, ("",))
