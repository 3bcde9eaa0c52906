"""What every other service asks authz: the signing keys its callers' tokens are verified with,
and whether a person is an operator. Storage's client adds the decisions it asks for."""

from __future__ import annotations

from collections.abc import Sequence

from securefiles.authz.v1 import authz_pb2, authz_pb2_grpc
from securefiles.common.errors import PermissionDenied
from securefiles.common.peer_calls import DEFAULT_TIMEOUT, call_peer, require_serving, secure_channel
from securefiles.common.principal import Principal
from securefiles.common.tls import TlsFiles
from securefiles.common.tokens import PublishedKeys


class AuthzPeer:
    """A channel to authz (mutual TLS, per-call deadline) and the questions every service asks."""

    def __init__(self, target: str, tls: TlsFiles, timeout: float = DEFAULT_TIMEOUT) -> None:
        self._channel = secure_channel(target, tls)
        self._stub = authz_pb2_grpc.AuthorizationServiceStub(self._channel)
        self._timeout = timeout

    async def close(self) -> None:
        await self._channel.close()

    async def ready(self) -> None:
        await require_serving(self._channel, "authz")

    async def signing_keys(self) -> PublishedKeys:
        response = await call_peer(self._stub.GetSigningKeys, authz_pb2.GetSigningKeysRequest(), "authz",
                                   self._timeout)
        assert isinstance(response, authz_pb2.GetSigningKeysResponse)
        return PublishedKeys.from_raw({k.kid: k.public_key for k in response.keys}, response.revoked_token_ids)

    async def _check_access(self, principal: str, permission: authz_pb2.Permission.ValueType,
                            resources: Sequence[str]) -> list[bool]:
        request = authz_pb2.CheckAccessRequest(principal=principal, permission=permission, resources=list(resources))
        response = await call_peer(self._stub.CheckAccess, request, "authz", self._timeout)
        assert isinstance(response, authz_pb2.CheckAccessResponse)
        return list(response.allowed)

    async def require_operator(self, principal: Principal) -> None:
        """Key operations, audit reads, break-glass bookkeeping: a person holding the
        organization `operator` role."""
        if principal.is_user:
            (allowed,) = await self._check_access(principal.name, authz_pb2.PERMISSION_OPERATE, ["organization"])
            if allowed:
                return
        raise PermissionDenied("this needs the operator role", reason="OPERATOR_REQUIRED")
