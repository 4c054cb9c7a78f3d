"""Every bad input a client can send gets a JSON error with an actionable message and a 4xx code."""

from __future__ import annotations

import io

import httpx
import pytest
from PIL import Image


def predict(server, files=None, data=None, **kwargs):
    return httpx.post(f"{server.url}/api/v1/predict", files=files, data=data, timeout=60, **kwargs)


def assert_error(answer: httpx.Response, status: int, code: str) -> dict:
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert body["error"] == code
    assert len(body["message"]) > 20 and "Traceback" not in body["message"]
    return body


def png_bytes(width: int, height: int, colour=(200, 150, 120), mode="RGB", fmt="PNG") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, (width, height), colour).save(buffer, fmt)
    return buffer.getvalue()


def test_no_file(server):
    body = assert_error(predict(server, data={"age": "40"}), 400, "no_file")
    assert "image" in body["message"]


def test_empty_file(server):
    assert_error(predict(server, files={"image": ("x.jpg", b"", "image/jpeg")}), 400, "empty_file")


def test_not_an_image(server):
    answer = predict(server, files={"image": ("notes.jpg", b"these are my notes, not a photo" * 10, "image/jpeg")})
    assert "JPEG" in assert_error(answer, 415, "not_an_image")["message"]


def test_declared_type_that_is_not_an_image(server, lesion_jpeg):
    assert_error(predict(server, files={"image": ("a.pdf", lesion_jpeg, "application/pdf")}), 415, "unsupported_type")


def test_image_format_dermlens_does_not_read(server):
    gif = png_bytes(64, 64, mode="P", fmt="GIF")
    assert "GIF" in assert_error(predict(server, files={"image": ("a.gif", gif, "image/gif")}), 415,
                                 "unsupported_type")["message"]


def test_truncated_image(server, lesion_jpeg):
    half = lesion_jpeg[: len(lesion_jpeg) // 2]
    assert_error(predict(server, files={"image": ("cut.jpg", half, "image/jpeg")}), 422, "truncated_image")


def test_header_only_image(server, lesion_jpeg):
    assert_error(predict(server, files={"image": ("cut.jpg", lesion_jpeg[:40], "image/jpeg")}), 422,
                 "truncated_image")


def test_file_over_the_default_10_mb_limit(server):
    big = b"\xff\xd8\xff" + b"\0" * (11 * 2**20)
    body = assert_error(predict(server, files={"image": ("big.jpg", big, "image/jpeg")}), 413, "file_too_large")
    assert "10 MB" in body["message"]


def test_streamed_body_over_the_limit_without_content_length(server):
    def chunks():
        yield b"--b\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a.jpg\"\r\n\r\n"
        for _ in range(12):
            yield b"\0" * 2**20

    answer = httpx.post(f"{server.url}/api/v1/predict", content=chunks(), timeout=60,
                        headers={"content-type": "multipart/form-data; boundary=b"})
    assert_error(answer, 413, "file_too_large")


def test_configured_limit_is_used(start_server, lesion_jpeg):
    small = start_server(DERMLENS_MAX_UPLOAD_MB="0.002")  # 2 KiB
    assert len(lesion_jpeg) > 2 * 1024
    assert_error(predict(small, files={"image": ("a.jpg", lesion_jpeg, "image/jpeg")}), 413, "file_too_large")


def test_too_many_pixels(server):
    huge = png_bytes(8000, 7000)  # 56 megapixels of one colour: a small file
    assert len(huge) < 2**20
    assert_error(predict(server, files={"image": ("huge.png", huge, "image/png")}), 413, "too_many_pixels")


@pytest.mark.parametrize("fields, where", [({"age": "forty"}, "age"), ({"age": "300"}, "age"),
                                           ({"sex": "robot"}, "sex"), ({"site": "moon"}, "site")])
def test_invalid_fields(server, lesion_jpeg, fields, where):
    answer = predict(server, files={"image": ("a.jpg", lesion_jpeg, "image/jpeg")}, data=fields)
    assert where in assert_error(answer, 422, "invalid_request")["message"]


def test_garbled_multipart_body(server):
    answer = httpx.post(f"{server.url}/api/v1/predict", content=b"--x\r\ngarbage", timeout=30,
                        headers={"content-type": "multipart/form-data; boundary=x"})
    assert 400 <= answer.status_code < 500
    assert answer.json()["error"]


def test_json_instead_of_a_form(server):
    answer = httpx.post(f"{server.url}/api/v1/predict", json={"image": "abc"}, timeout=30)
    assert 400 <= answer.status_code < 500 and answer.json()["error"]


def test_wrong_method_and_unknown_address(server):
    assert_error(httpx.get(f"{server.url}/api/v1/predict"), 405, "method_not_allowed")
    assert_error(httpx.get(f"{server.url}/api/v1/nothing-here"), 404, "not_found")
    assert_error(httpx.get(f"{server.url}/api/v1/conditions/not-a-condition"), 404, "unknown_condition")


def test_triage_with_unknown_question_ids(server):
    answer = httpx.post(f"{server.url}/api/v1/triage", json={"answers": {"favourite_colour": "yes"}})
    assert "favourite_colour" in assert_error(answer, 422, "invalid_request")["message"]


def test_triage_with_a_malformed_body(server):
    answer = httpx.post(f"{server.url}/api/v1/triage", content=b"{not json", timeout=30,
                        headers={"content-type": "application/json"})
    assert_error(answer, 422, "invalid_request")
