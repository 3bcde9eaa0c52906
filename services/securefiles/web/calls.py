"""The console's calls to the services, made as the signed-in person.

Each request gets a `SecureFilesClient` holding that person's session token (never a token of
the console's own), used in a worker thread: the gRPC client blocks, the event loop must not.
The TLS channels are shared (a token travels with each call, not with the channel), so a page
costs no handshake.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import grpc
from starlette.concurrency import run_in_threadpool

from securefiles.client.api import SecureFilesClient
from securefiles.client.config import ClientConfig

T = TypeVar("T")


class Services:
    """Where the services are (public ports) and how to call them as someone."""

    def __init__(self, config: ClientConfig) -> None:
        self.config = config
        self._channels: dict[tuple[str, str], grpc.Channel] = {}

    async def as_person(self, token: str, project: str, call: Callable[[SecureFilesClient], T]) -> T:
        def run() -> T:
            with SecureFilesClient(self.config, token=token, project=project, shared_channels=self._channels) as client:
                return call(client)

        return await run_in_threadpool(run)

    async def anonymous(self, call: Callable[[SecureFilesClient], T]) -> T:
        """Calls that need no token: the sign-in configuration, and SignIn itself."""
        return await self.as_person("", self.config.project, call)
