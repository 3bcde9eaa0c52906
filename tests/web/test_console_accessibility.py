"""Every control has a label, dialogs work from the keyboard, and the pages fit a 375 px phone."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.conftest import unique
from tests.web.conftest import Console

pytestmark = pytest.mark.browser

UNLABELLED = """() => [...document.querySelectorAll('input:not([type=hidden]), select, textarea, button')]
  .filter(el => !(el.labels && el.labels.length) && !el.getAttribute('aria-label') && !el.textContent.trim())
  .map(el => el.outerHTML)"""


def _pages(console: Console) -> list[str]:
    with console.system.client() as admin:
        long_name = unique("a11y-with-a-rather-long-name-to-wrap") + ".p12"
        file_id = admin.upload_file(b"x" * 64, name=long_name).secure_file_id
    base = f"/projects/default/files/{file_id}"
    return ["/projects/default/files", base, base + "/pipelines", base + "/security", base + "/checks",
            base + "/versions", "/projects/default/approvals", "/operators/keys", "/operators/audit",
            "/operators/access", "/projects"]


def test_every_control_has_a_label_and_nothing_overflows_at_375_px(console: Console, page) -> None:
    page.set_viewport_size({"width": 375, "height": 800})
    for path in _pages(console):
        page.goto(console.url + path)
        assert page.evaluate(UNLABELLED) == [], path
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"{path} is {overflow}px wider than the screen"


def test_delete_dialog_works_from_the_keyboard(console: Console, page) -> None:
    name = unique("keyboard")
    with console.system.client() as admin:
        file_id = admin.upload_file(b"x", name=name).secure_file_id
    page.goto(f"{console.url}/projects/default/files/{file_id}")
    page.locator("summary", has_text="Delete this file").focus()
    page.keyboard.press("Enter")  # opens the disclosure
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.name") == "confirm_name"
    button = page.get_by_role("button", name="Delete for good")
    expect(button).to_be_disabled()  # until the name is typed (the server checks it too)
    page.keyboard.type(name)
    expect(button).to_be_enabled()
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/projects/default/files$"))
    expect(page.locator(".flash")).to_have_text(f"deleted {name}")
