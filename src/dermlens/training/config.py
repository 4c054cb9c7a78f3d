"""A run, described by a frozen dataclass tree loaded from YAML and overridden from the command line.

The defaults are the single-model recipe (``configs/single.yaml`` spells it out and adds a time budget;
the default recipe, ``configs/default.yaml``, trains two such models as an ensemble),
so ``dermlens train --data D --out R`` without ``--config`` trains one model of that recipe.

>>> config = load_config(None, ["training.epochs=3", "model.backbone=efficientnet_lite1"])
>>> config.training.epochs, config.model.backbone
(3, 'efficientnet_lite1')
"""

from __future__ import annotations

import copy
import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from dermlens.errors import ConfigError
from dermlens.training.decision_rule import DecisionRule

Weighting = Literal["none", "balanced", "sqrt"]
ImbalanceLoss = Literal["weighted", "logit_adjusted"]
Finetune = Literal["none", "last", "all"]
Schedule = Literal["cosine", "onecycle", "constant"]
#: after training, on validation: one temperature, or a matrix scaling on top of it where it pays
#: (`dermlens.inference.matrix_scaling`)
Calibration = Literal["temperature", "matrix"]


@dataclass(frozen=True)
class DataConfig:
    path: str = ""
    images: str = ""  # image folder when `path` is a CSV whose images live elsewhere
    split_file: str = ""  # reuse a saved split instead of drawing one
    fractions: tuple[float, float, float] = (0.70, 0.15, 0.15)
    seed: int = 0
    height: int = 192
    width: int = 256
    colour_constancy: float = 0.0  # Shades-of-Gray p-norm (6 is the usual choice); 0 = off
    cache_dir: str = ""  # default: ~/.cache/dermlens
    classes: tuple[str, ...] = ()  # train on these labels only (all when empty)
    sites: tuple[str, ...] = ()  # only images of these body sites (metadata column localization)
    exclude_sites: tuple[str, ...] = ()  # leave out images of these body sites


@dataclass(frozen=True)
class ModelConfig:
    backbone: str = "efficientnet_lite0"
    pretrained: bool = True
    weights_path: str = ""
    dropout: float = 0.2
    use_metadata: bool = False  # fuse age, sex and body site into the head


@dataclass(frozen=True)
class AugmentConfig:
    flip: bool = True
    rotate: bool = True  # any angle: a lesion has no up or down
    zoom: tuple[float, float] = (1.0, 1.35)  # random resized crop by zooming in
    translate: float = 0.08
    brightness: float = 0.2
    contrast: float = 0.2
    saturation: float = 0.2
    channel_gain: float = 0.08  # white-balance shifts between cameras and clinics
    aspect: float = 0.0  # stretch one axis by up to this fraction: images resized from other shapes
    low_resolution: float = 0.0  # probability of a down-and-up resample: other cameras and sizes


@dataclass(frozen=True)
class TrainingConfig:
    head_epochs: int = 60  # linear head on cached features; 0 skips the stage
    head_lr: float = 3e-3
    finetune: Finetune = "last"
    finetune_stages: int = 7  # with finetune=last: how many trailing stages learn
    freeze_batchnorm: bool = True  # keep pretrained BatchNorm statistics while fine-tuning
    epochs: int = 9
    batch_size: int = 32
    lr: float = 3e-4
    weight_decay: float = 1e-2
    schedule: Schedule = "cosine"
    warmup_steps: int = 150
    ema_decay: float = 0.998  # > 0: evaluate and keep an exponential moving average of the weights
    class_weighting: Weighting = "sqrt"
    #: "logit_adjusted" (Menon et al., 2021) adds log class priors to the logits while training, so
    #: the plain logits at prediction time aim at balanced accuracy without huge per-class weights
    imbalance_loss: ImbalanceLoss = "weighted"
    #: shift the decision towards rare classes after training: logits - tau * log(training prior),
    #: tau chosen on validation, baked into the classifier bias (post-hoc logit adjustment)
    prior_correction: bool = True
    #: with prior_correction: "prior" keeps that one shared tau; "per_class" then moves each class's
    #: shift on its own to raise validation balanced accuracy (`dermlens.training.decision_rule`)
    decision_rule: DecisionRule = "prior"
    #: "matrix" calibrates class by class; its probabilities carry the real class frequencies, so the
    #: decision's prior correction (tau) is chosen again on them, whatever prior_correction says
    calibration: Calibration = "matrix"
    sampling: Weighting = "none"
    label_smoothing: float = 0.1
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    max_minutes: float = 0.0  # 0 = no time budget
    seed: int = 0
    threads: int = 0  # 0 = all cores
    select_metric: str = "balanced_accuracy"


@dataclass(frozen=True)
class EnsembleMember:
    """One member of an ensemble recipe: the recipe above it with ``settings`` changed."""

    name: str
    settings: dict[str, Any] = field(default_factory=dict)  # dotted keys, e.g. {"data.height": 150}
    share: float = 1.0  # its share of the run's time budget (training.max_minutes)


@dataclass(frozen=True)
class RunConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    #: train these members one after another on one split and answer with their average
    #: (`dermlens.training.ensemble`); empty: one model
    ensemble: tuple[EnsembleMember, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return _plain(dataclasses.asdict(self))


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _coerce(kind: Any, value: Any, where: str) -> Any:
    """Turn a YAML or command-line value into the field's declared type, or say what is expected."""
    origin = typing.get_origin(kind)
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where} must be a mapping, got {value!r}")
        return dict(value)
    if dataclasses.is_dataclass(kind):
        if not isinstance(value, dict):
            raise ConfigError(f"{where} must be a mapping, got {value!r}")
        return _build(kind, value, where)
    if origin is Literal:
        if value not in typing.get_args(kind):
            raise ConfigError(f"{where} must be one of {list(typing.get_args(kind))}, got {value!r}")
        return value
    if origin is tuple:
        items = value if isinstance(value, (list, tuple)) else str(value).split(",")
        args = typing.get_args(kind)
        if len(args) == 2 and args[1] is Ellipsis:  # any length: a list, or "a,b" on the command line
            return tuple(_coerce(args[0], v, where) for v in items if str(v).strip())
        if len(items) != len(args):
            raise ConfigError(f"{where} needs {len(args)} comma-separated values, got {value!r}")
        return tuple(_coerce(a, v, where) for a, v in zip(args, items))
    try:
        if kind is bool:
            if isinstance(value, str):
                if value.lower() not in ("true", "false", "yes", "no", "1", "0"):
                    raise ValueError
                return value.lower() in ("true", "yes", "1")
            return bool(value)
        if kind in (int, float) and isinstance(value, bool):
            raise ValueError
        if kind is int and not float(value).is_integer():
            raise ValueError
        if kind is int:
            return int(float(value))
        if kind in (float, str):
            return kind(value) if value is not None else kind()
    except (TypeError, ValueError):
        raise ConfigError(f"{where} must be a {kind.__name__}, got {value!r}") from None
    return value


def _build(cls: type, values: dict[str, Any], where: str) -> Any:
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"unknown setting(s) {unknown} in {where or 'config'}; known: {sorted(known)}")
    kwargs = {k: _coerce(hints[k], v, f"{where}.{k}".lstrip(".")) for k, v in values.items()}
    return cls(**kwargs)


def _set_dotted(tree: dict, dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    node = tree
    for part in parents:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"cannot set {dotted!r}: {part!r} is not a section")
    node[leaf] = value


def load_config(path: str | Path | None, overrides: list[str] | None = None) -> RunConfig:
    """Defaults, then the YAML file, then ``key=value`` overrides (values parsed as YAML scalars)."""
    tree: dict[str, Any] = {}
    if path:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist")
        try:
            tree = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as error:
            raise ConfigError(f"{path} is not valid YAML: {error}") from None
        if not isinstance(tree, dict):
            raise ConfigError(f"{path} must hold a mapping of sections (data, model, training)")
    for item in overrides or []:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like section.key=value")
        key, raw = item.split("=", 1)
        _set_dotted(tree, key.strip(), yaml.safe_load(raw) if raw.strip() else "")
    return _build(RunConfig, tree, "")


def config_from_dict(tree: dict[str, Any], overrides: list[str] | None = None) -> RunConfig:
    """A `RunConfig` from its `to_dict` form (a checkpoint's or a run folder's), with overrides."""
    tree = copy.deepcopy(tree)
    for item in overrides or []:
        key, raw = item.split("=", 1)
        _set_dotted(tree, key.strip(), yaml.safe_load(raw) if raw.strip() else "")
    return _build(RunConfig, tree, "")


def same_config(recorded: dict[str, Any], config: RunConfig) -> bool:
    """Whether a recorded `to_dict` tree (a checkpoint's or a run folder's) asks for ``config``.

    Compared as configs, not as dicts, so a run recorded before a setting existed still matches when
    the setting is at its default; a tree this version cannot read does not match.
    """
    try:
        return config_from_dict(recorded) == config
    except ConfigError:
        return False


def save_config(config: RunConfig, path: Path) -> None:
    path.write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))
