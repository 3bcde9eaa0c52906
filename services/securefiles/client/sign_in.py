"""Signing a person in at the organization's OpenID provider, as a public client.

Two grants, both standard and small enough to follow the RFCs directly (the provider's
side and every token check live at the provider and in authz):
- the device authorization grant (RFC 8628): print a code, the person approves it in any
  browser, we poll the token endpoint;
- authorization code with PKCE (RFC 7636) on a loopback redirect (RFC 8252): a browser opens
  the provider's page and comes back to `http://127.0.0.1:PORT/callback`.
Either yields an ID token (and, if the provider gives one, a refresh token) for authz's SignIn.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import ssl
import threading
import time
import webbrowser
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import jwt

from securefiles.common.errors import DeadlineExceeded, FailedPrecondition, PermissionDenied, Unavailable

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
_TIMEOUT = 10.0


@dataclass(frozen=True)
class ProviderTokens:
    id_token: str
    refresh_token: str = ""


@dataclass(frozen=True)
class Provider:
    """What discovery says about the organization's provider."""

    issuer: str
    client_id: str
    scopes: tuple[str, ...]
    token_endpoint: str
    device_authorization_endpoint: str = ""
    authorization_endpoint: str = ""
    ca_file: str = ""  # the CA of the provider's HTTPS certificate (else the system's)


def _http(ca_file: str = "") -> httpx.Client:
    # trust_env: SSL_CERT_FILE / SSL_CERT_DIR name a private CA, as for any HTTPS client.
    if ca_file:
        return httpx.Client(timeout=_TIMEOUT, follow_redirects=False, verify=ssl.create_default_context(cafile=ca_file))
    return httpx.Client(timeout=_TIMEOUT, follow_redirects=False)


def _json(response: httpx.Response, what: str) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise Unavailable(f"{what} answered HTTP {response.status_code} without JSON", reason="SIGN_IN_UNAVAILABLE")
    return data


def discover(issuer: str, client_id: str, scopes: tuple[str, ...], ca_file: str = "") -> Provider:
    try:
        with _http(ca_file) as http:
            data = _json(http.get(issuer.rstrip("/") + "/.well-known/openid-configuration"), "discovery")
    except httpx.HTTPError as error:
        raise Unavailable(f"the sign-in provider {issuer} cannot be reached ({type(error).__name__})",
                          reason="SIGN_IN_UNAVAILABLE") from None
    if data.get("issuer") != issuer or not isinstance(data.get("token_endpoint"), str):
        raise Unavailable(f"the discovery document of {issuer} is not usable", reason="SIGN_IN_UNAVAILABLE")
    return Provider(issuer, client_id, scopes, data["token_endpoint"],
                    str(data.get("device_authorization_endpoint") or ""), str(data.get("authorization_endpoint") or ""),
                    ca_file)


def _token_request(provider: Provider, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
    try:
        with _http(provider.ca_file) as http:
            response = http.post(provider.token_endpoint, data={"client_id": provider.client_id, **form})
    except httpx.HTTPError as error:
        raise Unavailable(f"the sign-in provider's token endpoint cannot be reached ({type(error).__name__})",
                          reason="SIGN_IN_UNAVAILABLE") from None
    return response.status_code, _json(response, "the token endpoint")


def _tokens(status: int, data: dict[str, Any]) -> ProviderTokens:
    if status != 200 or not isinstance(data.get("id_token"), str):
        raise PermissionDenied(f"the sign-in provider refused: {str(data.get('error', status))[:80]}",
                               reason="SIGN_IN_REFUSED")
    return ProviderTokens(data["id_token"], str(data.get("refresh_token") or ""))


def device_flow(provider: Provider, show: Callable[[str, str, str], None],
                sleep: Callable[[float], None] = time.sleep) -> ProviderTokens:
    """RFC 8628: `show(verification_uri, user_code, verification_uri_complete)`, then poll."""
    if not provider.device_authorization_endpoint:
        raise FailedPrecondition("the sign-in provider offers no device flow; use `securefiles login --browser`",
                                 reason="DEVICE_FLOW_UNSUPPORTED")
    try:
        with _http(provider.ca_file) as http:
            response = http.post(provider.device_authorization_endpoint,
                                 data={"client_id": provider.client_id, "scope": " ".join(provider.scopes)})
    except httpx.HTTPError as error:
        raise Unavailable(f"the sign-in provider cannot be reached ({type(error).__name__})",
                          reason="SIGN_IN_UNAVAILABLE") from None
    grant = _json(response, "the device authorization endpoint")
    if response.status_code != 200 or not isinstance(grant.get("device_code"), str):
        raise PermissionDenied("the sign-in provider refused the device authorization", reason="SIGN_IN_REFUSED")
    show(str(grant.get("verification_uri", "")), str(grant.get("user_code", "")),
         str(grant.get("verification_uri_complete", "")))
    interval = float(grant.get("interval") or 5)
    deadline = time.monotonic() + float(grant.get("expires_in") or 600)
    while time.monotonic() < deadline:
        sleep(interval)  # the provider sets the pace (RFC 8628 §3.5)
        status, data = _token_request(provider, {"grant_type": DEVICE_GRANT, "device_code": grant["device_code"]})
        answer = data.get("error")
        if answer == "authorization_pending":
            continue
        if answer == "slow_down":
            interval += 5
            continue
        return _tokens(status, data)
    raise DeadlineExceeded("the sign-in code expired before it was approved", reason="SIGN_IN_EXPIRED")


def browser_flow(provider: Provider, open_browser: Callable[[str], object] = webbrowser.open,
                 timeout: float = 300.0) -> ProviderTokens:
    """Authorization code + PKCE on a loopback redirect (RFC 7636, RFC 8252)."""
    verifier, challenge = pkce_pair()
    state, nonce = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
    received: dict[str, str] = {}
    arrived = threading.Event()

    class Callback(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            query = {k: v[0] for k, v in parse_qs(urlsplit(self.path).query).items()}
            if urlsplit(self.path).path != "/callback" or query.get("state") != state:
                self.send_response(400)
                self.end_headers()
                return
            received.update(query)
            body = b"Signed in to Securefiles. You can close this window."
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            arrived.set()

    server = HTTPServer(("127.0.0.1", 0), Callback)
    redirect = f"http://127.0.0.1:{server.server_address[1]}/callback"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        open_browser(authorization_url(provider, redirect, state, nonce, challenge))
        if not arrived.wait(timeout):
            raise DeadlineExceeded("no answer from the browser; try `securefiles login` (device flow)",
                                   reason="SIGN_IN_EXPIRED")
    finally:
        server.shutdown()
        server.server_close()
    if "code" not in received:
        raise PermissionDenied(f"the sign-in provider refused: {received.get('error', 'no code')[:80]}",
                               reason="SIGN_IN_REFUSED")
    return exchange_code(provider, received["code"], redirect, verifier, nonce)


def pkce_pair() -> tuple[str, str]:
    """(code verifier, S256 code challenge) of RFC 7636."""
    verifier = secrets.token_urlsafe(48)
    return verifier, base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")


def authorization_url(provider: Provider, redirect: str, state: str, nonce: str, challenge: str) -> str:
    """Where the browser goes to sign in (authorization code + PKCE)."""
    if not provider.authorization_endpoint:
        raise FailedPrecondition("the sign-in provider has no authorization endpoint", reason="SIGN_IN_UNAVAILABLE")
    return provider.authorization_endpoint + "?" + urlencode({
        "response_type": "code", "client_id": provider.client_id, "redirect_uri": redirect,
        "scope": " ".join(provider.scopes), "state": state, "nonce": nonce,
        "code_challenge": challenge, "code_challenge_method": "S256"})


def exchange_code(provider: Provider, code: str, redirect: str, verifier: str, nonce: str) -> ProviderTokens:
    """The provider's code for tokens; the ID token must answer this sign-in (its nonce)."""
    status, data = _token_request(provider, {"grant_type": "authorization_code", "code": code,
                                             "redirect_uri": redirect, "code_verifier": verifier})
    tokens = _tokens(status, data)
    # authz verifies the signature; the nonce is ours to check: this ID token answers our request.
    try:
        answered = jwt.decode(tokens.id_token, options={"verify_signature": False}).get("nonce")
    except jwt.PyJWTError:
        answered = None
    if not isinstance(answered, str) or not hmac.compare_digest(answered, nonce):
        raise PermissionDenied("the ID token does not answer this sign-in (nonce)", reason="SIGN_IN_REFUSED")
    return tokens


def refresh(provider: Provider, refresh_token: str) -> ProviderTokens:
    status, data = _token_request(provider, {"grant_type": "refresh_token", "refresh_token": refresh_token})
    tokens = _tokens(status, data)
    return ProviderTokens(tokens.id_token, tokens.refresh_token or refresh_token)
