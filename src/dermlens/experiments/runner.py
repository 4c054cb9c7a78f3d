"""Run an experiment's grid: one shared split, each run a normal run folder, resumable."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from dermlens.errors import ConfigError
from dermlens.experiments.spec import Experiment, RunSpec
from dermlens.progress import say

SPLIT_FILE = "split.json"
LATENCY_FILE = "latency.json"
TTA_FOLDER = "evaluation_tta"
EXTERNAL_FOLDER = "evaluation_external"


def run_folder(out_dir: Path, run: RunSpec | str, seed: int) -> Path:
    name = run if isinstance(run, str) else run.name
    return out_dir / f"{name}-s{seed}"


def shared_split(experiment: Experiment, data: str, out_dir: Path) -> Path:
    """The experiment's one split of the whole dataset (runs on a part of it use that part of it)."""
    from dermlens.data.readers import read_dataset
    from dermlens.data.splits import grouped_split, save_split
    from dermlens.training.config import load_config

    path = out_dir / SPLIT_FILE
    if path.is_file():
        return path
    config = load_config(experiment.base, [f"data.path={json.dumps(data)}"]).data
    dataset = read_dataset(config.path, images_dir=config.images or None)
    split = grouped_split(dataset, fractions=config.fractions, seed=config.seed)
    save_split(split, dataset, path)
    say(f"{experiment.name}: one split for every run, saved to {path}")
    return path


def run_experiment(experiment: Experiment, out_dir: str | Path, *, data: str | None = None) -> list[Path]:
    """Train every run of the grid once per seed (finished runs are kept, interrupted ones resume);
    returns the run folders in training order.

    >>> from dermlens.experiments.spec import load_experiment
    >>> folders = run_experiment(load_experiment("configs/experiments/transfer.yaml"), "runs/transfer")  # doctest: +SKIP
    """
    from dermlens.training.config import load_config
    from dermlens.training.fit import BEST, fit

    data = data or experiment.data
    if not data:
        raise ConfigError(f"experiment {experiment.name!r} names no dataset: pass --data PATH or set "
                          f"'data' in the experiment file")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    split = shared_split(experiment, data, out_dir)
    common = [f"data.path={json.dumps(data)}", f"data.split_file={json.dumps(str(split))}"]
    if experiment.max_minutes:
        common.append(f"training.max_minutes={experiment.max_minutes}")
    folders = []
    total = len(experiment.seeds) * len(experiment.runs)
    for seed in experiment.seeds:
        checkpoints = {r.name: run_folder(out_dir, r, seed) / BEST for r in experiment.runs}
        for run in experiment.runs:
            folder = run_folder(out_dir, run, seed)
            folders.append(folder)
            config = load_config(experiment.base, common + [f"training.seed={seed}"]
                                 + experiment.overrides(run, checkpoints))
            if _finished(folder, config):
                say(f"[{len(folders)}/{total}] {folder.name}: finished earlier, kept")
            else:
                say(f"[{len(folders)}/{total}] {folder.name}: training")
                fit(config, folder)
            if not (folder / LATENCY_FILE).is_file():
                measure_latency(folder / BEST, folder)
            if experiment.tta and not (folder / TTA_FOLDER / "metrics.json").is_file():
                evaluate_with_tta(folder, config)
            if experiment.external and not (folder / EXTERNAL_FOLDER / "metrics.json").is_file():
                evaluate_externally(folder, experiment.external, config)
    return folders


def evaluate_with_tta(folder: Path, config) -> dict:
    """The run's exported model on its own test split, averaged over four flips of each image."""
    from dermlens.data.readers import read_dataset
    from dermlens.data.selection import Selection, select
    from dermlens.data.splits import load_split
    from dermlens.evaluation.model_eval import evaluate_model

    dataset = select(read_dataset(config.data.path, images_dir=config.data.images or None),
                     Selection.from_settings(config.data))
    test = dataset.subset(load_split(folder / SPLIT_FILE, dataset).test)
    return evaluate_model(folder / "model.onnx", test, folder / TTA_FOLDER, tta=True,
                          cache_dir=Path(config.data.cache_dir) if config.data.cache_dir else None)


def evaluate_externally(folder: Path, external: str, config) -> dict:
    """The run's exported model on another dataset's images of the run's classes (not selected by
    body site: other sources seldom record it the same way)."""
    from dermlens.data.readers import read_dataset
    from dermlens.data.selection import Selection, select
    from dermlens.evaluation.model_eval import evaluate_model

    classes = json.loads((folder / "evaluation" / "metrics.json").read_text())["classes"]
    dataset = read_dataset(external)
    present = tuple(c for c in classes if c in dataset.classes)
    if not present:
        raise ConfigError(f"the external dataset {external} has none of the classes {classes} of {folder.name}")
    say(f"{folder.name}: evaluating on {external}")
    return evaluate_model(folder / "model.onnx", select(dataset, Selection(classes=present)),
                          folder / EXTERNAL_FOLDER,
                          cache_dir=Path(config.data.cache_dir) if config.data.cache_dir else None)


def _finished(folder: Path, config) -> bool:
    """A run with a summary is done; one whose saved config differs belongs to another experiment."""
    import yaml

    from dermlens.training.config import same_config

    if not (folder / "summary.json").is_file():
        return False
    saved = yaml.safe_load((folder / "config.yaml").read_text())
    if not same_config(saved, config):
        raise ConfigError(f"{folder} holds a finished run with other settings than the experiment "
                          f"file now gives it; move that folder away or write to another --out")
    return True


def measure_latency(checkpoint: Path, folder: Path, repeats: int = 40) -> dict:
    """Single-image inference time of the run's model on ONNX Runtime (the way dermlens serves it):
    export it to ``folder/model.onnx``, then the median of ``repeats`` timed calls after a warm-up."""
    import onnxruntime as ort

    from dermlens.export.onnx import export_onnx
    from dermlens.inference.onnx_model import available_cpus
    from dermlens.training.checkpoint import load_model

    model, info = load_model(checkpoint)
    path = export_onnx(checkpoint, folder / "model.onnx")
    options = ort.SessionOptions()
    options.intra_op_num_threads = available_cpus()
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    image = np.zeros((1, 3, info.preprocessing.height, info.preprocessing.width), np.float32)

    def median_ms(batch: np.ndarray) -> float:
        for _ in range(5):
            session.run(None, {"image": batch})
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            session.run(None, {"image": batch})
            times.append((time.perf_counter() - started) * 1000)
        return float(np.median(times))

    result = {"onnx_ms_p50": median_ms(image),
              "onnx_tta_ms_p50": median_ms(np.repeat(image, 4, axis=0)),  # the four flips in one batch
              "threads": available_cpus(),
              "parameters": int(sum(p.numel() for p in model.parameters())),
              "input": [info.preprocessing.height, info.preprocessing.width]}
    (folder / LATENCY_FILE).write_text(json.dumps(result, indent=2))
    return result
