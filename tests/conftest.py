"""Fixtures shared by all tests: the HAM10000 and external ISIC copies in ../shared, small real subsets."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import pytest

SHARED_DATASETS = Path(__file__).resolve().parents[2] / "shared" / "datasets"
HAM_DIR = SHARED_DATASETS / "ham10000"
EXTERNAL_DIR = SHARED_DATASETS / "isic_archive_external"

os.environ.setdefault("DERMLENS_QUIET", "1")


def _require(folder: Path) -> Path:
    if not folder.is_dir():
        pytest.skip(f"shared dataset not found at {folder} (expected beside the repository root)")
    return folder


@pytest.fixture(scope="session")
def ham_dir() -> Path:
    return _require(HAM_DIR)


@pytest.fixture(scope="session")
def external_dir() -> Path:
    return _require(EXTERNAL_DIR)


def make_ham_subset(ham: Path, folder: Path, per_class: int, classes: tuple[str, ...] | None = None) -> Path:
    """A labels.csv + images/ folder of symlinks to the first ``per_class`` lesions of each class."""
    (folder / "images").mkdir(parents=True, exist_ok=True)
    taken: dict[str, int] = {}
    with open(ham / "labels.csv", newline="") as source, open(folder / "labels.csv", "w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["image_id", "label", "lesion_id", "age", "sex", "localization"])
        for row in csv.DictReader(source):
            label = row["label"]
            if (classes and label not in classes) or taken.get(label, 0) >= per_class:
                continue
            taken[label] = taken.get(label, 0) + 1
            writer.writerow([row["image_id"], label, row["lesion_id"], row["age"], row["sex"],
                             row["localization"]])
            link = folder / "images" / f"{row['image_id']}.jpg"
            if not link.exists():
                link.symlink_to(ham / "images" / f"{row['image_id']}.jpg")
    return folder


@pytest.fixture(scope="session")
def ham_small(ham_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """About 100 real HAM10000 images, 15 per class (fewer for none: every class has 115+)."""
    return make_ham_subset(ham_dir, tmp_path_factory.mktemp("ham_small"), per_class=15)
