"""The console under test: a system of this package's own, started by `securefiles up` with
people's sign-in at the test OpenID provider, and headless Chromium driven by Playwright.

Browser tests use Debian's Chromium (`/usr/bin/chromium`; `.ci/run` installs it) and skip
with a reason where it is missing. `playwright install` is never needed.
"""

from __future__ import annotations

import os
import shutil
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import LocalSystem
from tests.oidc_provider import OidcProvider

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]
PERSON = "alice"  # the test provider signs this person in at once
PERSON_GROUPS = ["release-managers"]


@dataclass
class Console:
    system: LocalSystem
    provider: OidcProvider
    url: str  # https://localhost:PORT

    @property
    def ca_file(self) -> Path:
        return self.system.state_dir / "pki" / "web" / "ca.pem"

    def http(self, cookies: dict[str, str] | None = None) -> httpx.Client:
        """A plain HTTPS client of the console (no browser), trusting its CA."""
        return httpx.Client(base_url=self.url, verify=ssl.create_default_context(cafile=str(self.ca_file)),
                            follow_redirects=False, timeout=30, cookies=cookies)


@pytest.fixture(scope="package")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    base = tmp_path_factory.mktemp("console")
    provider = OidcProvider(base / "oidc")
    provider.browser_user = PERSON
    provider.browser_claims = {"groups": PERSON_GROUPS}
    with provider.running():
        running = LocalSystem(state_dir=base / "state", home=base / "home")
        running.extra_env.update({
            "SECUREFILES_OIDC_LOGIN_ISSUER": provider.issuer,
            "SECUREFILES_OIDC_LOGIN_CLIENT_ID": provider.client_id,
            "SECUREFILES_OIDC_LOGIN_CA_FILE": str(provider.ca_file),
        })
        try:
            running.start()
            with running.client() as admin:
                admin.assign_role(f"user:{PERSON}", "administrator")
                admin.assign_role(f"user:{PERSON}", "operator")
            port = (running.state_dir / "run" / "web.port").read_text().strip()
            yield Console(running, provider, f"https://localhost:{port}")
        finally:
            running.stop()
            running.drop_databases()


@pytest.fixture(scope="package")
def browser() -> Iterator[object]:
    if not Path(CHROMIUM).exists() or shutil.which(CHROMIUM) is None:
        missing = f"browser tests need Debian's Chromium at {CHROMIUM} (apt-get install chromium; .ci/run installs it)"
        if os.environ.get("CI"):
            pytest.fail(missing)  # CI installs it: a skip there would hide the console's tests
        pytest.skip(missing)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS, headless=True)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser: object, console: Console) -> Iterator[object]:
    """A fresh browser profile at a laptop's width, signed in as alice through the provider."""
    # The console's and the provider's certificates come from test CAs the browser does not know.
    context = browser.new_context(ignore_https_errors=True, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(30_000)
    opened = context.new_page()
    sign_in(opened, console)
    try:
        yield opened
    finally:
        context.close()


def sign_in(page: object, console: Console) -> None:
    page.goto(console.url + "/")
    page.get_by_role("link", name="Sign in").click()
    page.wait_for_url(f"{console.url}/projects/default/files")
    assert page.locator(".principal").inner_text() == f"user:{PERSON}"
