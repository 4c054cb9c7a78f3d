"""Train/val/test splits stratified by class and grouped by lesion (or patient), saved so a run can be repeated.

Images of one lesion look alike; if they sit on both sides of a split, the test score measures memory,
not skill. So whole groups are assigned to a side, greedily, to keep each side's class mix close to the
whole dataset's.

Split file format (JSON, written by `save_split`, read by `load_split`)::

    {"format": "dermlens-split", "version": 1, "seed": 0, "fractions": [0.7, 0.15, 0.15],
     "group_by": "lesion_id", "classes": ["mel", ...], "source": "<dataset path>",
     "class_counts": {"train": {"mel": 779, ...}, ...},          # for people; not read back
     "subsets": {"train": ["ISIC_0024306", ...], "val": [...], "test": [...]}}

Images are named by id (not index), so the file still applies when a dataset is re-read in another order.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from dermlens.data.dataset import LabelledImages
from dermlens.data.readers import DatasetWarning
from dermlens.errors import ConfigError, DatasetError

Subset = Literal["train", "val", "test"]
SUBSETS: tuple[Subset, ...] = ("train", "val", "test")
SPLIT_FORMAT = "dermlens-split"
SPLIT_VERSION = 1
_SHOW = 5


@dataclass(frozen=True, eq=False)
class Split:
    """Indices into a dataset for each subset, plus what is needed to make the same split again."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    seed: int
    fractions: tuple[float, float, float]
    group_by: str

    def __post_init__(self) -> None:
        for name in SUBSETS:
            object.__setattr__(self, name, np.sort(np.asarray(getattr(self, name), dtype=np.int64)))
        object.__setattr__(self, "fractions", tuple(float(f) for f in self.fractions))

    def indices(self, subset: Subset) -> np.ndarray:
        """The dataset indices of one subset (sorted)."""
        if subset not in SUBSETS:
            raise ConfigError(f"unknown subset {subset!r}; expected one of {list(SUBSETS)}")
        return getattr(self, subset)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Split):
            return NotImplemented
        return (all(np.array_equal(self.indices(s), other.indices(s)) for s in SUBSETS)
                and (self.seed, self.fractions, self.group_by) == (other.seed, other.fractions, other.group_by))


def grouped_split(dataset: LabelledImages, fractions: tuple[float, float, float] = (0.70, 0.15, 0.15),
                  seed: int = 0, group_by: str | None = None) -> Split:
    """Split into train/val/test so that no group is on two sides and class proportions stay close.

    ``group_by=None`` uses ``dataset.groups``; a metadata column name (e.g. ``"patient_id"``) or
    ``"image_id"`` groups by that instead. A fraction of 0 gives an empty subset. Deterministic per seed.

    >>> ds = LabelledImages(paths=tuple(Path(f"{i}.jpg") for i in range(8)), targets=np.array([0, 1] * 4),
    ...                     classes=("mel", "nv"), groups=tuple(f"lesion{i}" for i in range(8)))
    >>> split = grouped_split(ds, fractions=(0.5, 0.25, 0.25), seed=1)
    >>> [len(split.indices(s)) for s in SUBSETS]
    [4, 2, 2]
    """
    fractions = _check_fractions(fractions)
    groups, group_by = _groups(dataset, group_by)
    group_names, member = np.unique(np.asarray(groups, dtype=str), return_inverse=True)
    n_groups, n_classes = len(group_names), len(dataset.classes)
    counts = np.zeros((n_groups, n_classes))
    np.add.at(counts, (member, dataset.targets), 1)
    totals = counts.sum(axis=0)
    sides = np.array([s for s, f in enumerate(fractions) if f > 0])
    _check_enough_groups(dataset, counts, group_by, fractions, sides)

    rng = np.random.default_rng(seed)
    order = rng.permutation(n_groups)
    sizes = counts.sum(axis=1)
    side_of = np.full(n_groups, -1)
    current = np.zeros((3, n_classes))
    target = np.outer(fractions, totals)

    # First give every non-empty side one group of each class, rarest classes first, smallest groups first.
    groups_per_class = (counts > 0).sum(axis=0)
    for k in sorted(np.flatnonzero(totals), key=lambda k: (groups_per_class[k], k)):
        for s in sides:
            if current[s, k] == 0:
                free = order[(side_of[order] < 0) & (counts[order, k] > 0)]
                if len(free) == 0:
                    raise DatasetError(_too_few(dataset, k, counts, group_by, fractions, sides))
                g = free[np.argmin(sizes[free])]
                side_of[g], current[s] = s, current[s] + counts[g]

    # Then the rest, largest first: each to the side where it most reduces the squared shortfall of
    # every class relative to its target (scaled by class size so rare classes count as much as common ones).
    weight = 1.0 / np.maximum(totals, 1.0) ** 2
    rest = order[side_of[order] < 0]
    for g in rest[np.argsort(-sizes[rest], kind="stable")]:
        c = counts[g]
        cost = ((2 * (current[sides] - target[sides]) + c) * c * weight).sum(axis=1)
        s = sides[np.argmin(cost)]
        side_of[g], current[s] = s, current[s] + c

    image_side = side_of[member]
    train, val, test = (np.flatnonzero(image_side == s) for s in range(3))
    return Split(train=train, val=val, test=test, seed=seed, fractions=fractions, group_by=group_by)


def save_split(split: Split, dataset: LabelledImages, path: str | Path) -> Path:
    """Write ``split`` as a JSON file naming each subset's image ids (format in the module docstring).

    >>> import tempfile
    >>> ds = LabelledImages(paths=(Path("a.jpg"), Path("b.jpg")), targets=np.array([0, 0]),
    ...                     classes=("nv",), groups=("l1", "l2"))
    >>> split = grouped_split(ds, fractions=(0.5, 0.5, 0.0))
    >>> file = save_split(split, ds, Path(tempfile.mkdtemp()) / "split.json")
    >>> load_split(file, ds) == split
    True
    """
    n = len(dataset)
    for name in SUBSETS:
        idx = split.indices(name)
        if len(idx) and (idx.min() < 0 or idx.max() >= n):
            raise DatasetError(f"split subset {name!r} has indices outside the dataset of {n} images; "
                               "was the split made for another dataset?")
    document: dict[str, Any] = {
        "format": SPLIT_FORMAT, "version": SPLIT_VERSION, "seed": split.seed,
        "fractions": list(split.fractions), "group_by": split.group_by, "classes": list(dataset.classes),
        "source": dataset.source,
        "class_counts": {s: dataset.subset(split.indices(s)).class_counts() for s in SUBSETS},
        "subsets": {s: [dataset.ids[i] for i in split.indices(s)] for s in SUBSETS},
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")
    return path


def load_split(path: str | Path, dataset: LabelledImages, *, part: bool = False) -> Split:
    """Read a split file written by `save_split` and map its image ids onto ``dataset``'s indices.

    Ids missing from the dataset are an error, unless ``dataset`` is a `part` of the split's dataset
    (`dermlens.data.selection`): then they are skipped. Dataset images missing from the file are left
    out with a `DatasetWarning`. See `save_split` for an example.
    """
    path = Path(path)
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise DatasetError(f"{path}: split file not found. Make one with save_split(grouped_split(...)).") from err
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DatasetError(f"{path}: not a readable split file ({err}).") from err
    if not isinstance(document, dict) or document.get("format") != SPLIT_FORMAT or not isinstance(
            document.get("subsets"), dict):
        raise DatasetError(f"{path}: not a dermlens split file (expected a JSON object with "
                           f"\"format\": \"{SPLIT_FORMAT}\" and \"subsets\"). Make one with save_split.")
    if document.get("version") != SPLIT_VERSION:
        raise DatasetError(f"{path}: split file version {document.get('version')} is not supported "
                           f"(this dermlens reads version {SPLIT_VERSION}).")
    index = {image_id: i for i, image_id in enumerate(dataset.ids)}
    if len(index) != len(dataset):
        raise DatasetError(f"dataset {dataset.source!r} has repeated image ids, so a split file cannot name "
                           "its images. Remove the repeats.")
    seen: dict[str, str] = {}
    unknown: list[str] = []
    subsets: dict[str, list[int]] = {}
    for name in SUBSETS:
        subsets[name] = []
        for image_id in document["subsets"].get(name, []):
            if image_id in seen:
                raise DatasetError(f"{path}: image {image_id!r} is in both {seen[image_id]!r} and {name!r}. "
                                   "The file is damaged; make the split again.")
            seen[image_id] = name
            if image_id in index:
                subsets[name].append(index[image_id])
            else:
                unknown.append(image_id)
    if unknown and not part:
        raise DatasetError(f"{path}: {len(unknown)} image ids of the split file are not in the dataset "
                           f"{dataset.source!r} (first {min(len(unknown), _SHOW)}: {unknown[:_SHOW]}). "
                           "Read the dataset the split was made for, or make a new split with grouped_split.")
    left_out = [i for i in dataset.ids if i not in seen]
    if left_out:
        warnings.warn(f"{path}: {len(left_out)} images of the dataset are in no subset of the split file and are "
                      f"left out (first {min(len(left_out), _SHOW)}: {left_out[:_SHOW]}).",
                      DatasetWarning, stacklevel=2)
    group_by = str(document.get("group_by", "group"))
    split = Split(**subsets, seed=int(document.get("seed", 0)),  # type: ignore[arg-type]
                  fractions=tuple(document.get("fractions", (0.0, 0.0, 0.0))), group_by=group_by)
    _check_no_shared_groups(path, split, dataset)
    return split


# --- helpers --------------------------------------------------------------------------------------------


def _check_fractions(fractions: tuple[float, float, float]) -> tuple[float, float, float]:
    values = tuple(float(f) for f in fractions)
    if len(values) != 3 or any(not np.isfinite(f) or f < 0 for f in values) or abs(sum(values) - 1) > 1e-6:
        raise ConfigError(f"fractions {fractions} must be three non-negative numbers (train, val, test) "
                          "that add up to 1, e.g. (0.7, 0.15, 0.15).")
    return values  # type: ignore[return-value]


def _groups(dataset: LabelledImages, group_by: str | None) -> tuple[tuple[str, ...], str]:
    """The group of each image and the name to record for it."""
    if group_by is None:
        return dataset.groups, _group_name(dataset)
    if group_by == "image_id":
        return dataset.ids, group_by
    if group_by not in dataset.metadata:
        raise ConfigError(f"group_by={group_by!r} is not a metadata column of {dataset.source!r}; "
                          f"choose one of {sorted(dataset.metadata)}, 'image_id', or None for the dataset's groups.")
    column = dataset.metadata[group_by]
    return tuple(str(v) if str(v).strip() else i for v, i in zip(column, dataset.ids)), group_by


def _group_name(dataset: LabelledImages) -> str:
    """Which column ``dataset.groups`` came from (readers keep it in the metadata)."""
    for name in ("lesion_id", "patient_id"):
        column = dataset.metadata.get(name)
        if column is not None and all(g == (str(v).strip() or i)
                                      for g, v, i in zip(dataset.groups, column, dataset.ids)):
            return name
    return "image_id" if dataset.groups == dataset.ids else "group"


def _check_enough_groups(dataset: LabelledImages, counts: np.ndarray, group_by: str,
                         fractions: tuple[float, ...], sides: np.ndarray) -> None:
    short = [k for k in np.flatnonzero(counts.sum(axis=0)) if (counts[:, k] > 0).sum() < len(sides)]
    if short:
        raise DatasetError(" ".join(_too_few(dataset, k, counts, group_by, fractions, sides) for k in short))


def _too_few(dataset: LabelledImages, k: int, counts: np.ndarray, group_by: str,
             fractions: tuple[float, ...], sides: np.ndarray) -> str:
    names = [SUBSETS[s] for s in sides]
    return (f"Class {dataset.classes[k]!r} has {int(counts[:, k].sum())} images in {int((counts[:, k] > 0).sum())} "
            f"{group_by} groups, too few to put at least one group in each of {names} with fractions "
            f"{tuple(fractions)}. Add images of {dataset.classes[k]!r}, merge it into another class, or set a "
            "fraction to 0.")


def _check_no_shared_groups(path: Path, split: Split, dataset: LabelledImages) -> None:
    group_by = split.group_by if split.group_by in dataset.metadata or split.group_by == "image_id" else None
    groups, _ = _groups(dataset, group_by)
    side: dict[str, str] = {}
    for name in SUBSETS:
        for i in split.indices(name):
            other = side.setdefault(groups[i], name)
            if other != name:
                raise DatasetError(f"{path}: group {groups[i]!r} has images in both {other!r} and {name!r} "
                                   "for this dataset, so the split would leak. Make a new split with grouped_split.")
