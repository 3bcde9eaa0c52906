"""Signing people in at the organization's OpenID provider: authorization code + PKCE with
the console as the redirect target, then authz's SignIn turns the ID token into the person's
session token, kept in the server-side session. The same provider and client id as
`securefiles login` (authz's GetSignInConfig says which)."""

from __future__ import annotations

import hmac
import secrets
import time
from urllib.parse import quote

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from securefiles.client.api import SecureFilesClient
from securefiles.client.sign_in import Provider, authorization_url, discover, exchange_code, pkce_pair, refresh
from securefiles.client.types import SignedIn
from securefiles.common.errors import SecureFilesError
from securefiles.web.console import Console, error_page, local_path, redirect
from securefiles.web.protection import FormRefused, read_form
from securefiles.web.sessions import COOKIE, PendingSignIn, Person

PROVIDER_CACHE_SECONDS = 300.0


class SignInFlow:
    def __init__(self, console: Console) -> None:
        self.console = console
        self._provider: tuple[float, Provider | None] | None = None

    async def provider(self) -> Provider | None:
        """The provider authz names (None: sign-in is not configured), cached for a few minutes."""
        cached = self._provider
        if cached is not None and time.monotonic() - cached[0] < PROVIDER_CACHE_SECONDS:
            return cached[1]
        config = await self.console.services.anonymous(lambda c: c.login.config())
        provider = None
        if config.enabled:
            ca_file = str(self.console.settings.provider_ca_file or "")
            provider = await run_in_threadpool(discover, config.issuer, config.client_id, config.scopes, ca_file)
        self._provider = (time.monotonic(), provider)
        return provider

    def refresh(self, person: Person) -> Person | None:
        """In a worker thread: new provider tokens, signed in again (the provider stays the judge)."""
        cached = self._provider
        if cached is None or cached[1] is None:
            return None
        try:
            tokens = refresh(cached[1], person.refresh_token)
            signed = self._sign_in_now(tokens.id_token)
        except SecureFilesError:
            return None
        return _person(signed, tokens.refresh_token)

    def _sign_in_now(self, id_token: str) -> SignedIn:
        with SecureFilesClient(self.console.services.config, token="") as client:
            return client.login.sign_in(id_token)

    # -- routes -------------------------------------------------------------------------

    async def page(self, request: Request) -> Response:
        """The sign-in page (it creates nothing: the link below starts a sign-in)."""
        next_path = local_path(request.query_params.get("next"))
        try:
            provider = await self.provider()
        except SecureFilesError as error:
            return error_page(self.console, request, 503, "Sign-in unavailable", f"{error.message} [{error.reason}]")
        session = self.console.session_of(request)
        if session is not None and session.person is not None:
            return redirect(next_path)
        return self.console.templates.TemplateResponse(request, "sign_in.html", {
            "request": request, "person": None, "project": "", "tab": "", "csrf_token": "", "path": request.url.path,
            "flashes": [], "provider": provider, "next_path": next_path,
            "signed_out": request.query_params.get("signed_out") == "1", "quote": lambda s: quote(s, safe="")},
            status_code=200 if provider else 503)

    async def start(self, request: Request) -> Response:
        try:
            provider = await self.provider()
        except SecureFilesError as error:
            return error_page(self.console, request, 503, "Sign-in unavailable", f"{error.message} [{error.reason}]")
        if provider is None:
            return redirect("/signin")
        verifier, challenge = pkce_pair()
        pending = PendingSignIn(state=secrets.token_urlsafe(24), nonce=secrets.token_urlsafe(24), verifier=verifier,
                                redirect_uri=f"{self.console.public_url}/auth/callback",
                                next_path=local_path(request.query_params.get("next")))
        session = self.console.sessions.new()
        session.sign_in = pending
        response = RedirectResponse(authorization_url(provider, pending.redirect_uri, pending.state, pending.nonce,
                                                      challenge), status_code=303)
        self.console.set_cookie(response, session)
        return response

    async def callback(self, request: Request) -> Response:
        session = self.console.session_of(request)
        pending = session.sign_in if session is not None else None
        state = request.query_params.get("state", "")
        if session is None or pending is None or not hmac.compare_digest(state, pending.state):
            return error_page(self.console, request, 400, "Sign-in failed",
                              "this sign-in answer does not belong to a sign-in started here; please sign in again")
        session.sign_in = None  # one answer per sign-in
        code = request.query_params.get("code")
        if not code:
            error = request.query_params.get("error", "no code")[:80]
            return error_page(self.console, request, 403, "Sign-in refused", f"the provider said: {error}")
        try:
            provider = await self.provider()
            if provider is None:
                return redirect("/signin")
            tokens = await run_in_threadpool(exchange_code, provider, code, pending.redirect_uri, pending.verifier,
                                             pending.nonce)
            signed = await run_in_threadpool(self._sign_in_now, tokens.id_token)
        except SecureFilesError as error:
            return error_page(self.console, request, 403, "Sign-in refused", f"{error.message} [{error.reason}]")
        person = _person(signed, tokens.refresh_token)
        signed_in = self.console.sessions.sign_in(session, person)
        response = redirect(pending.next_path)
        self.console.set_cookie(response, signed_in)
        return response

    async def sign_out(self, request: Request) -> Response:
        session = self.console.session_of(request)
        if session is not None:
            try:
                await read_form(request, session.csrf_token, self.console.origin, 0)
            except FormRefused as refused:
                return error_page(self.console, request, refused.status, "Refused", refused.message)
            self.console.sessions.drop(session.session_id)
        response = redirect("/signin?signed_out=1")
        response.delete_cookie(COOKIE, path="/", secure=True, httponly=True, samesite="lax")
        return response


def _person(signed: SignedIn, refresh_token: str) -> Person:
    """The session's person; a token without an end time is treated as already ended."""
    expire_at = signed.expire_time.timestamp() if signed.expire_time is not None else 0.0
    return Person(signed.principal, signed.groups, signed.token, expire_at, refresh_token)
