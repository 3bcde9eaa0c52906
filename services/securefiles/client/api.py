"""`SecureFilesClient`: the one entry point of the Python client.

Its typed clients (`client.files`, …) return the client's own types (`client.types`); its flat
methods below return the generated messages and are what those clients call (older tests still use
them directly; the CLI and the web console never do).

Errors are the exceptions of `securefiles.common.errors` (re-exported by
`securefiles.client`), each carrying the server's `ErrorInfo.reason`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import os
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import replace
from pathlib import Path
from typing import BinaryIO, TypeVar

import grpc
from google.protobuf import field_mask_pb2
from google.protobuf.duration_pb2 import Duration
from grpc_health.v1 import health_pb2, health_pb2_grpc

from securefiles.audit.v1 import audit_pb2, audit_pb2_grpc
from securefiles.authz.v1 import authz_pb2, authz_pb2_grpc
from securefiles.client.audit import AuditClient
from securefiles.client.checks import ChecksClient
from securefiles.client.config import ClientConfig, load_config
from securefiles.client.credentials import Session, load_session, save_session
from securefiles.client.download import (
    DownloadedFile,
    Progress,
    download_many_once,
    download_with_retries,
    prepare_destination,
    with_retries,
)
from securefiles.client.file_names import NO_FILE_ID, display_name, display_name_filter, full_name
from securefiles.client.files import FilesClient
from securefiles.client.identity_api import IdentityCalls
from securefiles.client.job_identity import job_claims, oidc_token_from_ci
from securefiles.client.keys import KeysClient
from securefiles.client.list_filter import combined_filter
from securefiles.client.login import LoginClient
from securefiles.client.organization import (
    BreakGlassClient,
    ProjectsClient,
    RolesClient,
    TokensClient,
    TrustsClient,
)
from securefiles.client.paging import all_pages, pages
from securefiles.client.pipelines import PipelinesClient
from securefiles.client.sign_in import Provider
from securefiles.client.sign_in import refresh as refresh_tokens
from securefiles.client.transport import Transport
from securefiles.common.errors import FailedPrecondition, InvalidArgument, NotFound, SecureFilesError
from securefiles.common.resource_names import (
    ANY_PIPELINE,
    approval_name,
    file_name,
    file_version_name,
    key_version_name,
    library_name,
    pipeline_name,
    pipeline_permissions_name,
    project_name,
    region_name,
    role_assignment_name,
    role_inheritance_name,
)
from securefiles.common.tls import kms_server_name
from securefiles.kms.v1 import kms_pb2, kms_pb2_grpc
from securefiles.storage.v1 import storage_pb2, storage_pb2_grpc

CHUNK_BYTES = 1024 * 1024
ROLES = {"reader": authz_pb2.ROLE_READER, "user": authz_pb2.ROLE_USER, "creator": authz_pb2.ROLE_CREATOR,
         "administrator": authz_pb2.ROLE_ADMINISTRATOR, "operator": authz_pb2.ROLE_OPERATOR,
         "orchestrator": authz_pb2.ROLE_ORCHESTRATOR}


T = TypeVar("T")


def _duration(seconds: int | None) -> Duration | None:
    return Duration(seconds=seconds) if seconds else None


class SecureFilesClient(IdentityCalls):
    """Talks to storage, authz and kms with one token and one project."""

    def __init__(self, config: ClientConfig, token: str | None = None, project: str | None = None,
                 shared_channels: dict[tuple[str, str], grpc.Channel] | None = None) -> None:
        self.config = config
        self.project = project or config.project
        self._transport = Transport(config, config.token if token is None else token, shared_channels)

    @classmethod
    def from_environment(cls, env: Mapping[str, str] | None = None, job: bool = False) -> SecureFilesClient:
        """Config file + `SECUREFILES_*` overrides. With `job=True`, the agent's client: the job's
        token (`SECUREFILES_JOB_TOKEN`, else the CI provider's OIDC token exchanged for one; see
        `client.job_identity`) and the job's own project."""
        env = os.environ if env is None else env
        config = load_config(env)
        if not job:
            session = None if env.get("SECUREFILES_TOKEN") else load_session(config.authz, env)
            return cls(config, token=cls._session_token(config, session, env) if session else None)
        token = env.get("SECUREFILES_JOB_TOKEN", "")
        if not token:
            oidc_token = oidc_token_from_ci(env)
            if oidc_token is None:
                raise InvalidArgument(
                    "no job identity: set SECUREFILES_JOB_TOKEN, or run where the CI provider gives an OIDC token "
                    "(GitHub Actions with `id-token: write`, or SECUREFILES_OIDC_TOKEN[_FILE])",
                    reason="MISSING_JOB_TOKEN")
            with cls(config, token="") as anonymous:
                token = anonymous.exchange_token(oidc_token).access_token
        return cls(config, token=token, project=job_claims(token).project)

    @classmethod
    def _session_token(cls, config: ClientConfig, session: Session, env: Mapping[str, str]) -> str:
        """A signed-in person's session token, refreshed at the provider when it is about to expire."""
        if not (session.due() and session.refresh_token and session.token_endpoint):
            return session.token
        provider = Provider(session.issuer, session.client_id, (), session.token_endpoint)
        try:
            tokens = refresh_tokens(provider, session.refresh_token)
            with cls(config, token="") as anonymous:
                signed = anonymous.sign_in(tokens.id_token)
        except SecureFilesError:
            return session.token  # the services will say it expired: `securefiles login` again
        renewed = replace(session, token=signed.token, expire_time=signed.expire_time.seconds,
                          refresh_token=tokens.refresh_token)
        save_session(renewed, env)
        return renewed.token

    @property
    def token(self) -> str:
        """The bearer token this client calls with."""
        return self._transport.token

    def close(self) -> None:
        self._transport.close()

    def __enter__(self) -> SecureFilesClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- the typed clients (they return `client.types`, not generated messages) -------

    @property
    def files(self) -> FilesClient:
        return FilesClient(self)

    @property
    def pipelines(self) -> PipelinesClient:
        return PipelinesClient(self)

    @property
    def keys(self) -> KeysClient:
        return KeysClient(self)

    @property
    def audit(self) -> AuditClient:
        return AuditClient(self)

    @property
    def projects(self) -> ProjectsClient:
        return ProjectsClient(self)

    @property
    def roles(self) -> RolesClient:
        return RolesClient(self)

    @property
    def tokens(self) -> TokensClient:
        return TokensClient(self)

    @property
    def access(self) -> BreakGlassClient:
        return BreakGlassClient(self)

    @property
    def checks(self) -> ChecksClient:
        return ChecksClient(self)

    @property
    def trusts(self) -> TrustsClient:
        return TrustsClient(self)

    @property
    def login(self) -> LoginClient:
        return LoginClient(self)

    # -- stubs ------------------------------------------------------------------------

    @property
    def _storage(self) -> storage_pb2_grpc.SecureFileServiceStub:
        return storage_pb2_grpc.SecureFileServiceStub(self._transport.channel(self.config.storage))

    @property
    def _authz(self) -> authz_pb2_grpc.AuthorizationServiceStub:
        return authz_pb2_grpc.AuthorizationServiceStub(self._transport.channel(self.config.authz))

    def _kms(self, region: str | None) -> tuple[kms_pb2_grpc.KeyManagementServiceStub, str]:
        regions = self.config.regions
        if region is None:
            if len(regions) != 1:
                raise InvalidArgument(f"choose a region with --region ({', '.join(regions) or 'none configured'})",
                                      reason="REGION_REQUIRED")
            region = regions[0]
        target = self.config.kms.get(region)
        if not target:
            raise InvalidArgument(f"no kms endpoint for region {region!r}", reason="UNKNOWN_REGION")
        return kms_pb2_grpc.KeyManagementServiceStub(self._transport.channel(target, kms_server_name(region))), region

    def file_resource(self, name: str) -> str:
        """The id-based name of the file a user names: a full resource name as it is; anything else
        is a display name, looked up through ListSecureFiles' filter (the one place a display name
        becomes a name). Display names are unique in a project: at most one file matches."""
        if (given := full_name(name)) is not None:
            return given
        wanted = display_name(name)
        request = storage_pb2.ListSecureFilesRequest(parent=project_name(self.project),
                                                     filter=display_name_filter(wanted))
        for response in pages(lambda r: self._transport.call(self._storage.ListSecureFiles, r), request):
            for found in response.secure_files:
                if found.display_name == wanted:
                    return found.name
        # No file the caller may see has it: the server's own answer for a file that does not exist
        # (FILE_NOT_FOUND to a member, PERMISSION_DENIED to an outsider, a refused read in the audit
        # log), as a name that was looked up directly used to get.
        try:
            self._transport.call(self._storage.GetSecureFile, storage_pb2.GetSecureFileRequest(
                name=file_name(self.project, NO_FILE_ID)))
        except NotFound:
            pass
        raise NotFound(f"secure file {name!r} not found in project {self.project}", reason="FILE_NOT_FOUND")

    def _download_request(self, name: str) -> storage_pb2.DownloadSecureFileRequest:
        """A download by name, or by display name in the same call (no lookup first: the download
        path is the one agents wait on)."""
        if (given := full_name(name)) is not None:
            return storage_pb2.DownloadSecureFileRequest(name=given)
        return storage_pb2.DownloadSecureFileRequest(parent=project_name(self.project),
                                                     display_name=display_name(name))

    # -- files ------------------------------------------------------------------------

    def upload_file(
        self, source: Path | BinaryIO | bytes, name: str | None = None, properties: Mapping[str, str] | None = None,
        parse_password: bytes | None = None,
    ) -> storage_pb2.SecureFile:
        """Upload a path, an open binary file or bytes as a new secure file.

        `parse_password` only lets the server read metadata (PKCS#12, keystores); it is never stored."""
        with _Source(source, name) as (display_name, handle, expected):
            first = storage_pb2.UploadSecureFileRequest(metadata=storage_pb2.UploadMetadata(
                parent=project_name(self.project),
                secure_file=storage_pb2.SecureFile(display_name=display_name, properties=dict(properties or {})),
                expected_size_bytes=expected, parse_password=parse_password or b"",
            ))
            messages = _stream(first, handle, storage_pb2.UploadSecureFileRequest)
            return self._transport.call(self._storage.UploadSecureFile, messages, timeout=300)

    def replace_file(
        self, name: str, source: Path | BinaryIO | bytes, reason: str = "", parse_password: bytes | None = None
    ) -> storage_pb2.SecureFile:
        """Store new content as a new version (the library must allow replacing)."""
        with _Source(source, name) as (_display, handle, expected):
            first = storage_pb2.ReplaceSecureFileContentRequest(metadata=storage_pb2.ReplaceMetadata(
                name=self.file_resource(name), reason=reason, expected_size_bytes=expected,
                parse_password=parse_password or b""))
            messages = _stream(first, handle, storage_pb2.ReplaceSecureFileContentRequest)
            return self._transport.call(self._storage.ReplaceSecureFileContent, messages, timeout=300)

    def list_versions(self, name: str) -> list[storage_pb2.SecureFileVersion]:
        return list(all_pages(lambda r: self._transport.call(self._storage.ListSecureFileVersions, r),
                              storage_pb2.ListSecureFileVersionsRequest(parent=self.file_resource(name)), "versions"
                              ).versions)

    def get_version(self, name: str, version: int) -> storage_pb2.SecureFileVersion:
        """One kept version of a file (a display name or a name), by its own name."""
        return self._transport.call(self._storage.GetSecureFileVersion, storage_pb2.GetSecureFileVersionRequest(
            name=file_version_name(self.file_resource(name), version)))

    def rollback_file(self, name: str, version: int, reason: str = "") -> storage_pb2.SecureFile:
        return self._transport.call(self._storage.RollbackSecureFile, storage_pb2.RollbackSecureFileRequest(
            name=self.file_resource(name), version=version, reason=reason))

    def get_library(self) -> storage_pb2.Library:
        return self._transport.call(self._storage.GetLibrary, storage_pb2.GetLibraryRequest(
            name=library_name(self.project)))

    def update_library(self, allow_replace: bool | None = None, keep_versions: int | None = None
                       ) -> storage_pb2.Library:
        paths = [p for p, v in (("allow_replace", allow_replace), ("keep_versions", keep_versions)) if v is not None]
        if not paths:
            raise InvalidArgument("nothing to update", reason="INVALID_UPDATE_MASK")
        library = storage_pb2.Library(name=library_name(self.project), allow_replace=bool(allow_replace),
                                      keep_versions=keep_versions or 0)
        return self._transport.call(self._storage.UpdateLibrary, storage_pb2.UpdateLibraryRequest(
            library=library, update_mask=field_mask_pb2.FieldMask(paths=paths)))

    def get_file(self, name: str) -> storage_pb2.SecureFile:
        return self._transport.call(self._storage.GetSecureFile,
                                    storage_pb2.GetSecureFileRequest(name=self.file_resource(name)))

    def list_files(
        self, name_pattern: str = "", page_size: int = 0, expires_before: dt.datetime | None = None,
        filter: str = "",
    ) -> Iterator[storage_pb2.SecureFile]:
        """Every file the caller may view (a job: may use), following pages; `filter` is ListSecureFiles'
        AIP-160 filter, to which `name_pattern` and `expires_before` are added as terms."""
        request = storage_pb2.ListSecureFilesRequest(
            parent=project_name(self.project), page_size=page_size,
            filter=combined_filter(filter, name_pattern, expires_before))
        for response in pages(lambda r: self._transport.call(self._storage.ListSecureFiles, r), request):
            yield from response.secure_files

    def list_authorized_files(self, name_pattern: str = "") -> list[storage_pb2.SecureFile]:
        """As a pipeline job: the files its pipeline is authorized to use."""
        return list(self.list_files(name_pattern))

    def update_file(
        self, name: str, rename: str | None = None, properties: Mapping[str, str] | None = None, etag: str = ""
    ) -> storage_pb2.SecureFile:
        """`etag` (from a Get or List): change the file only if nobody changed it since (ABORTED ETAG_MISMATCH)."""
        paths = []
        wanted = storage_pb2.SecureFile(name=self.file_resource(name), etag=etag)
        if rename is not None:
            wanted.display_name = rename
            paths.append("display_name")
        if properties is not None:
            wanted.properties.update(properties)
            paths.append("properties")
        if not paths:
            raise InvalidArgument("nothing to update: give --rename or --property", reason="INVALID_UPDATE_MASK")
        return self._transport.call(self._storage.UpdateSecureFile, storage_pb2.UpdateSecureFileRequest(
            secure_file=wanted, update_mask=field_mask_pb2.FieldMask(paths=paths)))

    def delete_file(self, name: str) -> None:
        self._transport.call(self._storage.DeleteSecureFile,
                             storage_pb2.DeleteSecureFileRequest(name=self.file_resource(name)))

    def download_secure_file(
        self, name: str, dest: Path, retry_count: int = 8, timeout: float | None = None,
        progress: Progress | None = None, wait_for_checks: float = 0,
        on_pending: Callable[[FailedPrecondition], None] | None = None,
    ) -> DownloadedFile:
        """As a pipeline job: download `name` into directory `dest` and return where it is.

        With `wait_for_checks` (seconds), keep polling while the file's checks are pending."""
        return _while_pending(lambda: download_with_retries(
            self._transport, self._download_request(name), prepare_destination(dest), retry_count, timeout, progress,
        ), wait_for_checks, on_pending)

    def download_secure_files(
        self, names: list[str], dest: Path, retry_count: int = 8, timeout: float | None = None,
        progress: Callable[[str], Progress | None] | None = None, wait_for_checks: float = 0,
        on_pending: Callable[[FailedPrecondition], None] | None = None,
    ) -> list[DownloadedFile]:
        """As a pipeline job: download several files into `dest` in one call (decided and unwrapped
        together); all of them, or none. A storage that predates the call gets one call per file."""
        request = storage_pb2.DownloadSecureFilesRequest()
        for name in dict.fromkeys(names):
            one = self._download_request(name)
            if one.name:
                request.names.append(one.name)
            else:
                request.parent = one.parent
                request.display_names.append(one.display_name)

        def attempt() -> list[DownloadedFile]:
            try:
                return download_many_once(self._transport, request, prepare_destination(dest), timeout, progress)
            except SecureFilesError as error:
                if error.reason == "UNIMPLEMENTED":
                    raise _NoBatchDownload from None  # not retried: it will not be there the next time either
                raise

        try:
            return _while_pending(lambda: with_retries(attempt, retry_count), wait_for_checks, on_pending)
        except _NoBatchDownload:
            pass
        done: list[DownloadedFile] = []
        try:
            for name in dict.fromkeys(names):
                done.append(self.download_secure_file(name, dest, retry_count, timeout,
                                                      progress(name) if progress else None, wait_for_checks,
                                                      on_pending))
        except BaseException:
            for downloaded in done:
                downloaded.path.unlink(missing_ok=True)
            raise
        return done

    # -- projects, roles, pipelines, runs, tokens -------------------------------------

    def create_project(self, project_id: str, region: str = "") -> authz_pb2.Project:
        return self._transport.call(self._authz.CreateProject, authz_pb2.CreateProjectRequest(
            project_id=project_id, project=authz_pb2.Project(region=region)))

    def list_projects(self) -> list[authz_pb2.Project]:
        return list(all_pages(lambda r: self._transport.call(self._authz.ListProjects, r),
                              authz_pb2.ListProjectsRequest(), "projects").projects)

    def assign_role(self, principal: str, role: str, file: str | None = None,
                    organization: bool = False) -> authz_pb2.RoleAssignment:
        """Library role (or organization `operator`), a role on one file, or (`organization`) a
        role on the whole organization: administrator, operator, orchestrator."""
        role_value = ROLES.get(role.lower())
        if role_value is None:
            raise InvalidArgument(f"unknown role {role!r}; one of {', '.join(ROLES)}", reason="INVALID_ROLE")
        if role_value == authz_pb2.ROLE_OPERATOR or organization:
            scope = "organization"
        elif file:
            scope = self.file_resource(file)
        else:
            scope = project_name(self.project)
        assignment = authz_pb2.RoleAssignment(scope=scope, principal=principal, role=role_value)
        return self._transport.call(self._authz.SetRoleAssignment,
                                    authz_pb2.SetRoleAssignmentRequest(role_assignment=assignment))

    def _scope(self, file: str | None, organization: bool = False) -> str:
        if organization:
            return "organization"
        return self.file_resource(file) if file else project_name(self.project)

    def list_role_assignments(self, file: str | None = None, organization: bool = False
                              ) -> authz_pb2.ListRoleAssignmentsResponse:
        """Roles given on the library (or a file, or the organization) and, for a file, inheritance."""
        request = authz_pb2.ListRoleAssignmentsRequest(parent=self._scope(file, organization))
        return all_pages(lambda r: self._transport.call(self._authz.ListRoleAssignments, r), request,
                         "role_assignments")

    def delete_role_assignment(self, principal: str, file: str | None = None, organization: bool = False) -> str:
        """Take away every role `principal` has on the scope; returns the scope."""
        scope = self._scope(file, organization)
        self._transport.call(self._authz.DeleteRoleAssignment, authz_pb2.DeleteRoleAssignmentRequest(
            name=role_assignment_name(scope, principal)))
        return scope

    def set_role_inheritance(self, file: str, inherit: bool) -> authz_pb2.RoleInheritance:
        return self._transport.call(self._authz.SetRoleInheritance, authz_pb2.SetRoleInheritanceRequest(
            name=role_inheritance_name(self.file_resource(file)), inherit_from_library=inherit))

    def create_pipeline(self, display_name: str) -> authz_pb2.Pipeline:
        return self._transport.call(self._authz.CreatePipeline, authz_pb2.CreatePipelineRequest(
            parent=project_name(self.project), pipeline=authz_pb2.Pipeline(display_name=display_name)))

    def list_pipelines(self) -> list[authz_pb2.Pipeline]:
        return list(all_pages(lambda r: self._transport.call(self._authz.ListPipelines, r),
                              authz_pb2.ListPipelinesRequest(parent=project_name(self.project)), "pipelines").pipelines)

    def delete_pipeline(self, pipeline: str) -> None:
        """Delete a pipeline (name or id) and its permissions; refused while one of its runs runs."""
        self._transport.call(self._authz.DeletePipeline, authz_pb2.DeletePipelineRequest(
            name=pipeline_name(self.project, pipeline)))

    def pipeline_permissions(self, file: str) -> authz_pb2.PipelinePermissions:
        """Which pipelines may use a file."""
        return self._transport.call(self._authz.GetPipelinePermissions, authz_pb2.GetPipelinePermissionsRequest(
            name=pipeline_permissions_name(self.file_resource(file))))

    def set_pipeline_permission(
        self, file: str, pipeline: str | None, authorized: bool
    ) -> authz_pb2.PipelinePermissions:
        """Authorize (or revoke) one pipeline on a file, or all pipelines when `pipeline` is None."""
        request = authz_pb2.SetPipelinePermissionRequest(
            name=pipeline_permissions_name(self.file_resource(file)),
            pipeline=pipeline_name(self.project, pipeline) if pipeline else "",
            all_pipelines=pipeline is None, authorized=authorized,
        )
        return self._transport.call(self._authz.SetPipelinePermission, request)

    def get_pipeline_permissions(self, file: str) -> authz_pb2.PipelinePermissions:
        return self._transport.call(self._authz.GetPipelinePermissions, authz_pb2.GetPipelinePermissionsRequest(
            name=pipeline_permissions_name(self.file_resource(file))))

    def start_run(
        self, pipeline: str, branch: str, requested_by: str = "", ttl_seconds: int | None = None
    ) -> authz_pb2.StartRunResponse:
        """Start a run; `ttl_seconds` None: the server's default lifetime (zero is refused)."""
        request = authz_pb2.StartRunRequest(
            pipeline=pipeline_name(self.project, pipeline), branch=branch, requested_by=requested_by)
        if ttl_seconds is not None:
            request.ttl.seconds = ttl_seconds
        return self._transport.call(self._authz.StartRun, request)

    def complete_run(self, run: str) -> authz_pb2.Run:
        """Complete a run given its resource name or, with a job token, its id."""
        return self._transport.call(self._authz.CompleteRun, authz_pb2.CompleteRunRequest(name=run))

    def list_runs(self, pipeline: str | None = None, running_only: bool = False, page_size: int = 0
                  ) -> Iterator[authz_pb2.Run]:
        """Runs of the project (or of one pipeline), newest first, following pages."""
        parent = pipeline_name(self.project, pipeline or ANY_PIPELINE)
        request = authz_pb2.ListRunsRequest(parent=parent, page_size=page_size, running_only=running_only)
        for response in pages(lambda r: self._transport.call(self._authz.ListRuns, r), request):
            yield from response.runs

    def issue_token(self, principal: str, ttl_seconds: int | None = None) -> authz_pb2.IssueTokenResponse:
        return self._transport.call(self._authz.IssueToken, authz_pb2.IssueTokenRequest(
            principal=principal, ttl=_duration(ttl_seconds)))

    # -- checks and approvals ---------------------------------------------------------

    def add_check(self, file: str, check: authz_pb2.Check) -> authz_pb2.Check:
        return self._transport.call(self._authz.CreateCheck, authz_pb2.CreateCheckRequest(
            parent=self.file_resource(file), check=check))

    def list_checks(self, file: str) -> list[authz_pb2.Check]:
        return list(all_pages(lambda r: self._transport.call(self._authz.ListChecks, r),
                              authz_pb2.ListChecksRequest(parent=self.file_resource(file)), "checks").checks)

    def delete_check(self, file: str, check_id: int) -> None:
        name = f"{self.file_resource(file)}/checks/{check_id}"
        self._transport.call(self._authz.DeleteCheck, authz_pb2.DeleteCheckRequest(name=name))

    def request_checks(self, run: str, files: list[str]) -> list[authz_pb2.CheckSuite]:
        """Create a run's check suites (and approval requests) ahead of use."""
        resources = [self.file_resource(f) for f in files]
        return list(self._transport.call(self._authz.EvaluateChecks, authz_pb2.EvaluateChecksRequest(
            run=run, resources=resources)).suites)

    def list_approvals(self, pending_only: bool = False) -> list[authz_pb2.Approval]:
        request = authz_pb2.ListApprovalsRequest(parent=project_name(self.project), pending_only=pending_only)
        return list(all_pages(lambda r: self._transport.call(self._authz.ListApprovals, r), request,
                              "approvals").approvals)

    def decide_approval(self, approval_id: int, approve: bool, comment: str = "") -> authz_pb2.Approval:
        name = approval_name(self.project, approval_id)
        if approve:
            return self._transport.call(self._authz.Approve, authz_pb2.ApproveRequest(name=name, comment=comment))
        return self._transport.call(self._authz.Reject, authz_pb2.RejectRequest(name=name, comment=comment))

    def list_groups(self) -> list[authz_pb2.Group]:
        return list(all_pages(lambda r: self._transport.call(self._authz.ListGroups, r),
                              authz_pb2.ListGroupsRequest(), "groups").groups)

    def set_group_member(self, group: str, principal: str, member: bool = True) -> authz_pb2.Group:
        return self._transport.call(self._authz.SetGroupMember, authz_pb2.SetGroupMemberRequest(
            group=group, principal=principal, member=member))

    # -- break-glass ------------------------------------------------------------------

    def request_access(self, project: str, reason: str, ttl_seconds: int | None = None) -> authz_pb2.AccessRequest:
        return self._transport.call(self._authz.RequestAccess, authz_pb2.RequestAccessRequest(
            project=project_name(project), reason=reason, ttl=_duration(ttl_seconds)))

    def approve_access(self, request_id: int) -> authz_pb2.AccessRequest:
        return self._transport.call(self._authz.ApproveAccess, authz_pb2.ApproveAccessRequest(
            name=f"accessRequests/{request_id}"))

    def revoke_access(self, request_id: int) -> authz_pb2.AccessRequest:
        return self._transport.call(self._authz.RevokeAccess, authz_pb2.RevokeAccessRequest(
            name=f"accessRequests/{request_id}"))

    def list_access_requests(self) -> list[authz_pb2.AccessRequest]:
        return list(all_pages(lambda r: self._transport.call(self._authz.ListAccessRequests, r),
                              authz_pb2.ListAccessRequestsRequest(), "access_requests").access_requests)

    # -- keys -------------------------------------------------------------------------

    def list_key_versions(self, region: str | None = None) -> tuple[str, list[kms_pb2.KeyVersion]]:
        stub, region = self._kms(region)
        response = all_pages(lambda r: self._transport.call(stub.ListKeyVersions, r),
                             kms_pb2.ListKeyVersionsRequest(parent=region_name(region)), "key_versions")
        return region, list(response.key_versions)

    def rotate_key(self, region: str | None = None, reason: str = "") -> kms_pb2.KeyVersion:
        stub, region = self._kms(region)
        return self._transport.call(stub.RotateKey, kms_pb2.RotateKeyRequest(
            parent=region_name(region), reason=reason))

    def _key_version_name(self, region: str, version: str) -> str:
        if version.isdigit():
            return key_version_name(region, version)
        if not version.startswith(key_version_name(region, "")):
            raise InvalidArgument(f"{version!r} is not a key version of region {region}", reason="INVALID_ARGUMENT")
        return version

    def set_key_version_state(self, version: str, action: str, region: str | None = None) -> kms_pb2.KeyVersion:
        """`action` is disable, enable or destroy; `version` a number or a full name."""
        stub, region = self._kms(region)
        name = self._key_version_name(region, version)
        if action == "disable":
            return self._transport.call(stub.DisableKeyVersion, kms_pb2.DisableKeyVersionRequest(name=name))
        if action == "enable":
            return self._transport.call(stub.EnableKeyVersion, kms_pb2.EnableKeyVersionRequest(name=name))
        if action == "destroy":
            return self._transport.call(stub.DestroyKeyVersion, kms_pb2.DestroyKeyVersionRequest(name=name))
        raise KeyError(action)

    def count_data_keys(self, region: str | None = None) -> dict[str, int]:
        """{key version name: data keys it wraps} as storage sees it."""
        response = self._transport.call(self._storage.CountDataKeys, storage_pb2.CountDataKeysRequest(
            parent=region_name(region) if region else ""))
        return {c.key_version: c.data_keys for c in response.counts}

    def rewrap_data_keys(self, region: str | None = None) -> storage_pb2.RewrapDataKeysResponse:
        return self._transport.call(self._storage.RewrapDataKeys, storage_pb2.RewrapDataKeysRequest(
            parent=region_name(region) if region else ""), timeout=3600)

    # -- audit ------------------------------------------------------------------------

    def audit_targets(self) -> dict[str, str]:
        """Service name -> endpoint of every audit log."""
        targets = {"storage": self.config.storage, "authz": self.config.authz}
        targets.update({f"kms-{region}": target for region, target in self.config.kms.items()})
        return targets

    def list_audit_events(self, service: str, resource_prefix: str = "", after_sequence: int = 0
                          ) -> Iterator[audit_pb2.AuditEvent]:
        stub = audit_pb2_grpc.AuditLogServiceStub(self._service_channel(service, self._audit_target(service)))
        token = ""
        while True:
            response = self._transport.call(stub.ListAuditEvents, audit_pb2.ListAuditEventsRequest(
                page_size=1000, page_token=token, resource_prefix=resource_prefix, after_sequence=after_sequence))
            yield from response.events
            token = response.next_page_token
            if not token:
                return

    def audit_page(self, service: str, page_token: str = "", resource_prefix: str = "", principal: str = "",
                   page_size: int = 100) -> audit_pb2.ListAuditEventsResponse:
        """One page of `service`'s audit log, oldest first."""
        stub = audit_pb2_grpc.AuditLogServiceStub(self._service_channel(service, self._audit_target(service)))
        return self._transport.call(stub.ListAuditEvents, audit_pb2.ListAuditEventsRequest(
            page_size=page_size, page_token=page_token, resource_prefix=resource_prefix, principal=principal))

    def verify_audit_log(self, service: str, witnessed: audit_pb2.AuditHead | None = None
                         ) -> audit_pb2.VerifyAuditLogResponse:
        """Check `service`'s chain, and that it still holds the head another service witnessed."""
        stub = audit_pb2_grpc.AuditLogServiceStub(self._service_channel(service, self._audit_target(service)))
        request = audit_pb2.VerifyAuditLogRequest()
        if witnessed is not None and witnessed.sequence:
            request.witnessed_sequence, request.witnessed_hash = witnessed.sequence, witnessed.hash
        return self._transport.call(stub.VerifyAuditLog, request, timeout=600)

    def latest_witnessed_head(self, service: str) -> audit_pb2.AuditHead | None:
        """The newest head of `service`'s chain that any other service witnessed."""
        heads = []
        for other in self.audit_targets():
            if other == service:
                continue
            stub = audit_pb2_grpc.AuditLogServiceStub(self._service_channel(other, self._audit_target(other)))
            heads.append(self._transport.call(stub.GetWitnessedHead,
                                              audit_pb2.GetWitnessedHeadRequest(service=service)))
        return max(heads, key=lambda h: h.sequence, default=None)

    def _service_channel(self, service: str, target: str) -> grpc.Channel:
        """`kms-<region>` must present that region's certificate; the others their own."""
        region = service.removeprefix("kms-") if service.startswith("kms-") else ""
        return self._transport.channel(target, kms_server_name(region) if region else "")

    def _audit_target(self, service: str) -> str:
        target = self.audit_targets().get(service)
        if not target:
            raise InvalidArgument(f"unknown service {service!r}; one of {', '.join(self.audit_targets())}",
                                  reason="INVALID_ARGUMENT")
        return target

    # -- health -----------------------------------------------------------------------

    def health(self) -> dict[str, str]:
        """SERVING / NOT_SERVING / UNREACHABLE for every configured endpoint."""
        result: dict[str, str] = {}
        for service, target in self.audit_targets().items():
            try:
                stub = health_pb2_grpc.HealthStub(self._service_channel(service, target))
                response = self._transport.call(stub.Check, health_pb2.HealthCheckRequest(), timeout=3)
                result[service] = health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
            except SecureFilesError:
                result[service] = "UNREACHABLE"
        return result


class _NoBatchDownload(Exception):
    """The storage service predates `DownloadSecureFiles`."""


def _while_pending(download: Callable[[], T], wait_for_checks: float,
                   on_pending: Callable[[FailedPrecondition], None] | None) -> T:
    """`download()`, polled again while checks are pending, for at most `wait_for_checks` seconds."""
    deadline = time.monotonic() + wait_for_checks
    delay = 0.2
    while True:
        try:
            return download()
        except FailedPrecondition as pending:
            if pending.reason != "CHECKS_PENDING" or time.monotonic() + delay > deadline:
                raise
            if on_pending is not None:
                on_pending(pending)
            time.sleep(delay)
            delay = min(delay * 1.5, 5.0)


class _Source:
    """A path, bytes or an open binary file as (display name, handle, size if known)."""

    def __init__(self, source: Path | BinaryIO | bytes, name: str | None) -> None:
        self._source = source
        self._name = name
        self._handle: BinaryIO | None = None

    def __enter__(self) -> tuple[str, BinaryIO, int]:
        source = self._source
        if isinstance(source, Path):
            try:
                self._handle = source.open("rb")
            except OSError as error:
                raise InvalidArgument(f"cannot read {source}: {error.strerror}", reason="INVALID_SOURCE") from None
            # An empty name given on purpose is the server's to refuse, not a cue for the file's own.
            name = source.name if self._name is None else self._name
            return name, self._handle, os.fstat(self._handle.fileno()).st_size
        if self._name is None:
            raise InvalidArgument("a name is required when uploading bytes or a stream", reason="INVALID_NAME")
        if isinstance(source, bytes):
            self._handle = io.BytesIO(source)
            return self._name, self._handle, len(source)
        return self._name, source, 0

    def __exit__(self, *_exc: object) -> None:
        if self._handle is not None:
            self._handle.close()


def _stream(first: object, handle: BinaryIO, message: type) -> Iterator[object]:
    """Metadata, chunks, then the commit (size and sha256) without which nothing is stored."""
    yield first
    digest = hashlib.sha256()
    size = 0
    while chunk := handle.read(CHUNK_BYTES):
        digest.update(chunk)
        size += len(chunk)
        yield message(chunk=chunk)
    yield message(commit=storage_pb2.UploadCommit(size_bytes=size, sha256=digest.hexdigest()))
