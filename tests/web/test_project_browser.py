"""A custom-vision project from sign-in to quick test in a real headless Chromium, on real HAM10000
images (akiec versus bkl), with a real quick training run by the server's worker process."""

from __future__ import annotations

import csv
import os
import shutil
from pathlib import Path

import httpx
import pytest

from dermlens import DISCLAIMER

pytestmark = [pytest.mark.browser, pytest.mark.slow]

TOKEN = "browser-test-admin-token"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = Path(os.environ.get("DERMLENS_TEST_ARTIFACTS", Path(__file__).resolve().parents[2] / "test-artifacts"))
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]
UNLABELLED = """[...document.querySelectorAll('input:not([type=hidden]), select')]
    .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label')).length"""


@pytest.fixture(scope="module")
def browser():
    if CHROMIUM is None:
        pytest.skip("Chromium is not installed (Debian package 'chromium'; .ci/run installs it)")
    playwright_api = pytest.importorskip("playwright.sync_api")
    pytest.importorskip("torch", reason="quick training needs torch")
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def images_of(ham_dir: Path, label: str, count: int) -> list[Path]:
    """The first ``count`` images of one HAM10000 class, one per lesion (labels.csv lists them in order)."""
    chosen, lesions = [], set()
    with open(ham_dir / "labels.csv", newline="") as labels:
        for row in csv.DictReader(labels):
            if row["label"] == label and row["lesion_id"] not in lesions:
                lesions.add(row["lesion_id"])
                chosen.append(ham_dir / "images" / f"{row['image_id']}.jpg")
                if len(chosen) == count:
                    break
    return chosen


def pct(value: float | None) -> str:
    return "\u2014" if value is None else f"{value * 100:.1f}%"


def test_project_from_sign_in_to_review(browser, start_server, ham_dir):
    server = start_server(DERMLENS_ADMIN_TOKEN=TOKEN)
    akiec, bkl = images_of(ham_dir, "akiec", 14), images_of(ham_dir, "bkl", 12)
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(30_000)
    script_errors: list[str] = []
    page.on("pageerror", lambda error: script_errors.append(str(error)))
    ARTIFACTS.mkdir(parents=True, exist_ok=True)

    # sign in: a wrong token is refused, the right one opens the projects
    page.goto(server.url + "/projects")
    page.wait_for_url("**/projects/login?next=*")
    page.fill("#token", "not the token")
    page.click("#login-submit")
    assert "not the admin token" in page.text_content("#login-error")
    page.fill("#token", TOKEN)
    with page.expect_navigation():
        page.click("#login-submit")
    assert page.url == server.url + "/projects"

    # a project (its prediction key is shown once) with two tags
    page.fill("#project-name", "akiec vs bkl")
    with page.expect_navigation():
        page.click("#create-submit")
    key = page.text_content("#prediction-key").strip()
    assert len(key) > 20
    with page.expect_navigation():
        page.click("#open-project")
    project_url = page.url
    for tag in ("akiec", "bkl"):
        page.fill("#new-tag", tag)
        with page.expect_navigation():
            page.click("#tag-submit")
        page.locator(f'#tag-table tr[data-tag="{tag}"]').wait_for()

    # 24 real images through the file input, with a progress indicator, then the grid redrawn
    page.set_input_files("#upload-files", [str(p) for p in akiec[:12] + bkl])
    page.click("#upload-submit")
    page.locator('#upload-status[data-state="done"]').wait_for(timeout=90_000)
    assert "24 images added" in page.text_content("#upload-status")
    assert page.locator("#grid-form li").count() == 24
    assert page.evaluate(UNLABELLED) == 0

    # tag the akiec images by ticking them; training with one tag is refused, clearly
    for path in akiec[:12]:
        page.check(f'#grid-form li[data-name="{path.name}"] input')
    assert page.text_content("#selected-count") == "12 selected"
    page.select_option("#bulk-tag", label="akiec")
    with page.expect_navigation():
        page.click("#bulk-tag-submit")
    assert "12 images tagged" in page.text_content("#bulk-result")
    page.click("#train-submit")
    page.locator("#train-error:not([hidden])").wait_for()
    assert "at least 2 tags" in page.text_content("#train-error")

    # the rest are the bkl images: the untagged view and "select all"
    with page.expect_navigation():
        page.click('.filters a:text-is("untagged")')
    assert page.locator("#grid-form li").count() == 12
    page.check("#select-all")
    assert page.text_content("#selected-count") == "12 selected"
    page.select_option("#bulk-tag", label="bkl")
    with page.expect_navigation():
        page.click("#bulk-tag-submit")
    assert page.locator("#grid-form li").count() == 0
    page.goto(project_url)
    assert page.text_content('#tag-table tr[data-tag="bkl"] .count') == "12"

    # quick training, followed live until it completes
    page.check('input[name=kind][value=quick]')
    page.click("#train-submit")
    page.locator("#train-status:not([hidden])").wait_for()
    page.wait_for_selector('#train-status[data-status="completed"], #train-status[data-status="failed"]',
                           timeout=180_000)
    assert page.get_attribute("#train-status", "data-status") == "completed", page.text_content("#train-message")
    assert page.evaluate("document.getElementById('train-progress').value") == 1
    page.locator('#iteration-table tr[data-iteration="1"]').wait_for()
    page.screenshot(path=str(ARTIFACTS / "project-desktop.png"), full_page=True)
    with page.expect_navigation():
        page.click("#train-link")

    # the metrics, and the threshold slider redrawing them from the API
    assert page.locator("#tag-metrics tbody tr").count() == 2
    assert page.locator("#confusion tbody tr").count() == 2
    assert DISCLAIMER in page.text_content("#metrics")
    before = page.text_content("#overall") + page.text_content("#tag-metrics tbody")
    page.fill("#threshold", "0.99")
    page.locator('#metrics[data-threshold="0.99"]').wait_for()
    after = page.text_content("#overall") + page.text_content("#tag-metrics tbody")
    expected = page.request.get(server.url + page.get_attribute("#metrics", "data-api") + "?threshold=0.99").json()
    assert page.text_content("#overall-recall") == pct(expected["recall"])
    assert page.text_content("#overall-precision") == pct(expected["precision"])
    assert after != before
    assert "threshold=0.99" in page.url
    assert page.evaluate(UNLABELLED) == 0

    # quick test of an image the iteration never saw
    page.set_input_files("#quick-test-image", str(akiec[12]))
    page.click("#quick-test-submit")
    page.locator("#quick-test-results li").nth(1).wait_for()
    assert {page.text_content(f"#quick-test-results li:nth-child({i}) .name") for i in (1, 2)} == {"akiec", "bkl"}
    assert DISCLAIMER in page.text_content("#quick-test-output")

    assert page.locator("#threshold-apply").is_hidden()  # the slider applies itself

    # export to ONNX: produced, checked against the original, and offered for download
    page.click('#export-form button[value="onnx"]')
    page.locator('#export-result[data-state="done"]').wait_for(timeout=120_000)
    assert "produced, verified" in page.text_content("#export-result")
    download = page.get_attribute("#export-result a[download]", "href")
    assert page.request.get(server.url + download).ok

    # the model's layers
    with page.expect_navigation():
        page.click("#model-link")
    assert page.locator("#model-table tbody tr").count() > 5
    page.go_back()

    # publish, predict through the endpoint with the key (kept), and correct it on the review page
    page.fill("#publish-name", "first")
    with page.expect_navigation():
        page.click("#publish-submit")
    assert page.text_content("#published-name") == "first"
    with open(akiec[13], "rb") as image:
        answer = httpx.post(f"{project_url.replace('/projects/', '/api/v1/projects/')}/predict?keep=true",
                            headers={"Prediction-Key": key}, files={"image": (akiec[13].name, image, "image/jpeg")},
                            timeout=60)
    assert answer.status_code == 200 and answer.json()["kept"], answer.text
    page.goto(project_url + "/review")
    item = page.locator(".review-item").first
    item.locator("form.review-form button", has_text="akiec").first.click()
    item.locator(".review-done").filter(has_text="tagged akiec").wait_for()
    assert DISCLAIMER in page.text_content("main")

    # a phone's width: nothing sticks out sideways
    page.set_viewport_size({"width": 390, "height": 844})
    for path in ("", "/iterations/1", "/review", "/settings"):
        page.goto(project_url + path)
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), path
    page.goto(project_url + "/iterations/1")
    page.screenshot(path=str(ARTIFACTS / "project-iteration-phone.png"), full_page=True)
    assert script_errors == []
    context.close()
