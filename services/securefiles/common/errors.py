"""The exception tree of Securefiles, in one place.

Domain code raises these; one server interceptor maps them to a gRPC status with a
single `google.rpc.ErrorInfo` (UPPER_SNAKE `reason`). Messages never carry secrets.

    SecureFilesError            (code: INTERNAL)
    ├── InvalidArgument         INVALID_ARGUMENT
    ├── Unauthenticated         UNAUTHENTICATED
    ├── PermissionDenied        PERMISSION_DENIED
    ├── NotFound                NOT_FOUND
    ├── AlreadyExists           ALREADY_EXISTS
    ├── FailedPrecondition      FAILED_PRECONDITION
    ├── ResourceExhausted       RESOURCE_EXHAUSTED
    ├── DataLoss                DATA_LOSS
    ├── Unavailable             UNAVAILABLE
    └── DeadlineExceeded        DEADLINE_EXCEEDED
"""

from __future__ import annotations

from collections.abc import Mapping


class SecureFilesError(Exception):
    """Base class: a status code name, an UPPER_SNAKE reason and a safe message."""

    code = "INTERNAL"
    default_reason = "INTERNAL"

    def __init__(
        self,
        message: str,
        reason: str | None = None,
        metadata: Mapping[str, str] | None = None,
        domain: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason or self.default_reason
        self.metadata: dict[str, str] = dict(metadata or {})
        self.domain = domain
        self.retry_after = retry_after

    def __str__(self) -> str:
        return self.message


class InvalidArgument(SecureFilesError):
    code = "INVALID_ARGUMENT"
    default_reason = "INVALID_ARGUMENT"


class Unauthenticated(SecureFilesError):
    code = "UNAUTHENTICATED"
    default_reason = "UNAUTHENTICATED"


class PermissionDenied(SecureFilesError):
    code = "PERMISSION_DENIED"
    default_reason = "PERMISSION_DENIED"


class NotFound(SecureFilesError):
    code = "NOT_FOUND"
    default_reason = "NOT_FOUND"


class AlreadyExists(SecureFilesError):
    code = "ALREADY_EXISTS"
    default_reason = "ALREADY_EXISTS"


class FailedPrecondition(SecureFilesError):
    code = "FAILED_PRECONDITION"
    default_reason = "FAILED_PRECONDITION"


class Aborted(SecureFilesError):
    """A concurrent change won; the caller may retry with what is current now."""

    code = "ABORTED"
    default_reason = "ABORTED"


class ResourceExhausted(SecureFilesError):
    code = "RESOURCE_EXHAUSTED"
    default_reason = "RESOURCE_EXHAUSTED"


class DataLoss(SecureFilesError):
    code = "DATA_LOSS"
    default_reason = "DATA_LOSS"


class Unavailable(SecureFilesError):
    code = "UNAVAILABLE"
    default_reason = "UNAVAILABLE"


class DeadlineExceeded(SecureFilesError):
    code = "DEADLINE_EXCEEDED"
    default_reason = "DEADLINE_EXCEEDED"


_BY_CODE: dict[str, type[SecureFilesError]] = {
    cls.code: cls
    for cls in (
        InvalidArgument, Unauthenticated, PermissionDenied, NotFound, AlreadyExists,
        FailedPrecondition, Aborted, ResourceExhausted, DataLoss, Unavailable, DeadlineExceeded,
    )
}


def error_for_code(
    code: str,
    message: str,
    reason: str | None = None,
    metadata: Mapping[str, str] | None = None,
    domain: str | None = None,
) -> SecureFilesError:
    """Build the exception class that matches a status code name."""
    cls = _BY_CODE.get(code, SecureFilesError)
    return cls(message, reason=reason, metadata=metadata, domain=domain)
