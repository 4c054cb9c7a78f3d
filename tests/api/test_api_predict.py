"""POST /api/v1/predict against a real server on real HAM10000 images."""

from __future__ import annotations

import base64
import io

import httpx
import numpy as np
import pytest
from PIL import Image

from dermlens import DISCLAIMER
from dermlens.inference.predictor import Predictor


def post_image(server, data: bytes, *, filename="lesion.jpg", content_type="image/jpeg", params=None, **fields):
    return httpx.post(f"{server.url}/api/v1/predict", files={"image": (filename, data, content_type)},
                      data={k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in fields.items()},
                      params=params, timeout=60)


def test_every_class_image_gets_a_ranked_calibrated_answer(server, ham_images):
    predictor = Predictor.load()
    for code, path in ham_images.items():
        answer = post_image(server, path.read_bytes())
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["status"] in ("ok", "uncertain"), (code, body["status"], body["reason"])
        assert len(body["top"]) == 7
        probabilities = [c["probability"] for c in body["top"]]
        assert probabilities == sorted(probabilities, reverse=True)
        assert sum(body["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)
        # the API answers exactly what the library answers for the same file
        expected = predictor.predict(path)
        assert body["top"][0]["code"] == expected.top[0].code
        assert np.allclose([body["probabilities"][c] for c in predictor.classes],
                           [expected.probabilities[c] for c in predictor.classes], atol=1e-5)
        assert body["risk"]["group"] in ("malignant", "pre-malignant", "benign")
        assert body["urgency"]["level"] in ("urgent", "soon", "routine")
        assert body["urgency"]["rule"] and body["urgency"]["because"]
        assert body["disclaimer"] == DISCLAIMER
        assert body["kept"] is False and body["explanation"] is None


def test_explain_adds_heatmap_mask_and_abcd_as_png_data_urls(server, ham_images):
    body = post_image(server, ham_images["mel"].read_bytes(), params={"explain": "true"}).json()
    explanation = body["explanation"]
    assert explanation["heatmap_class"] in body["probabilities"]
    for key in ("image", "heatmap"):
        assert explanation[key].startswith("data:image/png;base64,")
        picture = Image.open(io.BytesIO(base64.b64decode(explanation[key].split(",", 1)[1])))
        assert picture.format == "PNG" and picture.size[0] >= 100
    if explanation["abcd"] is not None:  # segmentation may fail on a hard image; then there is no mask
        assert explanation["mask"].startswith("data:image/png;base64,")
        assert 0 <= explanation["abcd"]["asymmetry"] <= 1
        assert explanation["abcd"]["border_irregularity"] >= 0.9
        assert explanation["abcd"]["diameter_px"] > 0


def test_symptoms_raise_the_urgency_through_the_checklist_rule(server, ham_images):
    image = ham_images["nv"].read_bytes()
    calm = post_image(server, image).json()
    worried = post_image(server, image, growth=True, bleeding=True).json()
    # growth (2 points) and bleeding (1 point) make a weighted 7-point score of 3: referral within 2 weeks
    assert worried["urgency"]["level"] == "urgent"
    assert worried["urgency"]["rule"] != calm["urgency"]["rule"] or calm["urgency"]["level"] == "urgent"
    assert "3" in worried["urgency"]["because"]


def test_a_flat_grey_picture_is_rejected_without_probabilities(server):
    buffer = io.BytesIO()
    Image.new("RGB", (400, 300), (128, 128, 128)).save(buffer, "PNG")
    body = post_image(server, buffer.getvalue(), filename="grey.png", content_type="image/png").json()
    assert body["status"] == "rejected" and body["reason"]
    assert body["top"] == [] and body["probabilities"] is None and body["risk"] is None
    assert body["urgency"]["level"] == "not_assessed"
    assert body["disclaimer"] == DISCLAIMER
