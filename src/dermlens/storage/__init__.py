"""Where dermlens keeps files: one small interface, so a file system today and an object store (S3,
GCS, MinIO) tomorrow are interchangeable, and any number of stateless workers can share it."""

from dermlens.storage.files import FileStore, ObjectStore, StorageError

__all__ = ["FileStore", "ObjectStore", "StorageError"]
