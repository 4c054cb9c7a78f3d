"""All images of a dataset decoded once, resized to the model input, kept as one uint8 array.

HAM10000 at 200x150 is 0.9 GB in memory; decoding it once and caching it on disk (keyed by the
files, their sizes and modification times, and the input size) makes every later run start in seconds.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from dermlens.data.images import ImageReadError, Preprocessing, load_rgb
from dermlens.errors import DatasetError
from dermlens.progress import say, track


def default_cache_dir() -> Path:
    return Path(os.environ.get("DERMLENS_CACHE", Path.home() / ".cache" / "dermlens"))


def images_key(paths: tuple[Path, ...], preprocessing: Preprocessing) -> str:
    digest = hashlib.sha256(repr((preprocessing.height, preprocessing.width,
                                  preprocessing.landscape, preprocessing.colour_constancy)).encode())
    for path in paths:
        stat = os.stat(path)
        digest.update(f"{Path(path).resolve()}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:20]


def save_array(array: np.ndarray, path: Path) -> None:
    """np.save to a temporary file, then rename: a killed run never leaves a half-written cache."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(f".{os.getpid()}.tmp.npy")
    np.save(partial, array)
    os.replace(partial, path)


def load_images(paths: tuple[Path, ...], preprocessing: Preprocessing,
                cache_dir: Path | None = None) -> np.ndarray:
    """uint8 array (N, height, width, 3) of the images at ``paths``, read from a cache where it can be.

    Unreadable files are an error listing them: training never silently drops an image.
    """
    cache_file = None
    if cache_dir is not None:
        cache_file = Path(cache_dir) / f"images-{images_key(paths, preprocessing)}.npy"
        if cache_file.is_file():
            return np.load(cache_file, mmap_mode="r")
    array = np.empty((len(paths), preprocessing.height, preprocessing.width, 3), dtype=np.uint8)
    failures: list[str] = []
    for i, path in enumerate(track(paths, "Reading images", total=len(paths))):
        try:
            array[i] = preprocessing.prepare(load_rgb(path))
        except ImageReadError as error:
            failures.append(str(error))
    if failures:
        shown = "\n  ".join(failures[:5])
        raise DatasetError(f"{len(failures)} image(s) could not be read; fix or remove them:\n  {shown}")
    if cache_file is not None:
        save_array(array, cache_file)
        say(f"cached {len(paths)} decoded images in {cache_file}")
    return array
