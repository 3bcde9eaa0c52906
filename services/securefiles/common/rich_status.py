"""Translate between domain errors and `google.rpc.Status` with one `ErrorInfo`."""

from __future__ import annotations

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from securefiles.common.errors import SecureFilesError, error_for_code


def to_rpc_status(error: SecureFilesError, domain: str) -> status_pb2.Status:
    """The rich status a server sends for `error`."""
    info = error_details_pb2.ErrorInfo(
        reason=error.reason, domain=error.domain or domain, metadata=error.metadata
    )
    detail = any_pb2.Any()
    detail.Pack(info)
    details = [detail]
    if error.retry_after is not None:
        retry = error_details_pb2.RetryInfo()
        retry.retry_delay.FromMilliseconds(max(1, int(error.retry_after * 1000)))
        packed = any_pb2.Any()
        packed.Pack(retry)
        details.append(packed)
    return status_pb2.Status(code=code_pb2.Code.Value(error.code), message=error.message, details=details)


def error_info_of(error: grpc.RpcError) -> error_details_pb2.ErrorInfo | None:
    """The ErrorInfo carried by a failed call, if any."""
    try:
        status = rpc_status.from_call(error)
    except (ValueError, AttributeError):
        return None
    if status is None:
        return None
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            return info
    return None


def from_rpc_error(error: grpc.RpcError, default_domain: str = "") -> SecureFilesError:
    """Turn a failed outbound call into a domain error, keeping reason and metadata."""
    code = error.code()
    code_name = code.name if code is not None else "UNKNOWN"
    message = error.details() or code_name
    info = error_info_of(error)
    if info is None:
        return error_for_code(code_name, message, reason=code_name, domain=default_domain or None)
    return error_for_code(
        code_name, message, reason=info.reason, metadata=dict(info.metadata), domain=info.domain
    )
