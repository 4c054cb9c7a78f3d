"""The pages over plain HTTP, as a browser without JavaScript uses them: forms in, HTML out."""

from __future__ import annotations

import re

import httpx

from dermlens import DISCLAIMER
from dermlens.data.labels import display_name

HTML = {"accept": "text/html"}


def test_home_offers_picker_camera_and_optional_fields(server):
    page = httpx.get(server.url + "/", headers=HTML).text
    assert 'enctype="multipart/form-data"' in page and 'action="/assess"' in page
    assert 'capture="environment"' in page
    for field in ("age", "sex", "site", "itching", "bleeding", "growth", "change"):
        assert f'name="{field}"' in page, field
    assert DISCLAIMER in page


def test_upload_form_renders_the_result(server, ham_images):
    path = ham_images["bcc"]
    answer = httpx.post(server.url + "/assess", headers=HTML, timeout=60,
                        files={"image": (path.name, path.read_bytes(), "image/jpeg"),
                               "photo": ("", b"", "application/octet-stream")},
                        data={"age": "", "sex": "female", "site": "back"})
    assert answer.status_code == 200, answer.text[:500]
    page = answer.text
    assert page.count("<meter") == 3  # the top three, prominent
    assert "All 7 classes" in page
    assert re.search(r'<img src="data:image/png;base64,[^"]+" id="heatmap" alt="Grad-CAM', page)
    assert 'id="triage-form"' in page and 'name="result_status"' in page
    assert DISCLAIMER in page
    names = [display_name(code) for code in ("mel", "nv", "bcc", "akiec", "bkl", "df", "vasc")]
    assert sum(name in page for name in names) == 7


def test_upload_form_without_a_photo_says_what_to_do(server):
    answer = httpx.post(server.url + "/assess", headers=HTML, data={"age": "30"},
                        files={"image": ("", b"", "application/octet-stream")})
    assert answer.status_code == 400
    assert "choose the photo again" in answer.text or "No image was sent" in answer.text
    assert 'id="upload"' in answer.text  # the form is there to try again


def test_not_an_image_through_the_form(server):
    answer = httpx.post(server.url + "/assess", headers=HTML,
                        files={"image": ("cv.jpg", b"plain text, no picture" * 20, "image/jpeg")})
    assert answer.status_code == 415 and "not an image" in answer.text


def test_triage_form_without_javascript(server):
    answer = httpx.post(server.url + "/triage", headers=HTML, data={
        "result_status": "ok", "result_decision": "nv", "result_top_code": "nv", "result_top_probability": "0.91",
        "change_in_size": "yes", "irregular_shape": "yes", "question": "how soon should I see a doctor?"})
    assert answer.status_code == 200, answer.text[:500]
    assert 'id="urgency"' in answer.text and "Why:" in answer.text
    assert 'id="answer"' in answer.text


def test_condition_pages(server):
    conditions = httpx.get(server.url + "/api/v1/conditions").json()
    index = httpx.get(server.url + "/conditions", headers=HTML).text
    for condition in conditions:
        assert f'href="/conditions/{condition["code"]}"' in index
        page = httpx.get(f'{server.url}/conditions/{condition["code"]}', headers=HTML)
        assert page.status_code == 200 and "When to see a doctor" in page.text and "References" in page.text
    missing = httpx.get(server.url + "/conditions/nope", headers=HTML)
    assert missing.status_code == 404 and "<html" in missing.text


def test_about_page_shows_the_model_card_and_privacy(server):
    page = httpx.get(server.url + "/about", headers=HTML).text
    assert "balanced accuracy" in page and 'id="privacy"' in page and "EXIF" in page
