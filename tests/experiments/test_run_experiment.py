"""An experiment end to end on real HAM10000 images: a grid of tiny runs, two-stage transfer from one
run's checkpoint, a class selection, the comparison files, and resuming without retraining."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from typer.testing import CliRunner

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


@pytest.fixture(scope="module")
def experiment_file(tmp_path_factory, ham_small, external_dir):
    folder = tmp_path_factory.mktemp("experiment")
    cache = folder / "cache"
    path = folder / "tiny.yaml"
    path.write_text(f"""
title: Tiny grid
question: Does the plumbing work?
base: {CONFIGS / 'quick.yaml'}
data: {ham_small}
max_minutes: 60
tta: true
external: {external_dir}
settings:
  data.cache_dir: {cache}
  data.fractions: [0.6, 0.2, 0.2]
  data.height: 96
  data.width: 128
  training.head_epochs: 3
runs:
  tuned: {{training.head_epochs: 0, training.finetune: last, training.finetune_stages: 2, training.epochs: 1,
          training.batch_size: 16, training.warmup_steps: 2}}
  unweighted: {{training.class_weighting: none}}
  from_tuned: {{model.weights_path: "{{run:tuned}}"}}
  pigmented: {{data.classes: [mel, nv, bkl]}}
compare:
  - [tuned, unweighted]
  - [tuned, pigmented]
""")
    return path


@pytest.fixture(scope="module")
def finished(experiment_file, tmp_path_factory):
    from dermlens.cli import app

    out = tmp_path_factory.mktemp("out")
    result = CliRunner().invoke(app, ["experiment", str(experiment_file), "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out, result.output


def test_every_run_is_a_normal_run_folder_on_the_shared_split(finished):
    import json

    out, output = finished
    assert output.strip().endswith(str(out / "comparison.md"))
    whole = json.loads((out / "split.json").read_text())["subsets"]
    for name in ("tuned", "unweighted", "from_tuned", "pigmented"):
        folder = out / f"{name}-s0"
        for file in ("best.pt", "summary.json", "evaluation/predictions.csv", "model.onnx", "latency.json",
                     "evaluation_tta/metrics.json", "evaluation_external/metrics.json"):
            assert (folder / file).is_file(), f"{folder / file} is missing"
        own = json.loads((folder / "split.json").read_text())["subsets"]
        for subset in ("train", "val", "test"):
            assert set(own[subset]) <= set(whole[subset])
    pigmented = json.loads((out / "pigmented-s0" / "split.json").read_text())
    assert pigmented["classes"] == ["mel", "nv", "bkl"]
    # on the external images, each run answers the images of its own classes
    everything = json.loads((out / "tuned-s0" / "evaluation_external" / "metrics.json").read_text())
    three = json.loads((out / "pigmented-s0" / "evaluation_external" / "metrics.json").read_text())
    assert everything["n_samples"] == 339 and everything["melanoma_vs_naevus_auc"] is not None
    assert three["classes"] == ["mel", "nv", "bkl"] and 333 <= three["n_samples"] < 339


def test_two_stage_transfer_starts_from_the_other_runs_backbone(finished):
    import torch

    from dermlens.models import create_model
    from dermlens.training.checkpoint import load_model

    out, _ = finished
    tuned, _ = load_model(out / "tuned-s0" / "best.pt")
    second, _ = load_model(out / "from_tuned-s0" / "best.pt")  # head only: the backbone stays as loaded
    imagenet = create_model("efficientnet_lite0", 7)
    key = "backbone.conv_head.weight"  # a stage the tuned run fine-tuned (the last two: conv_head, bn2)
    assert torch.equal(second.state_dict()[key], tuned.state_dict()[key])
    assert not torch.equal(tuned.state_dict()[key], imagenet.state_dict()[key])


def test_the_comparison_has_tables_intervals_and_figures(finished):
    out, _ = finished
    text = (out / "comparison.md").read_text()
    for expected in ("# Tiny grid", "Does the plumbing work?", "| tuned | 1 |", "| pigmented | 1 |",
                     "Recall per class", "Paired bootstrap", "latency ms", "balanced accuracy, TTA", "external melanoma-vs-naevus AUC",
                     "![training curves](curves.png)"):
        assert expected in text
    with open(out / "comparison.csv", newline="") as handle:
        rows = {r["run"]: r for r in csv.DictReader(handle)}
    assert set(rows) == {"tuned", "unweighted", "from_tuned", "pigmented"}
    assert 0 <= float(rows["tuned"]["balanced accuracy"]) <= 1
    assert float(rows["tuned"]["parameters (M)"]) == pytest.approx(3.38, abs=0.1)
    with open(out / "paired.csv", newline="") as handle:
        paired = list(csv.DictReader(handle))
    # the pigmented run answers other images (three classes only): it cannot be paired with the others
    assert {(p["a"], p["b"], p["metric"]) for p in paired} == {
        ("tuned", "unweighted", "balanced_accuracy"), ("tuned", "unweighted", "macro_auc")}
    for p in paired:
        assert float(p["low"]) <= float(p["difference"]) <= float(p["high"])
    for figure in ("curves.png", "confusion.png"):
        assert (out / figure).stat().st_size > 10_000


def test_running_again_keeps_finished_runs(finished, experiment_file):
    from dermlens.experiments.runner import run_experiment
    from dermlens.experiments.spec import load_experiment

    out, _ = finished
    stamps = {p: p.stat().st_mtime_ns for p in out.glob("*-s0/best.pt")}
    run_experiment(load_experiment(experiment_file), out)
    assert {p: p.stat().st_mtime_ns for p in out.glob("*-s0/best.pt")} == stamps


def test_a_finished_run_with_other_settings_is_not_overwritten(finished, experiment_file, tmp_path):
    import shutil

    from dermlens.errors import ConfigError
    from dermlens.experiments.runner import run_experiment
    from dermlens.experiments.spec import load_experiment

    out, _ = finished
    changed = tmp_path / "changed.yaml"
    changed.write_text(experiment_file.read_text().replace("training.head_epochs: 3", "training.head_epochs: 4"))
    copy = Path(shutil.copytree(out, tmp_path / "out"))
    with pytest.raises(ConfigError, match="other settings"):
        run_experiment(load_experiment(changed), copy)
