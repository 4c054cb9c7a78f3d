"""The Docker context's server.py, run by this Python exactly as the container would run it, on real images."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dermlens import DISCLAIMER
from dermlens.data.images import load_rgb
from dermlens.errors import ModelFileError
from dermlens.export.docker import ServerError, docker_context, post_image, running_server
from dermlens.inference.calibration import softmax
from dermlens.inference.onnx_model import METADATA_KEY, OnnxModel

DEFAULT_MODEL = Path(__file__).resolve().parents[2] / "src" / "dermlens" / "assets" / "default-model.onnx"


@pytest.fixture(scope="module")
def tempered_model(tmp_path_factory) -> Path:
    """The bundled model (real weights, 7 classes, Shades of Gray) with a temperature of 0.7 in its
    metadata: its own calibration is folded into the graph (temperature 1), so this copy makes the
    server's temperature path do something."""
    import onnx

    proto = onnx.load(str(DEFAULT_MODEL))
    entry = next(p for p in proto.metadata_props if p.key == METADATA_KEY)
    entry.value = json.dumps({**json.loads(entry.value), "temperature": 0.7})
    path = tmp_path_factory.mktemp("tempered") / "model.onnx"
    onnx.save(proto, str(path))
    return path


@pytest.fixture(scope="module")
def context(tempered_model, tmp_path_factory) -> Path:
    return docker_context(tempered_model, tmp_path_factory.mktemp("docker") / "context")


@pytest.fixture(scope="module")
def server(context):
    with running_server(context) as url:
        yield url


def dermlens_probabilities(model: OnnxModel, image: bytes) -> np.ndarray:
    return softmax(model.logits(model.preprocessing(load_rgb(image))), model.temperature)[0]


def png(rgb: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="PNG")
    return buffer.getvalue()


def test_the_context_has_what_docker_needs(context):
    assert sorted(p.name for p in context.iterdir() if p.name != "server.log") == [
        "Dockerfile", "README.md", "model.onnx", "server.py"]
    dockerfile = (context / "Dockerfile").read_text()
    assert dockerfile.startswith("FROM python:3.11-slim")
    install = next(line for line in dockerfile.splitlines() if line.startswith("RUN pip install"))
    assert sorted(p.split("==")[0] for p in install.split()[4:]) == ["numpy", "onnxruntime", "pillow"]
    readme = (context / "README.md").read_text()
    assert "docker build" in readme and "docker run" in readme and "not a diagnosis" in readme
    assert "dermlens" not in "".join(line for line in (context / "server.py").read_text().splitlines()
                                     if line.startswith(("import", "from")))
    compile((context / "server.py").read_text(), "server.py", "exec")


def test_predictions_match_dermlens_on_real_images(server, ham_images, tempered_model):
    model = OnnxModel.load(tempered_model)
    assert model.preprocessing.colour_constancy and model.temperature != 1.0  # both paths are exercised
    for path in ham_images.values():
        answer = post_image(server, path.read_bytes())
        expected = dermlens_probabilities(model, path.read_bytes())
        tags = [p["tag"] for p in answer["predictions"]]
        probabilities = [p["probability"] for p in answer["predictions"]]
        assert tags[0] == model.classes[int(np.argmax(expected))]
        assert probabilities == sorted(probabilities, reverse=True)
        assert sum(probabilities) == pytest.approx(1.0)
        np.testing.assert_allclose([dict(zip(tags, probabilities))[c] for c in model.classes], expected, atol=1e-5)
        assert answer["disclaimer"] == DISCLAIMER


def test_portrait_images_are_turned_and_multipart_forms_are_read(server, ham_images):
    rgb = load_rgb(ham_images["mel"])
    landscape = post_image(server, png(rgb))["predictions"]
    portrait = post_image(server, png(np.ascontiguousarray(np.rot90(rgb, k=-1))))["predictions"]
    assert portrait[0]["tag"] == landscape[0]["tag"]  # rotated back, not squeezed
    body = (b"--XyZ\r\nContent-Disposition: form-data; name=\"image\"; filename=\"lesion.jpg\"\r\n"
            b"Content-Type: image/jpeg\r\n\r\n" + ham_images["mel"].read_bytes() + b"\r\n--XyZ--\r\n")
    request = urllib.request.Request(server + "/predict", data=body, method="POST",
                                     headers={"Content-Type": "multipart/form-data; boundary=XyZ"})
    with urllib.request.urlopen(request, timeout=30) as answer:
        form = json.loads(answer.read())["predictions"]
    assert form == post_image(server, ham_images["mel"].read_bytes())["predictions"]


def test_health_and_clear_errors(server):
    with urllib.request.urlopen(server + "/health", timeout=5) as answer:
        assert json.loads(answer.read())["status"] == "ok"
    with pytest.raises(ServerError, match="400.*not a readable image"):
        post_image(server, b"these bytes are not an image")
    with pytest.raises(urllib.error.HTTPError) as missing:
        urllib.request.urlopen(server + "/metrics", timeout=5)
    assert missing.value.code == 404


def test_a_multilabel_model_gets_a_sigmoid_per_tag(tmp_path, lesion_jpeg):
    onnx = pytest.importorskip("onnx")  # to rewrite the metadata
    proto = onnx.load(str(DEFAULT_MODEL))
    entry = next(e for e in proto.metadata_props if e.key == METADATA_KEY)
    info = json.loads(entry.value)
    info["config"] = {"project": {"kind": "multilabel"}}
    entry.value = json.dumps(info)
    onnx.save(proto, str(tmp_path / "multilabel.onnx"))
    model = OnnxModel.load(tmp_path / "multilabel.onnx")
    logits = model.logits(model.preprocessing(load_rgb(lesion_jpeg)))[0] / model.temperature
    with running_server(docker_context(tmp_path / "multilabel.onnx", tmp_path / "context")) as url:
        predictions = post_image(url, lesion_jpeg)["predictions"]
    got = {p["tag"]: p["probability"] for p in predictions}
    np.testing.assert_allclose([got[c] for c in model.classes], 1 / (1 + np.exp(-logits)), atol=1e-5)


def test_a_file_that_is_not_a_dermlens_export_is_refused(tmp_path):
    (tmp_path / "model.onnx").write_bytes(b"not a model")
    with pytest.raises(ModelFileError):
        docker_context(tmp_path / "model.onnx", tmp_path / "context")


def test_the_server_runs_with_only_its_own_packages(context):
    """server.py imports nothing from dermlens: its --help runs with dermlens made unimportable."""
    check = ("import runpy, sys; sys.modules['dermlens'] = None; sys.argv = ['server.py', '--help']; "
             "runpy.run_path('server.py', run_name='__main__')")
    done = subprocess.run([sys.executable, "-c", check], check=False, cwd=context, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert "POST /predict" in done.stdout
