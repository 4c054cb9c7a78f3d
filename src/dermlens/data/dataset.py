"""`LabelledImages`: the one thing every dataset reader returns and every consumer takes."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np


@dataclass(frozen=True)
class LabelledImages:
    """Image paths with integer targets into ``classes``, a group id per image, and metadata.

    ``groups`` is what a split must keep together: the lesion (HAM10000 ``lesion_id``) or the
    patient. Where a dataset has no such id, each image is its own group.

    >>> ds = LabelledImages(paths=(Path("a.jpg"), Path("b.jpg")), targets=np.array([0, 1]),
    ...                     classes=("mel", "nv"), groups=("l1", "l2"))
    >>> ds.class_counts()
    {'mel': 1, 'nv': 1}
    """

    paths: tuple[Path, ...]
    targets: np.ndarray
    classes: tuple[str, ...]
    groups: tuple[str, ...]
    ids: tuple[str, ...] = ()
    metadata: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    source: str = ""

    def __post_init__(self) -> None:
        n = len(self.paths)
        object.__setattr__(self, "targets", np.asarray(self.targets, dtype=np.int64))
        if not self.ids:
            object.__setattr__(self, "ids", tuple(Path(p).stem for p in self.paths))
        if len(self.targets) != n or len(self.groups) != n or len(self.ids) != n:
            raise ValueError("paths, targets, groups and ids must have the same length")
        for name, column in self.metadata.items():
            if len(column) != n:
                raise ValueError(f"metadata column {name!r} has {len(column)} values for {n} images")

    def __len__(self) -> int:
        return len(self.paths)

    def class_counts(self) -> dict[str, int]:
        """Images per class, in class order (classes with no image are listed with 0)."""
        counts = Counter(int(t) for t in self.targets)
        return {c: counts.get(i, 0) for i, c in enumerate(self.classes)}

    def subset(self, indices: np.ndarray | list[int]) -> "LabelledImages":
        """The images at ``indices`` (same class list)."""
        idx = [int(i) for i in indices]
        return LabelledImages(
            paths=tuple(self.paths[i] for i in idx),
            targets=self.targets[idx],
            classes=self.classes,
            groups=tuple(self.groups[i] for i in idx),
            ids=tuple(self.ids[i] for i in idx),
            metadata={k: tuple(v[i] for i in idx) for k, v in self.metadata.items()},
            source=self.source,
        )

    def with_classes(self, classes: tuple[str, ...]) -> "LabelledImages":
        """Re-index targets onto another class order (e.g. a model's); every present class must be in it."""
        missing = sorted({self.classes[t] for t in self.targets} - set(classes))
        if missing:
            raise ValueError(f"labels {missing} are not among the classes {list(classes)}")
        lookup = {c: classes.index(c) for c in self.classes if c in classes}
        targets = np.array([lookup[self.classes[t]] for t in self.targets], dtype=np.int64)
        return LabelledImages(self.paths, targets, tuple(classes), self.groups, self.ids,
                              dict(self.metadata), self.source)
