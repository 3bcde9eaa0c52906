"""The console is a web application that guards signing keys: hostile names are shown as
text, forms need their CSRF token and this origin, every page carries a strict CSP, the
session cookie is HttpOnly, Secure and SameSite, no route serves a file's contents, the
person's token never reaches the browser, and authz decides exactly as for the CLI."""

from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import quote

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from playwright.sync_api import expect
from starlette.routing import Route

from securefiles.common.tls import TlsFiles, channel_credentials, channel_options
from securefiles.web.app import build_app
from securefiles.web.protection import CONTENT_SECURITY_POLICY
from securefiles.web.sessions import COOKIE
from securefiles.web.settings import WebSettings
from tests.conftest import unique
from tests.web.conftest import Console, sign_in

pytestmark = pytest.mark.browser

# File names may hold anything but `/`, `\\`, control characters and CI commands (`##vso[`, refused at
# upload); properties anything.
HOSTILE = ['<script>alert("name")<', "\"'><img src=x onerror=alert(1)>", "##vso[task.setvariable variable=x]evil"]
HOSTILE_NAMES = [*HOSTILE[:2], "100%;]&amp;"]
HOSTILE_VALUE = "</textarea></script><script>alert(2)</script>"


def _upload(console: Console, name: str, content: bytes = b"hello", **properties: str) -> str:
    with console.system.client() as admin:
        return admin.upload_file(content, name=name, properties=properties).secure_file_id


def test_hostile_names_and_properties_are_shown_as_text(console: Console, page) -> None:
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    suffix = unique("")
    names = [f"{h}{suffix}" for h in HOSTILE_NAMES]
    ids = [_upload(console, name, **{"team": HOSTILE_VALUE, HOSTILE[1]: HOSTILE[2]}) for name in names]

    page.goto(f"{console.url}/projects/default/files?name={suffix}")
    for name in names:
        expect(page.get_by_role("link", name=name, exact=True)).to_have_count(1)
    page.goto(f"{console.url}/projects/default/files?name={quote(';]&amp;' + suffix, safe='')}")  # `]` is itself
    expect(page.get_by_role("link", name=names[2], exact=True)).to_have_count(1)
    assert page.locator("img").count() == 0
    assert page.locator("script").count() == 1  # ours, from /static
    for file_id, name in zip(ids, names, strict=True):
        page.goto(f"{console.url}/projects/default/files/{file_id}")
        expect(page.locator("h1")).to_have_text(name)
        assert page.locator("textarea#properties-text").input_value() == (
            f"{HOSTILE[1]}={HOSTILE[2]}\nteam={HOSTILE_VALUE}")
        assert page.locator("img").count() == 0 and page.locator("script").count() == 1
    # The bytes on the wire are escaped, not just what the browser made of them.
    html = page.content()
    assert "<script>alert" not in html and "&lt;script&gt;alert(2)" in html
    assert dialogs == []


def test_a_form_without_its_csrf_token_or_from_another_origin_changes_nothing(console: Console, page) -> None:
    name = unique("csrf")
    file_id = _upload(console, name)
    page.goto(f"{console.url}/projects/default/files/{file_id}")
    token = page.locator("input[name=csrf_token]").first.get_attribute("value")
    rename = f"{console.url}/projects/default/files/{file_id}/rename"
    origin = {"Origin": console.url}

    missing = page.request.post(rename, form={"display_name": "renamed-1"}, headers=origin, max_redirects=0)
    wrong = page.request.post(rename, form={"display_name": "renamed-2", "csrf_token": "x" * len(token)},
                              headers=origin, max_redirects=0)
    elsewhere = page.request.post(rename, form={"display_name": "renamed-3", "csrf_token": token},
                                  headers={"Origin": "https://evil.example"}, max_redirects=0)
    for refused in (missing, wrong, elsewhere):
        assert refused.status == 403
    assert "security token" in missing.text() and "another site" in elsewhere.text()
    with console.system.client() as admin:
        assert admin.get_file(f"projects/default/secureFiles/{file_id}").display_name == name
    # The same form with its token goes through (the refusals above were for the token alone).
    accepted = page.request.post(rename, form={"display_name": name + "-ok", "csrf_token": token}, headers=origin,
                                 max_redirects=0)
    assert accepted.status == 303
    with console.system.client() as admin:
        assert admin.get_file(f"projects/default/secureFiles/{file_id}").display_name == name + "-ok"


def test_every_response_has_a_strict_csp_and_no_inline_script_or_style(console: Console, page) -> None:
    assert "script-src 'self'" in CONTENT_SECURITY_POLICY and "unsafe-inline" not in CONTENT_SECURITY_POLICY
    file_id = _upload(console, unique("csp"))
    for path in ("/projects/default/files", f"/projects/default/files/{file_id}", "/projects/default/approvals",
                 "/operators/keys", "/operators/audit", "/static/console.css", "/no/such/page"):
        response = page.request.get(console.url + path, max_redirects=0)
        assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY, path
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["x-content-type-options"] == "nosniff"
        body = response.text()
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", body), path  # every script is a file
        assert " style=" not in body and "<style" not in body and " on" + "click=" not in body, path
    with console.http() as http:  # signed out: the sign-in page too
        assert http.get("/signin").headers["content-security-policy"] == CONTENT_SECURITY_POLICY


def test_the_session_cookie_is_httponly_secure_samesite_and_holds_no_token(console: Console, page) -> None:
    cookies = page.context.cookies()
    assert [c["name"] for c in cookies] == [COOKIE]
    (cookie,) = cookies
    assert cookie["httpOnly"] and cookie["secure"] and cookie["sameSite"] == "Lax" and cookie["path"] == "/"
    assert page.evaluate("document.cookie") == ""  # scripts cannot read it
    assert not cookie["value"].startswith("eyJ")  # a random id, not a JWT
    page.goto(f"{console.url}/projects/default/files")
    assert "eyJ" not in page.content()  # no token (a JWT) anywhere in a page


def test_no_route_serves_a_files_contents(console: Console, page) -> None:
    marker = os.urandom(24).hex()
    file_id = _upload(console, unique("content") + ".pem", content=f"-----SECRET {marker}-----\n".encode())
    settings = WebSettings(listen="", tls_cert=Path(), tls_key=Path(), services=console.system.client().config,
                           public_url=console.url, provider_ca_file=None, max_file_bytes=1, max_sessions=1,
                           port_file=None, parent_pid=None, log_level="INFO")
    params = {"project": "default", "file": file_id, "check": "1", "approval": "1", "request": "1"}
    paths = [re.sub(r"\{(\w+)(:\w+)?\}", lambda m: params[m.group(1)], r.path)
             for r in build_app(settings).routes if isinstance(r, Route) and "GET" in (r.methods or ())]
    paths += [f"/projects/default/files/{file_id}/{guess}" for guess in ("download", "content", "raw", "blob")]
    assert len(paths) > 15
    for path in paths:
        response = page.request.get(console.url + path)
        assert marker not in response.text(), path
    for guess in ("download", "content", "raw"):
        assert page.request.get(f"{console.url}/projects/default/files/{file_id}/{guess}").status == 404


def test_authz_decides_for_the_console_as_for_the_cli(console: Console, browser) -> None:
    """Mallory, signed in with no role, sees no files and cannot delete alice's file."""
    name = unique("guarded")
    file_id = _upload(console, name)
    context = browser.new_context(ignore_https_errors=True)
    console.provider.browser_user = "mallory"
    try:
        mallory = context.new_page()
        mallory.goto(console.url + "/")
        mallory.get_by_role("link", name="Sign in").click()
        mallory.wait_for_url(re.compile(r"/projects/default/files$"))
        assert mallory.locator(".principal").inner_text() == "user:mallory"
        assert mallory.get_by_role("link", name=name).count() == 0
        response = mallory.goto(f"{console.url}/projects/default/files/{file_id}")
        assert response.status in (403, 404) and re.search(r"\[(PERMISSION_DENIED|FILE_NOT_FOUND|NOT_FOUND)", (
            mallory.locator(".flash-error").inner_text()))
        token = mallory.locator("input[name=csrf_token]").first.get_attribute("value")
        deleted = mallory.request.post(f"{console.url}/projects/default/files/{file_id}/delete",
                                       form={"confirm_name": name, "csrf_token": token},
                                       headers={"Origin": console.url})
        assert re.search(r"\[(PERMISSION_DENIED|FILE_NOT_FOUND|NOT_FOUND)", deleted.text())  # said, on the next page
    finally:
        console.provider.browser_user = "alice"
        context.close()
    with console.system.client() as admin:
        assert admin.get_file(f"projects/default/secureFiles/{file_id}").display_name == name


def test_signing_out_ends_the_session(console: Console, page) -> None:
    cookie = page.context.cookies()[0]["value"]
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(re.compile(r"/signin\?signed_out=1$"))
    with console.http(cookies={COOKIE: cookie}) as http:
        stale = http.get("/projects/default/files")
    assert stale.status_code == 303 and stale.headers["location"].startswith("/signin")
    sign_in(page, console)  # and signing in again works


def test_the_consoles_certificate_is_no_service_identity(console: Console) -> None:
    """It comes from a CA of its own: on authz's internal (mutual TLS) port it gets nowhere."""
    pki = console.system.state_dir / "pki"
    web = TlsFiles(ca=pki / "ca.pem", cert=pki / "web" / "web.pem", key=pki / "web" / "web-key.pem")
    target = console.system.internal_target("authz")
    with grpc.secure_channel(target, channel_credentials(web), options=channel_options(target)) as channel:
        with pytest.raises(grpc.RpcError) as refused:
            health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
