"""Experiment files: run order, references between runs, and mistakes caught before any training."""

from __future__ import annotations

from pathlib import Path

import pytest

from dermlens.errors import ConfigError
from dermlens.experiments.spec import load_experiment

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "exp.yaml"
    path.write_text(text)
    return path


def test_runs_that_use_a_checkpoint_come_after_it(tmp_path):
    experiment = load_experiment(write(tmp_path, """
runs:
  finetune: {model.weights_path: "{run:pretrain}"}
  pretrain: {data.exclude_sites: [face]}
"""))
    assert [r.name for r in experiment.runs] == ["pretrain", "finetune"]
    overrides = experiment.overrides(experiment.run("finetune"), {"pretrain": Path("/x/pretrain-s0/best.pt")})
    assert 'model.weights_path="/x/pretrain-s0/best.pt"' in overrides
    assert experiment.compare == (("finetune", "pretrain"),)


def test_settings_become_overrides_that_load(tmp_path):
    from dermlens.training.config import load_config

    experiment = load_experiment(write(tmp_path, """
seeds: [0, 1]
settings: {data.height: 150, data.width: 200}
runs:
  pigmented: {data.classes: [mel, nv, bkl], training.sampling: balanced}
"""))
    config = load_config(None, experiment.overrides(experiment.runs[0], {}))
    assert config.data.classes == ("mel", "nv", "bkl")
    assert (config.data.height, config.training.sampling) == (150, "balanced")
    assert experiment.seeds == (0, 1)


@pytest.mark.parametrize("text, message", [
    ("runs: {}", "at least one run"),
    ("runs: {a: {training.epochz: 3}}", "run 'a': unknown setting"),
    ("runs: {a: {model.weights_path: '{run:b}'}}", "uses {run:b}, which is not a run"),
    ("runs: {a: {model.weights_path: '{run:b}'}, b: {model.weights_path: '{run:a}'}}", "in a circle"),
    ("runs: {a: {}, b: {}}\ncompare: [[a, c]]", "pair of run names"),
    ("runs: {a: {}}\nseeds: 3", "seeds must be a list"),
    ("runs: {a: {}}\nbudget: 3", "unknown key(s) ['budget']"),
    ("runs: {'a b': {}}", "letters, digits"),
])
def test_mistakes_are_named_before_training(tmp_path, text, message):
    with pytest.raises(ConfigError, match=None) as error:
        load_experiment(write(tmp_path, text))
    assert message in str(error.value)


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_experiment(tmp_path / "nope.yaml")


@pytest.mark.parametrize("path", sorted((CONFIGS / "experiments").glob("*.yaml")), ids=lambda p: p.stem)
def test_published_experiment_files_load(path):
    experiment = load_experiment(path)
    assert experiment.runs and experiment.title and experiment.question
