"""Part of a dataset: some of its classes, some body sites.

The seed papers ask questions of parts of HAM10000: melanoma, naevus and seborrhoeic keratosis only,
or the face only. A selection keeps the dataset's contract (`LabelledImages`), so training and splits
work on it unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from dermlens.data.dataset import LabelledImages
from dermlens.errors import DatasetError

#: the metadata column that names the body site (HAM10000's ``localization``)
SITE_COLUMN = "localization"


@dataclass(frozen=True)
class Selection:
    """Which images to keep: labels in ``classes`` (all when empty), sites in ``sites`` (all when
    empty) and not in ``exclude_sites``."""

    classes: tuple[str, ...] = ()
    sites: tuple[str, ...] = ()
    exclude_sites: tuple[str, ...] = ()

    @classmethod
    def from_settings(cls, settings: object) -> Selection:
        """From a run's data settings: a `DataConfig` or the mapping a checkpoint recorded."""
        def get(name: str) -> tuple[str, ...]:
            value = settings.get(name, ()) if isinstance(settings, dict) else getattr(settings, name, ())
            return tuple(str(v) for v in value or ())

        return cls(get("classes"), get("sites"), get("exclude_sites"))

    def __bool__(self) -> bool:
        return bool(self.classes or self.sites or self.exclude_sites)

    def describe(self) -> str:
        parts = []
        if self.classes:
            parts.append(f"classes {', '.join(self.classes)}")
        if self.sites:
            parts.append(f"sites {', '.join(self.sites)}")
        if self.exclude_sites:
            parts.append(f"sites other than {', '.join(self.exclude_sites)}")
        return "; ".join(parts) or "all images"


def select(dataset: LabelledImages, selection: Selection) -> LabelledImages:
    """The images of ``dataset`` that ``selection`` keeps; with ``selection.classes`` the class list
    becomes exactly those classes, in that order.

    >>> from pathlib import Path
    >>> ds = LabelledImages(paths=(Path("a.jpg"), Path("b.jpg"), Path("c.jpg")),
    ...                     targets=np.array([0, 1, 2]), classes=("mel", "nv", "bkl"),
    ...                     groups=("l1", "l2", "l3"), metadata={"localization": ("face", "back", "face")})
    >>> part = select(ds, Selection(classes=("mel", "bkl"), sites=("face",)))
    >>> part.classes, part.ids
    (('mel', 'bkl'), ('a', 'c'))
    """
    if not selection:
        return dataset
    keep = np.ones(len(dataset), dtype=bool)
    if selection.classes:
        unknown = [c for c in selection.classes if c not in dataset.classes]
        if unknown:
            raise DatasetError(f"data.classes names {unknown}, which the dataset does not have; its "
                               f"classes are {list(dataset.classes)}")
        wanted = {dataset.classes.index(c) for c in selection.classes}
        keep &= np.isin(dataset.targets, sorted(wanted))
    if selection.sites or selection.exclude_sites:
        sites = _sites(dataset)
        if selection.sites:
            keep &= np.isin(sites, _known_sites(selection.sites, sites, "data.sites"))
        if selection.exclude_sites:
            keep &= ~np.isin(sites, _known_sites(selection.exclude_sites, sites, "data.exclude_sites"))
    if not keep.any():
        raise DatasetError(f"no image of the dataset is left after selecting {selection.describe()}")
    part = dataset.subset(np.flatnonzero(keep))
    if selection.classes:
        part = part.with_classes(tuple(selection.classes))
    return part


def _sites(dataset: LabelledImages) -> np.ndarray:
    column = dataset.metadata.get(SITE_COLUMN)
    if column is None:
        raise DatasetError(f"selecting body sites needs a {SITE_COLUMN!r} column in the dataset's CSV; "
                           f"this dataset has {sorted(dataset.metadata) or 'no metadata columns'}")
    return np.array([str(value).strip().lower() for value in column])


def _known_sites(wanted: Sequence[str], sites: np.ndarray, setting: str) -> list[str]:
    wanted = [w.strip().lower() for w in wanted]
    unknown = sorted(set(wanted) - set(sites.tolist()))
    if unknown:
        raise DatasetError(f"{setting} names {unknown}, which no image has; the dataset's sites are "
                           f"{sorted(set(sites.tolist()))}")
    return wanted
