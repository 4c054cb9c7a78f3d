"""Run configuration: defaults, then a YAML file, then ``key=value`` overrides; mistakes name the key."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from dermlens.errors import ConfigError
from dermlens.training.config import (
    AugmentConfig,
    DataConfig,
    ModelConfig,
    RunConfig,
    TrainingConfig,
    load_config,
    same_config,
    save_config,
)

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def test_defaults():
    config = load_config(None)
    assert config == RunConfig()
    assert config.data == DataConfig() and config.model == ModelConfig()
    assert config.training == TrainingConfig() and config.training.augment == AugmentConfig()
    assert config.model.backbone == "efficientnet_lite0" and config.model.pretrained is True
    assert config.data.fractions == (0.70, 0.15, 0.15)
    assert (config.data.height, config.data.width) == (192, 256)
    assert config.training.select_metric == "balanced_accuracy"


def test_config_is_frozen():
    config = load_config(None)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.training.epochs = 3  # type: ignore[misc]


def test_yaml_file_then_overrides(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("data:\n  fractions: [0.6, 0.2, 0.2]\n  height: 120\n"
                    "training:\n  epochs: 5\n  finetune: last\n  augment:\n    zoom: [1.0, 1.2]\n")
    config = load_config(path, [
        "training.epochs=2",                 # an override beats the file
        "data.fractions=0.8,0.1,0.1",        # tuple from comma-separated values
        "model.pretrained=false",            # bool
        "model.use_metadata=yes",
        "training.sampling=sqrt",            # Literal
        "training.lr=1e-3",                  # float
        "training.augment.rotate=False",     # nested section
        "model.backbone=resnet50",           # str
    ])
    assert config.training.epochs == 2
    assert config.data.fractions == (0.8, 0.1, 0.1)
    assert all(isinstance(v, float) for v in config.data.fractions)
    assert config.data.height == 120 and config.data.width == DataConfig().width  # file, then default
    assert config.model.pretrained is False and config.model.use_metadata is True
    assert config.training.finetune == "last" and config.training.sampling == "sqrt"
    assert config.training.lr == pytest.approx(1e-3) and isinstance(config.training.lr, float)
    assert config.training.augment.rotate is False
    assert config.training.augment.zoom == (1.0, 1.2)
    assert config.model.backbone == "resnet50"


def test_yaml_list_override_and_empty_value():
    config = load_config(None, ["data.fractions=[0.5, 0.25, 0.25]", "data.cache_dir="])
    assert config.data.fractions == (0.5, 0.25, 0.25)
    assert config.data.cache_dir == ""


def test_int_given_for_a_float_becomes_a_float():
    config = load_config(None, ["training.lr=1", "training.max_minutes=30"])
    assert config.training.lr == 1.0 and isinstance(config.training.lr, float)
    assert config.training.max_minutes == 30.0


def test_saved_config_loads_back_identically(tmp_path):
    config = load_config(None, ["data.fractions=0.6,0.2,0.2", "training.augment.zoom=1.0,1.5",
                                "training.finetune=none"])
    save_config(config, tmp_path / "config.yaml")
    assert load_config(tmp_path / "config.yaml") == config
    assert yaml.safe_load((tmp_path / "config.yaml").read_text())["data"]["fractions"] == [0.6, 0.2, 0.2]


def test_a_run_recorded_before_a_setting_existed_still_matches():
    config = load_config(None, ["training.epochs=3"])
    recorded = config.to_dict()
    del recorded["ensemble"]  # what a run folder written before ensembles holds
    assert same_config(recorded, config)
    assert not same_config({**recorded, "training": {**recorded["training"], "epochs": 4}}, config)
    assert not same_config({**recorded, "training": {**recorded["training"], "retired": 1}}, config)


@pytest.mark.parametrize("override, named", [
    ("training.epoch=3", "epoch"),
    ("trainig.epochs=3", "trainig"),
    ("training.augment.blur=0.5", "blur"),
])
def test_unknown_key_is_named(override, named):
    with pytest.raises(ConfigError, match=named) as raised:
        load_config(None, [override])
    assert "unknown" in str(raised.value)


def test_unknown_key_in_yaml_file_is_named(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("model:\n  backbone: resnet50\n  pretrain: false\n")
    with pytest.raises(ConfigError, match="pretrain.*model"):
        load_config(path)


@pytest.mark.parametrize("override, key", [
    ("training.finetune=some", "training.finetune"),
    ("training.schedule=linear", "training.schedule"),
    ("training.class_weighting=inverse", "training.class_weighting"),
])
def test_bad_literal_is_named_with_the_choices(override, key):
    with pytest.raises(ConfigError, match=key) as raised:
        load_config(None, [override])
    assert "must be one of" in str(raised.value)


@pytest.mark.parametrize("override, key", [
    ("training.epochs=three", "training.epochs"),
    ("training.lr=fast", "training.lr"),
    ("model.pretrained=maybe", "model.pretrained"),
    ("data.fractions=0.8,0.2", "data.fractions"),
    ("data.fractions=0.8,0.1,lots", "data.fractions"),
    ("training.augment=3", "training.augment"),
    ("training.epochs=[1, 2]", "training.epochs"),
])
def test_wrong_type_is_named(override, key):
    with pytest.raises(ConfigError, match=key):
        load_config(None, [override])


@pytest.mark.parametrize("override, key", [
    ("training.epochs=2.5", "training.epochs"),
    ("data.height=150.7", "data.height"),
    ("training.epochs=true", "training.epochs"),
])
def test_non_integer_for_an_integer_is_an_error_not_truncated(override, key):
    # int(2.5) == 2 and int(True) == 1: silently training 2 epochs when 2.5 was asked is worse than
    # saying so
    with pytest.raises(ConfigError, match=key):
        load_config(None, [override])


@pytest.mark.parametrize("override", ["training", "training.epochs:3"])
def test_override_without_equals_sign_is_an_error(override):
    with pytest.raises(ConfigError, match="section.key=value"):
        load_config(None, [override])


def test_override_below_a_value_is_an_error():
    with pytest.raises(ConfigError, match="training.epochs.x"):
        load_config(None, ["training.epochs=3", "training.epochs.x=1"])


def test_missing_or_invalid_yaml_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nowhere.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("training: [epochs: 3\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(broken)
    listing = tmp_path / "list.yaml"
    listing.write_text("- epochs\n- 3\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(listing)


@pytest.mark.parametrize("name", ["single.yaml", "quick.yaml", "scratch.yaml", "bundled.yaml"])
def test_shipped_configs_load(name):
    config = load_config(CONFIGS / name)
    assert isinstance(config, RunConfig)
    raw = yaml.safe_load((CONFIGS / name).read_text())
    for section, values in raw.items():  # every value in the file made it into the config
        for key, value in values.items():
            loaded = getattr(getattr(config, section), key)
            assert (list(loaded) if isinstance(loaded, tuple) else loaded) == value, f"{name}: {section}.{key}"


def test_the_defaults_are_the_single_model_recipe():
    """`dermlens train` without --config trains what configs/single.yaml describes (bar its budget)."""
    single = load_config(CONFIGS / "single.yaml")
    assert single.training.max_minutes == 44
    assert dataclasses.replace(single, training=dataclasses.replace(single.training, max_minutes=0.0)) \
        == load_config(None)


def test_the_default_recipe_is_two_lite0s_sharing_45_minutes():
    """configs/default.yaml: two EfficientNet-Lite0 members on one split, their recipes as the file says."""
    from dermlens.training.ensemble import member_config

    default = load_config(CONFIGS / "default.yaml")
    assert [m.name for m in default.ensemble] == ["native", "large"] and default.training.max_minutes == 44
    native, large = (member_config(default, i) for i in range(2))
    assert native.model.backbone == large.model.backbone == "efficientnet_lite0"
    assert (native.data.height, native.data.width, native.training.sampling) == (150, 200, "balanced")
    assert (large.data.height, large.data.width, large.data.colour_constancy) == (192, 256, 6)
    assert native.training.calibration == large.training.calibration == "matrix"
    assert native.data.seed == large.data.seed and native.data.fractions == large.data.fractions
    assert native.training.max_minutes + large.training.max_minutes <= 44


def test_shipped_recipes_say_what_they_promise():
    default = load_config(CONFIGS / "single.yaml")
    assert default.model.pretrained and default.training.finetune == "last"
    assert 0 < default.training.finetune_stages <= 11  # efficientnet_lite0 has 11 stages
    quick = load_config(CONFIGS / "quick.yaml")
    assert quick.training.finetune == "none" and quick.training.head_epochs > 0
    scratch = load_config(CONFIGS / "scratch.yaml")
    # training from scratch must fine-tune everything (fit refuses anything else)
    assert not scratch.model.pretrained and scratch.training.finetune == "all"
    assert scratch.training.head_epochs == 0
