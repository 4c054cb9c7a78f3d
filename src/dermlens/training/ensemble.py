"""Ensembles: train several members on one split, or combine finished runs, and answer with their average.

Averaging two fine-tuned EfficientNet-Lite0s that differ in input size and imbalance handling raised
HAM10000 test macro AUC by 0.01-0.015 over the better member in every pair measured (docs/results.md),
more than any single-model change tried. The result is one `EnsembleClassifier` checkpoint
(`dermlens.models.ensemble`), calibrated and given a decision rule on validation like any other, and
one ONNX graph when exported.

- `fit_ensemble(config, out_dir)`: the recipe's ``ensemble`` members, trained one after another in
  ``out_dir/members/NAME`` on one split, each with its share of the time budget; an interrupted run
  resumes (finished members are kept).
- `combine(checkpoints, out_dir)`: an ensemble of runs that already exist (`dermlens ensemble`).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from dermlens.errors import ConfigError, ModelFileError
from dermlens.models.ensemble import EnsembleClassifier, conversion_problem
from dermlens.progress import say
from dermlens.training.config import RunConfig, config_from_dict, load_config, save_config

MEMBERS = "members"
#: settings that define the split: every member must validate and test on the same images
SPLIT_SETTINGS = ("data.path", "data.images", "data.split_file", "data.fractions", "data.seed",
                  "data.classes", "data.sites", "data.exclude_sites")
#: minutes kept back from the members' budget for validating and testing the ensemble, per member
FINISH_MINUTES_PER_MEMBER = 0.75


def member_config(config: RunConfig, index: int) -> RunConfig:
    """The recipe of member ``index``: the ensemble's recipe with the member's settings and its share
    of the time budget. Members may not change what defines the split, so every member draws the same
    one from the same seed (`combine` checks it)."""
    member = config.ensemble[index]
    for key in member.settings:
        if key in SPLIT_SETTINGS or key.startswith("ensemble"):
            raise ConfigError(f"ensemble member {member.name!r} may not change {key}: all members "
                              f"are trained, validated and tested on one split")
    tree = config.to_dict()
    tree.pop("ensemble")
    overrides = [f"{key}={json.dumps(value)}" for key, value in member.settings.items()]
    total = config.training.max_minutes
    if total > 0:
        shares = [m.share for m in config.ensemble]
        if min(shares) <= 0:
            raise ConfigError("every ensemble member needs a share above 0 of the time budget")
        spare = total - FINISH_MINUTES_PER_MEMBER * len(shares)
        overrides.append(f"training.max_minutes={max(spare, 1.0) * member.share / sum(shares):.3f}")
    return config_from_dict(tree, overrides)


def fit_ensemble(config: RunConfig, out_dir: Path, *, resume: bool = True):
    """Train every member, then make, calibrate and test the ensemble in ``out_dir/best.pt``."""
    from dermlens.training.distributed import Distributed
    from dermlens.training.fit import BEST, fit

    names = [member.name for member in config.ensemble]
    if len(set(names)) != len(names) or not all(name and "/" not in name for name in names):
        raise ConfigError(f"ensemble members need distinct names without '/'; got {names}")
    started = time.monotonic()
    is_main = Distributed.from_environment().is_main
    out_dir.mkdir(parents=True, exist_ok=True)
    recorded = out_dir / "config.yaml"
    if resume and recorded.is_file() and load_config(recorded) != config:
        raise ConfigError(f"{out_dir} holds an ensemble run with another configuration; use a new "
                          f"--out folder, or --fresh to start this one over")
    if is_main:
        save_config(config, recorded)
    checkpoints = []
    for index, name in enumerate(names):
        say(f"ensemble member {index + 1} of {len(names)}: {name}")
        checkpoints.append(fit(member_config(config, index), out_dir / MEMBERS / name, resume=resume).best_checkpoint)
    if not is_main:
        from dermlens.training.fit import Run

        return Run(out_dir, out_dir / BEST)
    return combine(checkpoints, out_dir, names=names, config=config,
                   minutes_before=(time.monotonic() - started) / 60)


def combine(checkpoints: list[Path], out_dir: Path, *, names: list[str] | None = None,
            config: RunConfig | None = None, data_path: str | None = None, minutes_before: float = 0.0):
    """An ensemble of finished runs' checkpoints, validated and tested on their common split.

    The first checkpoint is the primary member: the ensemble takes images at its size and reads its
    dataset and split (``data_path`` points elsewhere when the dataset has moved).
    """
    from dermlens.inference.decision import decision_bias
    from dermlens.training.augment import Normalizer
    from dermlens.training.checkpoint import load_model, save_ensemble
    from dermlens.training.dataprep import prepare_data
    from dermlens.training.decision_rule import log_class_prior
    from dermlens.training.finish import calibrate_and_test, report_held_out
    from dermlens.training.fit import BEST, Run, _validation_scores
    from dermlens.training.loop import predict_logits

    started = time.monotonic()
    checkpoints = [Path(c) for c in checkpoints]
    if len(checkpoints) < 2:
        raise ConfigError("an ensemble needs at least two models")
    names = list(names) if names else [_member_name(c) for c in checkpoints]
    if len(names) != len(checkpoints) or len(set(names)) != len(names):
        raise ConfigError(f"give one distinct name per member: {len(checkpoints)} models, names {names}")
    members = [load_model(c) for c in checkpoints]
    infos = [info for _, info in members]
    _check_compatible(checkpoints, infos)
    split_file = _common_split(checkpoints)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    overrides = [f"data.split_file={split_file}"] + ([f"data.path={data_path}"] if data_path else [])
    primary = config_from_dict(infos[0].config, overrides)
    data = prepare_data(primary, out_dir)
    model = EnsembleClassifier([m for m, _ in members], [i.temperature for i in infos],
                               [i.preprocessing for i in infos]).eval()
    normalizer = Normalizer(data.preprocessing.mean, data.preprocessing.std)

    def logits_of(indices: np.ndarray, label: str) -> np.ndarray:
        return predict_logits(model, normalizer, data.images, indices, description=label)

    val = data.split.val
    val_logits = logits_of(val, "Validating the ensemble")
    log_prior = log_class_prior(data.targets[data.split.train], len(data.dataset.classes))
    validation = _validation_scores(val_logits, data.targets[val], data.dataset.classes, log_prior)
    tau = validation.pop("prior_tau")
    bias = tuple(decision_bias(log_prior, tau).tolist()) if tau else None
    recipe = (config or primary).training
    rule = recipe.decision_rule
    result = calibrate_and_test(logits_of, data, bias, out_dir, f"dermlens ensemble of {len(members)}",
                                val_logits=val_logits, rule=rule, calibration=recipe.calibration)
    minutes = minutes_before + (time.monotonic() - started) / 60
    info = _ensemble_info(names, checkpoints, infos, result.temperature, result.decision_bias,
                          config.to_dict() if config is not None else primary.to_dict())
    if result.output_map is not None:
        matrix, shift = result.output_map
        info.temperature, info.output_map = 1.0, {"matrix": matrix.tolist(), "bias": shift.tolist()}
    info.metrics = {**result.summary(), "prior_tau": result.calibration.get("prior_tau", tau), "decision_rule": rule, "validation": validation,
                    "members": [dict(line) for line in info.members], "minutes": round(minutes, 2)}
    save_ensemble(members, info, out_dir / BEST)
    (out_dir / "summary.json").write_text(json.dumps(info.metrics, indent=2))
    report_held_out(result, minutes, out_dir)
    say(f"best checkpoint: {out_dir / BEST}")
    return Run(out_dir, out_dir / BEST, [], result.metrics, minutes)


def _ensemble_info(names: list[str], checkpoints: list[Path], infos: list, temperature: float,
                   bias: tuple[float, ...] | None, config: dict):
    """The ensemble's `ModelInfo`: the primary member's classes and preprocessing, its own calibration
    and decision rule, and one line per member."""
    from dermlens.training.checkpoint import ModelInfo

    lines = tuple({"name": name, "backbone": info.backbone, "height": info.preprocessing.height,
                   "width": info.preprocessing.width, "colour_constancy": info.preprocessing.colour_constancy,
                   "temperature": info.temperature, "checkpoint": str(path), **_member_scores(info)}
                  for name, info, path in zip(names, infos, checkpoints))
    primary = infos[0]
    return ModelInfo(backbone=primary.backbone, classes=primary.classes, preprocessing=primary.preprocessing,
                     dropout=primary.dropout, temperature=temperature, decision_bias=bias, config=config,
                     members=lines)


def _member_name(checkpoint: Path) -> str:
    return checkpoint.parent.name or checkpoint.stem


def _member_scores(info) -> dict:
    subset = info.metrics.get("held_out_subset")
    scores = info.metrics.get(subset, {}) if subset else {}
    return {f"{subset}_{k}": scores[k] for k in ("balanced_accuracy", "macro_auc") if k in scores}


def _check_compatible(checkpoints: list[Path], infos: list) -> None:
    first = infos[0]
    for path, info in zip(checkpoints, infos):
        if info.members:
            raise ModelFileError(f"{path} is an ensemble already; combine its members' checkpoints")
        if info.classes != first.classes:
            raise ModelFileError(f"{path} predicts {list(info.classes)}, {checkpoints[0]} predicts "
                                 f"{list(first.classes)}: ensemble members need the same classes")
        if info.n_metadata:
            raise ModelFileError(f"{path} uses patient metadata; ensembles of such models are not supported")
        problem = conversion_problem(first.preprocessing, info.preprocessing)
        if problem:
            raise ModelFileError(f"{path} cannot follow {checkpoints[0]} in an ensemble: {problem}")


def _common_split(checkpoints: list[Path]) -> Path:
    """The split file the members were trained on; the same one for all, or a clear error."""
    splits = []
    for path in checkpoints:
        split_file = path.parent / "split.json"
        if not split_file.is_file():
            raise ModelFileError(f"{split_file} is missing: an ensemble is validated and tested on its "
                                 f"members' split, so each checkpoint must sit in its run folder")
        splits.append((split_file, json.loads(split_file.read_text()).get("subsets")))
    for split_file, subsets in splits[1:]:
        if subsets != splits[0][1]:
            raise ModelFileError(f"{split_file} and {splits[0][0]} are different splits: ensemble "
                                 f"members must be trained on one split (set data.split_file)")
    return splits[0][0]
