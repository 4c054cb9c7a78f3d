"""Turning uploaded files, zip archives and folders into images a project can keep.

Every image is decoded and re-encoded as PNG: EXIF (GPS, camera, dates) and every other piece of
metadata is gone before anything is stored, and the content hash of the stored pixels deduplicates
uploads of the same picture. Large photos are downscaled so their longer side is at most
`MAX_STORED_SIDE` pixels (models see 224 to 256 pixels).

A caller's file name is only ever shown, never used as a path. Zip archives are read entry by entry
with limits on the number of entries, on each entry's size and compression ratio and on the total
(a zip bomb stops at the first entry over a limit), and links are refused.
"""

from __future__ import annotations

import functools
import hashlib
import io
import re
import stat
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
from PIL import Image

from dermlens.data.images import ImageReadError, load_rgb
from dermlens.projects.errors import Invalid

MAX_STORED_SIDE = 1024
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}


@dataclass(frozen=True)
class ZipLimits:
    max_entries: int = 20_000
    max_entry_bytes: int = 50 * 2**20
    max_total_bytes: int = 4 * 2**30
    max_ratio: float = 200.0  # uncompressed / compressed: images hardly compress, bombs compress 1000x


@dataclass
class StoredImage:
    """An image ready to store or classify: its pixels (downscaled if huge) and a display name. The PNG
    without metadata, and its hash, are made only when the image is stored."""

    name: str
    pixels: np.ndarray  # uint8 (height, width, 3)

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])

    @functools.cached_property
    def png(self) -> bytes:
        out = io.BytesIO()
        Image.fromarray(self.pixels).save(out, format="PNG", optimize=False)
        return out.getvalue()

    @functools.cached_property
    def sha256(self) -> str:
        return hashlib.sha256(self.png).hexdigest()


@dataclass(frozen=True)
class ArchiveEntry:
    """One image file of an archive or folder, with the folder it sat in (a tag, for folder-per-tag)."""

    name: str
    data: bytes
    folder: str | None


def display_name(name: str) -> str:
    """The last part of a caller's file name, trimmed to printable characters (for showing only)."""
    last = PurePosixPath(str(name).replace("\\", "/")).name
    return re.sub(r"[^\w .()+-]", "_", last)[:255] or "image"


def prepare_image(data: bytes, name: str, *, max_pixels: int = 50_000_000) -> StoredImage:
    """Decode ``data``, drop its metadata, downscale it if huge, and encode it as PNG.

    >>> prepare_image(b"not an image", "x.jpg")
    Traceback (most recent call last):
    ...
    dermlens.projects.errors.Invalid: x.jpg is not an image file (JPEG, PNG, TIFF, BMP or WebP)
    """
    shown = display_name(name)
    try:
        rgb = load_rgb(data, max_pixels=max_pixels)
    except ImageReadError as error:
        message = {"not_an_image": f"{shown} is not an image file (JPEG, PNG, TIFF, BMP or WebP)",
                   "too_large": f"{shown} has too many pixels to decode safely; downscale it first"}
        raise Invalid(message.get(error.reason, f"{shown} could not be decoded: it is probably truncated "
                                  "or damaged")) from None
    return image_from_pixels(rgb, shown)


def image_from_pixels(rgb: np.ndarray, name: str) -> StoredImage:
    """Decoded uint8 RGB pixels as a `StoredImage`, downscaled to `MAX_STORED_SIDE` if larger."""
    if max(rgb.shape[:2]) > MAX_STORED_SIDE:
        image = Image.fromarray(rgb)
        image.thumbnail((MAX_STORED_SIDE, MAX_STORED_SIDE), Image.Resampling.LANCZOS)
        rgb = np.asarray(image)
    return StoredImage(display_name(name), rgb)


def read_stored(png: bytes) -> np.ndarray:
    """A stored image back as uint8 RGB pixels."""
    with Image.open(io.BytesIO(png)) as image:
        return np.asarray(image.convert("RGB"))


def _is_link(info: zipfile.ZipInfo) -> bool:
    return stat.S_ISLNK(info.external_attr >> 16)


def _folder_of(name: str) -> str | None:
    parts = [p for p in PurePosixPath(name.replace("\\", "/")).parts[:-1] if p not in ("", ".", "/")]
    return parts[-1] if parts else None


def zip_entries(archive: bytes | Path, limits: ZipLimits = ZipLimits()) -> Iterator[ArchiveEntry]:
    """The image files of a zip archive, checked against ``limits`` before each is read.

    Other files (and macOS ``__MACOSX`` resource forks) are skipped; a CSV is returned too so the
    caller can read labels from it.
    """
    source = io.BytesIO(archive) if isinstance(archive, bytes) else archive
    try:
        zipped = zipfile.ZipFile(source)
    except (zipfile.BadZipFile, OSError):
        raise Invalid("the archive is not a readable zip file (or it is truncated)") from None
    with zipped:
        infos = [i for i in zipped.infolist() if not i.is_dir()]
        if len(infos) > limits.max_entries:
            raise Invalid(f"the archive has {len(infos):,} files; the limit is {limits.max_entries:,}. "
                          "Split it into smaller archives.")
        total = 0
        for info in infos:
            name = info.filename
            if name.startswith("__MACOSX/") or PurePosixPath(name).name.startswith("."):
                continue
            suffix = PurePosixPath(name).suffix.lower()
            if suffix not in IMAGE_SUFFIXES and suffix != ".csv":
                continue
            if _is_link(info):
                raise Invalid(f"the archive entry {display_name(name)} is a link; links are not accepted")
            if info.flag_bits & 0x1:
                raise Invalid("the archive is encrypted; upload an unencrypted zip")
            if info.file_size > limits.max_entry_bytes:
                raise Invalid(f"{display_name(name)} in the archive is {info.file_size / 2**20:.0f} MB; "
                              f"the limit per file is {limits.max_entry_bytes / 2**20:.0f} MB")
            if info.compress_size and info.file_size / info.compress_size > limits.max_ratio:
                raise Invalid(f"{display_name(name)} in the archive is compressed "
                              f"{info.file_size / info.compress_size:.0f}:1, which images never are: "
                              "this looks like a zip bomb, so the archive was refused")
            total += info.file_size
            if total > limits.max_total_bytes:
                raise Invalid(f"the archive unpacks to more than {limits.max_total_bytes / 2**30:.0f} GB; "
                              "split it into smaller archives")
            with zipped.open(info) as member:
                # read no more than declared: a lying header cannot make us inflate without end
                data = member.read(info.file_size + 1)
            if len(data) > info.file_size:
                raise Invalid(f"{display_name(name)} in the archive is larger than its header says; "
                              "the archive was refused")
            yield ArchiveEntry(name, data, _folder_of(name))


def folder_entries(root: Path) -> Iterator[ArchiveEntry]:
    """The image files under ``root`` (and a CSV beside them), in sorted order, links not followed."""
    root = Path(root)
    if not root.is_dir():
        raise Invalid(f"{root} is not a folder")
    for path in sorted(root.rglob("*")):
        if path.is_symlink() or not path.is_file() or path.name.startswith("."):
            continue
        if path.suffix.lower() in IMAGE_SUFFIXES or path.suffix.lower() == ".csv":
            relative = path.relative_to(root).as_posix()
            yield ArchiveEntry(relative, path.read_bytes(), _folder_of(relative))
