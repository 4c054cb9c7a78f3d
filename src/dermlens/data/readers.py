"""Dataset readers: every on-disk layout becomes one `LabelledImages`, so training never asks where data came from.

Layouts: an ISIC/HAM10000 metadata CSV, an ISIC challenge one-hot ground-truth CSV, a plain ``labels.csv``
and a folder per class. `read_dataset` picks the reader from what it finds. Only the existence and
extension of image files are checked here; decoding (and rejecting corrupt files) happens at load time.
The standard-library ``csv`` module is used on purpose: pandas is not a dependency of dermlens.
"""

from __future__ import annotations

import csv as csvlib
import math
import os
import warnings
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from dermlens.data.dataset import LabelledImages
from dermlens.data.labels import HAM10000_CLASSES, ISIC_COLUMNS, canonical_label
from dermlens.errors import DatasetError

Layout = Literal["ham_metadata_csv", "isic_ground_truth_csv", "labels_csv", "class_folders"]

#: Extensions tried, in this order, for an image id given without one (matched case-insensitively).
IMAGE_EXTENSIONS: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif")
#: Files `read_dataset` looks for in a folder, in this order, before trying class sub-folders.
DATASET_CSV_NAMES: tuple[str, ...] = ("labels.csv", "HAM10000_metadata.csv")

_SHOW = 5  # offending ids listed in an error message
_ONE_HOT = tuple(ISIC_COLUMNS[c] for c in HAM10000_CLASSES)


class DatasetWarning(UserWarning):
    """Something was skipped or substituted while reading; the message says what, how many and why."""


def read_dataset(path: str | Path, images_dir: str | Path | None = None,
                 classes: Sequence[str] | None = None) -> LabelledImages:
    """Read a dataset in any supported layout (see `detect_layout`).

    ``images_dir`` overrides where a CSV's images are looked for (default: the CSV's ``images/``
    sub-folder if there is one, else the CSV's own folder). ``classes`` fixes the class order;
    labels outside it are an error.

    >>> import tempfile
    >>> root = Path(tempfile.mkdtemp())
    >>> _ = (root / "labels.csv").write_text("image_id,label\\nISIC_1,melanoma\\nISIC_2,nevus\\n")
    >>> (root / "images").mkdir(); (root / "images/ISIC_1.jpg").touch(); (root / "images/ISIC_2.png").touch()
    >>> ds = read_dataset(root)
    >>> ds.classes, ds.targets.tolist(), [p.name for p in ds.paths]
    (('mel', 'nv', 'bcc', 'akiec', 'bkl', 'df', 'vasc'), [0, 1], ['ISIC_1.jpg', 'ISIC_2.png'])
    """
    path = Path(path)
    layout = detect_layout(path)
    if layout == "class_folders":
        if images_dir is not None:
            raise DatasetError(f"{path}: images_dir is only used with a CSV, but this is a folder of class "
                               "sub-folders. Drop images_dir, or pass the CSV file instead.")
        return read_class_folders(path, classes=classes)
    csv = path if path.is_file() else _dataset_csv(path) or path  # a folder here always holds a dataset CSV
    reader = {"ham_metadata_csv": read_ham_metadata_csv, "isic_ground_truth_csv": read_isic_ground_truth_csv,
              "labels_csv": read_labels_csv}[layout]
    return reader(csv, images_dir, classes=classes)


def detect_layout(path: str | Path) -> Layout:
    """Which reader fits ``path``: a CSV by its columns; a folder by its ``labels.csv`` or
    ``HAM10000_metadata.csv``, else as class sub-folders.

    >>> import tempfile
    >>> csv = Path(tempfile.mkdtemp()) / "gt.csv"
    >>> _ = csv.write_text("image,MEL,NV,BCC,AKIEC,BKL,DF,VASC\\n")
    >>> detect_layout(csv)
    'isic_ground_truth_csv'
    """
    path = Path(path)
    if not path.exists():
        raise DatasetError(f"{path}: no such file or folder. Check the path (relative paths start from "
                           f"{Path.cwd()}).")
    if path.is_dir():
        csv = _dataset_csv(path)
        if csv is None:
            return "class_folders"
        path = csv
    columns = set(_read_table(path, header_only=True).header)
    if set(_ONE_HOT) <= columns and columns & {"image", "image_id"}:
        return "isic_ground_truth_csv"
    if "image_id" in columns and columns & {"dx", "lesion_id"}:
        return "ham_metadata_csv"
    if {"image_id", "label"} <= columns:
        return "labels_csv"
    raise DatasetError(
        f"{path}: the columns {sorted(columns)} match no known layout. Expected one of: "
        f"image_id + dx (or label) + lesion_id (HAM10000 metadata); image + {','.join(_ONE_HOT)} "
        "(ISIC one-hot ground truth); image_id + label (labels.csv). Rename the columns to match.")


def read_ham_metadata_csv(csv: str | Path, images_dir: str | Path | None = None, *,
                          classes: Sequence[str] | None = None) -> LabelledImages:
    """Read an ISIC/HAM10000 metadata CSV (image_id, dx or label, lesion_id, ...); groups are lesions.

    ``label`` wins over ``dx`` when both exist. Every other column is kept as metadata (``age`` as float).

    >>> import tempfile
    >>> root = Path(tempfile.mkdtemp()); (root / "a.jpg").touch()
    >>> _ = (root / "meta.csv").write_text("lesion_id,image_id,dx,age\\nHAM_1,a,bkl,\\n")
    >>> ds = read_ham_metadata_csv(root / "meta.csv")
    >>> ds.groups, ds.class_counts()["bkl"], ds.metadata["age"]
    (('HAM_1',), 1, (nan,))
    """
    csv = Path(csv)
    table = _read_table(csv)
    label = "label" if "label" in table.columns else "dx"
    _require(table, ["image_id", label, "lesion_id"], "a HAM10000 metadata CSV needs image_id, dx (or label) "
             "and lesion_id; lesion_id keeps images of one lesion on one side of a split")
    return _assemble(table, "image_id", table.columns[label], table.columns["lesion_id"],
                     drop={"image_id", label}, images_dir=images_dir, classes=classes)


def read_isic_ground_truth_csv(csv: str | Path, images_dir: str | Path | None = None, *,
                               classes: Sequence[str] | None = None) -> LabelledImages:
    """Read an ISIC challenge one-hot CSV (image,MEL,NV,BCC,AKIEC,BKL,DF,VASC); each row has exactly one 1.0.

    Each image is its own group unless a ``lesion_id`` column is present.

    >>> import tempfile
    >>> root = Path(tempfile.mkdtemp()); (root / "x.jpg").touch()
    >>> _ = (root / "gt.csv").write_text("image,MEL,NV,BCC,AKIEC,BKL,DF,VASC\\nx,0.0,1.0,0.0,0.0,0.0,0.0,0.0\\n")
    >>> read_isic_ground_truth_csv(root / "gt.csv").class_counts()["nv"]
    1
    """
    csv = Path(csv)
    table = _read_table(csv)
    id_column = "image" if "image" in table.columns else "image_id"
    _require(table, [id_column, *_ONE_HOT], f"an ISIC ground-truth CSV needs image,{','.join(_ONE_HOT)}")
    labels, bad = [], []
    for row, values in enumerate(zip(*(table.columns[c] for c in _ONE_HOT))):
        try:
            numbers = [float(v) for v in values]
        except ValueError:
            numbers = []
        hits = [k for k, x in enumerate(numbers) if x == 1.0]
        if len(hits) != 1 or any(x not in (0.0, 1.0) for x in numbers):
            bad.append(row)
            labels.append("")
        else:
            labels.append(HAM10000_CLASSES[hits[0]])
    if bad:
        raise DatasetError(f"{csv}: {len(bad)} rows do not mark exactly one diagnosis with 1.0 (the rest 0.0): "
                           f"{_rows(table, bad, id_column)}. Fix or remove those rows.")
    groups = table.columns.get("lesion_id", table.columns[id_column])
    return _assemble(table, id_column, labels, groups, drop={id_column, *_ONE_HOT},
                     images_dir=images_dir, classes=classes)


def read_labels_csv(csv: str | Path, images_dir: str | Path | None = None, *,
                    classes: Sequence[str] | None = None) -> LabelledImages:
    """Read a plain ``labels.csv`` (image_id, label, any metadata); label aliases become HAM10000 codes.

    The group is ``lesion_id`` if present, else ``patient_id``, else each image on its own.

    >>> import tempfile
    >>> root = Path(tempfile.mkdtemp()); (root / "a.png").touch()
    >>> _ = (root / "labels.csv").write_text("image_id,label,patient_id\\na,Dermatofibroma,P7\\n")
    >>> ds = read_labels_csv(root / "labels.csv")
    >>> ds.classes[ds.targets[0]], ds.groups
    ('df', ('P7',))
    """
    csv = Path(csv)
    table = _read_table(csv)
    _require(table, ["image_id", "label"], "a labels.csv needs image_id and label")
    group = next((c for c in ("lesion_id", "patient_id") if c in table.columns), "image_id")
    return _assemble(table, "image_id", table.columns["label"], table.columns[group],
                     drop={"image_id", "label"}, images_dir=images_dir, classes=classes)


def read_class_folders(root: str | Path, *, classes: Sequence[str] | None = None) -> LabelledImages:
    """Read ``root/<class>/<image>``: the folder name is the label, each image is its own group.

    Non-image files, hidden files (macOS ``._x.jpg``), broken links, nested and hidden folders are
    skipped with a `DatasetWarning` that counts them.

    >>> import tempfile
    >>> root = Path(tempfile.mkdtemp()); (root / "melanoma").mkdir(); (root / "melanoma/m1.jpg").touch()
    >>> read_class_folders(root).class_counts()["mel"]
    1
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: folder not found. Pass a folder holding one sub-folder per class.")
    skipped: Counter[str] = Counter()
    examples: list[str] = []
    paths, labels = [], []
    base = root.absolute()
    for class_entry in _listing(root):
        if not class_entry.is_dir():
            _skip(skipped, examples, "files beside the class folders", class_entry.name)
            continue
        if class_entry.name.startswith("."):
            _skip(skipped, examples, "hidden folders", class_entry.name)
            continue
        found, others = 0, []
        for entry in _listing(Path(class_entry.path)):
            where = f"{class_entry.name}/{entry.name}"
            if entry.is_dir():
                _skip(skipped, examples, "nested folders (only files directly in a class folder are read)", where)
                others.append(entry.name + "/")
            elif os.path.splitext(entry.name)[1].lower() not in IMAGE_EXTENSIONS:
                _skip(skipped, examples, "files that are not images by extension", where)
                others.append(entry.name)
            elif entry.name.startswith(".") or not entry.is_file():
                _skip(skipped, examples, "hidden files or broken links (e.g. macOS ._ files)", where)
                others.append(entry.name)
            else:
                paths.append(base / class_entry.name / entry.name)
                labels.append(canonical_label(class_entry.name))
                found += 1
        if not found:
            seen = f"; it holds {len(others)} other entries, e.g. {others[:3]}" if others else ""
            raise DatasetError(f"{root}: class folder {class_entry.name!r} holds no images "
                               f"({', '.join(IMAGE_EXTENSIONS)}){seen}. Add images to it or remove the folder.")
    if not paths:
        raise DatasetError(f"{root}: no class sub-folders, labels.csv or HAM10000_metadata.csv found. "
                           "Expected root/<class>/<image>.jpg, or pass the CSV that lists the images.")
    if skipped:
        detail = "; ".join(f"{n} {reason}" for reason, n in skipped.items())
        warnings.warn(f"{root}: skipped {sum(skipped.values())} entries ({detail}); e.g. {', '.join(examples)}",
                      DatasetWarning, stacklevel=2)
    ids = [p.stem for p in paths]
    _check_unique(str(root), ids, "image ids (file names without extension)")
    class_order, targets = _targets(str(root), labels, classes)
    return LabelledImages(paths=tuple(paths), targets=targets, classes=class_order, groups=tuple(ids),
                          ids=tuple(ids), source=str(root))


# --- shared pieces --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Table:
    path: Path
    header: list[str]
    columns: dict[str, list[str]]
    lines: list[int]  # CSV line number of each row, for error messages


def _read_table(path: Path, header_only: bool = False) -> _Table:
    if not path.is_file():
        raise DatasetError(f"{path}: file not found. Check the path, or pass the folder that holds it.")
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            reader = csvlib.reader(f)
            header = [h.strip() for h in next(reader, [])]
            rows, lines = [], []
            for row in ([] if header_only else reader):
                if row:  # blank lines carry no data
                    rows.append(row)
                    lines.append(reader.line_num)
    except (OSError, UnicodeDecodeError, csvlib.Error) as err:
        raise DatasetError(f"{path}: cannot be read as a UTF-8 CSV file ({err}). Re-save it as CSV.") from err
    if not header or not any(header):
        raise DatasetError(f"{path}: the file is empty; expected a header line and one row per image.")
    if len(set(header)) != len(header):
        twice = sorted(h for h, n in Counter(header).items() if n > 1)
        raise DatasetError(f"{path}: columns {twice} appear more than once in the header. Rename them.")
    ragged = [line for row, line in zip(rows, lines) if len(row) != len(header)]
    if ragged:
        raise DatasetError(f"{path}: {len(ragged)} lines do not have {len(header)} fields like the header "
                           f"(lines {ragged[:_SHOW]}). Check for stray commas or unquoted text.")
    if not rows and not header_only:
        raise DatasetError(f"{path}: has a header but no rows; expected one row per image.")
    columns = {h: [row[i] for row in rows] for i, h in enumerate(header)}
    return _Table(path, header, columns, lines)


def _require(table: _Table, required: list[str], why: str) -> None:
    missing = [c for c in required if c not in table.columns]
    if missing:
        raise DatasetError(f"{table.path}: missing columns {missing}; found {table.header}. "
                           f"{why[0].upper()}{why[1:]}. Rename or add the columns.")


def _rows(table: _Table, rows: list[int], id_column: str) -> str:
    ids = table.columns[id_column]
    shown = ", ".join(f"line {table.lines[r]} ({ids[r]!r})" for r in rows[:_SHOW])
    return shown + (f" and {len(rows) - _SHOW} more" if len(rows) > _SHOW else "")


def _assemble(table: _Table, id_column: str, labels: list[str], groups: list[str], *, drop: set[str],
              images_dir: str | Path | None, classes: Sequence[str] | None) -> LabelledImages:
    where = str(table.path)
    ids = [i.strip() for i in table.columns[id_column]]
    no_id = [r for r, i in enumerate(ids) if not i]
    if no_id:
        raise DatasetError(f"{where}: {len(no_id)} rows have an empty {id_column}: {_rows(table, no_id, id_column)}. "
                           "Fill them in or remove those rows.")
    _check_unique(where, ids, "image ids")
    labels = [label.strip() for label in labels]
    no_label = [r for r, label in enumerate(labels) if not label]
    if no_label:
        raise DatasetError(f"{where}: {len(no_label)} rows have an empty label: "
                           f"{_rows(table, no_label, id_column)}. Fill in the label or remove those rows.")
    class_order, targets = _targets(where, [canonical_label(label) for label in labels], classes)
    paths = _find_images(table.path, ids, images_dir)
    groups = [g.strip() for g in groups]
    ungrouped = sum(not g for g in groups)
    if ungrouped:
        warnings.warn(f"{where}: {ungrouped} rows have an empty group id; each of those images is its own group.",
                      DatasetWarning, stacklevel=3)
    metadata = {name: _metadata_column(where, name, values)
                for name, values in table.columns.items() if name not in drop}
    return LabelledImages(paths=tuple(paths), targets=targets, classes=class_order,
                          groups=tuple(g or i for g, i in zip(groups, ids)), ids=tuple(ids),
                          metadata=metadata, source=where)


def _check_unique(where: str, ids: list[str], what: str) -> None:
    repeated = {i: n for i, n in Counter(ids).items() if n > 1}
    if repeated:
        shown = ", ".join(f"{i!r} x{n}" for i, n in list(repeated.items())[:_SHOW])
        raise DatasetError(f"{where}: {len(repeated)} duplicate {what}: {shown}"
                           f"{' ...' if len(repeated) > _SHOW else ''}. Each image must appear once; "
                           "remove the repeats (or rename distinct images).")


def _targets(where: str, labels: list[str], classes: Sequence[str] | None) -> tuple[tuple[str, ...], np.ndarray]:
    """Class order (given, HAM10000's if every label is a HAM10000 code, else sorted) and targets into it."""
    if classes is None:
        present = set(labels)
        order = HAM10000_CLASSES if present <= set(HAM10000_CLASSES) else tuple(sorted(present))
    else:
        order = tuple(canonical_label(c) for c in classes)
        if not order or len(set(order)) != len(order):
            raise DatasetError(f"{where}: classes {list(classes)} must be non-empty and distinct after mapping "
                               f"aliases ({list(order)}).")
        unknown = Counter(label for label in labels if label not in order)
        if unknown:
            shown = ", ".join(f"{label!r} ({n})" for label, n in unknown.most_common())
            raise DatasetError(f"{where}: unknown labels {shown}; expected one of {list(order)}. "
                               "Correct those labels, or pass classes that include them.")
    index = {c: k for k, c in enumerate(order)}
    return order, np.fromiter((index[label] for label in labels), dtype=np.int64, count=len(labels))


def _find_images(csv: Path, ids: list[str], images_dir: str | Path | None) -> list[Path]:
    """One folder listing, then dict look-ups: the id as given, else the id plus each known extension."""
    if images_dir is None:
        folder = csv.parent / "images" if (csv.parent / "images").is_dir() else csv.parent
    else:
        folder = Path(images_dir)
        if not folder.is_dir():
            raise DatasetError(f"{csv}: image folder {folder} not found. Pass images_dir= the folder that holds "
                               "the images.")
    by_stem: dict[tuple[str, str], str] = {}
    for entry in _listing(folder):
        stem, ext = os.path.splitext(entry.name)
        if ext.lower() in IMAGE_EXTENSIONS and entry.is_file():  # is_file follows symlinks
            by_stem.setdefault((stem, ext.lower()), entry.name)
    base = folder.absolute()
    paths: list[Path] = []
    missing: list[str] = []
    for image_id in ids:
        stem, ext = os.path.splitext(image_id)
        name = by_stem.get((stem, ext.lower())) if ext.lower() in IMAGE_EXTENSIONS else None
        name = name or next((by_stem[(image_id, e)] for e in IMAGE_EXTENSIONS if (image_id, e) in by_stem), None)
        if name is None:
            missing.append(image_id)
        else:
            paths.append(base / name)
    if missing:
        raise DatasetError(f"{csv}: {len(missing)} of {len(ids)} images not found in {folder} (first "
                           f"{min(len(missing), _SHOW)}: {missing[:_SHOW]}); tried each id as given and with "
                           f"{', '.join(IMAGE_EXTENSIONS)}. Put the images there, pass images_dir= the folder "
                           "that holds them, or remove those rows.")
    return paths


def _metadata_column(where: str, name: str, values: list[str]) -> tuple[Any, ...]:
    if name != "age":
        return tuple(values)
    ages, bad = [], 0
    for value in values:
        try:
            ages.append(float(value) if value.strip() else math.nan)
        except ValueError:
            ages.append(math.nan)
            bad += 1
    if bad:
        warnings.warn(f"{where}: {bad} age values are not numbers; they are read as missing (NaN).",
                      DatasetWarning, stacklevel=4)
    return tuple(ages)


def _listing(folder: Path) -> list[os.DirEntry[str]]:
    with os.scandir(folder) as entries:
        return sorted(entries, key=lambda e: e.name)


def _skip(skipped: Counter[str], examples: list[str], reason: str, name: str) -> None:
    skipped[reason] += 1
    if len(examples) < 3:
        examples.append(name)


def _dataset_csv(folder: Path) -> Path | None:
    return next((folder / n for n in DATASET_CSV_NAMES if (folder / n).is_file()), None)
