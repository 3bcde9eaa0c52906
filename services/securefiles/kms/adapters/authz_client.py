"""kms's calls to authz: the signing keys its callers' tokens are verified with, and who is an operator."""

from __future__ import annotations

from securefiles.authz.v1 import authz_pb2, authz_pb2_grpc
from securefiles.common.errors import PermissionDenied
from securefiles.common.peer_calls import DEFAULT_TIMEOUT, call_peer, require_serving, secure_channel
from securefiles.common.principal import Principal
from securefiles.common.tls import TlsFiles
from securefiles.common.tokens import PublishedKeys


class AuthzClient:
    """What kms asks authz."""

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

    async def require_operator(self, principal: Principal) -> None:
        """Key operations and audit reads: a person holding the organization `operator` role."""
        if principal.is_user:
            request = authz_pb2.CheckAccessRequest(principal=principal.name, permission=authz_pb2.OPERATE,
                                                   resources=["organization"])
            response = await call_peer(self._stub.CheckAccess, request, "authz", self._timeout)
            assert isinstance(response, authz_pb2.CheckAccessResponse)
            if list(response.allowed) == [True]:
                return
        raise PermissionDenied("this needs the operator role", reason="OPERATOR_REQUIRED")
