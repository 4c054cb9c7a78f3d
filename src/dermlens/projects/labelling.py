"""Which tags an imported image gets: from a CSV beside the images, else from its folder's name.

A CSV is read by the same readers as a training dataset (`dermlens.data.readers`): an ISIC/HAM10000
metadata CSV, an ISIC one-hot ground truth or a plain ``labels.csv``. The images are written, under
names of our own making, into a temporary folder for the reader; nothing of the caller's names
reaches the file system.
"""

from __future__ import annotations

import csv
import io
import re
import tempfile
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

from dermlens.errors import DatasetError
from dermlens.projects.errors import Invalid
from dermlens.projects.intake import ArchiveEntry


def _safe_stem(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", PurePosixPath(name.replace("\\", "/")).stem).lstrip(".") or "image"


def entry_tags(entries: Sequence[ArchiveEntry]) -> list[tuple[ArchiveEntry, tuple[str, ...]]]:
    """Each image entry with its tags: from the one CSV among ``entries`` if there is one, else the
    name of its folder (folder per tag), else none."""
    # archives and folders list image files only; a file sent on its own is decoded whatever its name
    images = [e for e in entries if PurePosixPath(e.name).suffix.lower() != ".csv"]
    tables = [e for e in entries if PurePosixPath(e.name).suffix.lower() == ".csv"]
    if len(tables) > 1:
        raise Invalid(f"found {len(tables)} CSV files; send one CSV of labels with the images")
    if tables:
        return _csv_tags(tables[0], images)
    return [(e, (e.folder,) if e.folder else ()) for e in images]


def _csv_tags(table: ArchiveEntry, images: Sequence[ArchiveEntry]) -> list[tuple[ArchiveEntry, tuple[str, ...]]]:
    from dermlens.data.readers import read_dataset

    by_stem: dict[str, ArchiveEntry] = {}
    for entry in images:
        stem = _safe_stem(entry.name)
        if stem in by_stem:
            raise Invalid(f"two images are named {stem}; the CSV cannot tell them apart")
        by_stem[stem] = entry
    with tempfile.TemporaryDirectory(prefix="dermlens-import-") as folder:
        root = Path(folder)
        for stem, entry in by_stem.items():
            (root / f"{stem}{PurePosixPath(entry.name).suffix.lower()}").write_bytes(entry.data)
        (root / "labels-import.csv").write_text(_rows_for(table.data, set(by_stem)), encoding="utf-8")
        try:
            dataset = read_dataset(root / "labels-import.csv", images_dir=root)
        except DatasetError as error:
            message = str(error).replace(str(root / "labels-import.csv"), "the CSV").replace(str(root), "the upload")
            raise Invalid(message) from None
        tags = {Path(path).stem: dataset.classes[int(target)]
                for path, target in zip(dataset.paths, dataset.targets)}
    return [(entry, (tags[stem],) if stem in tags else ()) for stem, entry in by_stem.items()]


def _rows_for(table: bytes, stems: set[str]) -> str:
    """The CSV with only the rows of images that were sent (a dataset's CSV usually lists more)."""
    try:
        rows = list(csv.reader(io.StringIO(table.decode("utf-8-sig"))))
    except (UnicodeDecodeError, csv.Error):
        raise Invalid("the CSV cannot be read as UTF-8 text; re-save it as CSV (UTF-8)") from None
    if not rows:
        raise Invalid("the CSV is empty; expected a header line and one row per image")
    header = [h.strip() for h in rows[0]]
    id_column = next((header.index(c) for c in ("image_id", "image") if c in header), None)
    if id_column is None:
        raise Invalid(f"the CSV has no image_id (or image) column; found {header}")
    kept = [row for row in rows[1:] if len(row) > id_column and _safe_stem(row[id_column].strip()) in stems]
    if not kept:
        raise Invalid("none of the images sent is listed in the CSV's image_id column")
    out = io.StringIO()
    csv.writer(out).writerows([header, *kept])
    return out.getvalue()
