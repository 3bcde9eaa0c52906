"""The server interceptor: every cross-cutting concern of a call, composed from small policies.

In order: the call's context (`call_context.begin_call`, `request_ids`, `deadlines`), admission
and authentication (`admission`, `authentication`), the handler, then its ALLOW entry unless a
unit of work wrote it with the change (`call_audit`); a failure is audited, mapped to a status
with one ErrorInfo (`error_status`) and logged (`access_log`). Metrics and the serializer that
lets streams send ready-encoded messages: `rpc_measure`. Database errors are translated where
they happen (`common/db.py`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import grpc

from securefiles.common.access_log import log_call
from securefiles.common.admission import Admission
from securefiles.common.audit import AuditLog
from securefiles.common.authentication import UNAUTHENTICATED_METHOD_PREFIXES, Authenticator
from securefiles.common.call_audit import CallAudit
from securefiles.common.call_context import AllowOnce, begin_call, owe_allow, principal_var
from securefiles.common.client_address import client_address
from securefiles.common.deadlines import bind_deadline
from securefiles.common.error_status import abort_with
from securefiles.common.errors import Unauthenticated
from securefiles.common.limits import CallerLimits
from securefiles.common.request_ids import bind_request_id
from securefiles.common.rpc_measure import encoded_or, measured_stream, measured_unary

__all__ = ["ServiceInterceptor"]

_RESOURCE_FIELDS = ("name", "resource", "parent", "scope", "pipeline")


def _resource_of(request: Any) -> str:
    """What a call is about, for its audit entry, until the handler says more precisely."""
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


class ServiceInterceptor(grpc.aio.ServerInterceptor):
    """Authentication, limits, audit, error mapping, request ids and access logs for one service."""

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
        self._domain = f"{service}.securefiles"
        self._authenticator = authenticator
        self._admission = Admission(limits, public_methods)
        self._audit = CallAudit(audit, unaudited_methods)

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        method = handler_call_details.method
        authenticate = not method.startswith(UNAUTHENTICATED_METHOD_PREFIXES) and not self._admission.is_public(method)
        if handler.unary_unary:
            return grpc.unary_unary_rpc_method_handler(
                measured_unary(self._wrap_unary(handler.unary_unary, method, authenticate), "unary", method),
                handler.request_deserializer, handler.response_serializer,
            )
        if handler.stream_unary:
            return grpc.stream_unary_rpc_method_handler(
                measured_unary(self._wrap_unary(handler.stream_unary, method, authenticate), "client_stream", method),
                handler.request_deserializer, handler.response_serializer,
            )
        if handler.unary_stream:
            return grpc.unary_stream_rpc_method_handler(
                measured_stream(self._wrap_stream(handler.unary_stream, method, authenticate), "server_stream",
                                method),
                handler.request_deserializer, encoded_or(handler.response_serializer),
            )
        assert handler.stream_stream is not None  # the fourth kind
        return grpc.stream_stream_rpc_method_handler(
            measured_stream(self._wrap_stream(handler.stream_stream, method, authenticate), "bidi_stream", method),
            handler.request_deserializer, handler.response_serializer,
        )

    @asynccontextmanager
    async def _serving(self, request: Any, context: grpc.aio.ServicerContext[Any, Any], method: str,
                       authenticate: bool, request_streaming: bool) -> AsyncIterator[AllowOnce | None]:
        """One call, unary or streaming: set up, admit, yield the ALLOW entry it owes; a failure is
        audited, mapped and aborts the call; an access-log line either way."""
        started = time.perf_counter()
        accountable = authenticate or self._admission.is_public(method)
        release = _no_release
        try:
            await self._begin(context, authenticate, request, method)
            allow = self._audit.owed(method, accountable)
            owe_allow(allow)
            release = self._admission.admit(request_streaming, context, method)
            yield allow
        except (grpc.aio.AbortError, asyncio.CancelledError):
            raise
        except Exception as error:
            if self._audit.records_failure(accountable, error):
                self._admission.public_call_failed(method, error, context)
                await self._audit.record_failure(method, error, client_address(context))
            await abort_with(context, error, method, self._domain)
            raise  # unreachable: abort raises
        finally:
            release()
        if accountable:
            log_call(method, "OK", started=started)

    async def _begin(self, context: grpc.aio.ServicerContext[Any, Any], authenticate: bool, request: Any,
                     method: str) -> None:
        begin_call(method.rsplit("/", 1)[-1], _resource_of(request))
        bind_request_id(context)
        bind_deadline(context)
        if authenticate or self._admission.is_public(method):
            # A public method's request carries its own credential (an OIDC token): its failures
            # count against the same budget as failed authentications.
            self._admission.before_authentication(context)
        if authenticate:
            try:
                principal_var.set(await self._authenticator.authenticate(context))
            except Unauthenticated:
                self._admission.authentication_failed(context)
                raise

    def _wrap_unary(
        self, behavior: Callable[..., Awaitable[Any]], method: str, authenticate: bool
    ) -> Callable[..., Awaitable[Any]]:
        async def wrapped(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            async with self._serving(request, context, method, authenticate, not _is_message(request)) as allow:
                response = await behavior(request, context)
                if allow is not None:
                    await allow.wait()
            return response

        return wrapped

    def _wrap_stream(
        self, behavior: Callable[..., Any], method: str, authenticate: bool
    ) -> Callable[..., AsyncIterator[Any]]:
        # Any: grpc's stubs declare handlers synchronous; ours (grpc.aio) are async generators.
        async def wrapped(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
            async with self._serving(request, context, method, authenticate, True) as allow:
                # The message lives in a slot it leaves as it is yielded: while gRPC sends it,
                # this frame keeps no second reference to a (1 MiB) chunk alive.
                held: dict[str, Any] = {}
                async for held["message"] in behavior(request, context):
                    if allow is not None:
                        # Recorded before the first message leaves: no audit entry, no content.
                        await allow.wait()
                        allow = None
                    yield held.pop("message")
                if allow is not None:
                    await allow.wait()

        return wrapped


def _no_release() -> None:
    return None


def _is_message(request: Any) -> bool:
    return hasattr(request, "SerializeToString")
