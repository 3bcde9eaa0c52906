"""The operations port: plain HTTP for probes and metrics, beside the gRPC ports.

`GET /healthz` (liveness: the process answers), `GET /readyz` (readiness: every check the
service registered passes) and `GET /metrics` (Prometheus text format). Kubernetes probes and
scrapers need no client certificate here; nothing served is secret (names of checks and of
methods, counts), and a failed check says which one failed, never why (the log says why).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Mapping

log = logging.getLogger("securefiles.operations")

ReadinessCheck = Callable[[], Awaitable[object]]  # raises when its dependency is not ready
MetricsRenderer = Callable[[], tuple[bytes, str]]  # (body, content type); may block: run in a thread

_MAX_REQUEST_HEAD = 8192
_READ_TIMEOUT = 5.0


class OperationsEndpoint:
    """A tiny HTTP/1.1 server (GET and HEAD, one request per connection) on the event loop."""

    def __init__(self, checks: Mapping[str, ReadinessCheck], metrics: MetricsRenderer | None = None,
                 check_timeout: float = 2.0) -> None:
        self._checks = dict(checks)
        self._metrics = metrics
        self._check_timeout = check_timeout
        self._server: asyncio.Server | None = None
        self._evaluation: asyncio.Future[dict[str, str]] | None = None
        self.serving = False  # set once the gRPC server serves; cleared when it starts shutting down
        self.port = 0

    async def start(self, address: str) -> int:
        """Bind `host:port` (port 0 picks a free one) and return the bound port."""
        host, _, port = address.rpartition(":")
        self._server = await asyncio.start_server(self._handle, host.strip("[]") or None, int(port),
                                                  limit=_MAX_REQUEST_HEAD)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def stop(self) -> None:
        self.serving = False
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def readiness(self) -> dict[str, str]:
        """Each check's result ("ok" or "failing"). Concurrent probes share one evaluation, so a
        flood of probes costs one round of checks at a time."""
        if self._evaluation is None or self._evaluation.done():
            self._evaluation = asyncio.ensure_future(self._evaluate())
        return await asyncio.shield(self._evaluation)

    async def _evaluate(self) -> dict[str, str]:
        names = list(self._checks)
        outcomes = await asyncio.gather(*(self._run_check(name) for name in names))
        return dict(zip(names, outcomes, strict=True))

    async def _run_check(self, name: str) -> str:
        try:
            await asyncio.wait_for(self._checks[name](), self._check_timeout)
        except Exception as error:
            log.warning("readiness check failing", extra={"check": name, "error": type(error).__name__})
            return "failing"
        return "ok"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            try:
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), _READ_TIMEOUT)
            except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, ConnectionError):
                return
            method, path = _request_line(head)
            status, content_type, body = await self._respond(method, path)
            writer.write(_response(status, content_type, b"" if method == "HEAD" else body, len(body)))
            await writer.drain()
        except ConnectionError:
            pass
        except Exception:
            log.error("operations request failed", exc_info=True)
        finally:
            writer.close()

    async def _respond(self, method: str, path: str) -> tuple[int, str, bytes]:
        if not method:
            return 400, "text/plain; charset=utf-8", b"bad request\n"
        if method not in ("GET", "HEAD"):
            return 405, "text/plain; charset=utf-8", b"method not allowed\n"
        if path == "/healthz":
            return 200, "application/json", b'{"status":"ok"}\n'
        if path == "/readyz":
            if not self.serving:
                return 503, "application/json", b'{"status":"not serving"}\n'
            checks = await self.readiness()
            ready = all(result == "ok" for result in checks.values())
            body = json.dumps({"status": "ok" if ready else "not ready", "checks": checks}, sort_keys=True)
            return (200 if ready else 503), "application/json", body.encode() + b"\n"
        if path == "/metrics" and self._metrics is not None:
            rendered, content_type = await asyncio.to_thread(self._metrics)  # collectors may query the database
            return 200, content_type, rendered
        return 404, "text/plain; charset=utf-8", b"not found\n"


def _request_line(head: bytes) -> tuple[str, str]:
    """Method and path (without the query) of a request head; ("", "") when malformed."""
    line = head.split(b"\r\n", 1)[0].decode("latin-1")
    parts = line.split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        return "", ""
    return parts[0], parts[1].split("?", 1)[0]


_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed", 503: "Service Unavailable"}


def _response(status: int, content_type: str, body: bytes, length: int) -> bytes:
    head = (f"HTTP/1.1 {status} {_REASONS.get(status, 'Bad Request')}\r\n"
            f"Content-Type: {content_type}\r\nContent-Length: {length}\r\n"
            "Cache-Control: no-store\r\nConnection: close\r\n\r\n")
    return head.encode("latin-1") + body
