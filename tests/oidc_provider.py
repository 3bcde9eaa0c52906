"""A test OpenID provider on loopback HTTPS, with its own CA: what CI providers and an
organization's identity provider look like to Securefiles.

- OIDC discovery and a JWKS (RS256, ES256 and EdDSA keys; rotation; can be taken down),
- tokens signed with PyJWT for any claims (`mint`), GitHub's job-token request endpoint
  (`GET /github-token?audience=…` with `Authorization: bearer …`, the JWT in `value`),
- for people: the device authorization grant (RFC 8628; `approve_device` plays the person in
  the browser), authorization code + PKCE (`/authorize` signs in `browser_user` at once and
  redirects), and refresh tokens.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import ssl
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from securefiles.common.dev_pki import ensure_ca, ensure_identity

GITHUB_REQUEST_TOKEN = "github-request-token-for-tests"


@dataclass
class SigningKey:
    kid: str
    alg: str
    private: Any

    def public_jwk(self) -> dict[str, Any]:
        algorithm = jwt.get_algorithm_by_name(self.alg)
        jwk = json.loads(algorithm.to_jwk(self.private.public_key()))
        jwk.update({"kid": self.kid, "alg": self.alg, "use": "sig"})
        return jwk


def new_key(alg: str) -> SigningKey:
    if alg == "RS256":
        private: Any = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    elif alg == "ES256":
        private = ec.generate_private_key(ec.SECP256R1())
    elif alg == "EdDSA":
        private = ed25519.Ed25519PrivateKey.generate()
    else:
        raise ValueError(alg)
    return SigningKey(f"{alg.lower()}-{uuid.uuid4().hex[:8]}", alg, private)


@dataclass
class DeviceGrant:
    device_code: str
    user_code: str
    client_id: str
    subject: str | None = None  # set when the person approved in the browser
    claims: dict[str, Any] = field(default_factory=dict)


class OidcProvider:
    """One issuer. Start with `running()`; `issuer` is its URL, `ca_file` the CA to trust."""

    def __init__(self, directory: Path, client_id: str = "securefiles-cli") -> None:
        self.directory = directory
        self.client_id = client_id
        pki = directory / "pki"
        self.ca_file = ensure_ca(pki, "Test OIDC provider CA")
        self._cert = ensure_identity(pki, "oidc", ("localhost",))
        self.keys = [new_key("RS256"), new_key("ES256"), new_key("EdDSA")]
        self.published: set[str] = {k.kid for k in self.keys}
        self.jwks_available = True
        self.jwks_requests = 0
        self.devices: dict[str, DeviceGrant] = {}
        self.codes: dict[str, tuple[str, str, str, dict[str, Any]]] = {}  # code -> (challenge, redirect, nonce, claims)
        self.refresh_tokens: dict[str, tuple[str, dict[str, Any]]] = {}
        self.browser_user = "alice"
        self.browser_claims: dict[str, Any] = {}
        self.github_claims: dict[str, Any] = {}
        self._server: ThreadingHTTPServer | None = None
        self.issuer = ""

    # -- tokens ---------------------------------------------------------------------------

    def key(self, alg: str = "RS256") -> SigningKey:
        return next(k for k in self.keys if k.alg == alg)

    def rotate(self, alg: str = "RS256") -> SigningKey:
        """A new key of `alg`, published and used from now on (the old one stays published)."""
        key = new_key(alg)
        self.keys.insert(0, key)
        self.published.add(key.kid)
        return key

    def mint(self, claims: dict[str, Any], *, alg: str = "RS256", key: SigningKey | None = None,
             headers: dict[str, Any] | None = None, lifetime: int = 300) -> str:
        """A token of this issuer: iss, iat, nbf, exp and jti filled in unless `claims` set them."""
        now = int(time.time())
        body = {"iss": self.issuer, "iat": now, "nbf": now, "exp": now + lifetime, "jti": uuid.uuid4().hex, **claims}
        body = {k: v for k, v in body.items() if v is not None}
        key = key or self.key(alg)
        return jwt.encode(body, key.private, algorithm=key.alg, headers={"kid": key.kid, **(headers or {})})

    def id_token(self, subject: str, extra: dict[str, Any] | None = None, nonce: str = "") -> str:
        claims = {"sub": f"sub-{subject}", "aud": self.client_id, "preferred_username": subject,
                  "email": f"{subject}@example.test", **(extra or {})}
        if nonce:
            claims["nonce"] = nonce
        return self.mint(claims)

    # -- people -----------------------------------------------------------------------------

    def approve_device(self, user_code: str, subject: str, claims: dict[str, Any] | None = None) -> None:
        """What the person does in the browser: sign in and approve the code."""
        grant = next(g for g in self.devices.values() if g.user_code == user_code)
        grant.subject = subject
        grant.claims = claims or {}

    # -- server -----------------------------------------------------------------------------

    @contextmanager
    def running(self) -> Iterator[OidcProvider]:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self._cert.cert, self._cert.key)
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                provider._get(self)

            def do_POST(self) -> None:
                provider._post(self)

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.socket = context.wrap_socket(server.socket, server_side=True)
        self._server = server
        self.issuer = f"https://localhost:{server.server_address[1]}"
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            server.shutdown()
            server.server_close()
            thread.join(timeout=10)

    def discovery(self) -> dict[str, Any]:
        return {
            "issuer": self.issuer, "jwks_uri": f"{self.issuer}/jwks",
            "authorization_endpoint": f"{self.issuer}/authorize", "token_endpoint": f"{self.issuer}/token",
            "device_authorization_endpoint": f"{self.issuer}/device",
            "response_types_supported": ["code"], "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256", "ES256", "EdDSA"],
            "code_challenge_methods_supported": ["S256"],
            "grant_types_supported": ["authorization_code", "refresh_token",
                                      "urn:ietf:params:oauth:grant-type:device_code"],
        }

    def _get(self, request: BaseHTTPRequestHandler) -> None:
        url = urlsplit(request.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        if url.path == "/.well-known/openid-configuration":
            _send(request, 200, self.discovery())
        elif url.path == "/jwks":
            self.jwks_requests += 1
            if not self.jwks_available:
                _send(request, 503, {"error": "down"})
                return
            _send(request, 200, {"keys": [k.public_jwk() for k in self.keys if k.kid in self.published]})
        elif url.path == "/github-token":
            if request.headers.get("Authorization") != f"bearer {GITHUB_REQUEST_TOKEN}":
                _send(request, 401, {"message": "bad request token"})
                return
            claims = {**self.github_claims, "aud": query.get("audience", "https://github.com/test-owner")}
            _send(request, 200, {"count": 1, "value": self.mint(claims)})
        elif url.path == "/authorize":
            code = secrets.token_urlsafe(16)
            self.codes[code] = (query.get("code_challenge", ""), query.get("redirect_uri", ""),
                                query.get("nonce", ""), dict(self.browser_claims))
            location = f"{query['redirect_uri']}?{urlencode({'code': code, 'state': query.get('state', '')})}"
            request.send_response(302)
            request.send_header("Location", location)
            request.send_header("Content-Length", "0")
            request.end_headers()
        else:
            _send(request, 404, {"error": "not_found"})

    def _post(self, request: BaseHTTPRequestHandler) -> None:
        length = int(request.headers.get("Content-Length") or 0)
        form = {k: v[0] for k, v in parse_qs(request.rfile.read(length).decode()).items()}
        path = urlsplit(request.path).path
        if path == "/device":
            grant = DeviceGrant(secrets.token_urlsafe(24), f"{secrets.randbelow(10**8):08d}",
                                form.get("client_id", ""))
            self.devices[grant.device_code] = grant
            _send(request, 200, {
                "device_code": grant.device_code, "user_code": grant.user_code,
                "verification_uri": f"{self.issuer}/activate",
                "verification_uri_complete": f"{self.issuer}/activate?user_code={grant.user_code}",
                "expires_in": 600, "interval": 1,
            })
        elif path == "/token":
            self._token(request, form)
        else:
            _send(request, 404, {"error": "not_found"})

    def _token(self, request: BaseHTTPRequestHandler, form: dict[str, str]) -> None:
        grant_type = form.get("grant_type", "")
        if form.get("client_id") != self.client_id:
            _send(request, 401, {"error": "invalid_client"})
            return
        if grant_type == "urn:ietf:params:oauth:grant-type:device_code":
            grant = self.devices.get(form.get("device_code", ""))
            if grant is None:
                _send(request, 400, {"error": "expired_token"})
                return
            if grant.subject is None:
                _send(request, 400, {"error": "authorization_pending"})
                return
            del self.devices[grant.device_code]
            _send(request, 200, self._tokens(grant.subject, grant.claims))
        elif grant_type == "authorization_code":
            found = self.codes.pop(form.get("code", ""), None)
            verifier = form.get("code_verifier", "")
            challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
            if found is None or found[0] != challenge or found[1] != form.get("redirect_uri"):
                _send(request, 400, {"error": "invalid_grant"})
                return
            _send(request, 200, self._tokens(self.browser_user, found[3], nonce=found[2]))
        elif grant_type == "refresh_token":
            known = self.refresh_tokens.get(form.get("refresh_token", ""))
            if known is None:
                _send(request, 400, {"error": "invalid_grant"})
                return
            _send(request, 200, self._tokens(*known))
        else:
            _send(request, 400, {"error": "unsupported_grant_type"})

    def _tokens(self, subject: str, claims: dict[str, Any], nonce: str = "") -> dict[str, Any]:
        refresh = secrets.token_urlsafe(24)
        self.refresh_tokens[refresh] = (subject, claims)
        return {"id_token": self.id_token(subject, claims, nonce), "access_token": secrets.token_urlsafe(16),
                "refresh_token": refresh, "token_type": "Bearer", "expires_in": 300}


def _send(request: BaseHTTPRequestHandler, status: int, body: dict[str, Any]) -> None:
    data = json.dumps(body).encode()
    request.send_response(status)
    request.send_header("Content-Type", "application/json")
    request.send_header("Content-Length", str(len(data)))
    request.end_headers()
    request.wfile.write(data)
