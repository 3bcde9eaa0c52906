"""Blocking channels to the services, with the caller's bearer token on every call."""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator
from typing import Any, TypeVar

import grpc

from securefiles.client.config import ClientConfig
from securefiles.common.errors import InvalidArgument, SecureFilesError, Unavailable
from securefiles.common.rich_status import error_info_of, from_rpc_error
from securefiles.common.tls import channel_options, client_channel_credentials

T = TypeVar("T")
DEFAULT_TIMEOUT = 30.0
_TRANSPORT = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


def translate(error: grpc.RpcError) -> SecureFilesError:
    """A failed call as a typed error that keeps the server's ErrorInfo reason."""
    if error.code() in _TRANSPORT and error_info_of(error) is None:
        code = error.code()
        reason = "DEADLINE_EXCEEDED" if code == grpc.StatusCode.DEADLINE_EXCEEDED else "UNAVAILABLE"
        detail = error.details() or ""
        return Unavailable(f"service unavailable: {detail}".rstrip(": "), reason=reason)
    return from_rpc_error(error)


class Transport:
    """Lazily opened TLS channels keyed by target (server-authenticated: the token says who we are)."""

    def __init__(self, config: ClientConfig, token: str,
                 shared_channels: dict[tuple[str, str], grpc.Channel] | None = None) -> None:
        self.config = config
        self.token = token
        # Channels shared by many clients (each with its own token) are their owner's to close.
        self._shared = shared_channels is not None
        self._channels: dict[tuple[str, str], grpc.Channel] = {} if shared_channels is None else shared_channels

    def channel(self, target: str, server_name: str = "") -> grpc.Channel:
        """A channel to `target`, whose certificate must name `server_name` if given."""
        if not target:
            raise InvalidArgument("no endpoint configured for this service", reason="INVALID_CONFIG")
        channel = self._channels.get((target, server_name))
        if channel is None:
            try:
                credentials = client_channel_credentials(self.config.ca_file)
            except OSError as error:
                raise InvalidArgument(f"cannot read TLS files: {error.strerror}: {error.filename}",
                                      reason="INVALID_CONFIG") from None
            created = grpc.secure_channel(target, credentials, options=channel_options(target, server_name))
            channel = self._channels.setdefault((target, server_name), created)  # one wins when threads race
            if channel is not created:
                created.close()
        return channel

    def metadata(self) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.token}"),) if self.token else ()

    def call(self, method: Callable[..., T], request: Any, timeout: float | None = DEFAULT_TIMEOUT) -> T:
        try:
            return method(request, timeout=timeout, metadata=self.metadata())
        except grpc.RpcError as error:
            raise translate(error) from None

    def stream(self, method: Callable[..., Iterator[T]], request: Any, timeout: float | None = None
               ) -> Generator[T, None, None]:
        try:
            yield from method(request, timeout=timeout, metadata=self.metadata())
        except grpc.RpcError as error:
            raise translate(error) from None

    def close(self) -> None:
        if self._shared:
            return
        for channel in self._channels.values():
            channel.close()
        self._channels.clear()
