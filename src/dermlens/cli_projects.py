"""``dermlens project ...``: the custom-vision workflow on the command line, on the same store as the web
app (``--data-dir`` or DERMLENS_DATA_DIR; ``--database-url`` or DERMLENS_DATABASE_URL for PostgreSQL).

Commands act on the store directly, so they need file access to the data directory rather than the
admin token.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from dermlens import DISCLAIMER

project_app = typer.Typer(help="Custom-vision projects: tag images, train iterations, inspect, quick-test, "
                               "publish, export, review.", no_args_is_help=True)
_state: dict = {}


@project_app.callback()
def workspace_options(
    data_dir: Annotated[Path | None, typer.Option("--data-dir", envvar="DERMLENS_DATA_DIR",
                                                  help="Where projects live (default ~/.local/share/dermlens).")] = None,
    database_url: Annotated[str | None, typer.Option("--database-url", envvar="DERMLENS_DATABASE_URL",
                                                     help="PostgreSQL URL (default: SQLite in the data dir).")] = None,
) -> None:
    _state.update(data_dir=data_dir, database_url=database_url)


def _workspace():
    from dermlens.projects.workspace import Workspace

    where = (_state.get("data_dir"), _state.get("database_url"))
    if _state.get("opened") != where:
        _state.update(workspace=Workspace.open(*where), opened=where)
    return _state["workspace"]


def _command(function, name: str | None = None):
    from dermlens.cli import friendly_errors

    return project_app.command(name)(friendly_errors(function))


def _named(name: str):
    return lambda function: _command(function, name)


@_command
def create(name: str, kind: Annotated[str, typer.Option(help="multiclass or multilabel")] = "multiclass") -> None:
    """Create a project; prints its id and prediction key (shown this once)."""
    project, key = _workspace().store.create_project(name, kind=kind)
    typer.echo(f"project {project.id}: {project.name} ({project.kind})\nprediction key: {key}")


@_named("list")
def list_projects() -> None:
    """List projects with their tags and image counts."""
    store = _workspace().store
    for project in store.projects():
        counts = store.tag_counts(project.id)
        tags = ", ".join(f"{t.name} ({counts.get(t.id, 0)})" for t in store.tags(project.id))
        published = f"; published: {project.published_name}" if project.published_name else ""
        typer.echo(f"{project.id:4d}  {project.name}  [{project.kind}]  tags: {tags or 'none'}{published}")


@_command
def rename(project: int, name: str) -> None:
    """Rename a project."""
    _workspace().store.rename_project(project, name)


@_command
def delete(project: int, yes: Annotated[bool, typer.Option("--yes", help="Do not ask.")] = False) -> None:
    """Delete a project with its images and iterations."""
    if not yes:
        typer.confirm(f"delete project {project} and everything in it?", abort=True)
    _workspace().store.delete_project(project)


@_command
def sweep(grace_minutes: Annotated[float, typer.Option("--grace-minutes", help=(
        "Keep objects younger than this: another worker may be about to record them."))] = 60.0) -> None:
    """Delete stored images (and their cached features) that no project holds, such as those left by a
    process that died mid-upload. Every server worker also does this when it starts."""
    from dermlens.projects.orphans import collect_orphans

    workspace = _workspace()
    swept = collect_orphans(workspace.database, workspace.store.blobs, grace_seconds=grace_minutes * 60)
    typer.echo(f"deleted {len(swept)} object(s) that no project holds")


@_command
def tag(project: int, names: list[str]) -> None:
    """Add tags to a project."""
    for created in _workspace().store.add_tags(project, names):
        typer.echo(f"tag {created.id}: {created.name}")


@_command
def upload(project: int, paths: list[Path],
           tag_name: Annotated[str | None, typer.Option("--tag", help="Tag every image with this tag.")] = None) -> None:
    """Add images: files, folders (a folder per tag, or a CSV of labels beside the images) and zip files."""
    from dermlens.projects.imports import import_entries
    from dermlens.projects.intake import ArchiveEntry, folder_entries, zip_entries

    store = _workspace().store
    entries: list[ArchiveEntry] = []
    for path in paths:
        if path.is_dir():
            entries.extend(folder_entries(path))
        elif path.suffix.lower() == ".zip":
            entries.extend(zip_entries(path))
        elif path.is_file():
            entries.append(ArchiveEntry(path.name, path.read_bytes(), None))
        else:
            raise typer.BadParameter(f"{path} does not exist")
    tag_ids = [t.id for t in store.tag_named(project, [tag_name], create=True)] if tag_name else []
    result = import_entries(store, project, entries, tag_ids=tag_ids, source="cli", progress=True)
    typer.echo(f"added {len(result.added)}, already there {len(result.duplicates)}, refused {len(result.refused)}")
    for name, why in result.refused[:20]:
        typer.echo(f"  refused {name}: {why}", err=True)


@_command
def train(project: int,
          advanced: Annotated[bool, typer.Option("--advanced", help="Fine-tune within --budget minutes.")] = False,
          budget: Annotated[float, typer.Option("--budget", help="Minutes, for --advanced.")] = 10.0) -> None:
    """Train an iteration here and now, with progress (the web app runs the same job in the background)."""
    from dermlens.progress import say
    from dermlens.projects.jobs import check_can_train
    from dermlens.projects.training import train_claimed

    check_can_train()
    workspace = _workspace()
    queued = workspace.iterations.queue(project, "advanced" if advanced else "quick", budget_minutes=budget)
    for warning in queued.warnings:
        say(f"warning: {warning}")
    iteration = workspace.iterations.claim(only=queued.id)
    try:
        done = train_claimed(workspace.iterations, iteration)
    except KeyboardInterrupt:
        workspace.iterations.fail(iteration.id, "training failed: interrupted")
        raise
    if done.status != "completed":
        typer.secho(f"iteration {done.number}: {done.message}", fg=typer.colors.RED, err=True)
        raise typer.Exit(1)
    typer.echo(f"iteration {done.number}: mean average precision {done.metrics['mean_average_precision']:.3f} "
               f"({done.metrics['validation']})")


@_command
def metrics(project: int, iteration: int,
            threshold: Annotated[float, typer.Option(min=0.0, max=1.0)] = 0.5,
            as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Precision and recall per tag at a threshold, average precision, confusion matrix."""
    from dermlens.projects.metrics import metrics_at

    found = _workspace().iterations.completed(project, iteration)
    result = metrics_at(found.metrics, threshold, multiclass=found.config["project_kind"] == "multiclass")
    if as_json:
        typer.echo(json.dumps(result, indent=2))
        return

    def fmt(value):
        return "  n/a" if value is None else f"{value:5.3f}"

    typer.echo(f"iteration {iteration} at threshold {threshold:.2f} ({result['validation']})")
    typer.echo(f"{'tag':20s} {'images':>6s} {'precision':>9s} {'recall':>6s} {'AP':>5s}")
    for row in result["tags"]:
        typer.echo(f"{row['tag'][:20]:20s} {row['images']:6d} {fmt(row['precision']):>9s} {fmt(row['recall']):>6s} "
                   f"{fmt(row['average_precision'])}")
    typer.echo(f"{'overall':20s} {result['n_images']:6d} {fmt(result['precision']):>9s} {fmt(result['recall']):>6s} "
               f"{fmt(result['mean_average_precision'])} (mAP)")


@_command
def quick_test(project: int, iteration: int, image: Path) -> None:
    """The tags of one image by an iteration (nothing is kept)."""
    from dermlens.projects.intake import prepare_image

    answer = _workspace().publishing.quick_test(project, iteration, prepare_image(image.read_bytes(), image.name))
    for name, probability in answer.tags:
        typer.echo(f"{name:20s} {probability:6.1%}")
    typer.echo(DISCLAIMER)


@_command
def publish(project: int, iteration: int, name: str) -> None:
    """Publish an iteration: POST /api/v1/projects/{project}/predict then answers with it."""
    _workspace().publishing.publish(project, iteration, name)
    typer.echo(f"published iteration {iteration} as {name!r}: POST /api/v1/projects/{project}/predict "
               "with the header Prediction-Key")


@_command
def key(project: int) -> None:
    """Make a new prediction key (the old one stops working)."""
    typer.echo(_workspace().store.new_prediction_key(project))


@_command
def export(project: int, iteration: int,
           format: Annotated[str, typer.Option("--format", help="onnx, onnx-int8, torchscript, openvino, "
                                                                "tflite, coreml or docker")] = "onnx",
           out: Annotated[Path, typer.Option("--out", help="Folder for the exported file.")] = Path(".")) -> None:
    """Export an iteration; the export is loaded back and checked against the original."""
    from dermlens.projects.exporting import export_for_download, exported_file

    workspace = _workspace()
    result = export_for_download(workspace, project, iteration, format)
    typer.echo(result.message)
    if not result.produced:
        raise typer.Exit(1)
    source = exported_file(workspace, project, iteration, format)
    out.mkdir(parents=True, exist_ok=True)
    target = out / f"project{project}-iteration{iteration}-{source.name}"
    target.write_bytes(source.read_bytes())
    typer.echo(f"written {target}")


@_command
def model_summary(project: int, iteration: int) -> None:
    """The layers, output shapes and parameter counts of an iteration's network."""
    from dermlens.export.summary import model_summary as summarise

    workspace = _workspace()
    found = workspace.iterations.completed(project, iteration)
    typer.echo(summarise(workspace.publishing.model_path(found)).to_text())


@_command
def review(project: int) -> None:
    """Kept predictions to review, wrong ones first."""
    for row in _workspace().publishing.review(project):
        marker = "WRONG" if row["wrong"] else "     "
        typer.echo(f"{row['id']:6d} {marker} predicted {row['predicted']} ({row['probability']:.0%}); "
                   f"tagged {', '.join(row['tags']) or '-'}")


@_command
def correct(project: int, prediction: int, tag_name: str) -> None:
    """Re-tag a kept prediction's image; it joins the next iteration's training set."""
    workspace = _workspace()
    (found,) = workspace.store.tag_named(project, [tag_name])
    workspace.publishing.correct(project, prediction, found.id, by="cli")


@_command
def worker() -> None:
    """Train every queued iteration, then exit (run it on any machine sharing the database and files)."""
    from dermlens.projects.jobs import run_queue

    typer.echo(f"trained {run_queue(_workspace())} iteration(s)")
