"""Sweep the object store for image pixels (and their cached features) that no image row points at.

`ProjectStore.add_image` writes the pixels before the row, so a worker killed in between, or a
database that failed at that moment, leaves an object nobody can see or delete. Uploaded photos are
personal data: the sweep removes them. An object younger than the grace period is left alone, because
another worker may be about to commit the row that points at it (every upload rewrites its object, so
its age is the age of the newest upload of that picture).
"""

from __future__ import annotations

import re
import tempfile  # noqa: F401 (used by the example above)
import time

from sqlalchemy import select

from dermlens.projects.database import Database
from dermlens.projects.schema import ImageRecord
from dermlens.storage import ObjectStore, StorageError

GRACE_SECONDS = 3600.0

# image_key() and quick.feature_key(): the picture's SHA-256 is in the key
_OF_AN_IMAGE = re.compile(r"^(?:features-.+-)?(?P<sha>[0-9a-f]{64})\.(?:png|npy)$")


def collect_orphans(database: Database, blobs: ObjectStore, *, grace_seconds: float = GRACE_SECONDS,
                    now: float | None = None) -> list[str]:
    """Delete the unreferenced image objects older than ``grace_seconds``; returns their keys.

    >>> from dermlens.storage import FileStore
    >>> collect_orphans(Database.open("sqlite:///:memory:"), FileStore(tempfile.mkdtemp()))
    []
    """
    now = time.time() if now is None else now
    candidates = {key: match["sha"] for key in blobs.keys() if (match := _OF_AN_IMAGE.match(key))}
    if not candidates:
        return []
    with database.session() as session:
        held = set(session.scalars(select(ImageRecord.sha256).distinct()))
    swept = []
    for key, sha in candidates.items():
        if sha in held or now - _modified(blobs, key, now) < grace_seconds:
            continue
        blobs.delete(key)
        swept.append(key)
    return swept


def _modified(blobs: ObjectStore, key: str, now: float) -> float:
    try:
        return blobs.modified(key)
    except StorageError:  # deleted meanwhile by another worker
        return now
