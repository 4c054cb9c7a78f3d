"""The `dermlens` command line: a thin adapter over the core; errors become one clear line."""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import Annotated, Optional

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
ImagesOption = Annotated[Optional[Path], typer.Option("--images", help="Image folder when the CSV's "
                                                      "images are not beside it.")]


@app.command()
@friendly_errors
def train(
    data: DataOption,
    out: Annotated[Path, typer.Option("--out", help="Run folder: config, split, curves, checkpoints.")],
    config: Annotated[Optional[Path], typer.Option("--config", help="YAML recipe (see configs/).")] = None,
    backbone: Annotated[Optional[str], typer.Option("--backbone", help="See `dermlens backbones`.")] = None,
    max_minutes: Annotated[Optional[float], typer.Option("--max-minutes", help="Time budget.")] = None,
    images: ImagesOption = None,
    set_: Annotated[Optional[list[str]], typer.Option("--set", help="Override: section.key=value "
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
               f"ECE {metrics['ece']:.3f}")
    typer.echo(f"report: {out / 'report.html'}")
    typer.echo(DISCLAIMER)


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


@app.command()
@friendly_errors
def export(
    model: Annotated[Path, typer.Option("--model", help="A dermlens checkpoint (.pt).")],
    out: Annotated[Path, typer.Option("--out", help="The .onnx file to write.")],
) -> None:
    """Export a checkpoint to ONNX (classes, preprocessing and temperature travel inside the file)."""
    from dermlens.export.onnx import export_onnx

    typer.echo(str(export_onnx(model, out)))


@app.command()
@friendly_errors
def backbones() -> None:
    """List the backbones that `--backbone` accepts and whether pretrained weights ship."""
    from dermlens.models.registry import get_backbone, list_backbones

    for name in list_backbones():
        spec = get_backbone(name)
        typer.echo(f"{name:22s} {'pretrained' if spec.has_pretrained_weights else 'random init':12s} "
                   f"{spec.description}")


def main() -> None:  # pragma: no cover - console entry point
    app(prog_name="dermlens")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
