"""What every response and every form goes through: security headers with a strict
Content-Security-Policy, and forms read within limits and refused without their CSRF token.

The CSRF token is a synchronizer token kept in the server-side session and echoed by a
hidden field of every form; a POST from another origin is refused before its body is read.
"""

from __future__ import annotations

import hmac
from collections.abc import AsyncGenerator

from starlette.datastructures import FormData, Headers
from starlette.formparsers import FormParser, MultiPartException, MultiPartParser
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# No inline script or style, nothing from elsewhere, no framing, forms post only here.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = [
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    # Not no-referrer: with it browsers send `Origin: null` on form posts, which the check below refuses.
    (b"referrer-policy", b"same-origin"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=(), payment=()"),
    (b"strict-transport-security", b"max-age=31536000"),
]
FORM_OVERHEAD_BYTES = 256 * 1024  # the form's other fields and the multipart framing


class FormRefused(Exception):
    """A form the console will not act on (status, what to tell the person)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class SecurityHeaders:
    """Adds the headers above to every response; pages are never cached."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        static = scope["path"].startswith("/static/")

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [h for h in message.get("headers", []) if h[0].lower() != b"server"]
                headers += SECURITY_HEADERS
                if not static:
                    headers.append((b"cache-control", b"no-store"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, with_headers)


class _InMemoryMultiPartParser(MultiPartParser):
    # An uploaded secret never touches the console's disk: the body is bounded before parsing.
    spool_max_size = 1 << 62


async def _limited(request: Request, limit: int) -> AsyncGenerator[bytes, None]:
    received = 0
    async for chunk in request.stream():
        received += len(chunk)
        if received > limit:
            raise FormRefused(413, f"the form is larger than {limit // (1024 * 1024)} MiB")
        yield chunk


def same_origin(request: Request, public_origin: str) -> bool:
    """A browser names the origin of every POST; one from elsewhere is refused."""
    origin = request.headers.get("origin")
    return origin is None or origin == public_origin


async def read_form(request: Request, expected_csrf: str, public_origin: str, max_file_bytes: int) -> FormData:
    """The form's fields (and at most one file, in memory), once its CSRF token matched."""
    if not same_origin(request, public_origin):
        raise FormRefused(403, "this form was sent from another site")
    limit = max_file_bytes + FORM_OVERHEAD_BYTES
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise FormRefused(413, f"the form is larger than {limit // (1024 * 1024)} MiB")
    content_type = Headers(scope=request.scope).get("content-type", "")
    try:
        if content_type.startswith("multipart/form-data"):
            form = await _InMemoryMultiPartParser(request.headers, _limited(request, limit), max_files=1,
                                                  max_fields=200, max_part_size=64 * 1024).parse()
        elif content_type.startswith("application/x-www-form-urlencoded"):
            form = await FormParser(request.headers, _limited(request, limit)).parse()
        else:
            raise FormRefused(415, "forms are sent as application/x-www-form-urlencoded or multipart/form-data")
    except MultiPartException as error:
        raise FormRefused(400, f"the form could not be read: {error.message}") from None
    sent = form.get("csrf_token")
    if not isinstance(sent, str) or not expected_csrf or not hmac.compare_digest(sent, expected_csrf):
        await form.close()
        raise FormRefused(403, "the form's security token is missing or out of date; reload the page and try again")
    return form
