"""Reading images and turning them into model input, without torch.

Training and serving share this module so an exported model sees exactly the pixels its checkpoint
was trained on. Images are rotated to landscape (a lesion has no up or down), then resized to the
model's input size; HAM10000's 200x150 images need no resize at all at the default size.
"""

from __future__ import annotations

import io
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from dermlens.errors import DermlensError


class ImageReadError(DermlensError):
    """The file is not an image, or is truncated or corrupt."""


@dataclass(frozen=True)
class Preprocessing:
    """How an RGB image becomes a normalised float tensor for a model.

    >>> Preprocessing(height=150, width=200).to_dict()["width"]
    200
    """

    height: int = 150
    width: int = 200
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.5, 0.5, 0.5)
    landscape: bool = True

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "Preprocessing":
        return cls(
            height=int(values["height"]),
            width=int(values["width"]),
            mean=tuple(float(v) for v in values["mean"]),  # type: ignore[arg-type]
            std=tuple(float(v) for v in values["std"]),  # type: ignore[arg-type]
            landscape=bool(values.get("landscape", True)),
        )

    def resize(self, rgb: np.ndarray) -> np.ndarray:
        """uint8 HxWx3 -> uint8 (height, width, 3): portrait turned to landscape, then resized."""
        if self.landscape and rgb.shape[0] > rgb.shape[1]:
            rgb = np.ascontiguousarray(np.rot90(rgb))
        if rgb.shape[:2] == (self.height, self.width):
            return rgb
        image = Image.fromarray(rgb).resize((self.width, self.height), Image.Resampling.BILINEAR)
        return np.asarray(image)

    def normalize(self, batch_uint8: np.ndarray) -> np.ndarray:
        """uint8 (N, H, W, 3) -> float32 (N, 3, H, W) scaled by mean and std."""
        scaled = batch_uint8.astype(np.float32) / 255.0
        scaled = (scaled - np.asarray(self.mean, np.float32)) / np.asarray(self.std, np.float32)
        return np.ascontiguousarray(scaled.transpose(0, 3, 1, 2))

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        """One uint8 RGB image -> float32 (1, 3, height, width)."""
        return self.normalize(self.resize(rgb)[None])


def to_rgb(image: Image.Image) -> Image.Image:
    """Apply the EXIF orientation and convert any mode (CMYK, palette, alpha, 16-bit, grey) to RGB."""
    image = ImageOps.exif_transpose(image)
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        array = np.asarray(image, dtype=np.float64)
        top = max(float(array.max()), 1.0)
        image = Image.fromarray((array / top * 255.0).astype(np.uint8))
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    return image.convert("RGB")


def load_rgb(source: str | Path | bytes) -> np.ndarray:
    """Read an image file (or its bytes) as a uint8 HxWx3 RGB array.

    >>> load_rgb(b"not an image")
    Traceback (most recent call last):
    ...
    dermlens.data.images.ImageReadError: <bytes> is not an image file (or its format is not supported)
    """
    name = "<bytes>" if isinstance(source, bytes) else str(source)
    stream = io.BytesIO(source) if isinstance(source, bytes) else source
    try:
        with Image.open(stream) as image:
            image.load()
            return np.asarray(to_rgb(image))
    except UnidentifiedImageError:
        raise ImageReadError(f"{name} is not an image file (or its format is not supported)") from None
    except FileNotFoundError:
        raise ImageReadError(f"{name} does not exist") from None
    except (OSError, SyntaxError, ValueError) as error:
        raise ImageReadError(f"{name} could not be read (truncated or corrupt?): {error}") from None
