"""The whole custom-vision loop through the HTTP API of a real server, on real HAM10000 images:
akiec versus bkl (the closest HAM10000 analogue of the seed paper's actinic keratosis versus solar
lentigo), 100 images, two iterations, publish, predict with the key, correct, export to ONNX."""

from __future__ import annotations

import io
import time
import zipfile

import httpx
import numpy as np
import pytest

pytestmark = pytest.mark.slow
TOKEN = "test-admin-token"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}


def wait_for(client: httpx.Client, project: int, number: int, timeout: float = 420) -> dict:
    deadline = time.monotonic() + timeout
    seen = set()
    while time.monotonic() < deadline:
        iteration = client.get(f"/api/v1/projects/{project}/iterations/{number}").json()
        seen.add(round(iteration["progress"], 1))
        if iteration["status"] in ("completed", "failed"):
            iteration["progress_seen"] = seen
            return iteration
        time.sleep(1)
    raise AssertionError(f"iteration {number} did not finish in {timeout} s: {iteration}")


def test_the_whole_loop_through_http(start_server, ham_by_label, tmp_path):
    server = start_server(DERMLENS_ADMIN_TOKEN=TOKEN)
    akiec, bkl = ham_by_label("akiec", 50), ham_by_label("bkl", 50)
    unseen = {"akiec": ham_by_label("akiec", 6, skip=50), "bkl": ham_by_label("bkl", 6, skip=50)}
    with httpx.Client(base_url=server.url, headers=ADMIN, timeout=120) as client:
        assert httpx.get(server.url + "/api/v1/projects").status_code == 401  # no token, no projects

        made = client.post("/api/v1/projects", json={"name": "akiec vs bkl"})
        assert made.status_code == 201, made.text
        project, key = made.json()["id"], made.json()["prediction_key"]
        tags = {t["name"]: t["id"] for t in (client.post(f"/api/v1/projects/{project}/tags", json={"name": n}).json()
                                              for n in ("akiec", "bkl"))}

        # akiec as many files tagged by the form; bkl as a zip with a folder per tag
        files = [("images", (p.name, p.read_bytes(), "image/jpeg")) for p in akiec]
        answer = client.post(f"/api/v1/projects/{project}/images", files=files, data={"tag": str(tags["akiec"])})
        assert answer.status_code == 201, answer.text
        assert len(answer.json()["added"]) == 50 and not answer.json()["refused"]
        archive = io.BytesIO()
        with zipfile.ZipFile(archive, "w") as zipped:
            for path in bkl:
                zipped.write(path, f"bkl/{path.name}")
        answer = client.post(f"/api/v1/projects/{project}/images",
                             files={"archive": ("bkl.zip", archive.getvalue(), "application/zip")})
        assert len(answer.json()["added"]) == 50, answer.text
        again = client.post(f"/api/v1/projects/{project}/images", files=files[:3], data={"tag": str(tags["akiec"])})
        assert len(again.json()["duplicates"]) == 3 and not again.json()["added"]
        counts = {t["name"]: t["images"] for t in client.get(f"/api/v1/projects/{project}/tags").json()}
        assert counts == {"akiec": 50, "bkl": 50}

        # iteration 1: quick, in the background
        queued = client.post(f"/api/v1/projects/{project}/iterations", json={"kind": "quick"})
        assert queued.status_code == 202, queued.text
        first = wait_for(client, project, queued.json()["number"])
        assert first["status"] == "completed", first["message"]

        metrics = client.get(f"/api/v1/projects/{project}/iterations/1/metrics", params={"threshold": 0.5}).json()
        strict = client.get(f"/api/v1/projects/{project}/iterations/1/metrics", params={"threshold": 0.9}).json()
        assert [t["tag"] for t in metrics["tags"]] == ["akiec", "bkl"]
        for tag in metrics["tags"]:
            assert 0 <= tag["precision"] <= 1 and 0 <= tag["recall"] <= 1 and tag["images"] == 50
            assert tag["average_precision"] > 0.5  # better than chance on balanced tags
        assert strict["recall"] <= metrics["recall"]
        assert np.sum(metrics["confusion_matrix"]["counts"]) == 100

        # quick test on an image the project does not hold
        path = unseen["akiec"][0]
        test = client.post(f"/api/v1/projects/{project}/iterations/1/quick-test",
                           files={"image": (path.name, path.read_bytes(), "image/jpeg")}).json()
        assert {p["tag"] for p in test["predictions"]} == {"akiec", "bkl"}
        assert abs(sum(p["probability"] for p in test["predictions"]) - 1) < 1e-5
        assert "not a diagnosis" in test["disclaimer"].lower()

        # publish, then predict with the key (and only with it)
        assert client.post(f"/api/v1/projects/{project}/iterations/1/publish", json={"name": "first"}).status_code == 200
        endpoint = f"{server.url}/api/v1/projects/{project}/predict"
        image = {"image": (path.name, path.read_bytes(), "image/jpeg")}
        assert httpx.post(endpoint, files=image).status_code == 401
        assert httpx.post(endpoint, files=image, headers={"Prediction-Key": "wrong"}).status_code == 401
        assert httpx.post(endpoint, files=image, headers=ADMIN).status_code == 401  # the admin token is no key
        answers = {}
        for label, paths in unseen.items():
            for p in paths:
                got = httpx.post(endpoint, params={"keep": "true"}, headers={"Prediction-Key": key},
                                 files={"image": (p.name, p.read_bytes(), "image/jpeg")})
                assert got.status_code == 200, got.text
                assert got.json()["kept"] is True
                answers[got.json()["prediction_id"]] = (label, got.json()["predictions"][0]["tag"])
        not_kept = httpx.post(endpoint, headers={"Prediction-Key": key}, files=image).json()
        assert not_kept["kept"] is False and not_kept["prediction_id"] is None

        # review: kept predictions are listed; correct one (the retraining loop of the Flask seed)
        review = client.get(f"/api/v1/projects/{project}/predictions").json()
        assert {r["id"] for r in review} == set(answers)
        prediction = next(r for r in review if answers[r["id"]][0] != answers[r["id"]][1]) if any(
            a != b for a, b in answers.values()) else review[0]
        truth = answers[prediction["id"]][0]
        done = client.post(f"/api/v1/projects/{project}/predictions/{prediction['id']}/correct",
                           json={"tag_id": tags[truth]})
        assert done.status_code == 200, done.text
        counts = {t["name"]: t["images"] for t in client.get(f"/api/v1/projects/{project}/tags").json()}
        assert counts[truth] == 51  # the corrected image joins its tag

        # iteration 2 learns from the correction
        queued = client.post(f"/api/v1/projects/{project}/iterations", json={"kind": "quick"}).json()
        second = wait_for(client, project, queued["number"])
        assert second["status"] == "completed", second["message"]
        assert second["images_per_tag"][truth] == 51
        compared = client.get(f"/api/v1/projects/{project}/compare", params={"first": 1, "second": 2}).json()
        assert compared["second"]["n_images"] == 101 and len(compared["tags"]) == 2

        # export iteration 2 to ONNX, download it, and predict with the export: same top tag
        exported = client.post(f"/api/v1/projects/{project}/iterations/2/export", json={"format": "onnx"}).json()
        assert exported["produced"] and exported["verified"], exported
        model_file = tmp_path / "exported.onnx"
        model_file.write_bytes(client.get(exported["download"]).content)
        client.post(f"/api/v1/projects/{project}/iterations/2/publish", json={"name": "second"})
        from dermlens.data.images import load_rgb
        from dermlens.inference.onnx_model import OnnxModel

        model = OnnxModel.load(model_file)
        for p in unseen["bkl"][:3]:
            logits = model.logits(model.preprocessing.normalize(model.preprocessing.prepare(load_rgb(p))[None]))
            served = httpx.post(endpoint, headers={"Prediction-Key": key},
                                files={"image": (p.name, p.read_bytes(), "image/jpeg")}).json()
            assert model.classes[int(logits.argmax())] == served["predictions"][0]["tag"]
