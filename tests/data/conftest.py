"""Fixtures for the data tests: tiny real image files, CSV writing, and the shared HAM10000 copy."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

import pytest
from PIL import Image

from dermlens.data.dataset import LabelledImages

_FORMATS = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".bmp": "BMP", ".tif": "TIFF", ".tiff": "TIFF"}


@pytest.fixture
def make_images() -> Callable[[Path, Iterable[str]], Path]:
    """Write 4x4 images named ``names`` into ``folder`` (format from the extension); returns the folder."""

    def make(folder: Path, names: Iterable[str]) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        for name in names:
            Image.new("RGB", (4, 4), (190, 120, 90)).save(folder / name, _FORMATS[Path(name).suffix.lower()])
        return folder

    return make


@pytest.fixture
def write_csv() -> Callable[[Path, str, list[str]], Path]:
    """Write a header line and rows (already comma-joined) to ``path``."""

    def write(path: Path, header: str, rows: list[str]) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
        return path

    return write


@pytest.fixture(scope="session")
def ham(ham_dir: Path) -> LabelledImages:
    """All of HAM10000, read once per session."""
    from dermlens.data.readers import read_dataset

    return read_dataset(ham_dir)
