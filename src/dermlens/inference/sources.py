"""Which files a prediction request means: image files as given, folders expanded to their images."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from dermlens.data.readers import IMAGE_EXTENSIONS
from dermlens.errors import DermlensError


def image_files(paths: Sequence[str | Path]) -> list[Path]:
    """Files named directly are kept whatever they are (a bad one gets its own rejected answer);
    folders contribute their image files, recursively, in sorted order.

    >>> image_files([])
    Traceback (most recent call last):
    ...
    dermlens.errors.DermlensError: no images given: pass image files or folders of images
    """
    files: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
            if not found:
                raise DermlensError(f"the folder {path} holds no image files "
                                    f"({', '.join(IMAGE_EXTENSIONS)})")
            files.extend(found)
        else:
            files.append(path)
    if not files:
        raise DermlensError("no images given: pass image files or folders of images")
    return files
