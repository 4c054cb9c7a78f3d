"""The predictor on the bundled default model: real images in, safe answers out."""

from __future__ import annotations

import io
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image, ImageFilter

from dermlens.data.images import load_rgb
from dermlens.data.labels import HAM10000_CLASSES
from dermlens.data.readers import read_dataset
from dermlens.inference.predictor import Prediction, Predictor, default_model_path


@pytest.fixture(scope="module")
def predictor() -> Predictor:
    return Predictor.load()


@pytest.fixture(scope="module")
def ham(ham_dir):
    return read_dataset(ham_dir)


@pytest.fixture(scope="module")
def ham_paths(ham):
    picks = np.random.default_rng(1).choice(len(ham), 40, replace=False)
    return [ham.paths[i] for i in picks]


def jpeg_bytes(rgb: np.ndarray, **save) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, "JPEG", quality=95, **save)
    return buffer.getvalue()


def check_answer(prediction: Prediction) -> None:
    assert prediction.status in ("ok", "uncertain")
    assert set(prediction.probabilities) == set(HAM10000_CLASSES)
    assert sum(prediction.probabilities.values()) == pytest.approx(1.0, abs=1e-6)
    probabilities = [c.probability for c in prediction.top]
    assert probabilities == sorted(probabilities, reverse=True)
    assert prediction.top[0].probability == max(prediction.probabilities.values())
    assert "not a diagnosis" in prediction.disclaimer


def test_the_bundled_model_ships_inside_the_package(predictor):
    assert default_model_path().is_file()
    assert default_model_path().stat().st_size < 25_000_000
    assert predictor.classes == HAM10000_CLASSES
    assert predictor.model.has_not_skin_check


def test_real_dermoscopic_images_get_ranked_answers(predictor, ham_paths):
    predictions = predictor.predict_many(ham_paths, progress=False)
    assert [p.image for p in predictions] == [str(p) for p in ham_paths]
    answered = [p for p in predictions if p.status != "rejected"]
    for prediction in answered:
        check_answer(prediction)
    # the not-skin check turns away about 1% of held-out HAM10000 images (model card); 2 of 40 at most
    assert len(answered) >= 38


def test_uncertain_answers_send_the_person_to_a_dermatologist(predictor, ham):
    # the least confident of 150 validation-like images must fall under the abstention threshold
    picks = np.random.default_rng(2).choice(len(ham), 150, replace=False)
    predictions = predictor.predict_many([ham.paths[i] for i in picks], progress=False)
    uncertain = [p for p in predictions if p.status == "uncertain"]
    assert uncertain, "no image of 150 was below the model's confidence threshold"
    assert any(p.reason == "low_confidence" for p in uncertain)
    for prediction in uncertain:
        check_answer(prediction)
        assert "dermatologist" in prediction.message
        if prediction.reason == "low_confidence":
            assert prediction.top[0].probability < predictor.model.gates.min_confidence
        else:  # confident, but the balanced decision names a rarer (possibly malignant) class
            assert prediction.reason == "rare_class_possible"
            assert prediction.decision != prediction.top[0].code
    for prediction in predictions:
        if prediction.status == "ok":
            assert prediction.top[0].probability >= predictor.model.gates.min_confidence


def test_a_file_path_its_bytes_and_its_pixels_give_the_same_answer(predictor, ham_paths):
    path = ham_paths[0]
    by_path = predictor.predict(path)
    by_bytes = predictor.predict(path.read_bytes(), name="upload.jpg")
    by_array = predictor.predict(load_rgb(path))
    assert by_bytes.image == "upload.jpg"
    for other in (by_bytes, by_array):
        assert other.probabilities == pytest.approx(by_path.probabilities, abs=1e-6)


def test_exif_orientation_is_applied(predictor, ham_paths):
    rgb = load_rgb(ham_paths[1])
    upright = predictor.predict(jpeg_bytes(rgb))
    # stored turned a quarter, with the EXIF tag that says how to turn it back
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 clockwise to display
    turned = predictor.predict(jpeg_bytes(np.ascontiguousarray(np.rot90(rgb, 1)), exif=exif))
    assert turned.top[0].code == upright.top[0].code
    assert turned.probabilities == pytest.approx(upright.probabilities, abs=0.05)


def converted(path, mode: str) -> bytes:
    image = Image.open(path)
    if mode == "I;16":
        image = Image.fromarray((np.asarray(image.convert("L"), np.uint16) * 257))
    elif mode == "P":
        image = image.convert("P", palette=Image.Palette.ADAPTIVE, colors=256)
    else:
        image = image.convert(mode)
    buffer = io.BytesIO()
    image.save(buffer, "TIFF" if mode in ("CMYK", "I;16") else "PNG")
    return buffer.getvalue()


@pytest.mark.parametrize("mode", ["CMYK", "P", "RGBA"])
def test_other_colour_modes_are_classified(predictor, ham_paths, mode):
    original = predictor.predict(ham_paths[2])
    prediction = predictor.predict(converted(ham_paths[2], mode), name=f"{mode}.img")
    check_answer(prediction)
    assert prediction.top[0].code == original.top[0].code


@pytest.mark.parametrize("mode", ["L", "I;16"])
def test_greyscale_images_are_read_and_judged(predictor, ham_paths, mode):
    """A greyscale image decodes (16-bit too) but carries no colour, which dermoscopy needs: the model
    either answers or the not-skin check turns it away; it never fails."""
    data = converted(ham_paths[2], mode)
    rgb = load_rgb(data)
    assert rgb.dtype == np.uint8 and rgb.shape[2] == 3
    assert (rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all() and rgb.max() > 100
    prediction = predictor.predict(data, name=f"{mode}.img")
    if prediction.status == "rejected":
        assert prediction.reason == "not_skin" and prediction.message
    else:
        check_answer(prediction)


def degraded(rgb: np.ndarray, how: str) -> np.ndarray:
    if how == "blurry":
        return np.asarray(Image.fromarray(rgb).filter(ImageFilter.GaussianBlur(4)))
    if how == "too_dark":
        return (rgb * 0.15).astype(np.uint8)
    if how == "too_bright":
        return (rgb * 0.15 + 240).clip(0, 255).astype(np.uint8)
    if how == "too_small":
        return np.asarray(Image.fromarray(rgb).resize((48, 36)))
    raise ValueError(how)


@pytest.mark.parametrize("reason", ["blurry", "too_dark", "too_bright", "too_small"])
def test_poor_photos_of_real_lesions_are_rejected(predictor, ham_paths, reason):
    prediction = predictor.predict(jpeg_bytes(degraded(load_rgb(ham_paths[3]), reason)), name="poor.jpg")
    assert (prediction.status, prediction.reason) == ("rejected", reason)
    assert prediction.probabilities == {} and prediction.top == ()
    assert prediction.message


def test_files_that_are_not_images_are_rejected(predictor, ham_paths, tmp_path):
    text = tmp_path / "notes.jpg"
    text.write_text("image_id,label\n")
    truncated = tmp_path / "cut.jpg"
    truncated.write_bytes(ham_paths[4].read_bytes()[:2000])
    bomb = tmp_path / "bomb.png"
    Image.new("1", (10_000, 6_000)).save(bomb, optimize=True)
    reasons = {p.image: p.reason for p in predictor.predict_many([text, truncated, bomb, tmp_path / "gone.jpg"],
                                                                 progress=False)}
    assert reasons == {str(text): "not_an_image", str(truncated): "unreadable", str(bomb): "too_large",
                       str(tmp_path / "gone.jpg"): "unreadable"}


def test_a_corrupt_file_in_the_middle_of_a_batch_stops_nothing(predictor, ham_paths, tmp_path):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    batch = [*ham_paths[:5], broken, *ham_paths[5:10]]
    together = predictor.predict_many(batch, batch_size=4, progress=False)
    assert [p.image for p in together] == [str(p) for p in batch]
    assert together[5].status == "rejected" and together[5].reason == "unreadable"
    alone = predictor.predict_many(ham_paths[:10], progress=False)
    for expected, got in zip(alone, together[:5] + together[6:]):
        assert got.probabilities == pytest.approx(expected.probabilities, abs=1e-6)


def test_natural_photos_are_not_skin(predictor):
    from skimage import data

    for name in ("chelsea", "astronaut", "coffee", "rocket"):
        prediction = predictor.predict(getattr(data, name)(), name=name)
        assert (prediction.status, prediction.reason) == ("rejected", "not_skin"), name
        assert prediction.not_skin_score > predictor.model.gates.not_skin_threshold


def test_most_held_out_skin_images_pass_the_not_skin_check(predictor, ham_paths):
    predictions = predictor.predict_many(ham_paths, progress=False)
    assert sum(p.reason == "not_skin" for p in predictions) <= 1  # of 40


def test_test_time_augmentation_averages_the_flips(ham_paths):
    plain = Predictor.load().predict(ham_paths[5])
    flipped = Predictor.load(tta=True).predict(ham_paths[5])
    check_answer(flipped)
    assert flipped.probabilities != plain.probabilities
    assert flipped.probabilities == pytest.approx(plain.probabilities, abs=0.2)


def test_predicting_does_not_import_torch(ham_paths):
    code = ("import sys; from dermlens.inference.predictor import Predictor; "
            f"p = Predictor.load().predict({str(ham_paths[0])!r}); "
            "assert p.status in ('ok', 'uncertain'), p; "
            "assert 'torch' not in sys.modules, 'torch was imported'; print('fine')")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "fine"
