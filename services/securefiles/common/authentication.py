"""Who is calling: a bearer token wins, else a service's client certificate."""

from __future__ import annotations

from typing import Any

import grpc

from securefiles.common.errors import Unauthenticated
from securefiles.common.principal import Principal
from securefiles.common.tls import SERVICE_IDENTITIES, peer_identity
from securefiles.common.tokens import TokenVerifier

# Reachable with a verified client certificate alone (the TLS handshake authenticated it).
UNAUTHENTICATED_METHOD_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.")


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
