"""A Docker build context that serves an exported model over HTTP, with no dermlens inside.

The context holds ``model.onnx``, a stdlib ``server.py`` (ONNX Runtime, Pillow and NumPy only: it reads
the classes, preprocessing and temperature from the model's ``dermlens`` metadata), a ``Dockerfile``
and a ``README.md``. `running_server` starts that same ``server.py`` with the current Python, which is
how `dermlens.export.formats` checks a context without Docker.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path

from dermlens import DISCLAIMER
from dermlens.errors import DermlensError
from dermlens.inference.onnx_model import OnnxModel

PORT = 8080
RUNTIME_PACKAGES = ("onnxruntime", "pillow", "numpy")


class ServerError(DermlensError):
    """The context's ``server.py`` did not start or did not answer."""


def docker_context(onnx_model: Path, out_dir: Path, model: OnnxModel | None = None) -> Path:
    """Write ``out_dir`` as a Docker build context serving ``onnx_model``; -> ``out_dir``. ``model`` is
    ``onnx_model`` already loaded, when the caller has it.

    >>> docker_context(Path("model.onnx"), Path("dermlens-docker"))   # doctest: +SKIP
    PosixPath('dermlens-docker')
    """
    if model is None:
        model = OnnxModel.load(onnx_model)  # a clear error for a file that is not a dermlens export
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(onnx_model, out_dir / "model.onnx")
    (out_dir / "server.py").write_text(SERVER_SOURCE.replace("__DISCLAIMER__", json.dumps(DISCLAIMER)))
    (out_dir / "Dockerfile").write_text(_dockerfile())
    (out_dir / "README.md").write_text(_readme(model))
    return out_dir


def _pinned() -> str:
    """The runtime packages at the versions this context was checked with (where they are installed)."""
    pins = []
    for name in RUNTIME_PACKAGES:
        try:
            pins.append(f"{name}=={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            pins.append(name)
    return " ".join(pins)


def _dockerfile() -> str:
    return f"""FROM python:3.11-slim
WORKDIR /app
RUN pip install --no-cache-dir {_pinned()}
COPY model.onnx server.py ./
USER nobody
EXPOSE {PORT}
HEALTHCHECK CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:{PORT}/health')"
CMD ["python", "server.py", "--host", "0.0.0.0", "--port", "{PORT}"]
"""


def _readme(model: OnnxModel) -> str:
    pre = model.preprocessing
    return f"""# dermlens model server

**{DISCLAIMER}** Its output is decision support for a clinician, never a diagnosis.

Tags: {", ".join(model.classes)}. Input: any photo, rotated to landscape, resized to {pre.width}x{pre.height}
and normalised as the model was trained (all read from the `dermlens` metadata of `model.onnx`).

## Build and run

```sh
docker build -t dermlens-model .
docker run --rm -p {PORT}:{PORT} dermlens-model
```

Without Docker: `pip install {" ".join(RUNTIME_PACKAGES)}` then `python server.py --port {PORT}`.

## Use

```sh
curl -s http://localhost:{PORT}/health
curl -s --data-binary @lesion.jpg http://localhost:{PORT}/predict
curl -s -F image=@lesion.jpg http://localhost:{PORT}/predict
```

`POST /predict` answers `{{"predictions": [{{"tag": ..., "probability": ...}}, ...], "disclaimer": ...}}`,
most probable tag first. A bad image gets HTTP 400 with `{{"error": ...}}`.
"""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def running_server(context: Path, timeout: float = 60.0) -> Iterator[str]:
    """Run the context's ``server.py`` with this Python on a free localhost port; yields its URL.

    >>> with running_server(Path("dermlens-docker")) as url:   # doctest: +SKIP
    ...     post_image(url, Path("lesion.jpg").read_bytes())["predictions"][0]["tag"]
    """
    port = _free_port()
    log_path = Path(context) / "server.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen([sys.executable, "server.py", "--host", "127.0.0.1", "--port", str(port)],
                                   cwd=context, stdout=log, stderr=subprocess.STDOUT,
                                   env={**os.environ, "PYTHONUNBUFFERED": "1"})
        url = f"http://127.0.0.1:{port}"
        try:
            _wait_until_healthy(url, process, log_path, timeout)
            yield url
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_until_healthy(url: str, process: subprocess.Popen, log_path: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ServerError(f"server.py exited with code {process.returncode}: {log_path.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(url + "/health", timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise ServerError(f"server.py did not answer /health within {timeout:.0f} s: {log_path.read_text()[-2000:]}")


def post_image(url: str, image: bytes, timeout: float = 30.0) -> dict:
    """POST image bytes to a running server's ``/predict``; -> its JSON answer."""
    request = urllib.request.Request(url + "/predict", data=image, method="POST",
                                     headers={"Content-Type": "application/octet-stream"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            return json.loads(answer.read())
    except urllib.error.HTTPError as error:
        raise ServerError(f"server.py answered {error.code}: {error.read().decode(errors='replace')}") from None


# The server shipped in the context. It must not import dermlens: the container has only onnxruntime,
# pillow and numpy. Its preprocessing mirrors dermlens.data.images (to_rgb, Preprocessing, shades_of_gray).
SERVER_SOURCE = r'''"""Serve a dermlens ONNX export over HTTP (written by dermlens.export.docker; needs no dermlens).

POST /predict with the image file as the body (or a multipart form field "image") -> JSON predictions.
GET /health -> {"status": "ok"}. Decision support, not a diagnosis.
"""

import argparse
import io
import json
import os
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import onnxruntime as ort
from PIL import Image, ImageOps

DISCLAIMER = __DISCLAIMER__
MODEL_PATH = os.environ.get("MODEL_PATH", os.path.join(os.path.dirname(os.path.abspath(__file__)), "model.onnx"))
MAX_BODY_BYTES = 25 * 1024 * 1024
Image.MAX_IMAGE_PIXELS = 50_000_000  # larger images are refused before decoding (decompression bombs)


class BadImage(ValueError):
    """The request holds no readable image."""


class Model:
    """The ONNX session and what its "dermlens" metadata says: tags, preprocessing, temperature."""

    def __init__(self, path):
        self.session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        info = json.loads(self.session.get_modelmeta().custom_metadata_map["dermlens"])
        pre = info["preprocessing"]
        self.tags = list(info["classes"])
        self.height, self.width = int(pre["height"]), int(pre["width"])
        self.landscape = bool(pre.get("landscape", True))
        self.colour_constancy = float(pre.get("colour_constancy", 0.0))
        mean, std = np.asarray(pre["mean"], np.float32), np.asarray(pre["std"], np.float32)
        self.scale, self.offset = 1.0 / (255.0 * std), -mean / std
        self.temperature = float(info.get("temperature", 1.0))
        project = (info.get("config") or {}).get("project") or {}
        self.multilabel = project.get("kind") == "multilabel"

    def pixels(self, data):
        """Image bytes -> uint8 (height, width, 3): EXIF orientation, RGB, landscape, resized."""
        try:
            with Image.open(io.BytesIO(data)) as image:
                image.load()
                rgb = np.asarray(to_rgb(image))
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
            raise BadImage(f"the body is not a readable image ({error})") from None
        if self.landscape and rgb.shape[0] > rgb.shape[1]:
            rgb = np.ascontiguousarray(np.rot90(rgb))
        if rgb.shape[:2] != (self.height, self.width):
            resized = Image.fromarray(rgb).resize((self.width, self.height), Image.Resampling.BILINEAR)
            rgb = np.asarray(resized)
        return shades_of_gray(rgb, self.colour_constancy) if self.colour_constancy else rgb

    def predict(self, data):
        rgb = self.pixels(data)
        batch = np.empty((1, 3, self.height, self.width), np.float32)
        for c in range(3):
            np.multiply(rgb[..., c], self.scale[c], out=batch[0, c], casting="unsafe")
            batch[0, c] += self.offset[c]
        logits = self.session.run(["logits"], {"image": batch})[0][0].astype(np.float64) / self.temperature
        if self.multilabel:
            probabilities = 1.0 / (1.0 + np.exp(-logits))
        else:
            exp = np.exp(logits - logits.max())
            probabilities = exp / exp.sum()
        ranked = sorted(zip(self.tags, probabilities.tolist()), key=lambda pair: -pair[1])
        return [{"tag": tag, "probability": probability} for tag, probability in ranked]


def to_rgb(image):
    """EXIF orientation applied; 16-bit, palette, alpha (on white) and grey images made RGB."""
    image = ImageOps.exif_transpose(image)
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        array = np.asarray(image, dtype=np.float64)
        image = Image.fromarray((array / max(float(array.max()), 1.0) * 255.0).astype(np.uint8))
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        image = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
    return image.convert("RGB")


def shades_of_gray(rgb, power):
    """Colour constancy: divide out the illuminant estimated by a Minkowski p-norm per channel."""
    levels = np.arange(256, dtype=np.float64)
    counts = np.stack([np.bincount(rgb[..., c].ravel(), minlength=256) for c in range(3)])
    illuminant = (counts @ np.power(levels, power) / (rgb.shape[0] * rgb.shape[1])) ** (1.0 / power)
    norm = float(np.sqrt(np.sum(illuminant ** 2)))
    if norm < 1e-6:
        return rgb
    gains = norm / (np.maximum(illuminant, 1e-6) * np.sqrt(3.0))
    table = np.clip(levels.astype(np.float32)[:, None] * gains, 0, 255).astype(np.uint8)
    out = np.empty_like(rgb)
    for c in range(3):
        np.take(table[:, c], rgb[..., c], out=out[..., c])
    return out


def image_bytes(content_type, body):
    """The image in a request: the body itself, or the multipart form field "image"."""
    if not content_type.startswith("multipart/form-data"):
        return body
    message = BytesParser(policy=HTTP).parsebytes(b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body)
    for part in message.iter_parts():
        if part.get_param("name", header="content-disposition") == "image":
            return part.get_payload(decode=True)
    raise BadImage('the multipart form has no field named "image"')


class Handler(BaseHTTPRequestHandler):
    model = None

    def answer(self, status, payload):
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path == "/health":
            self.answer(200, {"status": "ok", "tags": self.model.tags})
        else:
            self.answer(404, {"error": "unknown path; use GET /health or POST /predict"})

    def do_POST(self):
        if self.path != "/predict":
            self.answer(404, {"error": "unknown path; use POST /predict"})
            return
        length = int(self.headers.get("Content-Length") or 0)
        if not 0 < length <= MAX_BODY_BYTES:
            self.answer(400 if length <= 0 else 413, {"error": f"send one image of at most {MAX_BODY_BYTES} bytes"})
            return
        try:
            data = image_bytes(self.headers.get("Content-Type", ""), self.rfile.read(length))
            predictions = self.model.predict(data)
        except BadImage as error:
            self.answer(400, {"error": str(error)})
            return
        self.answer(200, {"predictions": predictions, "disclaimer": DISCLAIMER})


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8080")))
    arguments = parser.parse_args()
    Handler.model = Model(MODEL_PATH)
    server = ThreadingHTTPServer((arguments.host, arguments.port), Handler)
    print(f"serving {MODEL_PATH} on http://{arguments.host}:{arguments.port} (tags: {Handler.model.tags})", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
'''
