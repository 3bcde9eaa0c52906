"""One server interceptor for every cross-cutting concern of an RPC.

It authenticates the caller (bearer token or service certificate), binds the request id
and deadline for outbound calls, maps domain errors to a rich status with one ErrorInfo,
turns anything unexpected into a generic INTERNAL, and writes one access-log line.
"""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
import logging
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from concurrent.futures import Future
from typing import Any

import grpc
from grpc_status import rpc_status
from opentelemetry import trace
from sqlalchemy.exc import DataError, OperationalError

from securefiles.common.audit import ALLOW, DENY, FAIL, AuditLog
from securefiles.common.call_context import (
    AllowOnce,
    audit_note,
    begin_call,
    entries_of_call,
    owe_allow,
    principal_var,
)
from securefiles.common.errors import InvalidArgument, SecureFilesError, Unauthenticated, Unavailable
from securefiles.common.limits import CallerLimits
from securefiles.common.logging import request_id_var
from securefiles.common.metrics import RpcMetrics
from securefiles.common.principal import Principal
from securefiles.common.repeated_failures import RepeatedFailures
from securefiles.common.rich_status import to_rpc_status
from securefiles.common.tls import SERVICE_IDENTITIES, peer_identity
from securefiles.common.tokens import TokenVerifier

log = logging.getLogger("securefiles.rpc")

deadline_var: contextvars.ContextVar[float | None] = contextvars.ContextVar("deadline", default=None)

# Reachable with a verified client certificate alone (the TLS handshake authenticated it).
UNAUTHENTICATED_METHOD_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.")

_MAX_REQUEST_ID = 64


def _all_written(entries: Sequence[Future[Any]]) -> Future[Any]:
    """One future for several entries: done once all are, failed if any failed."""
    if len(entries) == 1:
        return entries[0]
    combined: Future[Any] = Future()
    remaining = [len(entries)]
    lock = threading.Lock()

    def one_done(_entry: Future[Any]) -> None:
        with lock:
            remaining[0] -= 1
            if remaining[0]:
                return
        failed = [e for e in entries if e.cancelled() or e.exception() is not None]
        if not failed:
            combined.set_result(None)
        elif failed[0].cancelled():
            combined.cancel()
        else:
            error = failed[0].exception()
            assert error is not None
            combined.set_exception(error)

    for entry in entries:
        entry.add_done_callback(one_done)
    return combined


_RESOURCE_FIELDS = ("name", "resource", "parent", "key_ring", "scope", "pipeline")


def _resource_of(request: Any) -> str:
    for field in _RESOURCE_FIELDS:
        value = getattr(request, field, None)
        if isinstance(value, str) and value:
            return value
    for nested in ("role_assignment", "secure_file"):
        inner = getattr(request, nested, None)
        value = getattr(inner, "scope", "") or getattr(inner, "name", "")
        if value:
            return str(value)
    return ""


# Of the time our caller gave us, this share (within bounds) is kept back from calls to other
# services: when one of them stalls, we still answer with its name (e.g. KMS_UNAVAILABLE)
# before our caller's own deadline cuts the call off without saying why.
RESERVE_SHARE, MIN_RESERVE, MAX_RESERVE = 0.1, 0.05, 1.0


def outbound_timeout(default: float) -> float:
    """Deadline for a call made while serving: a little before our caller's."""
    deadline = deadline_var.get()
    if deadline is None:
        return default
    remaining = deadline - time.monotonic()
    reserve = min(MAX_RESERVE, max(MIN_RESERVE, remaining * RESERVE_SHARE))
    return max(0.001, min(default, remaining - reserve))


def outbound_metadata() -> tuple[tuple[str, str], ...]:
    """Metadata that carries the request id to the next service."""
    request_id = request_id_var.get()
    return (("x-request-id", request_id),) if request_id else ()


class Authenticator:
    """Decides who is calling: a bearer token wins, else a service certificate."""

    def __init__(self, verifier: TokenVerifier) -> None:
        self._verifier = verifier

    async def authenticate(self, context: grpc.aio.ServicerContext[Any, Any]) -> Principal:
        token = None
        for key, value in context.invocation_metadata() or ():
            if key == "authorization":
                scheme, _, credential = str(value).partition(" ")
                if scheme.lower() != "bearer" or not credential:
                    raise Unauthenticated("authorization must be a bearer token", reason="INVALID_TOKEN")
                token = credential.strip()
        if token is not None:
            return await self._verifier.verify(token)
        identity = peer_identity(context)
        if identity in SERVICE_IDENTITIES:
            return Principal("service", f"service:{identity}")
        raise Unauthenticated("a bearer token is required", reason="MISSING_CREDENTIALS")


class ServiceInterceptor(grpc.aio.ServerInterceptor):
    """Authentication, error mapping, request ids and access logs for one service."""

    def __init__(
        self,
        service: str,
        authenticator: Authenticator,
        audit: AuditLog | None = None,
        unaudited_methods: frozenset[str] = frozenset(),
        limits: CallerLimits | None = None,
        public_methods: frozenset[str] = frozenset(),
    ) -> None:
        """A call's ALLOW entry goes into the transaction of its change (`common/unit_of_work.py`),
        else it is written as the call succeeds. `public_methods`: callable without credentials
        (the request carries its own, e.g. an OIDC token to exchange); audited, and limited per
        client address."""
        self._public = public_methods
        self._limits = limits
        self._service = service
        self._domain = f"{service}.securefiles"
        self._authenticator = authenticator
        self._audit = audit
        self._unaudited = unaudited_methods
        self._repeated = RepeatedFailures()

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        method = handler_call_details.method
        authenticate = not method.startswith(UNAUTHENTICATED_METHOD_PREFIXES) and not self._is_public(method)
        if handler.unary_unary:
            return grpc.unary_unary_rpc_method_handler(
                _measured_unary(self._wrap_unary(handler.unary_unary, method, authenticate), "unary", method),
                handler.request_deserializer, handler.response_serializer,
            )
        if handler.stream_unary:
            return grpc.stream_unary_rpc_method_handler(
                _measured_unary(self._wrap_unary(handler.stream_unary, method, authenticate), "client_stream",
                                method),
                handler.request_deserializer, handler.response_serializer,
            )
        if handler.unary_stream:
            return grpc.unary_stream_rpc_method_handler(
                _measured_stream(self._wrap_stream(handler.unary_stream, method, authenticate), "server_stream",
                                 method),
                handler.request_deserializer, _encoded_or(handler.response_serializer),
            )
        assert handler.stream_stream is not None  # the fourth kind
        return grpc.stream_stream_rpc_method_handler(
            _measured_stream(self._wrap_stream(handler.stream_stream, method, authenticate), "bidi_stream", method),
            handler.request_deserializer, handler.response_serializer,
        )

    async def _begin(self, context: grpc.aio.ServicerContext[Any, Any], authenticate: bool, request: Any, method: str
                     ) -> None:
        begin_call(method.rsplit("/", 1)[-1], _resource_of(request))
        request_id = ""
        for key, value in context.invocation_metadata() or ():
            if key == "x-request-id":
                request_id = str(value)[:_MAX_REQUEST_ID]
        request_id_var.set(request_id or uuid.uuid4().hex)
        trace.get_current_span().set_attribute("securefiles.request_id", request_id_var.get())  # no-op untraced
        remaining = context.time_remaining()
        deadline_var.set(time.monotonic() + remaining if remaining is not None else None)
        if not authenticate and self._is_public(method) and self._limits is not None:
            # A public method's request carries its own credential (an OIDC token): its failures
            # count against the same budget as failed authentications.
            self._limits.before_authentication(_clients_of(context))
        if authenticate:
            clients = _clients_of(context)
            if self._limits is not None:
                self._limits.before_authentication(clients)  # before any token is looked at
            try:
                principal_var.set(await self._authenticator.authenticate(context))
            except Unauthenticated:
                if self._limits is not None:
                    self._limits.authentication_failed(clients)
                raise

    def _is_public(self, method: str) -> bool:
        return method.rsplit("/", 1)[-1] in self._public

    def _admit(self, request_streaming: bool, context: grpc.aio.ServicerContext[Any, Any],
               method: str) -> Callable[[], None]:
        """Per-caller limits, after authentication (we know who) and before any work; a public
        method's anonymous callers are limited per client address."""
        if self._limits is None:
            return _no_release
        principal = principal_var.get()
        if principal is None and self._is_public(method):
            principal = Principal("anonymous", f"address:{_client_address(context)}")
        return self._limits.admit(principal, request_streaming)

    def _accountable(self, method: str, authenticate: bool) -> bool:
        """Calls that are audited and logged: authenticated ones, and public methods."""
        return self._audit is not None and (authenticate or self._is_public(method))

    def _audited(self, method: str, authenticate: bool) -> bool:
        """Whether a successful call is audited (reads are not: too many, and they change nothing)."""
        return self._accountable(method, authenticate) and method.rsplit("/", 1)[-1] not in self._unaudited

    def _audited_failure(self, method: str, authenticate: bool) -> bool:
        """Denials and failures are audited for every method, reads included."""
        return self._accountable(method, authenticate)

    def _submit(self, method: str, decision: str, reason: str = "") -> Future[object]:
        """Queue the audit entry of this RPC, or of each of its items (its future resolves once
        the entries are durable)."""
        assert self._audit is not None
        return _all_written([
            self._audit.submit(e.principal, e.action, e.resource, decision, reason, e.request_id, e.details)
            for e in entries_of_call(decision == ALLOW)])

    async def _record_outcome(self, method: str, error: BaseException,
                              context: grpc.aio.ServicerContext[Any, Any]) -> None:
        """Audit a failed RPC; a failure to do so is logged, the original error still goes out."""
        if isinstance(error, SecureFilesError) and error.reason in ("RATE_LIMITED", "TOO_MANY_STREAMS"):
            return  # a flood must not flood the audit log too; the access log has it
        repeated = 1
        if isinstance(error, SecureFilesError) and (
                error.code == "UNAUTHENTICATED" or error.reason == "AUTHENTICATION_THROTTLED"
                or principal_var.get() is None):
            # Nobody is known yet: identical failures from one client are one entry per interval.
            if self._is_public(method) and self._limits is not None and error.code in (
                    "UNAUTHENTICATED", "PERMISSION_DENIED"):
                self._limits.authentication_failed(_clients_of(context))
            repeated = self._repeated.count((method, error.reason, _client_address(context)))
            if not repeated:
                return
            audit_note(client=_client_address(context), repeated=repeated)
        if isinstance(error, SecureFilesError):
            denied = error.code in ("UNAUTHENTICATED", "PERMISSION_DENIED")
            decision, reason = (DENY if denied else FAIL), f"{error.code}/{error.reason}"
        else:
            decision, reason = FAIL, "INTERNAL"
        try:
            await asyncio.wrap_future(self._submit(method, decision, reason))
        except Exception:
            log.error("audit entry could not be written", exc_info=True, extra={"method": method})

    async def _fail(self, context: grpc.aio.ServicerContext[Any, Any], error: BaseException, method: str) -> None:
        if isinstance(error, SecureFilesError):
            status = rpc_status.to_status(to_rpc_status(error, self._domain))
            self._log(method, error.code, error.reason)
        else:
            log.error("unexpected error", exc_info=error, extra={"method": method})
            internal = SecureFilesError("internal error", reason="INTERNAL")
            status = rpc_status.to_status(to_rpc_status(internal, self._domain))
            self._log(method, "INTERNAL", "INTERNAL")
        await context.abort(status.code, status.details, status.trailing_metadata)

    def _log(self, method: str, code: str, reason: str = "", started: float | None = None) -> None:
        principal = principal_var.get()
        extra: dict[str, Any] = {"method": method, "code": code}
        if reason:
            extra["reason"] = reason
        if principal is not None:
            extra["principal"] = principal.name
        if started is not None:
            extra["duration_ms"] = round((time.perf_counter() - started) * 1000, 3)
        log.info("rpc", extra=extra)

    def _wrap_unary(
        self, behavior: Callable[..., Awaitable[Any]], method: str, authenticate: bool
    ) -> Callable[..., Awaitable[Any]]:
        audited = self._audited(method, authenticate)
        audited_failure = self._audited_failure(method, authenticate)

        async def wrapped(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            started = time.perf_counter()
            release = _no_release
            allow = AllowOnce(lambda: self._submit(method, ALLOW)) if audited else None

            try:
                await self._begin(context, authenticate, request, method)
                owe_allow(allow)
                release = self._admit(not _is_message(request), context, method)
                response = await behavior(request, context)
                if allow is not None:
                    await allow.wait()
            except (grpc.aio.AbortError, asyncio.CancelledError):
                raise
            except Exception as raised:
                error = _translate(raised, method)
                if audited_failure and not _is_audit_failure(error):
                    await self._record_outcome(method, error, context)
                await self._fail(context, error, method)
                raise  # unreachable: abort raises
            finally:
                release()
            if authenticate or self._is_public(method):
                self._log(method, "OK", started=started)
            return response

        return wrapped

    def _wrap_stream(
        self, behavior: Callable[..., Any], method: str, authenticate: bool
    ) -> Callable[..., AsyncIterator[Any]]:
        # Any: grpc's stubs declare handlers synchronous; ours (grpc.aio) are async generators.
        audited = self._audited(method, authenticate)
        audited_failure = self._audited_failure(method, authenticate)

        async def wrapped(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
            started = time.perf_counter()
            allowed = False
            release = _no_release
            allow = AllowOnce(lambda: self._submit(method, ALLOW)) if audited else None
            try:
                await self._begin(context, authenticate, request, method)
                owe_allow(allow)
                release = self._admit(True, context, method)
                # The message lives in a slot it leaves as it is yielded: while gRPC sends it,
                # this frame keeps no second reference to a (1 MiB) chunk alive.
                held: dict[str, Any] = {}
                async for held["message"] in behavior(request, context):
                    if allow is not None and not allowed:
                        # Recorded before the first message leaves: no audit entry, no content.
                        await allow.wait()
                        allowed = True
                    yield held.pop("message")
                if allow is not None and not allowed:
                    await allow.wait()
            except (grpc.aio.AbortError, asyncio.CancelledError):
                raise
            except Exception as raised:
                error = _translate(raised, method)
                if audited_failure and not _is_audit_failure(error):
                    await self._record_outcome(method, error, context)
                await self._fail(context, error, method)
                raise
            finally:
                release()
            if authenticate or self._is_public(method):
                self._log(method, "OK", started=started)

        return wrapped


def _measured_unary(
    behavior: Callable[..., Awaitable[Any]], grpc_type: str, method: str
) -> Callable[..., Awaitable[Any]]:
    """Count the RPC and its code, and time it (grpc_server_* metrics)."""

    async def measured(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        metrics, started = RpcMetrics.start(grpc_type, method)
        code = "UNKNOWN"
        try:
            response = await behavior(request, context)
            code = "OK"
            return response
        except asyncio.CancelledError:
            code = "CANCELLED"
            raise
        except BaseException:
            code = _code_of(context)
            raise
        finally:
            metrics.handled(code, started)

    return measured


def _measured_stream(
    behavior: Callable[..., AsyncIterator[Any]], grpc_type: str, method: str
) -> Callable[..., AsyncIterator[Any]]:
    async def measured(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
        metrics, started = RpcMetrics.start(grpc_type, method)
        code = "UNKNOWN"
        try:
            held: dict[str, Any] = {}  # no second reference to a chunk while gRPC sends it
            async for held["message"] in behavior(request, context):
                yield held.pop("message")
            code = "OK"
        except (asyncio.CancelledError, GeneratorExit):
            code = "CANCELLED"
            raise
        except BaseException:
            code = _code_of(context)
            raise
        finally:
            metrics.handled(code, started)

    return measured


def _code_of(context: grpc.aio.ServicerContext[Any, Any]) -> str:
    """The status the call was aborted with (UNKNOWN if none was set)."""
    code = context.code()
    if isinstance(code, grpc.StatusCode):
        return code.name
    if isinstance(code, int):
        return next((c.name for c in grpc.StatusCode if c.value[0] == code), "UNKNOWN")
    return "UNKNOWN"


def _client_address(context: grpc.aio.ServicerContext[Any, Any]) -> str:
    """The client's IP address, without its port (`ipv4:1.2.3.4:5678` -> `1.2.3.4`)."""
    peer = context.peer() or ""
    kind, _, rest = peer.partition(":")
    if kind in ("ipv4", "ipv6"):
        return rest.rpartition(":")[0].strip("[]")
    return peer


def _clients_of(context: grpc.aio.ServicerContext[Any, Any]) -> tuple[str, ...]:
    """Whom failed authentications are counted against: the address and, where one was presented,
    the client certificate. Services (verified by their certificate) are not throttled."""
    if peer_identity(context) in SERVICE_IDENTITIES:
        return ()
    clients = [f"address:{_client_address(context)}"]
    certificate = list((context.auth_context() or {}).get("x509_pem_cert", ()))
    if certificate:
        pem = certificate[0] if isinstance(certificate[0], bytes) else str(certificate[0]).encode()
        clients.append("certificate:" + hashlib.sha256(pem).hexdigest())
    return tuple(clients)


def _encoded_or(serializer: Callable[[Any], bytes] | None) -> Callable[[Any], bytes] | None:
    """Server streams may yield messages already in wire form (bytes), sent as they are."""
    if serializer is None:
        return None

    def serialize(message: Any) -> bytes:
        return message if type(message) is bytes else serializer(message)

    return serialize


def _translate(error: Exception, method: str) -> Exception:
    """Database errors that are about the request or the moment, not a bug."""
    if isinstance(error, DataError):
        # The database refused a value (out of range, NUL in text) that validation let through.
        log.warning("database rejected a value", extra={"method": method, "error": type(error.orig).__name__})
        return InvalidArgument("a value in the request is out of range or malformed", reason="INVALID_VALUE")
    if isinstance(error, OperationalError):
        # A lock held past the busy timeout, or a lost connection: transient; the transaction
        # rolled back, nothing is half-written. Callers may retry.
        log.warning("database unavailable", extra={"method": method, "error": type(error.orig).__name__})
        return Unavailable("the database is busy or unreachable; retry", reason="DATABASE_UNAVAILABLE")
    return error


def _no_release() -> None:
    return None


def _is_message(request: Any) -> bool:
    return hasattr(request, "SerializeToString")


def _is_audit_failure(error: BaseException) -> bool:
    return isinstance(error, Unavailable) and error.reason == "AUDIT_UNAVAILABLE"
