"""Serving settings, read from ``DERMLENS_*`` environment variables (pydantic-settings).

Every worker reads the same environment, so many stateless ``dermlens serve`` processes behind a load
balancer behave alike. Nothing here is kept between requests except the loaded model.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from dermlens.data.images import MAX_PIXELS


class ServeSettings(BaseSettings):
    """What an operator can change: the model, limits, privacy and rate limiting.

    >>> ServeSettings(max_upload_mb=5).max_upload_bytes
    5242880
    """

    model_config = SettingsConfigDict(env_prefix="DERMLENS_", extra="ignore")

    model: str = Field("default", description="An exported .onnx model, or 'default' for the bundled one.")
    max_upload_mb: float = Field(10.0, gt=0, description="Largest accepted upload, in MiB (HTTP 413 above).")
    max_pixels: int = Field(MAX_PIXELS, gt=0, description="Largest accepted image, in pixels (HTTP 413 above).")
    keep_uploads_dir: Path | None = Field(
        None, description="Turn storing on: images whose sender ticks 'keep' are saved here, without "
                          "metadata. Unset (the default), no image is ever written to disk.")
    rate_limit_per_minute: int = Field(
        60, ge=0, description="Requests per minute per client on the API and form posts (0 turns it off).")
    threads: int = Field(0, ge=0, description="ONNX Runtime threads per worker (0: the CPUs available).")
    data_dir: Path | None = Field(
        None, description="Where projects keep their database, images and models "
                          "(default: ~/.local/share/dermlens).")
    database_url: str | None = Field(
        None, validation_alias=AliasChoices("DERMLENS_DATABASE_URL", "DATABASE_URL"),
        description="The projects database, e.g. postgresql+psycopg://user:pass@host/db (default: SQLite in "
                    "the data directory).")
    admin_token: str | None = Field(
        None, description="The token for managing projects. Unset, one is made on first start and kept in "
                          "<data dir>/admin-token.")
    max_import_mb: float = Field(1024.0, gt=0, description="Largest upload of project images (many files or "
                                                           "a zip), in MiB.")
    start_workers: bool = Field(True, description="Start a training process when an iteration is queued "
                                                  "(off: run `dermlens project worker` yourself).")

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)

    @property
    def max_import_bytes(self) -> int:
        return int(self.max_import_mb * 1024 * 1024)
