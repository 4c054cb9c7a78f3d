"""Speed and memory of the predictor (issue targets: p50 <= 15 ms, >= 3x eager PyTorch, >= 100 images/s,
<= 400 MB, cold start <= 2 s).

    python bench/predictor.py [--model default] [--checkpoint RUN/best.pt | --eager-architecture] [--images 300]

Single-image latency is the whole path a server runs per request: read the file, decode, quality
gates, preprocessing, ONNX Runtime (classes and not-skin score), abstention. With --checkpoint, the same
images also go through the eager PyTorch checkpoint (decode and preprocessing included) in this run, for
the speed-up. Without the checkpoint, --eager-architecture builds the model file's architecture (backbone,
classes, input size) in PyTorch with untrained weights: the same operations on the same shapes, so the
same time (the answers are not compared; tests/inference checks export parity on real checkpoints).
Peak memory and cold start are measured in fresh processes.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("DERMLENS_QUIET", "1")
HAM = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "ham10000"


def latencies(run, files: list[bytes], warmup: int = 5) -> np.ndarray:
    """Per-image milliseconds from the file's bytes in memory (what a server holds after an upload)
    to the answer: decode, gates, preprocessing, inference. Disk reads are not part of it."""
    for data in files[:warmup]:
        run(data)
    times = []
    for data in files:
        start = time.perf_counter()
        run(data)
        times.append(time.perf_counter() - start)
    return np.array(times) * 1000


def eager_runner(checkpoint: Path | None, onnx_model=None):
    """Decode, preprocess and run eager PyTorch per image: the checkpoint, or (``checkpoint`` None)
    ``onnx_model``'s architecture with untrained weights, for timing only."""
    import torch

    from dermlens.data.images import load_rgb
    from dermlens.models import create_model
    from dermlens.training.checkpoint import load_model

    if checkpoint is not None:
        model, info = load_model(checkpoint)
        preprocessing = info.preprocessing
    else:
        model = create_model(onnx_model.info["backbone"], len(onnx_model.classes), pretrained=False)
        preprocessing = onnx_model.preprocessing
    model.eval()

    def run(data: bytes) -> np.ndarray:
        with torch.inference_mode():
            return model(torch.from_numpy(preprocessing(load_rgb(data)))).numpy()

    return run


# Peak resident memory from the kernel's high-water mark of this process image. (getrusage's ru_maxrss
# is not reset by exec, so a child forked from a large parent would report the parent's size.)
PEAK_KIB = """
def peak_kib():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
"""


def in_fresh_process(code: str, prelude: str = "") -> str:
    return subprocess.run([sys.executable, "-c", prelude + code], capture_output=True, text=True,
                          check=True).stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default", help="an exported .onnx model (default: bundled)")
    parser.add_argument("--checkpoint", type=Path, help="the model's PyTorch checkpoint, for the speed-up")
    parser.add_argument("--eager-architecture", action="store_true",
                        help="without a checkpoint: time eager PyTorch on the model's architecture")
    parser.add_argument("--images", type=int, default=300)
    args = parser.parse_args()

    from dermlens.data.readers import read_dataset
    from dermlens.inference.predictor import Predictor

    dataset = read_dataset(HAM)
    picks = np.random.default_rng(0).choice(len(dataset), args.images, replace=False)
    paths = [dataset.paths[i] for i in picks]
    predictor = Predictor.load(args.model)
    print(f"model: {args.model}  ({predictor.model.info.get('backbone')}, "
          f"{predictor.model.preprocessing.width}x{predictor.model.preprocessing.height}), "
          f"{os.cpu_count()} CPUs, {args.images} HAM10000 images")

    files = [path.read_bytes() for path in paths]
    onnx_ms = latencies(lambda data: predictor.predict(data), files)
    print(f"single image, ONNX Runtime predictor: p50 {np.median(onnx_ms):.1f} ms  "
          f"p90 {np.percentile(onnx_ms, 90):.1f} ms  (target p50 <= 15 ms)")
    for batch_size in (16, 32):
        start = time.perf_counter()
        results = predictor.predict_many(paths, batch_size=batch_size, progress=False)
        seconds = time.perf_counter() - start
        print(f"batch prediction (batch {batch_size}): {len(results) / seconds:.0f} images/s "
              f"(target >= 100)")

    if args.checkpoint or args.eager_architecture:  # after the ONNX figures: torch's idle OpenMP threads would slow them
        eager_ms = latencies(eager_runner(args.checkpoint, predictor.model), files)
        source = "checkpoint" if args.checkpoint else "architecture, untrained weights"
        print(f"single image, eager PyTorch ({source}): p50 {np.median(eager_ms):.1f} ms  "
              f"p90 {np.percentile(eager_ms, 90):.1f} ms")
        print(f"speed-up: {np.median(eager_ms) / np.median(onnx_ms):.1f}x (target >= 3x)")

    model_arg = repr(args.model)
    peak = in_fresh_process(
        "import resource; from dermlens.inference.predictor import Predictor; "
        f"p = Predictor.load({model_arg}); p.predict({str(paths[0])!r}); "
        "print(peak_kib())", prelude=PEAK_KIB)
    print(f"peak memory of a process that made one prediction: {int(peak) / 1024:.0f} MB (target <= 400)")
    peak = in_fresh_process(
        "from dermlens.inference.predictor import Predictor; "
        f"p = Predictor.load({model_arg}); p.predict_many({[str(x) for x in paths[:64]]!r}, progress=False); "
        "print(peak_kib())", prelude=PEAK_KIB)
    print(f"peak memory of a process that predicted 64 images in batches of 16: {int(peak) / 1024:.0f} MB")

    command = [sys.executable, "-m", "dermlens.cli", "predict", str(paths[0]), "--format", "json"]
    if args.model != "default":
        command += ["--model", args.model]
    colds = []
    for _ in range(3):
        start = time.perf_counter()
        subprocess.run(command, capture_output=True, check=False)
        colds.append(time.perf_counter() - start)
    print(f"cold start (`dermlens predict` one image, whole process): best {min(colds):.2f} s, "
          f"median {np.median(colds):.2f} s (target <= 2 s)")
    print(f"this benchmark's own peak memory: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
