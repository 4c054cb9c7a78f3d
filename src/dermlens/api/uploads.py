"""Turning an uploaded file into pixels, or a `ClientError` that says what was wrong with it.

The bytes are decoded in memory and only the pixels go on: EXIF (GPS, camera, dates) and every other
piece of metadata is dropped on arrival, after its orientation has been applied.
"""

from __future__ import annotations

import numpy as np
from starlette.requests import Request

from dermlens.api.errors import ClientError
from dermlens.data.images import ImageReadError, load_rgb

SUPPORTED_FORMATS = ("JPEG", "PNG", "TIFF", "BMP", "WEBP")
SUPPORTED_NAMES = "JPEG, PNG, TIFF, BMP or WebP"
_NEUTRAL_TYPES = ("", "application/octet-stream", "binary/octet-stream")


def decode_upload(data: bytes | None, content_type: str | None, *, max_bytes: int, max_pixels: int) -> np.ndarray:
    """Uploaded bytes -> uint8 RGB pixels; a `ClientError` (400, 413, 415 or 422) for anything else."""
    if data is None:
        raise ClientError(400, "no_file", "No image was sent: attach the photo in the form field 'image'.")
    if not data:
        raise ClientError(400, "empty_file", "The file is empty (0 bytes); choose the photo again.")
    if len(data) > max_bytes:
        raise ClientError(413, "file_too_large", f"The file is {len(data) / 2**20:.1f} MB; the limit is "
                          f"{max_bytes / 2**20:.0f} MB. Send a smaller (or more compressed) photo.")
    declared = (content_type or "").split(";")[0].strip().lower()
    if declared not in _NEUTRAL_TYPES and not declared.startswith("image/"):
        raise ClientError(415, "unsupported_type", f"The file was sent as {declared!r}, not an image. "
                          f"Send a {SUPPORTED_NAMES} photo.")
    try:
        return load_rgb(data, max_pixels, formats=SUPPORTED_FORMATS)
    except ImageReadError as error:
        raise _client_error(error, max_pixels) from None


def _client_error(error: ImageReadError, max_pixels: int) -> ClientError:
    """What `load_rgb` refused, as the status and words an uploader needs."""
    if error.reason == "unsupported_format":
        return ClientError(415, "unsupported_type", f"{error.image_format or 'This'} images are not supported; "
                           f"send a {SUPPORTED_NAMES} photo.")
    if error.reason == "too_large":
        if error.size is None:
            return ClientError(413, "too_many_pixels", "The image has too many pixels to decode safely; "
                               "downscale it first.")
        width, height = error.size
        return ClientError(413, "too_many_pixels", f"The image is {width}x{height} pixels, more than the "
                           f"{max_pixels:,} allowed; downscale it first.")
    if error.reason == "not_an_image":
        return ClientError(415, "not_an_image", f"The file is not an image; send a {SUPPORTED_NAMES} photo.")
    return ClientError(422, "truncated_image", "The image could not be decoded: it is probably truncated or "
                       "damaged. Send the file again.")


async def uploaded_file(request: Request, *fields: str) -> tuple[bytes | None, str | None]:
    """The bytes and declared type of the first of ``fields`` that carries a file; ``(None, None)`` when
    none was sent, ``(b"", None)`` when one was sent empty (FastAPI's own parameters cannot tell these
    apart). A part with neither a file name nor content, as a form sends for an unused file input, was
    not sent."""
    if "multipart/" not in request.headers.get("content-type", ""):
        return None, None
    form = await request.form()  # parsed once per request, then cached by Starlette
    sent = False
    for field in fields:
        part = form.get(field)
        if part is None or isinstance(part, str):
            continue
        data = await part.read()
        if data:
            return data, part.content_type
        sent = sent or bool(part.filename)
    return (b"", None) if sent else (None, None)
