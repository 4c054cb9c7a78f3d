"""Privacy and safety: nothing kept by default, metadata stripped, nothing identifying logged,
security headers, rate limiting."""

from __future__ import annotations

import io
from pathlib import Path

import httpx
from PIL import Image

SECRET_NAME = "jane-doe-1970-01-01.jpg"


def jpeg_with_gps(lesion_jpeg: bytes) -> bytes:
    image = Image.open(io.BytesIO(lesion_jpeg))
    exif = Image.Exif()
    exif[0x010F] = "SecretCam"  # Make
    exif[0x8825] = {1: "N", 2: (51.0, 30.0, 0.0), 3: "W", 4: (0.0, 7.0, 0.0)}  # GPSInfo
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", exif=exif, quality=95)
    assert Image.open(io.BytesIO(buffer.getvalue())).getexif().get(0x8825)
    return buffer.getvalue()


def post(server, data: bytes, **fields) -> httpx.Response:
    return httpx.post(f"{server.url}/api/v1/predict", files={"image": (SECRET_NAME, data, "image/jpeg")},
                      data=fields, timeout=60)


def test_default_server_keeps_nothing_even_when_asked(server, lesion_jpeg):
    body = post(server, lesion_jpeg, keep="true").json()
    assert body["kept"] is False


def test_kept_images_are_stored_without_metadata_only_when_asked(start_server, tmp_path, lesion_jpeg):
    store = tmp_path / "kept"
    keeping = start_server(DERMLENS_KEEP_UPLOADS_DIR=str(store))
    photo = jpeg_with_gps(lesion_jpeg)
    assert post(keeping, photo).json()["kept"] is False
    assert not store.exists() or not any(store.iterdir())
    assert post(keeping, photo, keep="true").json()["kept"] is True
    assert post(keeping, photo, keep="true").json()["kept"] is True  # the same image is stored once
    files = list(store.iterdir())
    assert len(files) == 1 and files[0].suffix == ".png" and SECRET_NAME not in files[0].name
    kept = Image.open(files[0])
    assert not kept.getexif() and "exif" not in kept.info
    assert b"SecretCam" not in files[0].read_bytes()
    original = Image.open(io.BytesIO(photo)).convert("RGB")
    assert kept.size == original.size


def test_nothing_identifying_is_logged(server, lesion_jpeg):
    post(server, lesion_jpeg)
    log = Path(server.log_path).read_text()
    assert "jane" not in log and "127.0.0.1:" not in log.replace(server.url, "")


def test_security_headers_on_pages_and_api(server):
    for path in ("/", "/api/v1/health", "/conditions"):
        headers = httpx.get(server.url + path).headers
        policy = headers["content-security-policy"]
        assert "script-src 'self'" in policy and "unsafe-inline" not in policy
        assert "frame-ancestors 'none'" in policy
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["referrer-policy"] == "no-referrer"
    assert httpx.get(server.url + "/api/v1/health").headers["cache-control"] == "no-store"


def test_pages_have_no_inline_script(server):
    for path in ("/", "/conditions", "/about", "/docs"):
        html = httpx.get(server.url + path).text
        assert "<script>" not in html and "onclick=" not in html and "style=\"" not in html


def test_rate_limit_per_client(start_server):
    limited = start_server(DERMLENS_RATE_LIMIT_PER_MINUTE="3")
    codes = [httpx.get(f"{limited.url}/api/v1/model").status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    refused = httpx.get(f"{limited.url}/api/v1/model")
    assert refused.json()["error"] == "rate_limited" and int(refused.headers["retry-after"]) >= 1
    assert httpx.get(f"{limited.url}/api/v1/health").status_code == 200  # load balancers may always ask
    assert httpx.get(f"{limited.url}/conditions").status_code == 200  # pages are not limited
