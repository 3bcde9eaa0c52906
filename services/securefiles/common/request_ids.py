"""The request id: the caller's `x-request-id` (or a new one), logged and passed on to the next service."""

from __future__ import annotations

import uuid
from typing import Any

import grpc
from opentelemetry import trace

from securefiles.common.logging import request_id_var

_MAX_REQUEST_ID = 64


def bind_request_id(context: grpc.aio.ServicerContext[Any, Any]) -> None:
    request_id = ""
    for key, value in context.invocation_metadata() or ():
        if key == "x-request-id":
            request_id = str(value)[:_MAX_REQUEST_ID]
    request_id_var.set(request_id or uuid.uuid4().hex)
    trace.get_current_span().set_attribute("securefiles.request_id", request_id_var.get())  # no-op untraced


def outbound_metadata() -> tuple[tuple[str, str], ...]:
    """Metadata that carries the request id to the next service."""
    request_id = request_id_var.get()
    return (("x-request-id", request_id),) if request_id else ()
