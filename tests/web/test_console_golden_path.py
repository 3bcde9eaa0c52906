"""The issue's golden path, in a real browser: sign in → upload a certificate → see its expiry →
authorize a pipeline → add an approval check → a run waits → approve in the browser → the agent
downloads."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from playwright.sync_api import expect

from tests.conftest import unique
from tests.web.conftest import PERSON, Console

pytestmark = pytest.mark.browser


def certificate_pem(common_name: str, days: int) -> bytes:
    return certificate(common_name, days)[0].public_bytes(serialization.Encoding.PEM)


def certificate(common_name: str, days: int) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A self-signed certificate (and its key) that expires in `days`."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=400))
            .not_valid_after(now + dt.timedelta(days=days)).sign(key, hashes.SHA256()))
    return cert, key


def test_sign_in_upload_authorize_check_approve_download(console: Console, page, tmp_path) -> None:
    system = console.system
    name = unique("signing") + ".pem"
    pipeline = unique("ios-release")
    content = certificate_pem("iOS Distribution: Example", days=12)
    with system.client() as admin:
        admin.create_pipeline(pipeline)
        admin.assign_role("user:carol", "user")  # the requester of the run

    # Upload a certificate through the form (the progress bar's script sends it).
    source = tmp_path / name
    source.write_bytes(content)
    page.get_by_label("File (at most").set_input_files(str(source))
    page.get_by_role("button", name="Upload").click()
    page.wait_for_url(re.compile(r"/projects/default/files/[0-9a-f-]+$"))
    expect(page.locator("h1")).to_have_text(name)
    # Its expiry, in words and with the warning style (12 days < 30).
    expiry = page.locator("dd .expiry")
    assert "expiring" in expiry.get_attribute("class").replace("expiry-soon", "expiring")
    assert re.search(r"expires \d{4}-\d{2}-\d{2} \(in 1[01] days\)", expiry.inner_text()), expiry.inner_text()
    assert "iOS Distribution: Example" in page.locator("dl.facts").inner_text()
    file_url = page.url

    # The list shows it too, with the same warning.
    page.get_by_role("link", name="Files", exact=True).click()
    row = page.locator("tr", has=page.get_by_role("link", name=name, exact=True))
    assert "Expiring" in row.locator(".expiry-soon").inner_text()

    # Authorize the pipeline.
    page.goto(file_url + "/pipelines")
    page.get_by_label("Authorize a pipeline").select_option(label=pipeline)
    page.get_by_role("button", name="Authorize").click()
    expect(page.locator(".pipeline-name", has_text=pipeline)).to_have_count(1)

    # Add an approval check: alice's group approves; instructions for the approver.
    page.goto(file_url + "/checks")
    page.get_by_label("Kind").select_option("approval")
    page.get_by_label("Approvers (").fill("group:release-managers")
    page.get_by_label("Instructions to approvers").fill("Check the release ticket first")
    page.get_by_role("button", name="Add check").click()
    expect(page.locator(".flash")).to_contain_text("added approval check")
    expect(page.locator(".check-item")).to_contain_text("1 of group:release-managers")

    # A run waits: carol's run of the pipeline asks for the file and is told to wait.
    with system.client() as admin:
        job_token = admin.start_run(pipeline, "refs/heads/main", requested_by="user:carol").job_token
    dest = tmp_path / "agent"
    job = {"SECUREFILES_JOB_TOKEN": job_token}
    waiting = system.cli("agent", "download", name, "--dest", str(dest), env=job)
    assert waiting.code == 4, waiting.stderr
    assert "CHECKS_PENDING" in waiting.stderr
    assert not (dest / name).exists()

    # Alice approves in the browser, seeing what she approves.
    page.get_by_role("link", name="Approvals", exact=True).click()
    mine = page.locator("section", has=page.get_by_role("heading", name=re.compile("Waiting for you")))
    item = mine.locator("article.approval", has_text=name)
    assert item.locator(".approval-pipeline").inner_text() == pipeline
    assert item.locator(".approval-branch").inner_text() == "refs/heads/main"
    assert item.locator(".approval-requester").inner_text() == "user:carol"
    assert item.locator(".approval-instructions").inner_text() == "Check the release ticket first"
    item.get_by_label("Comment").fill("ticket REL-7 checked")
    item.get_by_role("button", name="Approve").click()
    expect(page.locator(".flash")).to_contain_text("it is now approved")
    history = page.locator("section", has=page.get_by_role("heading", name="History"))
    decided = history.locator("article.approval", has_text=name)
    assert f"user:{PERSON}" in decided.inner_text() and "ticket REL-7 checked" in decided.inner_text()

    # The agent downloads the exact bytes.
    downloaded = system.cli("agent", "download", name, "--dest", str(dest), env=job)
    assert downloaded.code == 0, downloaded.stderr
    assert (dest / name).read_bytes() == content
