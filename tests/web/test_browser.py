"""The pages in a real headless Chromium (Debian's ``chromium``, driven by Playwright)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from dermlens import DISCLAIMER

pytestmark = pytest.mark.browser

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = Path(os.environ.get("DERMLENS_TEST_ARTIFACTS", Path(__file__).resolve().parents[2] / "test-artifacts"))
# no background traffic: this machine has no internet, and Chromium would keep trying
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]


@pytest.fixture(scope="module")
def browser():
    if CHROMIUM is None:
        pytest.skip("Chromium is not installed (Debian package 'chromium'; .ci/run installs it)")
    playwright_api = pytest.importorskip("playwright.sync_api")
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def upload_and_check(page, server, image: Path) -> None:
    page.goto(server.url + "/")
    page.set_input_files("#image", str(image))
    page.locator("#preview").wait_for(state="visible")  # the change handler runs after the files are set
    page.locator("#preview-name", has_text="Ready to check").wait_for()
    page.click("button[type=submit]")
    page.wait_for_url("**/assess")


def test_upload_result_heatmap_and_triage_chat(browser, server, ham_images):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    upload_and_check(page, server, ham_images["mel"])
    assert page.locator(".ranked li").count() == 3
    assert DISCLAIMER in page.text_content("body")
    heatmap_width = page.eval_on_selector("#heatmap", "img => img.naturalWidth")
    assert heatmap_width > 0
    # the chat replaced the plain form, and asks the first question
    assert page.locator("#triage-form").is_hidden() and page.locator("#chat").is_visible()
    page.wait_for_selector(".chat-actions button")
    for _ in range(20):
        if page.locator(".msg.conclusion").count():
            break
        buttons = page.locator(".chat-actions button")
        buttons.first.wait_for()
        count_before = page.locator(".msg").count()
        buttons.nth(1).click()  # "No" to everything
        page.locator(".msg").nth(count_before + 1).wait_for()  # the answer, then the next question
    conclusion = page.locator(".msg.conclusion")
    conclusion.wait_for()
    assert page.locator(".msg.bot", has_text="checklist score").count() >= 1  # the summary of the answers
    page.fill("#chat-question", "What causes it?")
    page.press("#chat-question", "Enter")
    asked = page.locator(".msg.me", has_text="What causes it?")
    asked.wait_for()
    page.locator(".msg.me:has-text('What causes it?') + .msg.bot").wait_for()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "result-desktop.png"), full_page=True)
    page.close()


def test_phone_viewport_fits_and_works(browser, server, ham_images):
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True,
                                  device_scale_factor=2)
    page = context.new_page()
    page.goto(server.url + "/")
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    upload_and_check(page, server, ham_images["nv"])
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    assert page.locator(".ranked li").count() == 3
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "result-phone.png"), full_page=True)
    context.close()


def test_core_flow_without_javascript(browser, server, ham_images):
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    page.goto(server.url + "/")
    page.set_input_files("#image", str(ham_images["bkl"]))
    page.click("button[type=submit]")
    page.wait_for_url("**/assess")
    assert page.locator(".ranked li").count() == 3
    assert page.locator("#triage-form").is_visible()  # the plain form instead of the chat
    page.locator("#triage-form button[type=submit]").click()
    page.wait_for_url("**/triage")
    assert page.locator("#urgency").is_visible() and "Why:" in page.text_content("#urgency")
    context.close()


def test_accessible_basics(browser, server, ham_images):
    page = browser.new_page()
    upload_and_check(page, server, ham_images["df"])
    missing_alt = page.evaluate("[...document.images].filter(i => !i.alt).length")
    unlabelled = page.evaluate("""[...document.querySelectorAll('input:not([type=hidden]), select')]
        .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label')).length""")
    assert missing_alt == 0 and unlabelled == 0
    # keyboard: Tab reaches the first chat answer button and Enter answers it
    page.wait_for_selector(".chat-actions button")
    assert page.evaluate("document.activeElement.dataset.answer") == "yes"
    before = page.locator(".msg.me").count()
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    page.locator(".msg.me").nth(before).wait_for()
    page.goto(server.url + "/")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.className") == "skip"
    page.close()


def test_print_layout_hides_the_controls(browser, server, ham_images):
    page = browser.new_page()
    upload_and_check(page, server, ham_images["vasc"])
    page.emulate_media(media="print")
    assert page.locator("header.site nav").is_hidden() and page.locator(".print-only").is_visible()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.pdf(path=str(ARTIFACTS / "report.pdf"))
    assert (ARTIFACTS / "report.pdf").stat().st_size > 10_000
    page.close()
