"""Who is on the other end of a call, before (or without) authentication: its address and certificate."""

from __future__ import annotations

import hashlib
from typing import Any

import grpc

from securefiles.common.tls import SERVICE_IDENTITIES, peer_identity


def client_address(context: grpc.aio.ServicerContext[Any, Any]) -> str:
    """The client's IP address, without its port (`ipv4:1.2.3.4:5678` -> `1.2.3.4`)."""
    peer = context.peer() or ""
    kind, _, rest = peer.partition(":")
    if kind in ("ipv4", "ipv6"):
        return rest.rpartition(":")[0].strip("[]")
    return peer


def clients_of(context: grpc.aio.ServicerContext[Any, Any]) -> tuple[str, ...]:
    """Whom failed authentications are counted against: the address and, where one was presented,
    the client certificate. Services (verified by their certificate) are not throttled."""
    if peer_identity(context) in SERVICE_IDENTITIES:
        return ()
    clients = [f"address:{client_address(context)}"]
    certificate = list((context.auth_context() or {}).get("x509_pem_cert", ()))
    if certificate:
        pem = certificate[0] if isinstance(certificate[0], bytes) else str(certificate[0]).encode()
        clients.append("certificate:" + hashlib.sha256(pem).hexdigest())
    return tuple(clients)
