"""Storage's calls to authz: the AccessDecisions port, the signing keys its tokens are verified
with, the operator check, and the roles and policies of files it creates and deletes."""

from __future__ import annotations

from collections.abc import Sequence

from securefiles.audit.peer import AuditPeer
from securefiles.authz.peer import AuthzPeer
from securefiles.authz.v1 import authz_pb2
from securefiles.common.peer_calls import call_peer
from securefiles.common.resource_names import project_name
from securefiles.storage.domain.ports import Access

# The domain's words for what a caller may do, in authz's numbers.
PERMISSIONS: dict[Access, authz_pb2.Permission.ValueType] = {
    Access.VIEW: authz_pb2.PERMISSION_VIEW,
    Access.USE: authz_pb2.PERMISSION_USE,
    Access.CREATE: authz_pb2.PERMISSION_CREATE,
    Access.ADMINISTER: authz_pb2.PERMISSION_ADMINISTER,
}


class AuthzClient(AuthzPeer):
    """What storage asks authz."""

    def audit_peer(self) -> AuditPeer:
        return AuditPeer("authz", self._channel, self._timeout)

    async def check_access(self, principal: str, permission: Access, resources: Sequence[str]) -> list[bool]:
        return await self._check_access(principal, PERMISSIONS[permission], resources)

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
        assignment = authz_pb2.RoleAssignment(scope=file_resource, principal=principal,
                                              role=authz_pb2.ROLE_ADMINISTRATOR)
        request = authz_pb2.SetRoleAssignmentRequest(role_assignment=assignment)
        await call_peer(self._stub.SetRoleAssignment, request, "authz", self._timeout)
