"""`ObjectStore`, the storage interface, and `FileStore`, its file-system implementation.

Keys are flat, content-derived names (``<sha256>.png``): a caller's file name never reaches the file
system, so there is no path to traverse. Writes go to a temporary file that is renamed into place, so
a process killed mid-write leaves either the whole object or nothing.
"""

from __future__ import annotations

import glob
import os
import re
import tempfile
from pathlib import Path
from typing import Protocol

from dermlens.errors import DermlensError

_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class StorageError(DermlensError):
    """An object is missing, or a key is not a plain object name."""


class ObjectStore(Protocol):
    def put(self, key: str, data: bytes) -> None: ...
    def get(self, key: str) -> bytes: ...
    def exists(self, key: str) -> bool: ...
    def delete(self, key: str) -> None: ...
    def keys(self, prefix: str = "") -> list[str]: ...
    def modified(self, key: str) -> float: ...  # when the object was last written, in epoch seconds


def checked_key(key: str) -> str:
    if not _KEY.match(key) or ".." in key:
        raise StorageError(f"{key!r} is not a valid object key (letters, digits, '.', '_', '-'; no folders)")
    return key


class FileStore:
    """Objects as files in one folder.

    >>> store = FileStore(tempfile.mkdtemp()); store.put("a.txt", b"hi"); store.get("a.txt")
    b'hi'
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def _path(self, key: str) -> Path:
        return self.root / checked_key(key)

    def put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        self.root.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=self.root, prefix=".incoming-")
        try:
            with os.fdopen(handle, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            raise StorageError(f"no object {key!r} in {self.root}") from None

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def modified(self, key: str) -> float:
        try:
            return self._path(key).stat().st_mtime
        except FileNotFoundError:
            raise StorageError(f"no object {key!r} in {self.root}") from None

    def keys(self, prefix: str = "") -> list[str]:
        """The keys that start with ``prefix``, sorted."""
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.glob(f"{glob.escape(prefix)}*")
                      if p.is_file() and not p.name.startswith(".incoming-"))
