"""How a failed call ends: a domain error becomes its status with one ErrorInfo; anything
unexpected becomes a generic INTERNAL (logged here, its details never sent)."""

from __future__ import annotations

import logging
from typing import Any

import grpc
from grpc_status import rpc_status

from securefiles.common.access_log import log_call
from securefiles.common.errors import SecureFilesError
from securefiles.common.rich_status import to_rpc_status

log = logging.getLogger("securefiles.rpc")


async def abort_with(context: grpc.aio.ServicerContext[Any, Any], error: BaseException, method: str,
                     domain: str) -> None:
    """Abort the call with `error`'s status (raises grpc.aio.AbortError) and log the call."""
    if isinstance(error, SecureFilesError):
        status = rpc_status.to_status(to_rpc_status(error, domain))
        log_call(method, error.code, error.reason)
    else:
        log.error("unexpected error", exc_info=error, extra={"method": method})
        internal = SecureFilesError("internal error", reason="INTERNAL")
        status = rpc_status.to_status(to_rpc_status(internal, domain))
        log_call(method, "INTERNAL", "INTERNAL")
    await context.abort(status.code, status.details, status.trailing_metadata)
