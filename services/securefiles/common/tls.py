"""TLS for servers and channels, and the caller's identity from its certificate.

Every service listens twice: a *public* port with server-authenticated TLS, where agents and
people connect with a token and no client certificate, and an *internal* port with mutual TLS,
where services prove who they are with their certificate. gRPC's Python API cannot ask for a
client certificate without requiring one, so the two cannot share a port; a service identity
therefore exists only on the internal port.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from securefiles.common.dev_pki import SPIFFE_PREFIX

# Explicit on every server and client (DESIGN: 1 MiB chunks plus framing).
MAX_MESSAGE_BYTES = 4 * 1024 * 1024

SERVICE_IDENTITIES = frozenset({"storage", "kms", "authz"})


@dataclass(frozen=True)
class TlsFiles:
    """PEM files of one identity and the CA that all peers trust."""

    ca: Path
    cert: Path
    key: Path

    def read(self) -> tuple[bytes, bytes, bytes]:
        return self.ca.read_bytes(), self.cert.read_bytes(), self.key.read_bytes()


def server_credentials(tls: TlsFiles) -> grpc.ServerCredentials:
    """Internal port: credentials that demand and verify a client certificate from our CA."""
    ca, cert, key = tls.read()
    return grpc.ssl_server_credentials([(key, cert)], root_certificates=ca, require_client_auth=True)


def public_server_credentials(tls: TlsFiles) -> grpc.ServerCredentials:
    """Public port: server-authenticated TLS; callers bring a bearer token, not a certificate."""
    return grpc.ssl_server_credentials([(tls.key.read_bytes(), tls.cert.read_bytes())])


def channel_credentials(tls: TlsFiles) -> grpc.ChannelCredentials:
    """Credentials that present our certificate and trust only our CA (service to service)."""
    ca, cert, key = tls.read()
    return grpc.ssl_channel_credentials(root_certificates=ca, private_key=key, certificate_chain=cert)


def client_channel_credentials(ca: Path | None) -> grpc.ChannelCredentials:
    """Credentials of an agent or a person: trust `ca` (else the system's roots), present nothing."""
    return grpc.ssl_channel_credentials(root_certificates=ca.read_bytes() if ca else None)


def kms_server_name(region: str) -> str:
    """The name each region's kms certificate carries, and the name its clients check: the kms
    of another region (another certificate, another key) is refused at the TLS handshake."""
    return f"kms-{region}"


def channel_options(target: str, server_name: str = "") -> list[tuple[str, object]]:
    """Options every channel uses: explicit message limits, keepalive, TLS name override.

    `server_name`: the name the server's certificate must carry (default: the target's host,
    `localhost` for loopback addresses)."""
    host = target.rsplit(":", 1)[0].strip("[]")
    options: list[tuple[str, object]] = [
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ("grpc.keepalive_time_ms", 30_000),
        ("grpc.keepalive_timeout_ms", 10_000),
        ("grpc.http2.max_pings_without_data", 0),
        ("grpc.enable_retries", 0),
    ]
    if server_name:
        options.append(("grpc.ssl_target_name_override", server_name))
    elif host in ("127.0.0.1", "::1", "0.0.0.0"):
        # Dev certificates name `localhost`; loopback IPs are in the SAN too, but some
        # resolvers hand back names, so pin the expected name.
        options.append(("grpc.ssl_target_name_override", "localhost"))
    return options


def peer_identity(context: grpc.ServicerContext | grpc.aio.ServicerContext[Any, Any]) -> str | None:
    """The SPIFFE service name of the peer's verified certificate (`storage`, …), if any."""
    auth = context.auth_context()
    for value in auth.get("peer_spiffe_id", []):
        uri = value.decode() if isinstance(value, bytes) else str(value)
        if uri.startswith(SPIFFE_PREFIX):
            return uri[len(SPIFFE_PREFIX):]
    return None
