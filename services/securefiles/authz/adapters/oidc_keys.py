"""An OIDC issuer's signing keys: OIDC discovery and JWKS over HTTPS, or a static JWKS.

Keys are cached per source (issuer, static JWKS, CA). They are refreshed when older than
`refresh_after`; a token naming an unknown `kid` refetches once (at most every
`min_refetch` seconds per source, so random kids cannot make us hammer the issuer). When the
issuer cannot be reached, the cached keys serve until `max_age` after they were fetched;
after that, tokens of that issuer fail closed with UNAVAILABLE.
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import jwt

from securefiles.authz.domain.oidc import IssuerSource
from securefiles.authz.domain.trusts import parse_jwks, validate_issuer
from securefiles.common.errors import InvalidArgument, Unauthenticated, Unavailable

log = logging.getLogger("securefiles.authz.oidc")

MAX_DOCUMENT_BYTES = 1024 * 1024


class IssuerUnreachable(Exception):
    """Discovery or the JWKS could not be fetched (or made no sense)."""


@dataclass
class _Entry:
    keys: dict[str, jwt.PyJWK] = field(default_factory=dict)
    fetched_at: float = float("-inf")
    attempted_at: float = float("-inf")
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


def _key_set(document: str | bytes) -> dict[str, jwt.PyJWK]:
    keys: dict[str, jwt.PyJWK] = {}
    for index, data in enumerate(parse_jwks(document)):
        try:
            key = jwt.PyJWK(data)
        except (jwt.PyJWTError, ValueError, TypeError, KeyError):
            continue  # a key we cannot use is no key
        keys[str(data.get("kid", f"#{index}"))] = key
    return keys


class IssuerKeys:
    """Finds the key that should have signed a token of a trust's issuer."""

    def __init__(self, *, refresh_after: float = 300.0, max_age: float = 3600.0, min_refetch: float = 10.0,
                 timeout: float = 5.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._refresh_after = refresh_after
        self._max_age = max_age
        self._min_refetch = min_refetch
        self._timeout = timeout
        self._clock = clock
        self._entries: dict[IssuerSource, _Entry] = {}

    async def key_for(self, source: IssuerSource, kid: str | None) -> jwt.PyJWK:
        """The key named `kid` (or the only key, for a token without one)."""
        if source.static_jwks:
            return _pick(_key_set(source.static_jwks), kid)
        entry = self._entries.setdefault(source, _Entry())
        now = self._clock()
        if now - entry.fetched_at >= self._refresh_after:
            await self._refresh(entry, source, now)
        try:
            return _pick(entry.keys, kid)
        except Unauthenticated:
            if now - entry.attempted_at < self._min_refetch:
                raise
        await self._refresh(entry, source, now)  # an unknown kid: the issuer may have rotated
        return _pick(entry.keys, kid)

    async def _refresh(self, entry: _Entry, source: IssuerSource, now: float) -> None:
        async with entry.lock:
            if entry.attempted_at >= now:  # another request refreshed while we waited
                return
            entry.attempted_at = self._clock()
            try:
                entry.keys = await self._fetch(source)
                entry.fetched_at = self._clock()
            except IssuerUnreachable as error:
                log.warning("issuer keys could not be fetched", extra={"issuer": source.issuer, "error": str(error)})
                if not (entry.keys and self._clock() - entry.fetched_at < self._max_age):
                    raise Unavailable(f"the keys of issuer {source.issuer} cannot be fetched: {error}",
                                      reason="ISSUER_UNAVAILABLE") from None

    async def _fetch(self, source: IssuerSource) -> dict[str, jwt.PyJWK]:
        verify: ssl.SSLContext | bool = True
        if source.ca_pem:
            verify = ssl.create_default_context(cadata=source.ca_pem)
        async with httpx.AsyncClient(verify=verify, timeout=self._timeout, follow_redirects=False,
                                     trust_env=False) as http:
            discovery = await _get_json(http, source.issuer.rstrip("/") + "/.well-known/openid-configuration")
            if discovery.get("issuer") != source.issuer:
                raise IssuerUnreachable("the discovery document names another issuer")
            jwks_uri = discovery.get("jwks_uri")
            try:
                validate_issuer(str(jwks_uri or ""))
            except InvalidArgument:
                raise IssuerUnreachable("the discovery document has no https jwks_uri") from None
            body = await _get(http, str(jwks_uri))
        try:
            return _key_set(body)
        except InvalidArgument as error:
            raise IssuerUnreachable(error.message) from None


def _pick(keys: dict[str, jwt.PyJWK], kid: str | None) -> jwt.PyJWK:
    if kid is None and len(keys) == 1:
        return next(iter(keys.values()))
    key = keys.get(kid) if kid is not None else None
    if key is None:
        raise Unauthenticated("the token is signed by a key its issuer does not publish",
                              reason="UNKNOWN_SIGNING_KEY")
    return key


async def _get(http: httpx.AsyncClient, url: str) -> bytes:
    try:
        async with http.stream("GET", url, headers={"accept": "application/json"}) as response:
            if response.status_code != 200:
                raise IssuerUnreachable(f"{url} answered HTTP {response.status_code}")
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > MAX_DOCUMENT_BYTES:
                    raise IssuerUnreachable(f"{url} sent more than 1 MiB")
            return bytes(body)
    except httpx.HTTPError as error:
        raise IssuerUnreachable(f"{type(error).__name__} from {url}") from None


async def _get_json(http: httpx.AsyncClient, url: str) -> dict[str, Any]:
    try:
        data = json.loads(await _get(http, url))
    except ValueError:
        raise IssuerUnreachable(f"{url} did not send JSON") from None
    if not isinstance(data, dict):
        raise IssuerUnreachable(f"{url} did not send a JSON object")
    return data
