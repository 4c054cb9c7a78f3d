"""`dermlens recalibrate`: matrix scaling of an exported model on its validation split, written into a
new graph whose logits and class maps are mapped, with metadata, gates and a report to match."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper
from typer.testing import CliRunner

from dermlens.cli import app
from dermlens.data.images import load_rgb
from dermlens.data.readers import read_dataset
from dermlens.data.splits import grouped_split, load_split, save_split
from dermlens.errors import ModelFileError
from dermlens.export.recalibrate import append_output_map, recalibrate_onnx
from dermlens.inference.calibration import fit_temperature, nll_loss
from dermlens.inference.matrix_scaling import compose_maps
from dermlens.inference.onnx_model import METADATA_KEY, OnnxModel
from dermlens.inference.predictor import default_model_path

#: a miscalibration no temperature can undo: every logit doubled, naevus (index 1) pushed up
DISTORTION = (np.eye(7) * 2.0, np.array([0.0, 2.0, 0.0, 0.0, 0.0, 0.0, 0.0]))


@pytest.fixture(scope="module")
def labelled(ham_part, tmp_path_factory):
    """420 real HAM10000 images (60 per class) and a lesion-grouped 20/60/20 split of them: enough
    validation images per class to cross-validate a matrix."""
    folder = ham_part(tmp_path_factory.mktemp("ham60"), per_class=60)
    dataset = read_dataset(folder)
    split_file = save_split(grouped_split(dataset, (0.2, 0.6, 0.2), seed=0), dataset, folder / "split.json")
    return folder, dataset, split_file


@pytest.fixture(scope="module")
def distorted(tmp_path_factory) -> Path:
    """The bundled model (itself recalibrated once) with `DISTORTION` on top, its metadata's output map
    composed to match the graph, as a second `dermlens recalibrate` would write it."""
    proto = append_output_map(onnx.load(str(default_model_path())), *DISTORTION)
    entry = next(p for p in proto.metadata_props if p.key == METADATA_KEY)
    info = json.loads(entry.value)
    matrix, bias = DISTORTION
    earlier = info["output_map"]
    whole = compose_maps((matrix, bias), (earlier["matrix"], earlier["bias"]))
    info["output_map"] = {"matrix": whole[0].tolist(), "bias": whole[1].tolist()}
    entry.value = json.dumps(info)
    path = tmp_path_factory.mktemp("distorted") / "model.onnx"
    onnx.save(proto, str(path))
    return path


def logits_on(model: OnnxModel, paths: list[Path]) -> np.ndarray:
    prep = model.preprocessing
    return model.logits(prep.normalize(np.stack([prep.prepare(load_rgb(p)) for p in paths])))


def test_an_output_map_mixes_logits_and_class_maps_alike(distorted):
    original, mapped = OnnxModel.load(default_model_path()), OnnxModel.load(distorted)
    rng = np.random.default_rng(0)
    batch = rng.normal(size=(2, 3, 192, 256)).astype(np.float32)
    names = ["logits", "not_skin_score", "class_maps"]
    before, after = original.run_outputs(batch, names), mapped.run_outputs(batch, names)
    matrix, bias = DISTORTION
    np.testing.assert_allclose(after["logits"], before["logits"] @ matrix.T + bias, atol=1e-4)
    np.testing.assert_allclose(after["class_maps"], np.einsum("kj,njhw->nkhw", matrix, before["class_maps"]),
                               atol=1e-4)
    assert np.array_equal(after["not_skin_score"], before["not_skin_score"])
    with pytest.raises(ValueError, match="square matrix"):
        append_output_map(onnx.load(str(distorted)), np.ones((7, 6)), np.zeros(7))


def test_a_miscalibrated_model_is_recalibrated_on_its_validation_split(distorted, labelled, tmp_path):
    folder, dataset, split_file = labelled
    split = load_split(split_file, dataset)
    out = tmp_path / "recalibrated.onnx"
    result = recalibrate_onnx(distorted, dataset, split, out, tmp_path / "report", card={"version": "test"})
    assert result["calibration"]["method"] == "matrix"
    assert (tmp_path / "report" / "evaluation" / "report.html").is_file()

    model = OnnxModel.load(out)
    assert model.temperature == 1.0 and model.info["card"] == {"version": "test"}
    assert model.info["metrics"]["test"]["balanced_accuracy"] == pytest.approx(result["metrics"]["balanced_accuracy"])
    uncertain = model.gates.evidence["uncertain"]
    assert model.gates.min_confidence == uncertain["threshold"] and 0 < uncertain["coverage"] <= 1
    assert model.gates.not_skin_threshold == OnnxModel.load(distorted).gates.not_skin_threshold

    # on the validation images: better than any temperature on the old logits
    paths = [Path(dataset.paths[i]) for i in split.val]
    targets = dataset.targets[split.val]
    new, old = logits_on(model, paths), logits_on(OnnxModel.load(distorted), paths)
    assert nll_loss(new, targets, 1.0) < nll_loss(old, targets, fit_temperature(old, targets)) - 0.02
    # the metadata's map is the whole of the graph's three (bundled, distortion, this one): the class
    # maps, which the network's own head makes, plus that map's bias give the logits
    prep = model.preprocessing
    batch = prep.normalize(np.stack([prep.prepare(load_rgb(p)) for p in paths[:4]]))
    outputs = model.run_outputs(batch, ["logits", "class_maps"])
    head_bias = next(numpy_helper.to_array(i) for i in onnx.load(str(out)).graph.initializer
                     if i.name.endswith("classifier.bias"))
    mapping = model.info["output_map"]
    whole_bias = np.asarray(mapping["matrix"]) @ head_bias + np.asarray(mapping["bias"])
    np.testing.assert_allclose(outputs["class_maps"].mean(axis=(2, 3)) + whole_bias, outputs["logits"], atol=1e-3)


def test_the_cli_writes_the_model_and_refuses_what_does_not_fit(distorted, labelled, tmp_path, ham_part):
    folder, _, split_file = labelled
    runner = CliRunner()
    out = tmp_path / "cli.onnx"
    result = runner.invoke(app, ["recalibrate", "--model", str(distorted), "--data", str(folder),
                                 "--split", str(split_file), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "recalibrated; test balanced accuracy" in result.output and out.is_file()
    info = json.loads(next(p.value for p in onnx.load(str(out)).metadata_props if p.key == METADATA_KEY))
    assert info["metrics"]["calibration"]["method"] == "matrix"

    two_classes = ham_part(tmp_path / "two", per_class=10, classes=("mel", "nv"))
    refused = runner.invoke(app, ["recalibrate", "--model", str(distorted), "--data", str(two_classes),
                                  "--split", str(split_file), "--out", str(tmp_path / "x.onnx")])
    assert refused.exit_code == 2 and "error:" in refused.output and not (tmp_path / "x.onnx").exists()


def test_too_few_validation_images_leave_the_model_as_it_is(ham_part, tmp_path):
    """Four or fewer validation images of a class cannot cross-validate a matrix: a clear error, no file."""
    folder = ham_part(tmp_path / "ham6", per_class=6)
    dataset = read_dataset(folder)
    split = grouped_split(dataset, (0.2, 0.6, 0.2), seed=0)
    assert np.bincount(dataset.targets[split.val], minlength=7).min() < 5
    with pytest.raises(ModelFileError, match="does not improve"):
        recalibrate_onnx(default_model_path(), dataset, split, tmp_path / "m.onnx", tmp_path / "report")
    assert not (tmp_path / "m.onnx").exists()
