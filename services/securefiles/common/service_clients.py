"""Async clients one service uses to call another, over mutual TLS.

Every call has a deadline (never later than the caller's), carries the request id, and
turns a failed call into a domain error that keeps the remote ErrorInfo reason.
Connection failures become UNAVAILABLE: callers fail closed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import grpc
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from grpc_health.v1 import health_pb2, health_pb2_grpc

from securefiles.audit.v1 import audit_pb2, audit_pb2_grpc
from securefiles.authz.v1 import authz_pb2, authz_pb2_grpc
from securefiles.common.audit import Head
from securefiles.common.errors import PermissionDenied, Unavailable
from securefiles.common.interceptors import outbound_metadata, outbound_timeout
from securefiles.common.principal import Principal
from securefiles.common.resource_names import project_name, region_name
from securefiles.common.rich_status import error_info_of, from_rpc_error
from securefiles.common.tls import TlsFiles, channel_credentials, channel_options, kms_server_name
from securefiles.common.tokens import PublishedKeys
from securefiles.common.tracing import client_interceptors
from securefiles.kms.v1 import kms_pb2, kms_pb2_grpc

DEFAULT_TIMEOUT = 10.0
_TRANSPORT_FAILURES = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


def secure_channel(target: str, tls: TlsFiles, server_name: str = "") -> grpc.aio.Channel:
    """An aio channel presenting this service's certificate."""
    return grpc.aio.secure_channel(target, channel_credentials(tls), options=channel_options(target, server_name),
                                   interceptors=client_interceptors() or None)  # W3C trace context, if tracing


async def _call(method: grpc.aio.UnaryUnaryMultiCallable, request: object, service: str,
                timeout: float) -> object:
    try:
        return await method(request, timeout=outbound_timeout(timeout), metadata=outbound_metadata())
    except grpc.aio.AioRpcError as error:
        if error.code() in _TRANSPORT_FAILURES and error_info_of(error) is None:
            raise Unavailable(f"{service} is unavailable", reason=f"{service.upper()}_UNAVAILABLE") from None
        raise from_rpc_error(error, f"{service}.securefiles") from None


async def require_serving(channel: grpc.aio.Channel, service: str, timeout: float = 2.0) -> None:
    """Readiness of a peer: its gRPC health service says SERVING; else UNAVAILABLE."""
    try:
        response = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=timeout)
    except grpc.aio.AioRpcError:
        raise Unavailable(f"{service} is unavailable", reason="PEER_UNAVAILABLE") from None
    if response.status != health_pb2.HealthCheckResponse.SERVING:
        raise Unavailable(f"{service} is not serving", reason="PEER_UNAVAILABLE")


class AuditPeer:
    """Another service's audit chain, to witness its head and have it witness ours."""

    def __init__(self, service: str, channel: grpc.aio.Channel, timeout: float) -> None:
        self.service = service
        self._stub = audit_pb2_grpc.AuditLogServiceStub(channel)
        self._timeout = timeout

    async def head(self) -> Head:
        response = await _call(self._stub.GetAuditHead, audit_pb2.GetAuditHeadRequest(), self.service, self._timeout)
        assert isinstance(response, audit_pb2.AuditHead)
        return Head(self.service, response.sequence, response.hash)

    async def witness(self, head: Head) -> None:
        request = audit_pb2.WitnessAuditHeadRequest(head=audit_pb2.AuditHead(
            service=head.service, sequence=head.sequence, hash=head.hash))
        await _call(self._stub.WitnessAuditHead, request, self.service, self._timeout)


class AuthzClient:
    """What other services ask authz."""

    def __init__(self, target: str, tls: TlsFiles, timeout: float = DEFAULT_TIMEOUT) -> None:
        self._channel = secure_channel(target, tls)
        self._stub = authz_pb2_grpc.AuthorizationServiceStub(self._channel)
        self._timeout = timeout

    async def close(self) -> None:
        await self._channel.close()

    def audit_peer(self) -> AuditPeer:
        return AuditPeer("authz", self._channel, self._timeout)

    async def ready(self) -> None:
        await require_serving(self._channel, "authz")

    async def signing_keys(self) -> PublishedKeys:
        response = await _call(self._stub.GetSigningKeys, authz_pb2.GetSigningKeysRequest(), "authz", self._timeout)
        assert isinstance(response, authz_pb2.GetSigningKeysResponse)
        return PublishedKeys({k.kid: Ed25519PublicKey.from_public_bytes(k.public_key) for k in response.keys},
                             frozenset(response.revoked_token_ids))

    async def check_access(self, principal: str, permission: int, resources: Sequence[str]) -> list[bool]:
        request = authz_pb2.CheckAccessRequest(
            principal=principal, permission=permission, resources=list(resources)  # type: ignore[arg-type]
        )
        response = await _call(self._stub.CheckAccess, request, "authz", self._timeout)
        assert isinstance(response, authz_pb2.CheckAccessResponse)
        return list(response.allowed)

    async def require_operator(self, principal: Principal) -> None:
        """Key operations and audit reads: a person holding the organization `operator` role."""
        if principal.is_user:
            (allowed,) = await self.check_access(principal.name, authz_pb2.OPERATE, ["organization"])
            if allowed:
                return
        raise PermissionDenied("this needs the operator role", reason="OPERATOR_REQUIRED")

    async def authorize_use(self, job_token: str, resource: str, metadata_only: bool = False) -> str:
        request = authz_pb2.AuthorizeUseRequest(job_token=job_token, resource=resource, metadata_only=metadata_only)
        response = await _call(self._stub.AuthorizeUse, request, "authz", self._timeout)
        assert isinstance(response, authz_pb2.AuthorizeUseResponse)
        return response.run

    async def authorize_break_glass(self, principal: str, resource: str) -> str:
        """The access request that covers `principal` downloading `resource`, or a denial."""
        request = authz_pb2.AuthorizeBreakGlassRequest(principal=principal, resource=resource)
        response = await _call(self._stub.AuthorizeBreakGlass, request, "authz", self._timeout)
        assert isinstance(response, authz_pb2.AccessRequest)
        return response.name

    async def filter_usable(self, job_token: str, resources: Sequence[str]) -> list[str]:
        request = authz_pb2.FilterUsableResourcesRequest(job_token=job_token, resources=list(resources))
        response = await _call(self._stub.FilterUsableResources, request, "authz", self._timeout)
        assert isinstance(response, authz_pb2.FilterUsableResourcesResponse)
        return list(response.resources)

    async def purge_resource_policies(self, resource: str) -> dict[str, int]:
        request = authz_pb2.PurgeResourcePoliciesRequest(resource=resource)
        response = await _call(self._stub.PurgeResourcePolicies, request, "authz", self._timeout)
        assert isinstance(response, authz_pb2.PurgeResourcePoliciesResponse)
        return dict(response.removed)

    async def project_region(self, project: str) -> str:
        request = authz_pb2.GetProjectRequest(name=project_name(project))
        response = await _call(self._stub.GetProject, request, "authz", self._timeout)
        assert isinstance(response, authz_pb2.Project)
        return response.region

    async def grant_file_administrator(self, file_resource: str, principal: str) -> None:
        assignment = authz_pb2.RoleAssignment(scope=file_resource, principal=principal, role=authz_pb2.ADMINISTRATOR)
        request = authz_pb2.SetRoleAssignmentRequest(role_assignment=assignment)
        await _call(self._stub.SetRoleAssignment, request, "authz", self._timeout)


class KmsClient:
    """Data-key calls to one region's kms."""

    def __init__(self, region: str, target: str, tls: TlsFiles, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.region = region
        self._timeout = timeout
        self._channel = secure_channel(target, tls, kms_server_name(region))  # only this region's kms
        self._stub = kms_pb2_grpc.KeyManagementServiceStub(self._channel)
        self._key_ring = region_name(region)

    async def close(self) -> None:
        await self._channel.close()

    def audit_peer(self) -> AuditPeer:
        return AuditPeer(f"kms-{self.region}", self._channel, self._timeout)

    async def ready(self) -> None:
        await require_serving(self._channel, f"kms-{self.region}")

    async def generate_data_key(self, context: Mapping[str, str]) -> kms_pb2.GenerateDataKeyResponse:
        request = kms_pb2.GenerateDataKeyRequest(key_ring=self._key_ring, encryption_context=dict(context))
        response = await _call(self._stub.GenerateDataKey, request, "kms", self._timeout)
        assert isinstance(response, kms_pb2.GenerateDataKeyResponse)
        return response

    async def decrypt_data_key(self, wrapped: bytes, context: Mapping[str, str]) -> bytes:
        request = kms_pb2.DecryptDataKeyRequest(
            key_ring=self._key_ring, wrapped_key=wrapped, encryption_context=dict(context)
        )
        response = await _call(self._stub.DecryptDataKey, request, "kms", self._timeout)
        assert isinstance(response, kms_pb2.DecryptDataKeyResponse)
        return response.plaintext

    async def list_key_versions(self) -> list[kms_pb2.KeyVersion]:
        request = kms_pb2.ListKeyVersionsRequest(key_ring=self._key_ring)
        response = await _call(self._stub.ListKeyVersions, request, "kms", self._timeout)
        assert isinstance(response, kms_pb2.ListKeyVersionsResponse)
        return list(response.key_versions)

    async def reencrypt_data_key(
        self, wrapped: bytes, context: Mapping[str, str]
    ) -> kms_pb2.ReEncryptDataKeyResponse:
        request = kms_pb2.ReEncryptDataKeyRequest(
            key_ring=self._key_ring, wrapped_key=wrapped, encryption_context=dict(context)
        )
        response = await _call(self._stub.ReEncryptDataKey, request, "kms", self._timeout)
        assert isinstance(response, kms_pb2.ReEncryptDataKeyResponse)
        return response

