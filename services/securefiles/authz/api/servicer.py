"""gRPC face of the authorization service."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

import grpc
from cryptography.hazmat.primitives import serialization
from google.protobuf import empty_pb2

from securefiles.authz.api.break_glass_api import BreakGlassServicerMixin
from securefiles.authz.api.checks_api import ChecksServicerMixin
from securefiles.authz.api.identity_api import IdentityServicerMixin, run_message
from securefiles.authz.domain.model import Permission, Pipeline, PipelinePermissions, Project, Role, RoleAssignment
from securefiles.authz.domain.service import Authorization
from securefiles.authz.domain.token_registry import IssuedToken, TokenRegistry
from securefiles.authz.v1 import authz_pb2, authz_pb2_grpc
from securefiles.common.call_context import audit_items, audit_note, current_principal
from securefiles.common.db_threads import DatabaseThreads
from securefiles.common.errors import FailedPrecondition, InvalidArgument
from securefiles.common.paging import keyset_page, sort_key
from securefiles.common.proto_time import duration_seconds, to_timestamp
from securefiles.common.resource_names import (
    PIPELINE_PERMISSIONS,
    ROLE_INHERITANCE,
    parse_file_singleton,
    parse_role_assignment,
    pipeline_permissions_name,
    project_name,
    require_agreement,
    role_assignment_name,
    role_inheritance_name,
)
from securefiles.common.tokens import ALGORITHM, TokenIssuer, TokenVerifier
from securefiles.common.unit_of_work import UnitsOfWork

log = logging.getLogger("securefiles.authz")


def _project(p: Project) -> authz_pb2.Project:
    return authz_pb2.Project(name=project_name(p.project_id), region=p.region, create_time=to_timestamp(p.created_at))


def _pipeline(p: Pipeline) -> authz_pb2.Pipeline:
    return authz_pb2.Pipeline(
        name=p.name, pipeline_id=p.pipeline_id, display_name=p.display_name, create_time=to_timestamp(p.created_at),
        etag=p.etag,
    )


def _assignment(a: RoleAssignment) -> authz_pb2.RoleAssignment:
    return authz_pb2.RoleAssignment(name=role_assignment_name(a.scope, a.principal), scope=a.scope,
                                    principal=a.principal, role=int(a.role))  # type: ignore[arg-type]


def _permissions(perms: PipelinePermissions, pipelines: list[Pipeline]) -> authz_pb2.PipelinePermissions:
    return authz_pb2.PipelinePermissions(
        name=pipeline_permissions_name(perms.resource), resource=perms.resource, all_pipelines=perms.all_pipelines,
        pipelines=[_pipeline(p) for p in pipelines],
    )


def _issued_token(t: IssuedToken) -> authz_pb2.IssuedToken:
    return authz_pb2.IssuedToken(
        name=t.name, token_id=t.token_id, subject=t.subject, kind=t.kind, issued_by=t.issued_by,
        create_time=to_timestamp(t.issued_at), expire_time=to_timestamp(t.expire_at),
        revoke_time=to_timestamp(t.revoked_at), revoked_by=t.revoked_by,
    )


def _role(value: int) -> Role:
    try:
        return Role(value)
    except ValueError:
        raise InvalidArgument("role is required", reason="INVALID_ROLE") from None


def _permission(value: int) -> Permission:
    for permission in Permission:
        if int(permission.value) == value:
            return permission
    raise InvalidArgument("permission is required", reason="INVALID_PERMISSION")


class AuthorizationServicer(ChecksServicerMixin, BreakGlassServicerMixin, IdentityServicerMixin,
                            authz_pb2_grpc.AuthorizationServiceServicer):
    def __init__(self, authorization: Authorization, issuer: TokenIssuer, verifier: TokenVerifier,
                 database: DatabaseThreads, changes: UnitsOfWork) -> None:
        self._authz = authorization
        self._changes = changes  # a change and its audit entry: one transaction
        self._issuer = issuer
        self._verifier = verifier
        self._db = database  # every use case reads or writes the database: off the event loop

    async def IssueToken(
        self, request: authz_pb2.IssueTokenRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> authz_pb2.IssueTokenResponse:
        audit_note(subject=request.principal, requested_ttl_seconds=duration_seconds(request.ttl, 0))
        token, exp, issued_by = await self._changes.run_noted(
            lambda issued: audit_note(issued_by=issued[2],
                                      expire_time=dt.datetime.fromtimestamp(issued[1], dt.UTC).isoformat()),
            self._authz.issue_token, current_principal(), request.principal, duration_seconds(request.ttl, 0))
        response = authz_pb2.IssueTokenResponse(token=token, issued_by=issued_by)
        response.expire_time.FromSeconds(exp)
        return response

    async def GetSigningKeys(
        self, request: authz_pb2.GetSigningKeysRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> authz_pb2.GetSigningKeysResponse:
        current_principal()
        raw = self._issuer.public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return authz_pb2.GetSigningKeysResponse(
            keys=[authz_pb2.SigningKey(kid=self._issuer.kid, algorithm=ALGORITHM, public_key=raw)],
            revoked_token_ids=sorted(await self._db.run(self._authz.tokens.revoked_ids)) if self._authz.tokens else [],
        )

    async def ListTokens(
        self, request: authz_pb2.ListTokensRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> authz_pb2.ListTokensResponse:
        tokens = await self._db.run(self._token_registry.list, current_principal(), request.subject,
                                    request.include_ended)
        return authz_pb2.ListTokensResponse(tokens=[_issued_token(t) for t in tokens])

    async def RevokeToken(
        self, request: authz_pb2.RevokeTokenRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> authz_pb2.IssuedToken:
        revoked = await self._changes.run_noted(
            lambda t: audit_note(t.name, subject=t.subject, issued_by=t.issued_by),
            self._token_registry.revoke, current_principal(), request.name)
        self._verifier.revoke(revoked.token_id)  # at once here; everywhere else at their next refresh
        return _issued_token(revoked)

    @property
    def _token_registry(self) -> TokenRegistry:
        if self._authz.tokens is None:
            raise FailedPrecondition("the token registry is not configured", reason="TOKENS_DISABLED")
        return self._authz.tokens

    async def CreateProject(
        self, request: authz_pb2.CreateProjectRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> authz_pb2.Project:
        require_agreement(request.project.name, project_name(request.project_id), "project.name")
        return _project(await self._changes.run(self._authz.library.create_project, current_principal(),
                                                request.project_id, request.project.region))

    async def GetProject(
        self, request: authz_pb2.GetProjectRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> authz_pb2.Project:
        return _project(await self._db.run(self._authz.library.get_project, current_principal(), request.name))

    async def ListProjects(
        self, request: authz_pb2.ListProjectsRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> authz_pb2.ListProjectsResponse:
        projects = await self._db.run(self._authz.library.list_projects, current_principal())
        page, token = keyset_page(projects, lambda p: p.project_id, "projects", "", request.page_size,
                                  request.page_token)
        return authz_pb2.ListProjectsResponse(projects=[_project(p) for p in page], next_page_token=token)

    async def SetRoleAssignment(
        self, request: authz_pb2.SetRoleAssignmentRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> authz_pb2.RoleAssignment:
        a = request.role_assignment
        require_agreement(a.name, role_assignment_name(a.scope, a.principal), "role_assignment.name")
        assignment = RoleAssignment(a.scope, a.principal, _role(a.role))
        return _assignment(await self._changes.run(self._authz.library.set_role, current_principal(), assignment))

    async def ListRoleAssignments(
        self, request: authz_pb2.ListRoleAssignmentsRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> authz_pb2.ListRoleAssignmentsResponse:
        assignments, inherit = await self._db.run(self._authz.library.list_roles, current_principal(), request.parent)
        page, token = keyset_page(assignments, lambda a: f"{a.principal}\0{a.role.name}", request.parent, "",
                                  request.page_size, request.page_token)
        return authz_pb2.ListRoleAssignmentsResponse(
            role_assignments=[_assignment(a) for a in page], inherit_from_library=inherit, next_page_token=token
        )

    async def DeleteRoleAssignment(
        self, request: authz_pb2.DeleteRoleAssignmentRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> empty_pb2.Empty:
        scope, principal = parse_role_assignment(request.name)
        await self._changes.run(self._authz.library.delete_role, current_principal(), scope, principal)
        return empty_pb2.Empty()

    async def SetRoleInheritance(
        self, request: authz_pb2.SetRoleInheritanceRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> authz_pb2.RoleInheritance:
        file = parse_file_singleton(request.name, ROLE_INHERITANCE)
        inherit = await self._changes.run(self._authz.library.set_inheritance, current_principal(), file,
                                          request.inherit_from_library)
        return authz_pb2.RoleInheritance(name=role_inheritance_name(file), scope=file, inherit_from_library=inherit)

    async def CheckAccess(
        self, request: authz_pb2.CheckAccessRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> authz_pb2.CheckAccessResponse:
        allowed = await self._db.run(self._authz.library.check_access,
            current_principal(), request.principal, _permission(request.permission), list(request.resources)
        )
        return authz_pb2.CheckAccessResponse(allowed=allowed)

    async def CreatePipeline(
        self, request: authz_pb2.CreatePipelineRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> authz_pb2.Pipeline:
        return _pipeline(
            await self._changes.run(self._authz.pipelines.create_pipeline, current_principal(), request.parent,
                                    request.pipeline.display_name)
        )

    async def ListPipelines(
        self, request: authz_pb2.ListPipelinesRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> authz_pb2.ListPipelinesResponse:
        pipelines = await self._db.run(self._authz.pipelines.list_pipelines, current_principal(), request.parent)
        page, token = keyset_page(pipelines, lambda p: sort_key(p.pipeline_id), request.parent, "",
                                  request.page_size, request.page_token)
        return authz_pb2.ListPipelinesResponse(pipelines=[_pipeline(p) for p in page], next_page_token=token)

    async def SetPipelinePermission(
        self, request: authz_pb2.SetPipelinePermissionRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> authz_pb2.PipelinePermissions:
        file = parse_file_singleton(request.name, PIPELINE_PERMISSIONS)
        perms, pipelines = await self._changes.run(self._authz.pipelines.set_pipeline_permission,
            current_principal(), file, request.pipeline, request.all_pipelines, request.authorized
        )
        return _permissions(perms, pipelines)

    async def GetPipelinePermissions(
        self, request: authz_pb2.GetPipelinePermissionsRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> authz_pb2.PipelinePermissions:
        perms, pipelines = await self._db.run(self._authz.pipelines.pipeline_permissions, current_principal(),
                                              parse_file_singleton(request.name, PIPELINE_PERMISSIONS))
        return _permissions(perms, pipelines)

    async def DeletePipeline(
        self, request: authz_pb2.DeletePipelineRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> empty_pb2.Empty:
        await self._changes.run(self._authz.pipelines.delete_pipeline, current_principal(), request.name)
        return empty_pb2.Empty()

    async def ListRuns(
        self, request: authz_pb2.ListRunsRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> authz_pb2.ListRunsResponse:
        runs, next_token = await self._db.run(self._authz.pipelines.list_runs, current_principal(), request.parent,
                                              request.page_size, request.page_token, request.running_only)
        return authz_pb2.ListRunsResponse(runs=[run_message(r) for r in runs], next_page_token=next_token)

    async def StartRun(
        self, request: authz_pb2.StartRunRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> authz_pb2.StartRunResponse:
        # The entry goes in with the run: it names what was asked for.
        audit_note(request.pipeline, branch=request.branch,
                   requested_by=request.requested_by or current_principal().name,
                   requested_ttl_seconds=duration_seconds(request.ttl, 0))
        # A ttl given as zero is a mistake to refuse, not a request for the default.
        ttl = duration_seconds(request.ttl, 0) if request.HasField("ttl") else None
        run, token = await self._changes.run(self._authz.pipelines.start_run, current_principal(), request.pipeline,
                                             request.branch, request.requested_by, ttl)
        return authz_pb2.StartRunResponse(run=run_message(run), job_token=token)

    async def CompleteRun(
        self, request: authz_pb2.CompleteRunRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> authz_pb2.Run:
        caller = current_principal()
        if caller.is_job:
            # A revoked or completed job token must not complete anything again.
            await self._db.run(self._authz.active_run_of, caller)
        # Completing the run and releasing its exclusive locks: one unit of work, with its entry.
        return run_message(await self._changes.run(self._authz.pipelines.complete_run, caller, request.name))

    async def AuthorizeUse(
        self, request: authz_pb2.AuthorizeUseRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> authz_pb2.AuthorizeUseResponse:
        caller = current_principal()
        self._authz.require_storage(caller)
        job = await self._verifier.verify(request.job_token)
        run = await self._db.run(self._authz.authorize_use, caller, job, request.resource,
                                 evaluate_checks=not request.metadata_only)
        return authz_pb2.AuthorizeUseResponse(run=run.name)

    async def BatchAuthorizeUse(
        self, request: authz_pb2.BatchAuthorizeUseRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> authz_pb2.BatchAuthorizeUseResponse:
        caller = current_principal()
        self._authz.require_storage(caller)
        job = await self._verifier.verify(request.job_token)
        resources = list(request.resources)
        # A refusal is one entry naming the file refused; an allowance, one entry per file.
        run = await self._db.run(self._authz.authorize_uses, caller, job, resources, audit_note)
        audit_items([(resource, {}) for resource in resources])
        return authz_pb2.BatchAuthorizeUseResponse(run=run.name)

    async def PurgeResourcePolicies(
        self, request: authz_pb2.PurgeResourcePoliciesRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> authz_pb2.PurgeResourcePoliciesResponse:
        # Its audit entry commits with the removal.
        removed = await self._changes.run(self._authz.purge_resource, current_principal(), request.resource)
        log.info("policies of a deleted file purged",
                 extra={"resource": request.resource, **{kind: str(n) for kind, n in removed.items() if n}})
        return authz_pb2.PurgeResourcePoliciesResponse(removed=removed)

    async def FilterUsableResources(
        self, request: authz_pb2.FilterUsableResourcesRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> authz_pb2.FilterUsableResourcesResponse:
        caller = current_principal()
        self._authz.require_storage(caller)
        job = await self._verifier.verify(request.job_token)
        return authz_pb2.FilterUsableResourcesResponse(
            resources=await self._db.run(self._authz.filter_usable, caller, job, list(request.resources)))
