"""The `dermlens` command line: a thin adapter over the core; errors become one clear line."""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import Annotated, Literal

import typer

from dermlens import DISCLAIMER
from dermlens.errors import DermlensError

app = typer.Typer(help=f"dermlens: train, evaluate and serve skin-lesion classifiers. {DISCLAIMER}",
                  no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False)


def friendly_errors(command):
    """Print dermlens errors as one line a person can act on (exit code 2), never a traceback."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except DermlensError as error:
            typer.secho(f"error: {error}", fg=typer.colors.RED, err=True)
            raise typer.Exit(2) from None
        except KeyboardInterrupt:
            typer.secho("interrupted; a training run resumes from its last epoch when run again",
                        err=True)
            raise typer.Exit(130) from None

    return wrapper


DataOption = Annotated[Path, typer.Option("--data", help="A folder with labels.csv and images/, a "
                                          "folder per class, or a CSV (ISIC/HAM metadata, ISIC ground "
                                          "truth or labels.csv).")]
ImagesOption = Annotated[Path | None, typer.Option("--images", help="Image folder when the CSV's "
                                                      "images are not beside it.")]
SplitOption = Annotated[Path, typer.Option("--split", help="The split file the model was trained on "
                                           "(split.json of its run): validation calibrates, test reports.")]
ReportOption = Annotated[Path | None, typer.Option("--report", help="Folder for the test report "
                                                   "(default: beside --out).")]
CardOption = Annotated[Path | None, typer.Option("--card", help="YAML with model-card facts to embed in "
                                                 "place of the model's.")]


@app.command()
@friendly_errors
def train(
    data: DataOption,
    out: Annotated[Path, typer.Option("--out", help="Run folder: config, split, curves, checkpoints.")],
    config: Annotated[Path | None, typer.Option("--config", help="YAML recipe (see configs/).")] = None,
    backbone: Annotated[str | None, typer.Option("--backbone", help="See `dermlens backbones`.")] = None,
    max_minutes: Annotated[float | None, typer.Option(
        "--max-minutes", help="Time budget of the whole run in minutes, resumes included; an epoch that "
                              "overruns it is cut short.")] = None,
    images: ImagesOption = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="Override: section.key=value "
                                                      "(repeatable), e.g. training.epochs=3")] = None,
    fresh: Annotated[bool, typer.Option("--fresh", help="Ignore an interrupted run in --out.")] = False,
) -> None:
    """Train a classifier; the best checkpoint (by validation balanced accuracy) is OUT/best.pt."""
    from dermlens.training.config import load_config
    from dermlens.training.fit import fit

    overrides = [f"data.path={data}"] + ([f"data.images={images}"] if images else [])
    overrides += [f"model.backbone={backbone}"] if backbone else []
    overrides += [f"training.max_minutes={max_minutes}"] if max_minutes is not None else []
    run = fit(load_config(config, overrides + list(set_ or [])), out, resume=not fresh)
    typer.echo(str(run.best_checkpoint))


@app.command()
@friendly_errors
def ensemble(
    models: Annotated[list[Path], typer.Argument(help="Two or more checkpoints (best.pt) trained on one "
                                                 "split; the first sets the input size.")],
    out: Annotated[Path, typer.Option("--out", help="Folder for the ensemble's best.pt, summary and "
                                      "evaluation.")],
    data: Annotated[Path | None, typer.Option("--data", help="The members' dataset, when it has moved "
                                              "since training.")] = None,
    name: Annotated[list[str] | None, typer.Option("--name", help="A name per member, in order "
                                                   "(default: their run folders' names).")] = None,
) -> None:
    """Combine trained models into one: their calibrated probabilities averaged, then calibrated and
    tested on their split. Export it with `dermlens export` like any checkpoint."""
    from dermlens.training.ensemble import combine

    run = combine(models, out, names=name or None, data_path=str(data) if data else None)
    typer.echo(str(run.best_checkpoint))


@app.command()
@friendly_errors
def experiment(
    file: Annotated[Path, typer.Argument(help="An experiment file (see configs/experiments/).")],
    out: Annotated[Path | None, typer.Option("--out", help="Folder for the run folders and the "
                                                "comparison (default: runs/experiments/NAME).")] = None,
    data: Annotated[Path | None, typer.Option("--data", help="Dataset (default: the file's 'data').")] = None,
    compare_only: Annotated[bool, typer.Option("--compare-only", help="Train nothing; compare the runs "
                                               "that have finished.")] = False,
) -> None:
    """Train a grid of runs on one shared split (resumable) and write comparison.md, CSV and plots."""
    from dermlens.experiments.compare import write_comparison
    from dermlens.experiments.runner import run_experiment
    from dermlens.experiments.spec import load_experiment

    spec = load_experiment(file)
    out = out or Path("runs") / "experiments" / spec.name
    if not compare_only:
        run_experiment(spec, out, data=str(data) if data else None)
    command = f"dermlens experiment {file}" + (f" --data {data}" if data else "") + f" --out {out}"
    typer.echo(str(write_comparison(spec, out, command)))


@app.command()
@friendly_errors
def evaluate(
    data: DataOption,
    model: Annotated[Path, typer.Option("--model", help="A checkpoint (.pt) or exported model (.onnx).")],
    out: Annotated[Path, typer.Option("--out", help="Folder for metrics.json, plots and report.html.")],
    images: ImagesOption = None,
    isic: Annotated[bool, typer.Option("--isic", help="Also write isic_submission.csv.")] = False,
    tta: Annotated[bool, typer.Option("--tta", help="Average over four flips (4x slower).")] = False,
) -> None:
    """Evaluate a model on a labelled dataset: ISIC metrics, plots and an HTML/Markdown report."""
    from dermlens.data.readers import read_dataset
    from dermlens.evaluation.model_eval import evaluate_model

    metrics = evaluate_model(model, read_dataset(data, images_dir=images), out, isic_submission=isic,
                             tta=tta)
    typer.echo(f"balanced accuracy {metrics['balanced_accuracy']:.3f}  macro AUC "
               f"{_fmt(metrics['macro_auc'])}  accuracy {metrics['accuracy']:.3f}  "
               f"ECE {metrics['ece']:.3f}"
               + (f"  melanoma-vs-naevus AUC {metrics['melanoma_vs_naevus_auc']:.3f}"
                  if metrics.get("melanoma_vs_naevus_auc") is not None else ""))
    typer.echo(f"report: {out / 'report.html'}")
    typer.echo(DISCLAIMER)


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


@app.command()
@friendly_errors
def export(
    model: Annotated[Path, typer.Option("--model", help="A dermlens checkpoint (.pt).")],
    out: Annotated[Path, typer.Option("--out", help="The .onnx file to write.")],
    data: Annotated[Path | None, typer.Option(
        "--data", help="The training dataset, to fit the not-skin check and the abstention threshold "
        "(default: the dataset and split recorded in the checkpoint's run folder).")] = None,
    images: ImagesOption = None,
    no_gates: Annotated[bool, typer.Option("--no-gates", help="Export without the not-skin check.")] = False,
    card: Annotated[Path | None, typer.Option("--card", help="YAML with model-card facts (data, "
                                                 "licence, recipe, limits) to embed.")] = None,
    half_weights: Annotated[bool, typer.Option("--half-weights", help="Store the weights as float16: "
                                               "half the file, still computed in float32.")] = False,
) -> None:
    """Export a checkpoint to ONNX: classes, preprocessing, temperature and serving gates travel inside."""
    from dermlens.export.onnx import export_onnx
    from dermlens.export.reference import serving_gates_for

    density, gates = (None, None) if no_gates else serving_gates_for(model, data, images)
    if density is None and not no_gates:
        typer.secho("note: no training data found for this checkpoint; exported without the not-skin "
                    "check (pass --data)", err=True)
    card_facts = _read_card(card) if card else None
    typer.echo(str(export_onnx(model, out, density=density, gates=gates, model_card=card_facts,
                               half_weights=half_weights)))


@app.command()
@friendly_errors
def recalibrate(
    model: Annotated[Path, typer.Option("--model", help="An exported model (.onnx), e.g. the bundled one.")],
    data: DataOption,
    split: SplitOption,
    out: Annotated[Path, typer.Option("--out", help="The recalibrated .onnx file to write.")],
    images: ImagesOption = None,
    report: ReportOption = None,
    card: CardOption = None,
) -> None:
    """Recalibrate an exported model by matrix scaling on its validation split (no retraining): a new
    file with calibrated logits, decision rule and abstention threshold, and a test report."""
    from dermlens.export.recalibrate import recalibrate_onnx

    report = report or out.parent / f"{out.stem}-recalibration"
    result = recalibrate_onnx(model, *_dataset_and_split(data, images, split), out, report,
                              card=_read_card(card) if card else None)
    metrics, calibration = result["metrics"], result["calibration"]
    typer.echo(f"validation ECE {calibration['val_ece_temperature']:.3f} with the temperature, "
               f"{calibration['val_ece_after']:.3f} recalibrated; test balanced accuracy "
               f"{metrics['balanced_accuracy']:.3f}, macro AUC {_fmt(metrics['macro_auc'])}")
    typer.echo(f"report: {report / 'evaluation' / 'report.html'}")
    typer.echo(str(out))


@app.command()
@friendly_errors
def quantize(
    model: Annotated[Path, typer.Option("--model", help="An exported float model (.onnx), e.g. the bundled one.")],
    data: DataOption,
    split: SplitOption,
    out: Annotated[Path, typer.Option("--out", help="The int8 .onnx file to write.")],
    images: ImagesOption = None,
    calibration_images: Annotated[int, typer.Option(
        "--calibration-images", min=1, help="Training images of the split that set the int8 ranges.")] = 400,
    report: ReportOption = None,
    card: CardOption = None,
) -> None:
    """Quantize an exported model's convolutional trunk to int8 (faster and about 3x smaller), then
    recalibrate it on its validation split and report it on its test split."""
    from dermlens.export.quantize import quantize_onnx

    report = report or out.parent / f"{out.stem}-quantization"
    result = quantize_onnx(model, *_dataset_and_split(data, images, split), out, report,
                           n_images=calibration_images, card=_read_card(card) if card else None)
    metrics, agreement = result["metrics"], result["agreement"]
    typer.echo(f"int8 and float agree on the top class of {agreement['same_top_class']:.1%} of "
               f"{agreement['images']} held-out images (largest probability change "
               f"{agreement['max_probability_change']:.3f}); recalibrated: test balanced accuracy "
               f"{metrics['balanced_accuracy']:.3f}, macro AUC {_fmt(metrics['macro_auc'])}")
    typer.echo(f"report: {report / 'evaluation' / 'report.html'}")
    typer.echo(str(out))


def _dataset_and_split(data: Path, images: Path | None, split: Path):
    """The dataset and the saved split of it that a model was trained on."""
    from dermlens.data.readers import read_dataset
    from dermlens.data.splits import load_split

    dataset = read_dataset(data, images_dir=images)
    return dataset, load_split(split, dataset)


def _read_card(path: Path) -> dict:
    import yaml

    from dermlens.errors import ConfigError

    try:
        facts = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as error:
        raise ConfigError(f"cannot read the model card facts {path}: {error}") from None
    if not isinstance(facts, dict):
        raise ConfigError(f"{path} must be a YAML mapping (data, licence, recipe, limits, ...)")
    return facts


OutputFormat = Literal["table", "json", "csv", "isic"]


@app.command()
@friendly_errors
def predict(
    paths: Annotated[list[Path], typer.Argument(help="Image files and folders of images.")],
    model: Annotated[str | None, typer.Option("--model", help="An exported .onnx model "
                                                  "(default: the bundled model).")] = None,
    top_k: Annotated[int, typer.Option("--top-k", min=1, help="Classes shown per image.")] = 3,
    output_format: Annotated[OutputFormat, typer.Option("--format", help="table, json, csv or isic.")] = "table",
    out: Annotated[Path | None, typer.Option("--out", help="Write to this file instead of the screen.")] = None,
    tta: Annotated[bool, typer.Option("--tta", help="Average over four flips (4x slower).")] = False,
) -> None:
    """Classify images. Exit code 1 when some could not be classified (each still gets its row)."""
    from dermlens.inference.formats import to_csv, to_isic_csv, to_json
    from dermlens.inference.predictor import Predictor
    from dermlens.inference.sources import image_files

    predictor = Predictor.load(model, tta=tta)
    files = image_files(paths)
    predictions = predictor.predict_many(files, progress=len(files) > 1)
    if output_format == "table" and out is None:
        _print_table(predictions, top_k)
    else:
        text = {"json": lambda: to_json(predictions, top_k), "csv": lambda: to_csv(predictions, predictor.classes),
                "isic": lambda: to_isic_csv(predictions, predictor.classes),
                "table": lambda: _table_text(predictions, top_k)}[output_format]()
        if out is None:
            typer.echo(text, nl=False)
        else:
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(text)
            typer.echo(f"{len(predictions)} predictions written to {out}", err=True)
    if any(p.status == "rejected" for p in predictions):
        raise typer.Exit(1)


def _table_rows(predictions, top_k: int):
    for p in predictions:
        answer = "; ".join(f"{c.name} {c.probability:.0%}" for c in p.top[:top_k]) if p.top else "-"
        yield p.image, p.status + (f" ({p.reason})" if p.reason else ""), answer, p.message


def _print_table(predictions, top_k: int) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="dermlens predictions", caption=DISCLAIMER, show_lines=True)
    for column in ("image", "status", f"top {top_k}", "what it means"):
        table.add_column(column, overflow="fold")
    for row in _table_rows(predictions, top_k):
        table.add_row(*row)
    Console().print(table)


def _table_text(predictions, top_k: int) -> str:
    lines = ["\t".join(("image", "status", f"top {top_k}", "what it means"))]
    lines += ["\t".join(row) for row in _table_rows(predictions, top_k)]
    return "\n".join(lines + ["", DISCLAIMER, ""])


@app.command()
@friendly_errors
def info(
    model: Annotated[str | None, typer.Option("--model", help="An exported .onnx model "
                                                  "(default: the bundled model).")] = None,
) -> None:
    """Show the model card summary of a model: data, classes, metrics, calibration, limits, intended use."""
    from dermlens.inference.card import card_summary
    from dermlens.inference.predictor import Predictor

    typer.echo(card_summary(Predictor.load(model).model))


@app.command()
@friendly_errors
def serve(
    host: Annotated[str, typer.Option("--host", help="Address to listen on (0.0.0.0 for every interface).")]
    = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="Port to listen on.")] = 8000,
    model: Annotated[str | None, typer.Option("--model", help="An exported .onnx model "
                                                  "(default: the bundled model).")] = None,
    workers: Annotated[int, typer.Option("--workers", min=1, help="Worker processes (each loads the model; "
                                         "they share nothing else).")] = 1,
) -> None:
    """Start the web app and REST API (pages at /, API docs at /docs). Settings: DERMLENS_* variables."""
    import os

    import uvicorn

    from dermlens.api.app import create_app
    from dermlens.api.settings import ServeSettings
    from dermlens.inference.predictor import Predictor

    if model is not None:
        os.environ["DERMLENS_MODEL"] = model  # the workers read their settings from the environment
    settings = ServeSettings()
    predictor = Predictor.load(settings.model, threads=settings.threads)  # a bad model fails here, clearly
    typer.echo(f"dermlens: serving on http://{host}:{port} (API docs at /docs). {DISCLAIMER}", err=True)
    options = {"host": host, "port": port, "access_log": False, "log_level": "warning", "proxy_headers": True}
    if workers == 1:
        uvicorn.run(create_app(settings, predictor), **options)
    else:
        uvicorn.run("dermlens.api.app:create_app", factory=True, workers=workers, **options)


@app.command()
@friendly_errors
def backbones() -> None:
    """List the backbones that `--backbone` accepts and whether pretrained weights ship."""
    from dermlens.models.registry import get_backbone, list_backbones

    for name in list_backbones():
        spec = get_backbone(name)
        typer.echo(f"{name:22s} {'pretrained' if spec.has_pretrained_weights else 'random init':12s} "
                   f"{spec.description}")


def _add_project_commands() -> None:
    from dermlens.cli_projects import project_app

    app.add_typer(project_app, name="project")


_add_project_commands()


def main() -> None:  # pragma: no cover - console entry point
    app(prog_name="dermlens")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
