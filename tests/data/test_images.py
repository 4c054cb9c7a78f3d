"""Reading any image as uint8 RGB, and turning it into model input (`Preprocessing`)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from dermlens.data.images import ImageReadError, Preprocessing, load_rgb, shades_of_gray
from dermlens.errors import DermlensError

SKIN = (190, 120, 90)


def _bytes(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def _check_rgb(array: np.ndarray, height: int, width: int) -> None:
    assert array.dtype == np.uint8
    assert array.shape == (height, width, 3)


@pytest.mark.parametrize("suffix, fmt", [(".jpg", "JPEG"), (".png", "PNG")])
def test_reads_jpeg_and_png_files(tmp_path, suffix, fmt):
    path = tmp_path / f"lesion{suffix}"
    Image.new("RGB", (40, 30), SKIN).save(path, fmt)
    array = load_rgb(path)
    _check_rgb(array, 30, 40)
    np.testing.assert_allclose(array.reshape(-1, 3).mean(axis=0), SKIN, atol=3)
    np.testing.assert_array_equal(load_rgb(str(path)), array)
    np.testing.assert_array_equal(load_rgb(path.read_bytes()), array)


def test_png_is_read_losslessly(tmp_path):
    pixels = np.random.default_rng(0).integers(0, 256, size=(12, 17, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "noise.png")
    np.testing.assert_array_equal(load_rgb(tmp_path / "noise.png"), pixels)


def test_exif_orientation_is_applied(tmp_path):
    # a 40 wide x 20 high image whose EXIF says "rotate 90 degrees clockwise to display"
    pixels = np.zeros((20, 40, 3), np.uint8)
    pixels[:, :20] = (255, 0, 0)  # left half red, right half blue
    pixels[:, 20:] = (0, 0, 255)
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "phone.jpg"
    Image.fromarray(pixels).save(path, "JPEG", exif=exif.tobytes(), quality=95)
    array = load_rgb(path)
    _check_rgb(array, 40, 20)
    # turned clockwise, the left (red) half is now on top
    assert array[5, 10, 0] > 200 and array[5, 10, 2] < 60
    assert array[35, 10, 2] > 200 and array[35, 10, 0] < 60


def test_cmyk_jpeg_becomes_rgb(tmp_path):
    path = tmp_path / "print.jpg"
    Image.new("RGB", (16, 12), SKIN).convert("CMYK").save(path, "JPEG", quality=95)
    assert Image.open(path).mode == "CMYK"
    array = load_rgb(path)
    _check_rgb(array, 12, 16)
    np.testing.assert_allclose(array.reshape(-1, 3).mean(axis=0), SKIN, atol=8)


def test_palette_with_transparency_is_composited_on_white(tmp_path):
    image = Image.new("P", (10, 8), 0)
    image.putpalette([0, 0, 0, 200, 50, 50] + [0] * 762)
    image.paste(1, (0, 0, 5, 8))  # left half colour 1 (opaque red), right half colour 0 (transparent)
    path = tmp_path / "palette.png"
    image.save(path, transparency=0)
    assert Image.open(path).mode == "P" and "transparency" in Image.open(path).info
    array = load_rgb(path)
    _check_rgb(array, 8, 10)
    np.testing.assert_array_equal(array[0, 0], (200, 50, 50))
    np.testing.assert_array_equal(array[0, 9], (255, 255, 255))


def test_rgba_is_composited_on_white(tmp_path):
    pixels = np.zeros((6, 8, 4), np.uint8)
    pixels[..., :3] = SKIN
    pixels[:, :4, 3] = 255  # left half opaque, right half fully transparent
    Image.fromarray(pixels, "RGBA").save(tmp_path / "alpha.png")
    array = load_rgb(tmp_path / "alpha.png")
    _check_rgb(array, 6, 8)
    np.testing.assert_array_equal(array[0, 0], SKIN)
    np.testing.assert_array_equal(array[0, 7], (255, 255, 255))


def test_16_bit_greyscale_is_scaled_to_8_bits(tmp_path):
    ramp = np.linspace(0, 60000, 32, dtype=np.uint16).reshape(4, 8)
    image = Image.fromarray(ramp)
    assert image.mode.startswith("I;16")
    image.save(tmp_path / "scan.png")
    array = load_rgb(tmp_path / "scan.png")
    _check_rgb(array, 4, 8)
    assert array[0, 0].tolist() == [0, 0, 0]
    assert array[-1, -1].tolist() == [255, 255, 255]  # the brightest pixel
    assert (np.diff(array[..., 0].ravel().astype(int)) >= 0).all()  # the ramp survives
    assert (array[..., 0] == array[..., 1]).all() and (array[..., 1] == array[..., 2]).all()


def test_greyscale_becomes_three_equal_channels(tmp_path):
    Image.new("L", (9, 7), 123).save(tmp_path / "grey.png")
    array = load_rgb(tmp_path / "grey.png")
    _check_rgb(array, 7, 9)
    assert (array == 123).all()


def test_truncated_jpeg_is_an_image_read_error(tmp_path):
    pixels = np.random.default_rng(1).integers(0, 256, size=(64, 64, 3), dtype=np.uint8)
    data = _bytes(Image.fromarray(pixels), "JPEG", quality=90)
    path = tmp_path / "cut.jpg"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageReadError, match="cut.jpg") as caught:
        load_rgb(path)
    assert caught.value.reason == "unreadable"


@pytest.mark.parametrize(("content", "reason"), [
    (b"not an image at all", "not_an_image"), (b"", "not_an_image"),
    (b"\x89PNG\r\n\x1a\n garbage", "unreadable"), (b"\xff\xd8\xff not a real jpeg", "unreadable")])
def test_non_image_bytes_are_an_image_read_error(tmp_path, content, reason):
    """Something else entirely is `not_an_image`; a damaged image file is `unreadable`."""
    path = tmp_path / "notes.jpg"
    path.write_bytes(content)
    with pytest.raises(ImageReadError, match="notes.jpg") as caught:
        load_rgb(path)
    assert caught.value.reason == reason
    with pytest.raises(ImageReadError) as caught:
        load_rgb(content)
    assert caught.value.reason == reason


def test_plain_text_is_not_an_image():
    with pytest.raises(ImageReadError) as caught:
        load_rgb(b"image_id,label\nISIC_0024306,nv\n")
    assert caught.value.reason == "not_an_image"


def test_a_decompression_bomb_is_refused_before_decoding(tmp_path):
    """A 60-megapixel black PNG is a few kilobytes on disk; it must not be decoded."""
    path = tmp_path / "bomb.png"
    Image.new("1", (10_000, 6_000)).save(path, optimize=True)
    assert path.stat().st_size < 100_000
    with pytest.raises(ImageReadError, match="10000x6000") as caught:
        load_rgb(path)
    assert caught.value.reason == "too_large"
    with pytest.raises(ImageReadError) as caught:
        load_rgb(path, max_pixels=1000)
    assert caught.value.reason == "too_large"
    assert load_rgb(path, max_pixels=70_000_000).shape == (6_000, 10_000, 3)


def test_missing_file_is_an_image_read_error(tmp_path):
    with pytest.raises(ImageReadError, match="does not exist"):
        load_rgb(tmp_path / "nowhere.jpg")
    assert issubclass(ImageReadError, DermlensError)


def test_preprocessing_turns_portrait_to_landscape_and_resizes():
    portrait = np.zeros((300, 200, 3), np.uint8)
    portrait[:150] = 255  # top half white
    prep = Preprocessing(height=150, width=200)
    landscape = prep.resize(portrait)
    assert landscape.shape == (150, 200, 3) and landscape.dtype == np.uint8
    # rotated a quarter turn, the white top half is now one side (left or right), not the top
    left, right = landscape[:, :90].mean(), landscape[:, 110:].mean()
    assert {round(left), round(right)} == {0, 255}
    assert landscape[:, :90].std() < 1 and landscape[:, 110:].std() < 1


def test_preprocessing_keeps_the_native_size_untouched():
    pixels = np.random.default_rng(2).integers(0, 256, size=(150, 200, 3), dtype=np.uint8)
    np.testing.assert_array_equal(Preprocessing(height=150, width=200).resize(pixels), pixels)


def test_preprocessing_without_landscape_keeps_orientation():
    portrait = np.zeros((300, 200, 3), np.uint8)
    portrait[:150] = 255
    resized = Preprocessing(height=60, width=40, landscape=False).resize(portrait)
    assert resized.shape == (60, 40, 3)
    assert resized[:25].mean() > 250 and resized[35:].mean() < 5


def test_preprocessing_normalises_with_mean_and_std():
    prep = Preprocessing(height=2, width=3, mean=(0.5, 0.25, 0.0), std=(0.5, 0.25, 1.0))
    image = np.zeros((2, 3, 3), np.uint8)
    image[..., 0], image[..., 1], image[..., 2] = 255, 0, 51
    batch = prep(image)
    assert batch.shape == (1, 3, 2, 3) and batch.dtype == np.float32
    np.testing.assert_allclose(batch[0, 0], 1.0, atol=1e-6)    # (1 - 0.5) / 0.5
    np.testing.assert_allclose(batch[0, 1], -1.0, atol=1e-6)   # (0 - 0.25) / 0.25
    np.testing.assert_allclose(batch[0, 2], 0.2, atol=1e-6)    # 51/255
    assert batch.flags["C_CONTIGUOUS"]


def test_preprocessing_round_trips_through_a_dict():
    prep = Preprocessing(height=224, width=299, mean=(0.1, 0.2, 0.3), std=(0.4, 0.5, 0.6), landscape=False)
    assert Preprocessing.from_dict(prep.to_dict()) == prep
    legacy = {k: v for k, v in prep.to_dict().items() if k != "landscape"}
    assert Preprocessing.from_dict(legacy).landscape is True


def test_colour_constancy_removes_a_colour_cast():
    rng = np.random.default_rng(3)
    scene = rng.integers(60, 200, size=(150, 200, 3)).astype(np.float32)
    cast = np.clip(scene * np.array([1.25, 1.0, 0.7]), 0, 255).astype(np.uint8)
    neutral = shades_of_gray(cast, 6.0)
    assert neutral.dtype == np.uint8 and neutral.shape == cast.shape
    before = cast.reshape(-1, 3).mean(axis=0)
    after = neutral.reshape(-1, 3).mean(axis=0)
    assert before.max() / before.min() > 1.5
    assert after.max() / after.min() < 1.1  # the cast is gone
    grey = np.full((10, 10, 3), 90, np.uint8)
    # a neutral image is left alone (up to the truncation of the float gains)
    assert np.abs(shades_of_gray(grey, 6.0).astype(int) - grey).max() <= 1
    black = np.zeros((10, 10, 3), np.uint8)
    np.testing.assert_array_equal(shades_of_gray(black, 6.0), black)


def test_preprocessing_applies_colour_constancy_after_resizing():
    rng = np.random.default_rng(4)
    image = rng.integers(0, 256, size=(300, 400, 3), dtype=np.uint8)
    plain = Preprocessing(height=150, width=200)
    constant = Preprocessing(height=150, width=200, colour_constancy=6.0)
    np.testing.assert_array_equal(constant.prepare(image), shades_of_gray(plain.prepare(image), 6.0))
    np.testing.assert_array_equal(plain.prepare(image), plain.resize(image))
    assert Preprocessing.from_dict(constant.to_dict()) == constant
