"""Export an iteration to other runtimes; each export is loaded back with its own runtime and checked.

The check is the same for every format: the check images are preprocessed as the ONNX model's metadata
says, run through the export, and each image's top class is compared with the float ONNX model's (the
``onnx`` export, a byte-identical copy of that model, takes its answers without running again).
``verified`` means every check image kept its top class (agreement 1.0): a single flip is reported,
because a person deploying the export would otherwise get a different answer for that image. Every
export carries the ONNX model's ``dermlens`` metadata (classes, preprocessing, temperature) in the
format's own metadata slot, or as ``dermlens.json`` beside the model in the zip.
"""

from __future__ import annotations

import functools
import importlib.util
import io
import json
import shutil
import tempfile
import time
import warnings
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

import numpy as np

from dermlens.errors import DermlensError
from dermlens.inference.onnx_model import METADATA_KEY, OnnxModel


class ExportFormat(str, Enum):
    """What an iteration can be exported as."""

    onnx = "onnx"
    onnx_int8 = "onnx-int8"
    torchscript = "torchscript"
    openvino = "openvino"
    tflite = "tflite"
    coreml = "coreml"
    docker = "docker"


class ExportError(DermlensError):
    """The inputs of an export are unusable (for example check images that are not RGB pixels)."""


@dataclass
class ExportResult:
    """What happened to one export; ``message`` is a sentence for a person."""

    format: ExportFormat
    path: Path | None
    produced: bool
    verified: bool
    agreement: float | None
    message: str
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return {"format": self.format.value, "path": None if self.path is None else str(self.path),
                "produced": self.produced, "verified": self.verified, "agreement": self.agreement,
                "message": self.message, "seconds": round(self.seconds, 2)}


@dataclass
class _Job:
    checkpoint: Path
    onnx_model: Path
    out_dir: Path
    work: Path  # a scratch folder, removed afterwards
    reference: OnnxModel
    images: list[np.ndarray]
    batch: np.ndarray  # the check images as the model sees them, float32 (N, 3, H, W)

    @property
    def metadata(self) -> str:
        return json.dumps(self.reference.info)

    @functools.cached_property
    def expected(self) -> np.ndarray:
        """The float ONNX model's top class of each check image: what the export must keep."""
        return self.reference.logits(self.batch).argmax(axis=1)

    @property
    def sample_shape(self) -> tuple[int, int, int, int]:
        return 1, 3, self.reference.preprocessing.height, self.reference.preprocessing.width


Produce = Callable[[_Job], Path]
Predict = Callable[[Path, _Job], np.ndarray]  # -> top class index of each check image


@dataclass(frozen=True)
class _Recipe:
    modules: tuple[str, ...]  # what must be importable to produce the format
    install: str  # what to do when one is missing
    produce: Produce
    predict: Predict | None  # None: this runtime cannot run here
    not_runnable: str = ""  # why, when predict is None
    caveat: str = ""  # said after the agreement


TRAIN_EXTRA = "pip install 'dermlens[train]'"
TFLITE_INSTALL = ("TFLite needs litert-torch and the LiteRT runtime (no TensorFlow, but about 190 MB of downloads "
                  "and 800 MB installed); litert-torch 0.10 asks for torch<2.15, so install it without its pins: "
                  "pip install --no-deps litert-torch==0.10.0 ai-edge-quantizer==0.10.0 && pip install "
                  "ai-edge-litert==2.3.0 litert-converter==0.5.0 jax torchao jaxtyping absl-py multipledispatch "
                  "immutabledict")
INT8_CAVEAT = ("It was calibrated on these same images, so expect lower agreement on others (0.93 on 105 held-out "
               "HAM10000 images when measured).")
COREML_NOT_RUNNABLE = ("Core ML models run only on Apple platforms: coremltools converts on Linux but cannot run "
                       "predictions here, so only the input and output shapes were checked")


def available_formats() -> dict[ExportFormat, str | None]:
    """Each format -> None when it can be produced here, else what to install.

    >>> available_formats()[ExportFormat.onnx] is None
    True
    """
    return {fmt: _missing(recipe) for fmt, recipe in RECIPES.items()}


def _missing(recipe: _Recipe) -> str | None:
    absent = [name for name in recipe.modules if importlib.util.find_spec(name) is None]
    return f"{', '.join(absent)} not installed; {recipe.install}" if absent else None


def export_iteration(checkpoint: Path, onnx_model: Path, fmt: ExportFormat, out_dir: Path,
                     check_images: Sequence[np.ndarray]) -> ExportResult:
    """Produce ``fmt`` in ``out_dir``, load it back with its runtime and compare top classes with the float
    ONNX model on ``check_images`` (uint8 RGB, HxWx3). Never raises for a converter's failure: the
    result says what went wrong.

    >>> export_iteration(Path("checkpoint.pt"), Path("model.onnx"), ExportFormat.openvino,
    ...                  Path("exports"), images).message   # doctest: +SKIP
    'openvino: model-openvino.zip keeps the top class of all 16 check images.'
    """
    fmt = ExportFormat(fmt)
    started = time.perf_counter()
    recipe = RECIPES[fmt]

    def result(path: Path | None, produced: bool, verified: bool, agreement: float | None,
               message: str) -> ExportResult:
        return ExportResult(fmt, path, produced, verified, agreement, f"{fmt.value}: {message}",
                            time.perf_counter() - started)

    reason = _missing(recipe)
    if reason is not None:
        return result(None, False, False, None, f"cannot be produced here: {reason}.")
    reference = OnnxModel.load(onnx_model)  # raises ModelFileError: without it nothing can be checked
    images = [_check_image(image, i) for i, image in enumerate(check_images)]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f"dermlens-{fmt.value}-") as work:
        pre = reference.preprocessing
        batch = pre.normalize(np.stack([pre.prepare(image) for image in images])) if images else \
            np.zeros((0, 3, pre.height, pre.width), np.float32)
        job = _Job(Path(checkpoint), Path(onnx_model), out_dir, Path(work), reference, images, batch)
        try:
            path = recipe.produce(job)
        except Exception as error:  # noqa: BLE001 - converters raise anything; the person gets the message
            return result(None, False, False, None, f"the converter failed: {type(error).__name__}: {error}")
        if recipe.predict is None:
            return result(path, True, False, None, f"{path.name} was produced but not verified: {recipe.not_runnable}.")
        if not images:
            return result(path, True, False, None, f"{path.name} was produced but not verified: no check images "
                                                   "were given.")
        try:
            tops = recipe.predict(path, job)
        except Exception as error:  # noqa: BLE001
            return result(path, True, False, None, f"{path.name} was produced but its runtime failed on the check "
                                                   f"images: {type(error).__name__}: {error}")
    expected = job.expected
    agreement = float(np.mean(tops == expected))
    same, total = int(np.sum(tops == expected)), len(images)
    caveat = f" {recipe.caveat}" if recipe.caveat else ""
    if same == total:
        return result(path, True, True, agreement, f"{path.name} keeps the top class of all {total} check "
                                                   f"images.{caveat}")
    return result(path, True, False, agreement, f"{path.name} keeps the top class of only {same} of {total} check "
                                                f"images (agreement {agreement:.2f}); check it on more images "
                                                f"before relying on it.{caveat}")


def _check_image(image: np.ndarray, index: int) -> np.ndarray:
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ExportError(f"check image {index} is {image.dtype} {image.shape}; give uint8 RGB pixels (H, W, 3), "
                          "e.g. from dermlens.data.images.load_rgb")
    return image


def _tops(run: Callable[[np.ndarray], np.ndarray], batch: np.ndarray) -> np.ndarray:
    """Top class of each image, one image at a time (several runtimes fix the batch at 1)."""
    return np.array([int(np.argmax(run(batch[i:i + 1]))) for i in range(len(batch))])


def _zip(folder: Path, target: Path) -> Path:
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                archive.write(path, path.relative_to(folder).as_posix())
    return target


def _unzip(archive: Path, job: _Job) -> Path:
    folder = Path(tempfile.mkdtemp(dir=job.work))
    with zipfile.ZipFile(archive) as source:
        source.extractall(folder)
    return folder


def _load_torch(job: _Job):
    """(model in eval mode, sample input) from the checkpoint."""
    import torch

    from dermlens.training.checkpoint import load_model

    model, _ = load_model(job.checkpoint)
    return model, torch.zeros(*job.sample_shape)


# --- ONNX, float and int8 ---------------------------------------------------------------------------

def _produce_onnx(job: _Job) -> Path:
    target = job.out_dir / "model.onnx"
    if not target.exists() or not target.samefile(job.onnx_model):
        shutil.copyfile(job.onnx_model, target)
    return target


def _predict_onnx(path: Path, job: _Job) -> np.ndarray:
    return _tops(OnnxModel.load(path).logits, job.batch)


def _predict_copy(path: Path, job: _Job) -> np.ndarray:
    """The float ONNX export is a byte-identical copy of the reference model: its answers are the reference's."""
    return job.expected


def _produce_onnx_int8(job: _Job) -> Path:
    """Static int8 quantization of the convolutional trunk calibrated on the check images
    (`dermlens.export.quantize.quantize_trunk`: int8 weights per output channel, uint8 activations; the
    classifier, class maps and not-skin density stay float). On the bundled model's float version, with
    14 HAM10000 images for the ranges, it kept the top class of 102 of 105 other images, as many as
    symmetric int8 activations on every operator did, and ran 1.6x faster than float where that recipe
    ran 1.4x slower (ONNX Runtime's x86 kernels want uint8 activations)."""
    from dermlens.export.quantize import quantize_trunk

    if not len(job.batch):
        raise ExportError("int8 quantization is calibrated on the check images; give at least one")
    target = job.out_dir / "model-int8.onnx"
    quantize_trunk(job.onnx_model, target, (job.batch[i:i + 1] for i in range(len(job.batch))))
    OnnxModel.load(target)  # the metadata survived quantization
    return target


# --- TorchScript ------------------------------------------------------------------------------------

def _produce_torchscript(job: _Job) -> Path:
    import torch

    model, sample = _load_torch(job)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit is deprecated in favour of torch.export, and says so
        if hasattr(torch.jit, "trace"):
            target = job.out_dir / "model.torchscript.pt"
            torch.jit.save(torch.jit.trace(model, sample), str(target), _extra_files={"dermlens.json": job.metadata})
            return target
        target = job.out_dir / "model.pt2"  # a torch without TorchScript: an ExportedProgram instead
        torch.export.save(torch.export.export(model, (sample,)), str(target),
                          extra_files={"dermlens.json": job.metadata})
        return target


def _predict_torchscript(path: Path, job: _Job) -> np.ndarray:
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = torch.jit.load(str(path)) if path.suffix == ".pt" else torch.export.load(str(path)).module()
    with torch.no_grad():
        return _tops(lambda x: model(torch.from_numpy(x)).numpy(), job.batch)


# --- OpenVINO ---------------------------------------------------------------------------------------

def _produce_openvino(job: _Job) -> Path:
    import openvino as ov

    model = ov.convert_model(str(job.onnx_model))
    model.set_rt_info(job.metadata, [METADATA_KEY])
    folder = job.work / "openvino"
    folder.mkdir()
    ov.save_model(model, str(folder / "model.xml"), compress_to_fp16=False)  # float32 weights, as trained
    return _zip(folder, job.out_dir / "model-openvino.zip")


def _predict_openvino(path: Path, job: _Job) -> np.ndarray:
    import openvino as ov

    compiled = ov.Core().compile_model(str(_unzip(path, job) / "model.xml"), "CPU")
    logits = compiled.output("logits")
    return _tops(lambda x: compiled(x)[logits], job.batch)


# --- TFLite (LiteRT) --------------------------------------------------------------------------------

def _produce_tflite(job: _Job) -> Path:
    import litert_torch

    model, sample = _load_torch(job)
    folder = job.work / "tflite"
    folder.mkdir()
    litert_torch.convert(model, (sample,)).export(str(folder / "model.tflite"))
    (folder / "dermlens.json").write_text(job.metadata)
    return _zip(folder, job.out_dir / "model-tflite.zip")


def _predict_tflite(path: Path, job: _Job) -> np.ndarray:
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(_unzip(path, job) / "model.tflite"))
    interpreter.allocate_tensors()
    image, logits = interpreter.get_input_details()[0]["index"], interpreter.get_output_details()[0]["index"]

    def run(x: np.ndarray) -> np.ndarray:
        interpreter.set_tensor(image, x)
        interpreter.invoke()
        return interpreter.get_tensor(logits)

    return _tops(run, job.batch)


# --- Core ML ----------------------------------------------------------------------------------------

def _produce_coreml(job: _Job) -> Path:
    """An ML program in float32 from torch.export (tracing fails on timm's dynamic "same" padding)."""
    import coremltools as ct
    import torch

    model, sample = _load_torch(job)
    program = torch.export.export(model, (sample,)).run_decompositions({})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # coremltools warns about its own internals
        converted = ct.convert(program, inputs=[ct.TensorType(name="image", shape=job.sample_shape)],
                               outputs=[ct.TensorType(name="logits")], convert_to="mlprogram",
                               compute_precision=ct.precision.FLOAT32, minimum_deployment_target=ct.target.iOS17)
    converted.user_defined_metadata[METADATA_KEY] = job.metadata
    converted.short_description = "dermlens skin-lesion classifier: decision support, not a diagnosis"
    description = converted.get_spec().description
    shapes = ([list(i.type.multiArrayType.shape) for i in description.input],
              [list(o.type.multiArrayType.shape) for o in description.output])
    if shapes != ([list(job.sample_shape)], [[1, len(job.reference.classes)]]):
        raise ExportError(f"the Core ML model's inputs and outputs have shapes {shapes}, not an image "
                          f"{list(job.sample_shape)} -> logits [1, {len(job.reference.classes)}]")
    folder = job.work / "coreml"
    folder.mkdir()
    converted.save(str(folder / "model.mlpackage"))
    (folder / "dermlens.json").write_text(job.metadata)
    return _zip(folder, job.out_dir / "model-coreml.zip")


# --- Docker -----------------------------------------------------------------------------------------

def _produce_docker(job: _Job) -> Path:
    from dermlens.export.docker import docker_context

    return _zip(docker_context(job.onnx_model, job.work / "docker", job.reference), job.out_dir / "docker.zip")


def _predict_docker(path: Path, job: _Job) -> np.ndarray:
    """POST each check image, losslessly as PNG, to the context's own server.py run by this Python."""
    from PIL import Image

    from dermlens.export.docker import post_image, running_server

    index = {tag: i for i, tag in enumerate(job.reference.classes)}
    tops = []
    with running_server(_unzip(path, job)) as url:
        for image in job.images:
            png = io.BytesIO()
            Image.fromarray(image).save(png, format="PNG")
            tops.append(index[post_image(url, png.getvalue())["predictions"][0]["tag"]])
    return np.array(tops)


RECIPES: dict[ExportFormat, _Recipe] = {
    ExportFormat.onnx: _Recipe((), "", _produce_onnx, _predict_copy),
    ExportFormat.onnx_int8: _Recipe(("onnx",), TRAIN_EXTRA, _produce_onnx_int8, _predict_onnx, caveat=INT8_CAVEAT),
    ExportFormat.torchscript: _Recipe(("torch",), TRAIN_EXTRA, _produce_torchscript, _predict_torchscript),
    ExportFormat.openvino: _Recipe(("openvino",), "pip install 'dermlens[export]' (or pip install openvino)",
                                   _produce_openvino, _predict_openvino),
    ExportFormat.tflite: _Recipe(("torch", "litert_torch", "ai_edge_litert"), TFLITE_INSTALL, _produce_tflite,
                                 _predict_tflite),
    ExportFormat.coreml: _Recipe(("torch", "coremltools"), "pip install 'dermlens[export]' (or pip install "
                                 "coremltools)", _produce_coreml, None, COREML_NOT_RUNNABLE),
    ExportFormat.docker: _Recipe((), "", _produce_docker, _predict_docker),
}
