"""Read an experiment's finished runs and write the comparison: tables (Markdown, CSV), figures, and
paired bootstrap intervals between recipes."""

from __future__ import annotations

import csv
import functools
import json
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dermlens.experiments.runner import EXTERNAL_FOLDER, LATENCY_FILE, TTA_FOLDER, run_folder
from dermlens.experiments.spec import Experiment


@dataclass
class RunResult:
    """What one finished run (one configuration, one seed) measured."""

    name: str
    seed: int
    folder: Path
    metrics: dict[str, Any]  # evaluation/metrics.json of the held-out test split
    summary: dict[str, Any]
    history: list[dict[str, Any]]
    latency: dict[str, Any] = field(default_factory=dict)
    tta_metrics: dict[str, Any] = field(default_factory=dict)  # evaluation with flip TTA, if run
    external_metrics: dict[str, Any] = field(default_factory=dict)  # evaluation on the external dataset

    @property
    def classes(self) -> list[str]:
        return list(self.metrics["classes"])

    def per_class(self, key: str) -> dict[str, float | None]:
        return {c: self.metrics["per_class"][c].get(key) for c in self.classes}

    @functools.cached_property
    def predictions(self) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
        """(image ids, true class, decided class, probabilities) from evaluation/predictions.csv, read
        once however many comparisons the run is in."""
        with open(self.folder / "evaluation" / "predictions.csv", newline="") as handle:
            rows = list(csv.DictReader(handle))
        index = {c: i for i, c in enumerate(self.classes)}
        ids = [r["image_id"] for r in rows]
        truth = np.array([index[r["true_label"]] for r in rows])
        decided = np.array([index[r["predicted_label"]] for r in rows])
        probabilities = np.array([[float(r[f"prob_{c}"]) for c in self.classes] for r in rows])
        return ids, truth, decided, probabilities


def collect(experiment: Experiment, out_dir: Path) -> list[RunResult]:
    """Every finished run of the experiment (unfinished ones are left out of the comparison)."""
    results = []
    for seed in experiment.seeds:
        for run in experiment.runs:
            folder = run_folder(out_dir, run, seed)
            metrics_file = folder / "evaluation" / "metrics.json"
            if not (folder / "summary.json").is_file() or not metrics_file.is_file():
                continue
            with open(folder / "history.csv", newline="") as handle:
                history = list(csv.DictReader(handle))
            latency, tta = folder / LATENCY_FILE, folder / TTA_FOLDER / "metrics.json"
            external = folder / EXTERNAL_FOLDER / "metrics.json"
            results.append(RunResult(run.name, seed, folder, json.loads(metrics_file.read_text()),
                                     json.loads((folder / "summary.json").read_text()), history,
                                     json.loads(latency.read_text()) if latency.is_file() else {},
                                     json.loads(tta.read_text()) if tta.is_file() else {},
                                     json.loads(external.read_text()) if external.is_file() else {}))
    return results


def _mean_sd(values: list[float | None]) -> tuple[float | None, float | None]:
    present = [v for v in values if v is not None]
    if not present:
        return None, None
    return statistics.fmean(present), (statistics.stdev(present) if len(present) > 1 else None)


def _cell(mean: float | None, sd: float | None, digits: int = 3) -> str:
    if mean is None:
        return "n/a"
    return f"{mean:.{digits}f}" + ("" if not sd else f" ± {sd:.{digits}f}")  # no "± 0" for constants


#: (column, how to read it off a run, digits)
_COLUMNS: tuple[tuple[str, Any, int], ...] = (
    ("test images", lambda r: r.metrics["n_samples"], 0),
    ("balanced accuracy", lambda r: r.metrics["balanced_accuracy"], 3),
    ("accuracy", lambda r: r.metrics["accuracy"], 3),
    ("macro AUC", lambda r: r.metrics.get("macro_auc"), 3),
    ("training minutes", lambda r: r.summary.get("minutes"), 1),
    ("epoch kept", lambda r: r.summary.get("selected_epoch"), 0),
    ("parameters (M)", lambda r: r.latency.get("parameters", 0) / 1e6 if r.latency else None, 2),
    ("latency ms (ONNX, 1 image)", lambda r: r.latency.get("onnx_ms_p50"), 1),
)
_TTA_COLUMNS: tuple[tuple[str, Any, int], ...] = (
    ("balanced accuracy, TTA", lambda r: r.tta_metrics.get("balanced_accuracy"), 3),
    ("macro AUC, TTA", lambda r: r.tta_metrics.get("macro_auc"), 3),
    ("latency ms, TTA", lambda r: r.latency.get("onnx_tta_ms_p50") if r.tta_metrics else None, 1),
)


_EXTERNAL_COLUMNS: tuple[tuple[str, Any, int], ...] = (
    ("external images", lambda r: r.external_metrics.get("n_samples"), 0),
    ("external balanced accuracy", lambda r: r.external_metrics.get("balanced_accuracy"), 3),
    ("external melanoma-vs-naevus AUC", lambda r: r.external_metrics.get("melanoma_vs_naevus_auc"), 3),
)


def _columns(experiment: Experiment) -> tuple[tuple[str, Any, int], ...]:
    return (_COLUMNS + (_TTA_COLUMNS if experiment.tta else ())
            + (_EXTERNAL_COLUMNS if experiment.external else ()))


def summary_rows(experiment: Experiment, results: list[RunResult]) -> list[dict[str, Any]]:
    """One row per configuration: mean and standard deviation over its seeds of every column, and
    each class's recall and precision."""
    rows = []
    for run in experiment.runs:
        mine = [r for r in results if r.name == run.name]
        if not mine:
            continue
        row: dict[str, Any] = {"run": run.name, "seeds": len(mine)}
        for column, read, _ in _columns(experiment):
            row[column] = _mean_sd([read(r) for r in mine])
        for key in ("recall", "precision"):
            for c in mine[0].classes:
                row[f"{key} {c}"] = _mean_sd([r.per_class(key).get(c) for r in mine])
        rows.append(row)
    return rows


def _markdown_table(header: list[str], body: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cells) + " |" for cells in body]
    return lines + [""]


def paired_comparisons(experiment: Experiment, results: list[RunResult], n_resamples: int = 1000) -> list[dict]:
    """For each pair the experiment names and each seed both finished: the paired bootstrap interval of
    the difference in balanced accuracy and in macro AUC on the same test images."""
    from dermlens.evaluation.paired import paired_bootstrap

    found = {(r.name, r.seed): r for r in results}
    comparisons = []
    for a_name, b_name in experiment.compare:
        for seed in experiment.seeds:
            a, b = found.get((a_name, seed)), found.get((b_name, seed))
            if a is None or b is None or a.classes != b.classes:
                continue
            ids_a, y, labels_a, probs_a = a.predictions
            ids_b, _, labels_b, probs_b = b.predictions
            if ids_a != ids_b:
                continue  # not the same test images (another selection): nothing to pair
            for metric in ("balanced_accuracy", "macro_auc"):
                diff = paired_bootstrap(y, labels_a, probs_a, labels_b, probs_b, metric,
                                        n_resamples=n_resamples, seed=seed)
                comparisons.append({"a": a_name, "b": b_name, "seed": seed, "metric": metric,
                                    "a_score": diff.score_a, "b_score": diff.score_b,
                                    "difference": diff.difference, "low": diff.low, "high": diff.high,
                                    "beyond_noise": diff.significant})
    return comparisons


def write_comparison(experiment: Experiment, out_dir: str | Path, command: str = "") -> Path:
    """comparison.md, comparison.csv, runs.csv, paired.csv, curves.png and confusion.png in ``out_dir``."""
    from dermlens.experiments.figures import plot_confusion_grid, plot_overlaid_curves

    out_dir = Path(out_dir)
    results = collect(experiment, out_dir)
    rows = summary_rows(experiment, results)
    comparisons = paired_comparisons(experiment, results)
    _write_csv(out_dir / "comparison.csv", [
        {k: v for key, value in row.items() for k, v in _flat(key, value).items()} for row in rows])
    _write_csv(out_dir / "runs.csv", [
        {"run": r.name, "seed": r.seed, **{c: read(r) for c, read, _ in _columns(experiment)},
         **{f"recall {c}": v for c, v in r.per_class("recall").items()},
         **{f"precision {c}": v for c, v in r.per_class("precision").items()}} for r in results])
    _write_csv(out_dir / "paired.csv", comparisons)
    first_seed = {r.name: r for r in reversed(results)}  # each configuration's first seed
    ordered = [first_seed[run.name] for run in experiment.runs if run.name in first_seed]
    plot_overlaid_curves({r.name: r.history for r in ordered}, out_dir / "curves.png")
    plot_confusion_grid({r.name: (np.array(r.metrics["confusion_matrix"]), r.classes) for r in ordered},
                        out_dir / "confusion.png")
    path = out_dir / "comparison.md"
    path.write_text("\n".join(_markdown(experiment, rows, comparisons, results, command)), encoding="utf-8")
    return path


def _flat(key: str, value: Any) -> dict[str, Any]:
    if isinstance(value, tuple):
        return {key: value[0], f"{key} sd": value[1]}
    return {key: value}


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)


_METRIC_NAMES = {"balanced_accuracy": "balanced accuracy", "macro_auc": "macro AUC"}


def _markdown(experiment: Experiment, rows: list[dict], comparisons: list[dict], results: list[RunResult],
              command: str) -> list[str]:
    lines = [f"# {experiment.title}", ""]
    if experiment.question:
        lines += [experiment.question, ""]
    if command:
        lines += ["```bash", command, "```", ""]
    if not rows:
        return lines + ["No run has finished yet.", ""]
    seeds = ", ".join(str(s) for s in experiment.seeds)
    lines += [("Every run is tested on the test part of one shared split, grouped by lesion (a run on part "
               "of the dataset, some classes or body sites, on that part of it). "
               f"Seeds {seeds}; with more than one seed a cell is mean ± standard deviation."), ""]
    columns = _columns(experiment)
    lines += _markdown_table(["run", "seeds"] + [c for c, _, _ in columns],
                             [[r["run"], str(r["seeds"])] + [_cell(*r[c], digits) for c, _, digits in columns]
                              for r in rows])
    if experiment.external:
        lines += [(f"The external columns are each run's model on `{experiment.external}`, its images of the "
                   "run's classes, never trained on. Melanoma-versus-naevus AUC ranks p(mel) / (p(mel) + p(nv)) "
                   "on the melanomas and naevi."), ""]
    classes = results[0].classes
    for key in ("recall", "precision"):
        lines += [f"{key.capitalize()} per class (test split):", ""]
        lines += _markdown_table(["run"] + classes,
                                 [[r["run"]] + [_cell(*r.get(f"{key} {c}", (None, None))) for c in classes]
                                  for r in rows])
    if comparisons:
        lines += ["Paired bootstrap on the same test images (1,000 resamples, 95% interval of B - A):", ""]
        lines += _markdown_table(
            ["A", "B", "seed", "metric", "A", "B", "B - A", "95% interval", "beyond noise?"],
            [[c["a"], c["b"], str(c["seed"]), _METRIC_NAMES[c["metric"]], f"{c['a_score']:.3f}",
              f"{c['b_score']:.3f}", f"{c['difference']:+.3f}", f"[{c['low']:+.3f}, {c['high']:+.3f}]",
              "yes" if c["beyond_noise"] else "no"] for c in comparisons])
    lines += ["![training curves](curves.png)", "", "![confusion matrices](confusion.png)", ""]
    lines += ["Run folders: " + ", ".join(f"`{r.folder.name}`" for r in results) + ".", ""]
    return lines
