"""Nothing is lost when a process dies: a server killed mid-upload leaves a consistent store, and a
training process killed mid-job leaves an iteration marked failed at the next start."""

from __future__ import annotations

import io
import os
import signal
import threading
import time
from pathlib import Path

import httpx
import pytest
from PIL import Image

pytestmark = pytest.mark.slow
TOKEN = "crash-token"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}


def stored_pngs(data_dir: Path) -> int:
    return len(list((data_dir / "objects").glob("*.png")))


def test_a_server_killed_during_a_bulk_upload_leaves_a_consistent_store(start_server, ham_by_label, tmp_path):
    data_dir = tmp_path / "data"
    server = start_server(DERMLENS_ADMIN_TOKEN=TOKEN, DERMLENS_DATA_DIR=str(data_dir))
    paths = ham_by_label("nv", 300)
    files = [("images", (p.name, p.read_bytes(), "image/jpeg")) for p in paths]
    with httpx.Client(base_url=server.url, headers=ADMIN, timeout=120) as client:
        project = client.post("/api/v1/projects", json={"name": "crash"}).json()["id"]
        tag = client.post(f"/api/v1/projects/{project}/tags", json={"name": "nv"}).json()["id"]

    def upload() -> None:
        try:
            httpx.post(f"{server.url}/api/v1/projects/{project}/images", files=files, data={"tag": str(tag)},
                       headers=ADMIN, timeout=120)
        except httpx.HTTPError:
            pass  # the server dies under it: that is the point

    sender = threading.Thread(target=upload)
    sender.start()
    deadline = time.monotonic() + 60
    while stored_pngs(data_dir) < 20 and time.monotonic() < deadline:
        time.sleep(0.02)
    os.kill(server.process.pid, signal.SIGKILL)
    sender.join()
    stored = stored_pngs(data_dir)
    assert 20 <= stored < 300, "the kill should land in the middle of the upload"

    restarted = start_server(DERMLENS_ADMIN_TOKEN=TOKEN, DERMLENS_DATA_DIR=str(data_dir))
    with httpx.Client(base_url=restarted.url, headers=ADMIN, timeout=120) as client:
        listed = client.get(f"/api/v1/projects/{project}/images", params={"limit": 1000}).json()
        assert 0 < listed["total"] <= stored  # every row has its image; an image may wait for its row
        for image in listed["images"]:
            answer = client.get(image["url"])
            assert answer.status_code == 200
            with Image.open(io.BytesIO(answer.content)) as png:
                png.load()  # complete, decodable
            assert image["tags"] == [tag]
        again = client.post(f"/api/v1/projects/{project}/images", files=files, data={"tag": str(tag)}).json()
        assert len(again["duplicates"]) == listed["total"] and len(again["added"]) == 300 - listed["total"]
        assert client.get(f"/api/v1/projects/{project}/tags").json()[0]["images"] == 300


def test_a_training_process_killed_mid_job_is_marked_failed_at_the_next_start(start_server, ham_by_label, tmp_path):
    from sqlalchemy import create_engine, text

    data_dir = tmp_path / "data"
    server = start_server(DERMLENS_ADMIN_TOKEN=TOKEN, DERMLENS_DATA_DIR=str(data_dir))
    with httpx.Client(base_url=server.url, headers=ADMIN, timeout=120) as client:
        project = client.post("/api/v1/projects", json={"name": "killed"}).json()["id"]
        for label in ("akiec", "bkl"):
            tag = client.post(f"/api/v1/projects/{project}/tags", json={"name": label}).json()["id"]
            files = [("images", (p.name, p.read_bytes(), "image/jpeg")) for p in ham_by_label(label, 40)]
            client.post(f"/api/v1/projects/{project}/images", files=files, data={"tag": str(tag)})
        client.post(f"/api/v1/projects/{project}/iterations", json={"kind": "quick"})
        engine = create_engine(f"sqlite:///{data_dir / 'projects.db'}")
        deadline = time.monotonic() + 120
        worker = None
        while time.monotonic() < deadline and worker is None:
            with engine.connect() as connection:
                worker = connection.execute(text("SELECT worker FROM iterations WHERE status='running'")).scalar()
            time.sleep(0.1)
        assert worker, "the training process never started"
        os.kill(int(worker.rpartition(":")[2]), signal.SIGKILL)
        engine.dispose()
    server.stop()
    restarted = start_server(DERMLENS_ADMIN_TOKEN=TOKEN, DERMLENS_DATA_DIR=str(data_dir))
    iteration = httpx.get(f"{restarted.url}/api/v1/projects/{project}/iterations/1", headers=ADMIN).json()
    assert iteration["status"] == "failed" and "interrupted" in iteration["message"]
