"""Storage's calls to authz: the AccessDecisions port, the signing keys its tokens are verified
with, the operator check, and the roles and policies of files it creates and deletes."""

from __future__ import annotations

from collections.abc import Sequence

from securefiles.audit.peer import AuditPeer
from securefiles.authz.v1 import authz_pb2, authz_pb2_grpc
from securefiles.common.errors import PermissionDenied
from securefiles.common.peer_calls import DEFAULT_TIMEOUT, call_peer, require_serving, secure_channel
from securefiles.common.principal import Principal
from securefiles.common.resource_names import project_name
from securefiles.common.tls import TlsFiles
from securefiles.common.tokens import PublishedKeys
from securefiles.storage.domain.ports import Access

# The domain's words for what a caller may do, in authz's numbers.
PERMISSIONS: dict[Access, authz_pb2.Permission.ValueType] = {
    Access.VIEW: authz_pb2.VIEW,
    Access.USE: authz_pb2.USE,
    Access.CREATE: authz_pb2.CREATE,
    Access.ADMINISTER: authz_pb2.ADMINISTER,
}


class AuthzClient:
    """What storage asks authz."""

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
        response = await call_peer(self._stub.GetSigningKeys, authz_pb2.GetSigningKeysRequest(), "authz",
                                   self._timeout)
        assert isinstance(response, authz_pb2.GetSigningKeysResponse)
        return PublishedKeys.from_raw({k.kid: k.public_key for k in response.keys}, response.revoked_token_ids)

    async def check_access(self, principal: str, permission: Access, resources: Sequence[str]) -> list[bool]:
        return await self._check_access(principal, PERMISSIONS[permission], resources)

    async def _check_access(self, principal: str, permission: authz_pb2.Permission.ValueType,
                            resources: Sequence[str]) -> list[bool]:
        request = authz_pb2.CheckAccessRequest(principal=principal, permission=permission, resources=list(resources))
        response = await call_peer(self._stub.CheckAccess, request, "authz", self._timeout)
        assert isinstance(response, authz_pb2.CheckAccessResponse)
        return list(response.allowed)

    async def require_operator(self, principal: Principal) -> None:
        """Audit reads and break-glass bookkeeping: a person holding the organization `operator` role."""
        if principal.is_user:
            (allowed,) = await self._check_access(principal.name, authz_pb2.OPERATE, ["organization"])
            if allowed:
                return
        raise PermissionDenied("this needs the operator role", reason="OPERATOR_REQUIRED")

    async def authorize_use(self, job_token: str, resource: str, metadata_only: bool = False) -> str:
        request = authz_pb2.AuthorizeUseRequest(job_token=job_token, resource=resource, metadata_only=metadata_only)
        response = await call_peer(self._stub.AuthorizeUse, request, "authz", self._timeout)
        assert isinstance(response, authz_pb2.AuthorizeUseResponse)
        return response.run

    async def authorize_uses(self, job_token: str, resources: Sequence[str]) -> str:
        request = authz_pb2.BatchAuthorizeUseRequest(job_token=job_token, resources=list(resources))
        response = await call_peer(self._stub.BatchAuthorizeUse, request, "authz", self._timeout)
        assert isinstance(response, authz_pb2.BatchAuthorizeUseResponse)
        return response.run

    async def authorize_break_glass(self, principal: str, resource: str) -> str:
        """The access request that covers `principal` downloading `resource`, or a denial."""
        request = authz_pb2.AuthorizeBreakGlassRequest(principal=principal, resource=resource)
        response = await call_peer(self._stub.AuthorizeBreakGlass, request, "authz", self._timeout)
        assert isinstance(response, authz_pb2.AccessRequest)
        return response.name

    async def filter_usable(self, job_token: str, resources: Sequence[str]) -> list[str]:
        request = authz_pb2.FilterUsableResourcesRequest(job_token=job_token, resources=list(resources))
        response = await call_peer(self._stub.FilterUsableResources, request, "authz", self._timeout)
        assert isinstance(response, authz_pb2.FilterUsableResourcesResponse)
        return list(response.resources)

    async def purge_resource_policies(self, resource: str) -> dict[str, int]:
        request = authz_pb2.PurgeResourcePoliciesRequest(resource=resource)
        response = await call_peer(self._stub.PurgeResourcePolicies, request, "authz", self._timeout)
        assert isinstance(response, authz_pb2.PurgeResourcePoliciesResponse)
        return dict(response.removed)

    async def project_region(self, project: str) -> str:
        request = authz_pb2.GetProjectRequest(name=project_name(project))
        response = await call_peer(self._stub.GetProject, request, "authz", self._timeout)
        assert isinstance(response, authz_pb2.Project)
        return response.region

    async def grant_file_administrator(self, file_resource: str, principal: str) -> None:
        assignment = authz_pb2.RoleAssignment(scope=file_resource, principal=principal, role=authz_pb2.ADMINISTRATOR)
        request = authz_pb2.SetRoleAssignmentRequest(role_assignment=assignment)
        await call_peer(self._stub.SetRoleAssignment, request, "authz", self._timeout)
