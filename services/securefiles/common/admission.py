"""Per-caller limits around authentication: a failed-authentication budget per client (public
methods' own credentials count too), then rate and concurrent-stream limits per caller."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc

from securefiles.common.call_context import principal_var
from securefiles.common.client_address import client_address, clients_of
from securefiles.common.errors import SecureFilesError
from securefiles.common.limits import CallerLimits
from securefiles.common.principal import Principal


class Admission:
    """`CallerLimits` applied to one service's calls (no limits: everyone is admitted)."""

    def __init__(self, limits: CallerLimits | None, public_methods: frozenset[str]) -> None:
        self._limits = limits
        self._public = public_methods

    def is_public(self, method: str) -> bool:
        """Callable without credentials: the request carries its own (e.g. an OIDC token to exchange)."""
        return method.rsplit("/", 1)[-1] in self._public

    def before_authentication(self, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        """Before any token is looked at (AUTHENTICATION_THROTTLED once a client's budget is spent)."""
        if self._limits is not None:
            self._limits.before_authentication(clients_of(context))

    def authentication_failed(self, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        if self._limits is not None:
            self._limits.authentication_failed(clients_of(context))

    def public_call_failed(self, method: str, error: BaseException, context: grpc.aio.ServicerContext[Any, Any]
                           ) -> None:
        """A public method's refused credential counts as a failed authentication."""
        if (isinstance(error, SecureFilesError) and self.is_public(method)
                and error.code in ("UNAUTHENTICATED", "PERMISSION_DENIED")
                and error.reason not in ("RATE_LIMITED", "TOO_MANY_STREAMS")
                and (error.code == "UNAUTHENTICATED" or principal_var.get() is None)):
            self.authentication_failed(context)

    def admit(self, request_streaming: bool, context: grpc.aio.ServicerContext[Any, Any],
              method: str) -> Callable[[], None]:
        """Rate and stream limits, after authentication (we know who) and before any work; a public
        method's anonymous callers are limited per client address. Returns the release."""
        if self._limits is None:
            return _no_release
        principal = principal_var.get()
        if principal is None and self.is_public(method):
            principal = Principal("anonymous", f"address:{client_address(context)}")
        return self._limits.admit(principal, request_streaming)


def _no_release() -> None:
    return None
