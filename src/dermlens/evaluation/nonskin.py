"""A probe set of ordinary non-skin images, built offline from what installed packages ship.

It measures the not-skin check (`dermlens.inference.notskin`): natural photos from scikit-image and
matplotlib (animals, people, objects, scenes, textures, microscopy, astronomy), each also as random
crops; generated documents, screenshots (rendered charts and window-like layouts), flat colours,
noise and geometric patterns. Needs scikit-image (the ``dev`` extra).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from dermlens.errors import DermlensError

# scikit-image sample images bundled with the package (no download), by category
NATURAL = {
    "animal": ("chelsea", "cat"),
    "people": ("astronaut",),
    "object": ("coffee", "rocket", "clock", "coins", "camera"),
    "scene": ("hubble_deep_field", "moon"),
    "texture": ("brick", "grass", "gravel"),
    "microscopy": ("immunohistochemistry", "cell"),
    "medical": ("retina",),
    "graphic": ("colorwheel", "logo", "horse"),
    "document": ("page", "text"),
}


@dataclass(frozen=True)
class ProbeImage:
    category: str
    name: str
    rgb: np.ndarray  # uint8 (H, W, 3)


def _as_rgb(array: np.ndarray) -> np.ndarray:
    array = np.asarray(array)
    if array.dtype == bool:
        array = array.astype(np.uint8) * 255
    elif array.dtype != np.uint8:
        array = (255 * (array - array.min()) / max(float(np.ptp(array)), 1e-9)).astype(np.uint8)
    if array.ndim == 2:
        array = np.stack([array] * 3, axis=-1)
    if array.shape[2] == 4:
        array = np.asarray(Image.fromarray(array, "RGBA").convert("RGB"))
    return np.ascontiguousarray(array)


def _crops(rgb: np.ndarray, rng: np.random.Generator, n: int) -> list[np.ndarray]:
    height, width = rgb.shape[:2]
    crops = []
    for _ in range(n):
        scale = rng.uniform(0.35, 0.7)
        h, w = max(64, int(height * scale)), max(64, int(width * scale))
        top, left = rng.integers(0, max(1, height - h + 1)), rng.integers(0, max(1, width - w + 1))
        crops.append(np.ascontiguousarray(rgb[top:top + h, left:left + w]))
    return crops


def _document(rng: np.random.Generator) -> np.ndarray:
    image = Image.new("RGB", (600, 800), (250, 250, 245))
    draw = ImageDraw.Draw(image)
    y = 40
    while y < 760:
        words = rng.integers(5, 12)
        line = " ".join("".join(chr(int(c)) for c in rng.integers(97, 123, rng.integers(2, 9)))
                        for _ in range(words))
        draw.text((40, y), line, fill=(20, 20, 20))
        y += int(rng.integers(14, 30))
    return np.asarray(image)


def _chart(rng: np.random.Generator, kind: int) -> np.ndarray:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6.4, 4.8), dpi=80)
    x = np.arange(20)
    if kind % 3 == 0:
        axes.plot(x, rng.normal(size=20).cumsum(), marker="o")
    elif kind % 3 == 1:
        axes.bar(x, rng.uniform(1, 10, size=20), color="tab:orange")
    else:
        axes.scatter(rng.normal(size=200), rng.normal(size=200), s=8)
    axes.set_title("Quarterly figures")
    figure.canvas.draw()
    rgb = np.asarray(figure.canvas.buffer_rgba())[..., :3].copy()
    plt.close(figure)
    return rgb


def _window(rng: np.random.Generator) -> np.ndarray:
    """A screenshot-like layout: title bar, sidebar, buttons and text lines."""
    image = Image.new("RGB", (800, 600), tuple(int(v) for v in rng.integers(225, 256, 3)))
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 0, 800, 32), fill=tuple(int(v) for v in rng.integers(30, 90, 3)))
    draw.rectangle((0, 32, 180, 600), fill=tuple(int(v) for v in rng.integers(190, 230, 3)))
    for row in range(12):
        draw.text((200, 50 + 40 * row), f"Item {row}: settings and options", fill=(30, 30, 30))
        draw.rectangle((650, 45 + 40 * row, 760, 70 + 40 * row), outline=(60, 60, 200), width=2)
    return np.asarray(image)


def non_skin_images(seed: int = 0, crops_per_photo: int = 3) -> list[ProbeImage]:
    """About 100 non-skin images; the same list for the same seed."""
    try:
        import skimage.data
    except ImportError:  # pragma: no cover - dev extra missing
        raise DermlensError("the non-skin probe set needs scikit-image: pip install 'dermlens[dev]'") from None
    from matplotlib import cbook

    rng = np.random.default_rng(seed)
    probes: list[ProbeImage] = []
    photos = [(category, name, _as_rgb(getattr(skimage.data, name)()))
              for category, names in NATURAL.items() for name in names]
    with cbook.get_sample_data("grace_hopper.jpg") as handle:
        photos.append(("people", "grace_hopper", _as_rgb(np.asarray(Image.open(handle).convert("RGB")))))
    for category, name, rgb in photos:
        probes.append(ProbeImage(category, name, rgb))
        probes += [ProbeImage(category, f"{name}_crop{i}", crop)
                   for i, crop in enumerate(_crops(rgb, rng, crops_per_photo))]
    probes += [ProbeImage("document", f"generated_document{i}", _document(rng)) for i in range(6)]
    probes += [ProbeImage("screenshot", f"chart{i}", _chart(rng, i)) for i in range(6)]
    probes += [ProbeImage("screenshot", f"window{i}", _window(rng)) for i in range(4)]
    for i, colour in enumerate(rng.integers(0, 256, size=(6, 3))):
        probes.append(ProbeImage("flat_colour", f"flat{i}", np.full((300, 400, 3), colour, np.uint8)))
    probes.append(ProbeImage("noise", "uniform_noise", rng.integers(0, 256, (300, 400, 3), dtype=np.uint8)))
    probes.append(ProbeImage("noise", "gaussian_noise",
                             np.clip(rng.normal(128, 40, (300, 400, 3)), 0, 255).astype(np.uint8)))
    probes.append(ProbeImage("noise", "coloured_noise",
                             np.clip(rng.normal(rng.uniform(60, 200, 3), 25, (300, 400, 3)), 0, 255)
                             .astype(np.uint8)))
    yy, xx = np.mgrid[0:300, 0:400]
    probes.append(ProbeImage("pattern", "stripes", _as_rgb(((xx // 20) % 2 * 255).astype(np.uint8))))
    probes.append(ProbeImage("pattern", "gradient", _as_rgb((xx * 255 // 399).astype(np.uint8))))
    probes.append(ProbeImage("pattern", "rings", _as_rgb(
        (127 + 127 * np.sin(np.hypot(yy - 150, xx - 200) / 6)).astype(np.uint8))))
    probes.append(ProbeImage("pattern", "checkerboard", _as_rgb(skimage.data.checkerboard())))
    return probes
