"""The `dermlens` command line: help, errors as one line with exit code 2, and train -> evaluate -> export."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from PIL import Image
from typer.testing import CliRunner

from dermlens.cli import app
from dermlens.data.metadata import N_FEATURES

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = sorted(typer.main.get_command(app).commands)  # type: ignore[attr-defined]
ISIC_HEADER = "image,MEL,NV,BCC,AKIEC,BKL,DF,VASC"


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def tiny_dataset(tmp_path) -> Path:
    """labels.csv and four small images: enough to read, no training needed."""
    folder = tmp_path / "data"
    (folder / "images").mkdir(parents=True)
    rows = ["image_id,label,lesion_id"]
    for i, label in enumerate(["mel", "nv", "bcc", "nv"]):
        Image.new("RGB", (20, 15), (150 + 20 * i, 100, 80)).save(folder / "images" / f"img{i}.jpg")
        rows.append(f"img{i},{label},L{i}")
    (folder / "labels.csv").write_text("\n".join(rows) + "\n")
    return folder


def assert_one_line_error(result, *fragments: str) -> None:
    assert result.exit_code == 2, result.output
    message = result.stderr.strip()
    assert message.startswith("error: "), message
    assert len(message.splitlines()) == 1, message
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in message, message


def test_main_help_lists_every_command(runner):
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    assert set(COMMANDS) == {"train", "ensemble", "evaluate", "export", "predict", "info", "backbones", "experiment", "serve",
                             "project", "recalibrate", "quantize"}
    for command in COMMANDS:
        assert command in result.output
    assert "not a diagnosis" in result.output


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(runner, command):
    result = runner.invoke(app, [command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output and command in result.output


def test_backbones_lists_the_registry(runner):
    from dermlens.models import list_backbones

    result = runner.invoke(app, ["backbones"])
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert [line.split()[0] for line in lines] == list_backbones()
    lite0 = next(line for line in lines if line.startswith("efficientnet_lite0 "))
    assert "pretrained" in lite0
    assert "random init" in next(line for line in lines if line.startswith("resnet50 "))


def test_importing_the_cli_does_not_import_torch():
    code = "import sys, dermlens, dermlens.cli; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def test_console_script(tmp_path):
    script = Path(sys.executable).parent / "dermlens"
    if not script.is_file():
        pytest.skip(f"the dermlens console script is not installed beside {sys.executable}")
    result = subprocess.run([str(script), "backbones"], capture_output=True, text=True, timeout=120,
                            env={**os.environ, "DERMLENS_QUIET": "1"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[0] == "efficientnet_lite0"
    missing = subprocess.run([str(script), "export", "--model", str(tmp_path / "best.pt"),
                              "--out", str(tmp_path / "model.onnx")],
                             capture_output=True, text=True, timeout=120)
    assert missing.returncode == 2
    assert missing.stderr.startswith("error: ") and "Traceback" not in missing.stderr


def test_train_with_a_missing_data_folder(runner, tmp_path):
    result = runner.invoke(app, ["train", "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "run")])
    assert_one_line_error(result, "nowhere", "no such file or folder")


def test_train_with_a_bad_setting_names_it(runner, tiny_dataset, tmp_path):
    result = runner.invoke(app, ["train", "--data", str(tiny_dataset), "--out", str(tmp_path / "run"),
                                 "--set", "training.finetune=sometimes"])
    assert_one_line_error(result, "training.finetune")
    result = runner.invoke(app, ["train", "--data", str(tiny_dataset), "--out", str(tmp_path / "run"),
                                 "--set", "training.epoch=3"])
    assert_one_line_error(result, "epoch", "unknown")


def test_train_from_scratch_with_frozen_layers_is_refused(runner, tiny_dataset, tmp_path):
    result = runner.invoke(app, ["train", "--data", str(tiny_dataset), "--out", str(tmp_path / "run"),
                                 "--config", str(ROOT / "configs" / "scratch.yaml"),
                                 "--set", "training.finetune=last"])
    assert_one_line_error(result, "finetune=all")


def test_evaluate_with_a_missing_model(runner, tiny_dataset, tmp_path):
    missing = tmp_path / "runs" / "best.pt"
    result = runner.invoke(app, ["evaluate", "--data", str(tiny_dataset), "--model", str(missing),
                                 "--out", str(tmp_path / "eval")])
    assert_one_line_error(result, str(missing), "does not exist")
    assert not (tmp_path / "eval").exists()


@pytest.mark.parametrize("name, content, says", [
    ("notes.pt", b"these are my notes, not a model\n", "not a readable dermlens checkpoint"),
    ("random.onnx", bytes(range(256)) * 8, "not a valid ONNX model"),
])
def test_evaluate_with_a_file_that_is_not_a_model(runner, tiny_dataset, tmp_path, name, content, says):
    model = tmp_path / name
    model.write_bytes(content)
    result = runner.invoke(app, ["evaluate", "--data", str(tiny_dataset), "--model", str(model),
                                 "--out", str(tmp_path / "eval")])
    assert_one_line_error(result, name, says)


def test_evaluate_with_a_torch_file_that_is_not_a_dermlens_checkpoint(runner, tiny_dataset, tmp_path):
    import torch

    model = tmp_path / "weights.pt"
    torch.save({"conv.weight": torch.zeros(2, 2)}, model)
    result = runner.invoke(app, ["evaluate", "--data", str(tiny_dataset), "--model", str(model),
                                 "--out", str(tmp_path / "eval")])
    assert_one_line_error(result, "not a dermlens checkpoint")


def test_evaluate_with_an_onnx_model_that_is_not_a_dermlens_export(runner, tiny_dataset, tmp_path):
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Identity", ["image"], ["logits"])], "identity",
                              [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 7])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 7])])
    model = tmp_path / "foreign.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), str(model))
    result = runner.invoke(app, ["evaluate", "--data", str(tiny_dataset), "--model", str(model),
                                 "--out", str(tmp_path / "eval")])
    assert_one_line_error(result, "not a dermlens export")


@pytest.mark.parametrize("n_metadata", [N_FEATURES, 3])
def test_evaluate_a_checkpoint_trained_with_patient_metadata(runner, tiny_dataset, tmp_path, n_metadata):
    """A model fused with age/sex/site is evaluated with the dataset's metadata; one whose metadata
    width this version cannot produce is refused in one line, never a traceback."""
    from dermlens.data.images import Preprocessing
    from dermlens.data.labels import HAM10000_CLASSES
    from dermlens.models import create_model
    from dermlens.training.checkpoint import ModelInfo, save_model

    model = create_model("efficientnet_lite0", 7, pretrained=False, n_metadata=n_metadata)
    info = ModelInfo(backbone="efficientnet_lite0", classes=HAM10000_CLASSES,
                     preprocessing=Preprocessing(height=15, width=20), n_metadata=n_metadata)
    save_model(model, info, tmp_path / "metadata.pt")
    result = runner.invoke(app, ["evaluate", "--data", str(tiny_dataset), "--model", str(tmp_path / "metadata.pt"),
                                 "--out", str(tmp_path / "eval")])
    if n_metadata == N_FEATURES:
        assert result.exit_code == 0, repr(result.exception)
        assert (tmp_path / "eval" / "metrics.json").is_file()
    else:
        assert_one_line_error(result, "metadata features")


def test_export_with_a_missing_checkpoint(runner, tmp_path):
    result = runner.invoke(app, ["export", "--model", str(tmp_path / "best.pt"), "--out", str(tmp_path / "m.onnx")])
    assert_one_line_error(result, "does not exist")
    assert not (tmp_path / "m.onnx").exists()


def test_a_missing_required_option_is_a_usage_error(runner, tmp_path):
    result = runner.invoke(app, ["train", "--out", str(tmp_path / "run")])
    assert result.exit_code == 2
    assert "--data" in result.output


def _read_metrics(folder: Path) -> dict:
    return json.loads((folder / "metrics.json").read_text())


@pytest.mark.slow
def test_train_evaluate_export_evaluate(runner, ham_small, tmp_path):
    run_dir, cache = tmp_path / "run", tmp_path / "cache"
    result = runner.invoke(app, ["train", "--data", str(ham_small), "--out", str(run_dir),
                                 "--config", str(ROOT / "configs" / "quick.yaml"),
                                 "--set", "training.head_epochs=2", "--set", f"data.cache_dir={cache}"])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip().splitlines()[-1] == str(run_dir / "best.pt")
    assert (run_dir / "best.pt").is_file() and (run_dir / "evaluation" / "report.html").is_file()

    eval_dir = run_dir / "eval"
    result = runner.invoke(app, ["evaluate", "--data", str(ham_small), "--model", str(run_dir / "best.pt"),
                                 "--out", str(eval_dir), "--isic"])
    assert result.exit_code == 0, result.output
    assert "balanced accuracy" in result.stdout and "not a diagnosis" in result.stdout
    with open(eval_dir / "isic_submission.csv", newline="") as handle:
        rows = list(csv.reader(handle))
    assert ",".join(rows[0]) == ISIC_HEADER
    with open(ham_small / "labels.csv", newline="") as handle:
        image_ids = [row["image_id"] for row in csv.DictReader(handle)]
    assert sorted(row[0] for row in rows[1:]) == sorted(image_ids)
    assert all(abs(sum(float(v) for v in row[1:]) - 1) < 1e-4 for row in rows[1:])

    onnx_path = run_dir / "model.onnx"
    result = runner.invoke(app, ["export", "--model", str(run_dir / "best.pt"), "--out", str(onnx_path)])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == str(onnx_path) and onnx_path.is_file()

    onnx_eval = run_dir / "eval_onnx"
    result = runner.invoke(app, ["evaluate", "--data", str(ham_small), "--model", str(onnx_path),
                                 "--out", str(onnx_eval)])
    assert result.exit_code == 0, result.output
    assert (onnx_eval / "report.html").is_file()
    assert _read_metrics(onnx_eval)["balanced_accuracy"] == pytest.approx(
        _read_metrics(eval_dir)["balanced_accuracy"])
    assert _read_metrics(onnx_eval)["confusion_matrix"] == _read_metrics(eval_dir)["confusion_matrix"]

    tta_eval = run_dir / "eval_tta"
    result = runner.invoke(app, ["evaluate", "--data", str(ham_small), "--model", str(onnx_path),
                                 "--out", str(tta_eval), "--tta"])
    assert result.exit_code == 0, result.output
    assert "test-time augmentation" in _read_metrics(tta_eval)["title"]
    plain = (onnx_eval / "predictions.csv").read_text().splitlines()
    averaged = (tta_eval / "predictions.csv").read_text().splitlines()
    assert len(plain) == len(averaged) and plain != averaged  # the flips change the probabilities

    # serving an export needs no torch
    code = ("import sys; from dermlens.data.readers import read_dataset; "
            "from dermlens.evaluation.model_eval import evaluate_model; "
            f"m = evaluate_model({str(onnx_path)!r}, read_dataset({str(ham_small)!r}), {str(tmp_path / 'e3')!r}); "
            "print('torch' in sys.modules, m['balanced_accuracy'])")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "DERMLENS_QUIET": "1"})
    assert done.returncode == 0, done.stderr
    imported_torch, balanced_accuracy = done.stdout.split()
    assert imported_torch == "False"
    assert float(balanced_accuracy) == pytest.approx(_read_metrics(eval_dir)["balanced_accuracy"])


def test_experiment_mistakes_are_one_line_errors(runner, tmp_path):
    result = runner.invoke(app, ["experiment", str(tmp_path / "nope.yaml")])
    assert_one_line_error(result, "nope.yaml", "does not exist")
    bad = tmp_path / "bad.yaml"
    bad.write_text("runs: {a: {training.epochz: 2}}\n")
    result = runner.invoke(app, ["experiment", str(bad), "--out", str(tmp_path / "out")])
    assert_one_line_error(result, "run 'a'", "unknown setting")
    assert not (tmp_path / "out").exists()
