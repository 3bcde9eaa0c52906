"""Screenshots of the console's main pages for the docs, with the browser tests' setup.

    .venv/bin/python -m tests.web.screenshots docs/console

Starts a system of its own with the test OpenID provider, fills it with a few files, a
pipeline, an approval check and a waiting run, and saves PNGs of the pages into DIR.
"""

from __future__ import annotations

import datetime as dt
import sys
import tempfile
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12
from playwright.sync_api import sync_playwright

from securefiles.authz.v1 import authz_pb2
from securefiles.client.check_spec import build_check
from securefiles.client.job_identity import job_claims
from tests.conftest import LocalSystem
from tests.oidc_provider import OidcProvider
from tests.web.conftest import CHROMIUM, CHROMIUM_FLAGS, PERSON, PERSON_GROUPS, Console, sign_in
from tests.web.test_console_golden_path import certificate, certificate_pem


def _pkcs12(common_name: str, days: int) -> bytes:
    cert, key = certificate(common_name, days)
    return pkcs12.serialize_key_and_certificates(b"signing", key, cert, None,
                                                 serialization.BestAvailableEncryption(b"demo"))


def _seed(system: LocalSystem) -> str:
    with system.client() as admin:
        admin.assign_role(f"user:{PERSON}", "administrator")
        admin.assign_role(f"user:{PERSON}", "operator")
        admin.assign_role("user:carol", "user")
        admin.create_pipeline("ios-release")
        admin.create_pipeline("android-release")
        signing = admin.upload_file(_pkcs12("iPhone Distribution: Example Corp", 300), name="ios-distribution.p12",
                                    properties={"team": "ios"}, parse_password=b"demo")
        admin.upload_file(certificate_pem("Apple Push Services: com.example.app", 12), name="apple-push.pem",
                          properties={"team": "ios"})
        admin.upload_file(certificate_pem("Old signing", -3), name="old-signing.pem")
        admin.upload_file(b"not a real keystore" * 10, name="release.keystore", properties={"team": "android"})
        admin.set_pipeline_permission("ios-distribution.p12", "ios-release", True)
        check = admin.add_check("ios-distribution.p12", _approval_check())
        job = admin.start_run("ios-release", "refs/heads/release/2.4", requested_by="user:carol").job_token
        assert check.check_id
    with system.client(token=job) as agent:
        agent.request_checks(_run_of(job), ["ios-distribution.p12"])
    return signing.secure_file_id


def _approval_check() -> authz_pb2.Check:
    return build_check("approval", approvers=["group:release-managers"], min_approvals=1,
                       instructions="Check that the release ticket is approved (REL-*)", timeout="7d")


def _run_of(job_token: str) -> str:
    claims = job_claims(job_token)
    return f"projects/{claims.project}/pipelines/{claims.pipeline}/runs/{claims.run}"


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        provider = OidcProvider(base / "oidc")
        provider.browser_user, provider.browser_claims = PERSON, {"groups": PERSON_GROUPS}
        with provider.running():
            system = LocalSystem(state_dir=base / "state", home=base / "home")
            system.extra_env.update({"SECUREFILES_OIDC_LOGIN_ISSUER": provider.issuer,
                                     "SECUREFILES_OIDC_LOGIN_CLIENT_ID": provider.client_id,
                                     "SECUREFILES_OIDC_LOGIN_CA_FILE": str(provider.ca_file)})
            system.start()
            try:
                file_id = _seed(system)
                port = (system.state_dir / "run" / "web.port").read_text().strip()
                console = Console(system, provider, f"https://localhost:{port}")
                _shoot(console, file_id, out)
            finally:
                system.stop()


def _shoot(console: Console, file_id: str, out: Path) -> None:
    file = f"/projects/default/files/{file_id}"
    pages = [("files", "/projects/default/files", 1100), ("file", file, 1100), ("pipelines", file + "/pipelines", 1100),
             ("checks", file + "/checks", 1100), ("approvals", "/projects/default/approvals", 1100),
             ("keys", "/operators/keys", 1100), ("audit", "/operators/audit?principal=user%3Aalice", 1100),
             ("files-375px", "/projects/default/files", 375)]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS, headless=True)
        context = browser.new_context(ignore_https_errors=True, viewport={"width": 1100, "height": 760})
        page = context.new_page()
        sign_in(page, console)
        for name, path, width in pages:
            page.set_viewport_size({"width": width, "height": 760 if width > 400 else 1100})
            page.goto(console.url + path)
            page.screenshot(path=str(out / f"{name}.png"))
            print(out / f"{name}.png")
        browser.close()
    print(f"taken {dt.datetime.now(dt.UTC):%Y-%m-%d}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/console"))
