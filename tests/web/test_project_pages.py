"""The project pages over plain HTTP, as a browser without JavaScript uses them: sign in, forms in,
HTML out. Training is not run here (no worker is started): a queued iteration is completed from the
test with made-up held-out probabilities, which is all its pages read."""

from __future__ import annotations

import io
import re

import httpx
import numpy as np
import pytest
from PIL import Image

from dermlens import DISCLAIMER

TOKEN = "page-test-admin-token"
HTML = {"accept": "text/html"}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("project-pages")


@pytest.fixture(scope="module")
def site(start_server, data_dir):
    return start_server(DERMLENS_ADMIN_TOKEN=TOKEN, DERMLENS_DATA_DIR=str(data_dir), DERMLENS_START_WORKERS="false")


@pytest.fixture()
def admin(site):
    with httpx.Client(base_url=site.url, headers=HTML, timeout=60) as client:
        signed_in = client.post("/projects/login", data={"token": TOKEN})
        assert signed_in.status_code == 303
        yield client


def png(seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG")
    return out.getvalue()


def create(client: httpx.Client, name: str, tags=("akiec", "bkl")) -> tuple[int, str]:
    page = client.post("/projects", data={"name": name, "kind": "multiclass"})
    assert page.status_code == 200, page.text[:500]
    project = int(re.search(r'href="/projects/(\d+)" id="open-project"', page.text).group(1))
    key = re.search(r'id="prediction-key" class="secret">([^<]+)<', page.text).group(1)
    for tag in tags:
        assert client.post(f"/projects/{project}/tags", data={"name": tag}).status_code == 303
    return project, key


def tag_ids(page: str) -> dict[str, int]:
    select = re.search(r'<select id="bulk-tag".*?</select>', page, re.DOTALL).group(0)
    return {name: int(value) for value, name in re.findall(r'<option value="(\d+)">([^<]+)</option>', select)}


def image_ids(page: str) -> list[int]:
    return [int(i) for i in re.findall(r'<input type="checkbox" name="image" value="(\d+)">', page)]


def complete_queued(data_dir, seed: int) -> None:
    """Do what a training worker does, with made-up held-out probabilities (no model is trained)."""
    from dermlens.projects.metrics import held_out_record
    from dermlens.projects.workspace import Workspace

    workspace = Workspace.open(data_dir)
    iteration = workspace.iterations.claim("page-test")
    n = 12
    truth = np.zeros((n, 2), bool)
    truth[:6, 0], truth[6:, 1] = True, True
    first = np.clip(0.35 * truth[:, 0] + np.random.default_rng(seed).uniform(0.15, 0.65, n), 0, 1)
    record = held_out_record(["akiec", "bkl"], list(range(n)), truth, np.stack([first, 1 - first], axis=1),
                             validation="5-fold cross-validation")
    workspace.iterations.finish(iteration.id, metrics=record, model_key="not-trained", checkpoint_key=None)


def test_every_page_needs_sign_in(site):
    for path in ("/projects", "/projects/1", "/projects/1/iterations/1", "/projects/1/settings", "/projects/1/review"):
        answer = httpx.get(site.url + path, headers=HTML)
        assert answer.status_code == 303, path
        assert answer.headers["location"].startswith("/projects/login?next=%2Fprojects"), path
    refused = httpx.post(site.url + "/projects", headers=HTML, data={"name": "sneaky"})
    assert refused.status_code == 303 and refused.headers["location"].startswith("/projects/login")
    form = httpx.get(site.url + "/projects/login?next=/projects/1", headers=HTML)
    assert form.status_code == 200 and 'type="password"' in form.text and 'for="token"' in form.text
    assert 'name="next" value="/projects/1"' in form.text


def test_wrong_token_is_refused_and_the_right_one_signs_in(site):
    wrong = httpx.post(site.url + "/projects/login", headers=HTML, data={"token": "guess"})
    assert wrong.status_code == 401 and 'id="login-error"' in wrong.text and "set-cookie" not in wrong.headers
    right = httpx.post(site.url + "/projects/login", headers=HTML,
                       data={"token": TOKEN, "next": "https://elsewhere.example/"})
    assert right.status_code == 303 and right.headers["location"] == "/projects"  # never off the site
    cookie = right.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "path=/" in cookie
    listing = httpx.get(site.url + "/projects", headers=HTML, cookies=right.cookies)
    assert listing.status_code == 200 and 'id="create-form"' in listing.text
    assert "sneaky" not in listing.text  # the create form posted without sign-in made nothing


def test_a_post_from_another_site_is_refused(admin):
    for headers in ({"origin": "https://evil.example"}, {"sec-fetch-site": "cross-site", "origin": "null"}):
        answer = admin.post("/projects", data={"name": "from elsewhere"}, headers=headers)
        assert answer.status_code == 403, headers
    assert "from elsewhere" not in admin.get("/projects").text
    # this site's own form, as Chromium sends it under the no-referrer policy
    own = admin.post("/projects", data={"name": "from here"}, headers={"sec-fetch-site": "same-origin",
                                                                       "origin": "null"})
    assert own.status_code == 200 and 'id="open-project"' in own.text


def test_tags_uploads_and_bulk_tagging_without_javascript(admin, site):
    project, _ = create(admin, "forms only")
    duplicate = admin.post(f"/projects/{project}/tags", data={"name": "akiec"})
    assert duplicate.status_code == 409 and 'id="tag-error"' in duplicate.text

    files = [("images", (f"lesion{i}.png", png(i), "image/png")) for i in range(12)]
    files.append(("images", ("notes.jpg", b"not a picture at all" * 10, "image/jpeg")))
    uploaded = admin.post(f"/projects/{project}/images", files=files)
    assert uploaded.status_code == 200, uploaded.text[:500]
    result = re.search(r'id="upload-result">(.*?)</div>', uploaded.text, re.DOTALL).group(1)
    assert "12 images added" in result and "1 refused" in result and "notes.jpg" in result
    again = admin.post(f"/projects/{project}/images", files=files[:2])
    assert "2 already in the project" in again.text

    page = admin.get(f"/projects/{project}").text
    ids, tags = image_ids(page), tag_ids(page)
    assert len(ids) == 12 and set(tags) == {"akiec", "bkl"}
    assert page.count(f'src="/projects/{project}/images/') == 12
    thumb = admin.get(f"/projects/{project}/images/{ids[0]}/thumb")
    assert thumb.headers["content-type"] == "image/jpeg" and max(Image.open(io.BytesIO(thumb.content)).size) <= 192

    nothing = admin.post(f"/projects/{project}/images/bulk", data={"action": "tag", "tag": tags["akiec"]})
    assert nothing.status_code == 422 and "Tick at least one image" in nothing.text
    done = admin.post(f"/projects/{project}/images/bulk",
                      data={"action": "tag", "tag": tags["akiec"], "image": ids[:6], "filter": "untagged"})
    assert done.status_code == 303 and "filter=untagged" in done.headers["location"]
    shown = admin.get(done.headers["location"]).text
    assert "6 images tagged." in shown and len(image_ids(shown)) == 6  # only the untagged are left in view
    admin.post(f"/projects/{project}/images/bulk", data={"action": "tag", "tag": tags["bkl"], "image": ids[6:9]})

    refused = admin.post(f"/projects/{project}/train", data={"kind": "quick"})
    assert refused.status_code == 422
    message = re.search(r'id="train-error"[^>]*><p>([^<]+)</p>', refused.text).group(1)
    assert "at least 5 images" in message and "bkl (3)" in message

    tagged_akiec = admin.get(f"/projects/{project}?filter=tag:{tags['akiec']}").text
    assert len(image_ids(tagged_akiec)) == 6
    admin.post(f"/projects/{project}/images/bulk", data={"action": "untag", "tag": "", "image": ids[:1]})
    assert len(image_ids(admin.get(f"/projects/{project}?filter=untagged").text)) == 4
    deleted = admin.post(f"/projects/{project}/images/bulk", data={"action": "delete", "image": ids[11:]})
    assert deleted.status_code == 303
    assert len(image_ids(admin.get(f"/projects/{project}").text)) == 11

    renamed = admin.post(f"/projects/{project}/tags/{tags['bkl']}/rename", data={"name": "solar lentigo"})
    assert renamed.status_code == 303
    assert 'data-tag="solar lentigo"' in admin.get(f"/projects/{project}").text
    assert admin.post(f"/projects/{project}/tags/{tags['bkl']}/delete").status_code == 303
    assert 'data-tag="solar lentigo"' not in admin.get(f"/projects/{project}").text


def test_iterations_metrics_compare_publish_and_settings(admin, site, data_dir):
    project, key = create(admin, "metrics")
    files = [("images", (f"m{i}.png", png(100 + i), "image/png")) for i in range(12)]
    admin.post(f"/projects/{project}/images", files=files)
    page = admin.get(f"/projects/{project}").text
    ids, tags = image_ids(page), tag_ids(page)
    admin.post(f"/projects/{project}/images/bulk", data={"action": "tag", "tag": tags["akiec"], "image": ids[:6]})
    admin.post(f"/projects/{project}/images/bulk", data={"action": "tag", "tag": tags["bkl"], "image": ids[6:]})

    queued = admin.post(f"/projects/{project}/train", data={"kind": "quick"})
    assert queued.status_code == 303 and queued.headers["location"] == f"/projects/{project}/iterations/1"
    waiting = admin.get(queued.headers["location"]).text
    assert 'data-status="queued"' in waiting and '<meta http-equiv="refresh"' in waiting  # inside <noscript>
    complete_queued(data_dir, seed=1)
    admin.post(f"/projects/{project}/train", data={"kind": "quick"})
    complete_queued(data_dir, seed=2)

    first = admin.get(f"/projects/{project}/iterations/1").text
    assert 'type="range" id="threshold"' in first and 'id="confusion"' in first
    assert first.count('<tr data-tag="') == 2 and DISCLAIMER in first
    assert 'http-equiv="refresh"' not in first
    numbers = dict(re.findall(r'id="overall-(\w+)">([^<]*)<', first))
    strict = dict(re.findall(r'id="overall-(\w+)">([^<]*)<',
                             admin.get(f"/projects/{project}/iterations/1?threshold=0.95").text))
    assert numbers["map"] == strict["map"]  # average precision does not depend on the threshold
    assert numbers["recall"] != strict["recall"]
    assert admin.get(f"/projects/{project}/iterations/1?threshold=2").status_code == 422

    compared = admin.get(f"/projects/{project}/compare?first=1&second=2")
    assert compared.status_code == 200 and compared.text.count("<tbody data-tag=") == 2
    assert 'id="confusion-first"' in compared.text and 'id="confusion-second"' in compared.text

    published = admin.post(f"/projects/{project}/iterations/2/publish", data={"name": "first try"})
    assert published.status_code == 303
    assert 'id="published-name">first try<' in admin.get(f"/projects/{project}/iterations/2").text
    settings = admin.get(f"/projects/{project}/settings").text
    assert "Published: iteration 2" in settings and "Prediction-Key: YOUR-PREDICTION-KEY" in settings
    assert f"/api/v1/projects/{project}/predict" in settings
    listing = admin.get("/projects").text
    assert "first try" in listing
    unpublished = admin.post(f"/projects/{project}/unpublish", data={"next": f"/projects/{project}/settings"})
    assert unpublished.status_code == 303 and 'id="not-published"' in admin.get(unpublished.headers["location"]).text

    fresh = admin.post(f"/projects/{project}/key")
    new_key = re.search(r'id="prediction-key" class="secret">([^<]+)<', fresh.text).group(1)
    assert new_key != key and f"Prediction-Key: {new_key}" in fresh.text
    predict = f"{site.url}/api/v1/projects/{project}/predict"
    image = {"image": ("x.png", png(1), "image/png")}
    assert httpx.post(predict, files=image, headers={"Prediction-Key": key}).status_code == 401  # the old key
    assert httpx.post(predict, files=image, headers={"Prediction-Key": new_key}).status_code == 409  # unpublished

    review = admin.get(f"/projects/{project}/review")
    assert review.status_code == 200 and 'id="nothing-to-review"' in review.text
    assert admin.post(f"/projects/{project}/iterations/2/delete").status_code == 303
    assert admin.get(f"/projects/{project}/iterations/2").status_code == 404


def test_unknown_things_are_404_pages_and_the_log_has_no_errors(admin, site):
    for path in ("/projects/999", "/projects/999/settings", "/projects/999/iterations/1"):
        answer = admin.get(path)
        assert answer.status_code == 404 and "<html" in answer.text, path
    project, _ = create(admin, "filters", tags=())
    assert admin.get(f"/projects/{project}?filter=sideways").status_code == 422
    signed_out = admin.post("/projects/logout")
    assert signed_out.status_code == 303 and "max-age=0" in signed_out.headers["set-cookie"].lower()
    assert admin.get("/projects").status_code == 303
    log = site.log_path.read_text()
    assert "unexpected error" not in log and "Traceback" not in log, log[-3000:]
