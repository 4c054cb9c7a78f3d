"""Exporting an iteration for download: the format is produced, loaded back and checked against the
original model on up to `CHECK_IMAGES` of the project's own images (`dermlens.export.formats`), then
kept in the object store next to the iteration's model."""

from __future__ import annotations

import tempfile
from pathlib import Path

from dermlens.projects.errors import Invalid
from dermlens.projects.intake import read_stored
from dermlens.projects.schema import export_prefix

CHECK_IMAGES = 16


def _format(name: str):
    from dermlens.export.formats import ExportFormat

    try:
        return ExportFormat(name)
    except ValueError:
        known = ", ".join(f.value for f in ExportFormat)
        raise Invalid(f"unknown export format {name!r}; choose one of: {known}") from None


def export_key(iteration_id: int, fmt, path: Path) -> str:
    return f"{export_prefix(iteration_id)}{fmt.value}{''.join(path.suffixes) or '.bin'}"


def export_for_download(workspace, project_id: int, number: int, fmt_name: str):
    """Produce and check ``fmt_name`` for an iteration; -> the `ExportResult` (its file is kept)."""
    from dermlens.export.formats import export_iteration

    fmt = _format(fmt_name)
    iteration = workspace.iterations.completed(project_id, number)
    store = workspace.store
    images = [read_stored(store.blobs.get(image.blob_key))
              for image, _ in store.labelled_images(project_id)[:CHECK_IMAGES]]
    with tempfile.TemporaryDirectory(prefix="dermlens-export-") as folder:
        work = Path(folder)
        checkpoint = work / "checkpoint.pt"
        checkpoint.write_bytes(store.blobs.get(iteration.checkpoint_key))
        model = workspace.publishing.model_path(iteration)
        result = export_iteration(checkpoint, model, fmt, work / "out", images)
        if result.produced and result.path is not None:
            key = export_key(iteration.id, fmt, Path(result.path))
            for old in _existing(workspace, iteration.id, fmt):
                store.blobs.delete(old)
            store.blobs.put(key, Path(result.path).read_bytes())
    return result


def _existing(workspace, iteration_id: int, fmt) -> list[str]:
    return workspace.store.blobs.keys(f"{export_prefix(iteration_id)}{fmt.value}.")


def exported_file(workspace, project_id: int, number: int, fmt_name: str) -> Path | None:
    """A local copy of the kept export, or None when the iteration was not exported to that format."""
    fmt = _format(fmt_name)
    iteration = workspace.iterations.get(project_id, number)
    keys = _existing(workspace, iteration.id, fmt)
    if not keys:
        return None
    path = workspace.data_dir / "cache" / "exports" / keys[0]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(workspace.store.blobs.get(keys[0]))
    return path
