"""Signing in through the console (code + PKCE at the organization's provider), at the HTTP
level: answers that do not belong to a sign-in started here are refused, and the person ends
up only on this site."""

from __future__ import annotations

import ssl
from urllib.parse import parse_qs, urlsplit

import httpx

from securefiles.web.sessions import COOKIE
from tests.web.conftest import Console


def _start(console: Console, http: httpx.Client, next_path: str = "/") -> dict[str, str]:
    started = http.get("/signin/start", params={"next": next_path})
    assert started.status_code == 303 and COOKIE in http.cookies
    return {k: v[0] for k, v in parse_qs(urlsplit(started.headers["location"]).query).items()}


def _provider_answer(console: Console, authorize: dict[str, str]) -> dict[str, str]:
    """What the provider sends the browser back with (it signs alice in at once)."""
    context = ssl.create_default_context(cafile=str(console.provider.ca_file))
    with httpx.Client(verify=context, timeout=30) as provider:
        answer = provider.get(f"{console.provider.issuer}/authorize", params=authorize)
    assert answer.status_code == 302
    return {k: v[0] for k, v in parse_qs(urlsplit(answer.headers["location"]).query).items()}


def test_the_console_asks_for_a_code_with_pkce_state_and_nonce(console: Console) -> None:
    with console.http() as http:
        authorize = _start(console, http)
    assert authorize["response_type"] == "code" and authorize["client_id"] == console.provider.client_id
    assert authorize["redirect_uri"] == f"{console.url}/auth/callback"
    assert authorize["code_challenge_method"] == "S256" and len(authorize["code_challenge"]) == 43
    assert len(authorize["state"]) >= 32 and len(authorize["nonce"]) >= 32


def test_a_sign_in_completes_once_and_only_to_a_path_of_this_site(console: Console) -> None:
    with console.http() as http:
        answer = _provider_answer(console, _start(console, http, next_path="https://evil.example/"))
        anonymous = http.cookies[COOKIE]
        done = http.get("/auth/callback", params=answer)
        assert done.status_code == 303 and done.headers["location"] == "/"
        assert http.cookies[COOKIE] != anonymous  # a new session id once signed in
        assert http.get("/projects/default/files").status_code == 200
        replayed = http.get("/auth/callback", params=answer)
    assert replayed.status_code == 400


def test_an_answer_not_started_here_or_with_a_foreign_code_signs_nobody_in(console: Console) -> None:
    with console.http() as victim:
        authorize = _start(console, victim)
        # Login CSRF: an attacker's own provider answer, pushed into the victim's browser.
        with console.http() as attacker:
            foreign = _provider_answer(console, _start(console, attacker))
        refused = victim.get("/auth/callback", params=foreign)
        assert refused.status_code == 400 and "does not belong" in refused.text
        # The right state but a code the provider never issued for this sign-in.
        authorize = _start(console, victim)
        bogus = victim.get("/auth/callback", params={"state": authorize["state"], "code": "not-a-code"})
        assert bogus.status_code == 403 and "SIGN_IN_REFUSED" in bogus.text
        assert victim.get("/projects/default/files").status_code == 303  # still signed out
