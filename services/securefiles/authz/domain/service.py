"""Authorization use cases: each checks the caller's permission before anything else."""

from __future__ import annotations

import base64
import datetime as dt
import re
import uuid
from collections.abc import Callable, Sequence

from securefiles.authz.domain.access import AccessPolicy, parse_file_scope, parse_scope, validate_role_for_scope
from securefiles.authz.domain.break_glass import AccessRequestRepository, BreakGlass
from securefiles.authz.domain.check_service import Checks, raise_unless_approved
from securefiles.authz.domain.checks import CheckSuite
from securefiles.authz.domain.model import (
    ORGANIZATION,
    Permission,
    Pipeline,
    PipelinePermissions,
    Project,
    Role,
    RoleAssignment,
    Run,
    RunState,
    Scope,
)
from securefiles.authz.domain.ports import AuthzRepository, ChecksRepository
from securefiles.common.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    Unauthenticated,
)
from securefiles.common.principal import USER_PRINCIPAL, Principal
from securefiles.common.resource_names import (
    REGION_ID,
    is_id,
    parse_child,
    parse_project,
    parse_run,
    validate_project_id,
)
from securefiles.common.tokens import TokenIssuer

USER_TOKEN_DEFAULT_TTL = 8 * 3600
USER_TOKEN_MAX_TTL = 30 * 24 * 3600
JOB_TOKEN_DEFAULT_TTL = 6 * 3600
# Long enough for a run that waits for approvals or business hours over a weekend or longer.
JOB_TOKEN_MAX_TTL = 31 * 24 * 3600
RUNS_PAGE_DEFAULT, RUNS_PAGE_MAX = 100, 1000
ANY_PIPELINE = "-"
_DISPLAY_NAME = re.compile(r"^[^\x00-\x1f\x7f/\\]{1,128}$")
_BRANCH = re.compile(r"^[^\x00-\x1f\x7f]{1,256}$")


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _denied(message: str, reason: str = "PERMISSION_DENIED") -> PermissionDenied:
    return PermissionDenied(message, reason=reason)


class Authorization:
    """The authz service's behaviour, independent of gRPC and SQL."""

    def __init__(
        self,
        repo: AuthzRepository,
        checks: ChecksRepository,
        issuer: TokenIssuer,
        regions: Sequence[str],
        clock: Callable[[], dt.datetime] = _utcnow,
        access_requests: AccessRequestRepository | None = None,
    ) -> None:
        if not regions:
            raise ValueError("at least one region is required")
        self._repo = repo
        self._policy = AccessPolicy(repo)
        self._issuer = issuer
        self.regions = tuple(regions)
        self._clock = clock
        self.checks = Checks(checks, repo, self._policy, clock)
        self.break_glass = BreakGlass(access_requests, self._policy, clock) if access_requests else None

    # -- helpers ----------------------------------------------------------------------

    def _require_user(self, caller: Principal) -> None:
        if not caller.is_user:
            raise _denied("this operation needs a person's token", reason="USER_TOKEN_REQUIRED")

    def _require(self, caller: Principal, permission: Permission, scope: Scope) -> None:
        self._policy.require(caller, permission, scope)

    def _project(self, project_id: str) -> Project:
        project = self._repo.get_project(project_id)
        if project is None:
            raise NotFound(f"project {project_id} does not exist", reason="PROJECT_NOT_FOUND")
        return project

    def _pipeline(self, project: str, ref: str) -> Pipeline:
        pipeline = self._repo.find_pipeline(project, ref)
        if pipeline is None:
            raise NotFound(f"pipeline {ref} does not exist in project {project}", reason="PIPELINE_NOT_FOUND")
        return pipeline

    _file_scope = staticmethod(parse_file_scope)

    # -- bootstrap & tokens -----------------------------------------------------------

    def bootstrap(self, admin: str, default_project: str = "default") -> None:
        """Make `admin` organization administrator and operator; create the default project."""
        if not USER_PRINCIPAL.fullmatch(admin):
            raise ValueError("bootstrap admin must look like user:<name>")
        self._repo.set_role(ORGANIZATION, admin, Role.ADMINISTRATOR, exclusive=False)
        self._repo.set_role(ORGANIZATION, admin, Role.OPERATOR, exclusive=False)
        if self._repo.get_project(default_project) is None:
            try:
                self._repo.create_project(default_project, self.regions[0], self._clock())
            except AlreadyExists:
                pass

    def issue_user_token(self, subject: str, ttl_seconds: int) -> tuple[str, int]:
        """Mint a user token without a caller check (bootstrap and `securefiles up` only)."""
        return self._issuer.issue(subject, ttl_seconds, kind="user")

    def issue_token(self, caller: Principal, subject: str, ttl_seconds: int) -> tuple[str, int]:
        self._require_user(caller)
        if not USER_PRINCIPAL.fullmatch(subject):
            raise InvalidArgument("principal must look like user:<name>", reason="INVALID_PRINCIPAL")
        ttl = ttl_seconds or USER_TOKEN_DEFAULT_TTL
        if not 0 < ttl <= USER_TOKEN_MAX_TTL:
            raise InvalidArgument("ttl must be between 1s and 30d", reason="INVALID_TTL")
        is_admin = self._policy.allows(caller.name, Permission.ADMINISTER, Scope("organization"))
        if not is_admin:
            if subject != caller.name:
                raise _denied("only administrators issue tokens for others")
            # A person may refresh their own token, but never outlive the one they hold.
            remaining = int(caller.claims.get("exp", 0)) - int(self._clock().timestamp())
            ttl = min(ttl, max(remaining, 0))
            if ttl <= 0:
                raise Unauthenticated("token expired", reason="TOKEN_EXPIRED")
        return self._issuer.issue(subject, ttl, kind="user")

    # -- projects ---------------------------------------------------------------------

    def create_project(self, caller: Principal, project_id: str, region: str) -> Project:
        self._require(caller, Permission.ADMINISTER, Scope("organization"))
        validate_project_id(project_id)
        region = region or self.regions[0]
        if not REGION_ID.fullmatch(region) or region not in self.regions:
            raise InvalidArgument(f"unknown region {region!r}; known: {', '.join(self.regions)}",
                                  reason="UNKNOWN_REGION")
        return self._repo.create_project(project_id, region, self._clock())

    def get_project(self, caller: Principal, name: str) -> Project:
        project_id = parse_project(name)
        if caller.is_job and caller.claims.get("project") != project_id:
            raise _denied("a job may only read its own project", reason="WRONG_PROJECT")
        return self._project(project_id)

    def list_projects(self, caller: Principal) -> list[Project]:
        if caller.is_job:
            return [self._project(str(caller.claims["project"]))]
        return self._repo.list_projects()

    # -- roles ------------------------------------------------------------------------

    def set_role(self, caller: Principal, assignment: RoleAssignment) -> RoleAssignment:
        scope = parse_scope(assignment.scope)
        if caller.is_service_named("storage"):
            # Storage makes the uploader the file's administrator, and nothing else.
            if scope.kind != "file" or assignment.role is not Role.ADMINISTRATOR:
                raise _denied("storage may only grant a file's administrator role")
        else:
            self._require(caller, Permission.ADMINISTER, scope)
        if not USER_PRINCIPAL.fullmatch(assignment.principal):
            raise InvalidArgument("principal must look like user:<name>", reason="INVALID_PRINCIPAL")
        validate_role_for_scope(assignment.role, scope)
        if scope.kind != "organization":
            self._project(scope.project)
        return self._repo.set_role(scope.name, assignment.principal, assignment.role,
                                   exclusive=scope.kind != "organization")

    def list_roles(self, caller: Principal, scope_name: str) -> tuple[list[RoleAssignment], bool]:
        scope = parse_scope(scope_name)
        self._require(caller, Permission.VIEW if scope.kind != "organization" else Permission.ADMINISTER, scope)
        inherit = self._repo.inherits([scope.name]).get(scope.name, True) if scope.kind == "file" else False
        return self._repo.list_roles(scope.name), inherit

    def delete_role(self, caller: Principal, scope_name: str, principal: str) -> None:
        scope = parse_scope(scope_name)
        self._require(caller, Permission.ADMINISTER, scope)
        if self._repo.delete_roles(scope.name, principal) == 0:
            raise NotFound(f"{principal} has no role on {scope.name}", reason="ROLE_ASSIGNMENT_NOT_FOUND")

    def set_inheritance(self, caller: Principal, scope_name: str, inherit: bool) -> bool:
        scope = self._file_scope(scope_name)
        self._require(caller, Permission.ADMINISTER, scope)
        self._repo.set_inheritance(scope.name, inherit)
        return inherit

    def check_access(
        self, caller: Principal, principal: str, permission: Permission, resources: Sequence[str]
    ) -> list[bool]:
        if not (caller.is_service_named("storage") or caller.is_service_named("kms")):
            raise _denied("only services may ask for access decisions", reason="SERVICE_IDENTITY_REQUIRED")
        if not USER_PRINCIPAL.fullmatch(principal):
            return [False] * len(resources)
        if len(resources) > 1000:
            raise InvalidArgument("at most 1000 resources per check", reason="TOO_MANY_RESOURCES")
        return self._policy.decide(principal, permission, [parse_scope(r) for r in resources])

    # -- pipelines --------------------------------------------------------------------

    def create_pipeline(self, caller: Principal, parent: str, display_name: str) -> Pipeline:
        project = parse_project(parent)
        self._require(caller, Permission.CREATE, Scope("library", project))
        if not _DISPLAY_NAME.fullmatch(display_name) or display_name.isdigit():
            raise InvalidArgument(
                "pipeline name must be 1-128 characters, not all digits, without / \\ or control characters",
                reason="INVALID_NAME",
            )
        self._project(project)
        return self._repo.create_pipeline(project, display_name, self._clock())

    def list_pipelines(self, caller: Principal, parent: str) -> list[Pipeline]:
        project = parse_project(parent)
        self._require(caller, Permission.VIEW, Scope("library", project))
        return self._repo.list_pipelines(project)

    def delete_pipeline(self, caller: Principal, name: str) -> Pipeline:
        """Delete a pipeline and its permissions; refused while one of its runs is running."""
        project, ref = parse_child(name, "pipelines")
        self._require(caller, Permission.ADMINISTER, Scope("library", project))
        pipeline = self._pipeline(project, ref)
        running = self._repo.delete_pipeline(project, pipeline.pipeline_id, self._clock())
        if running:
            ids = ", ".join(str(r.run_id) for r in running)
            raise FailedPrecondition(
                f"pipeline {pipeline.display_name!r} has {len(running)} running run(s) (id {ids}); "
                "complete them first", reason="PIPELINE_HAS_RUNNING_RUNS")
        return pipeline

    def pipeline_permissions(self, caller: Principal, resource: str) -> tuple[PipelinePermissions, list[Pipeline]]:
        scope = self._file_scope(resource)
        self._require(caller, Permission.VIEW, scope)
        return self._permissions_with_pipelines(scope)

    def _permissions_with_pipelines(self, scope: Scope) -> tuple[PipelinePermissions, list[Pipeline]]:
        permissions = self._repo.get_pipeline_permissions(scope.name)
        pipelines = [p for p in self._repo.list_pipelines(scope.project) if p.pipeline_id in permissions.pipeline_ids]
        return permissions, pipelines

    def set_pipeline_permission(
        self, caller: Principal, resource: str, pipeline_ref: str, all_pipelines: bool, authorized: bool
    ) -> tuple[PipelinePermissions, list[Pipeline]]:
        scope = self._file_scope(resource)
        self._require(caller, Permission.ADMINISTER, scope)
        if all_pipelines == bool(pipeline_ref):
            raise InvalidArgument("give either a pipeline or all_pipelines", reason="INVALID_PIPELINE_PERMISSION")
        pipeline_id = None
        if pipeline_ref:
            project, ref = parse_child(pipeline_ref, "pipelines") if "/" in pipeline_ref else (scope.project,
                                                                                              pipeline_ref)
            if project != scope.project:
                raise InvalidArgument("the pipeline belongs to another project", reason="WRONG_PROJECT")
            pipeline_id = self._pipeline(project, ref).pipeline_id
        self._repo.set_pipeline_permission(scope.name, pipeline_id, authorized)
        return self._permissions_with_pipelines(scope)

    # -- runs -------------------------------------------------------------------------

    def start_run(
        self, caller: Principal, pipeline_name: str, branch: str, requested_by: str, ttl_seconds: int | None
    ) -> tuple[Run, str]:
        """Start a run and issue its job token (`ttl_seconds` None: the default lifetime)."""
        project, ref = parse_child(pipeline_name, "pipelines")
        library = Scope("library", project)
        # Starting a run hands out a job token: that is the CI orchestrator's job,
        # done with a project administrator's identity (never an ordinary user's).
        self._require(caller, Permission.ADMINISTER, library)
        requester = requested_by or caller.name
        if not USER_PRINCIPAL.fullmatch(requester):
            raise InvalidArgument("requested_by must look like user:<name>", reason="INVALID_PRINCIPAL")
        if not self._policy.allows(requester, Permission.USE, library):
            raise _denied(f"{requester} may not use this library's files in pipelines",
                          reason="REQUESTER_NOT_ALLOWED")
        if not _BRANCH.fullmatch(branch):
            raise InvalidArgument("branch must be 1-256 characters without control characters",
                                  reason="INVALID_BRANCH")
        ttl = JOB_TOKEN_DEFAULT_TTL if ttl_seconds is None else ttl_seconds
        if not 0 < ttl <= JOB_TOKEN_MAX_TTL:
            raise InvalidArgument("ttl must be between 1s and 31d", reason="INVALID_TTL")
        pipeline = self._pipeline(project, ref)
        now = self._clock()
        token_id = uuid.uuid4().hex
        run = self._repo.create_run(project, pipeline.pipeline_id, branch, requester, token_id, now,
                                    now + dt.timedelta(seconds=ttl))
        token, _ = self._issuer.issue(
            f"job:{run.name}", ttl, kind="job", jti=token_id, project=project,
            pipeline=str(pipeline.pipeline_id), run=str(run.run_id), branch=branch, requested_by=requester,
        )
        return run, token

    def complete_run(self, caller: Principal, run_name: str) -> Run:
        project, _pipeline, run_id = parse_run(run_name)
        is_own_job = caller.is_job and caller.claims.get("project") == project and caller.claims.get(
            "run") == str(run_id)
        if not is_own_job:
            self._require(caller, Permission.ADMINISTER, Scope("library", project))
        run = self._repo.get_run(project, run_id)
        if run is None:
            raise NotFound(f"run {run_name} does not exist", reason="RUN_NOT_FOUND")
        if run.state is RunState.COMPLETED:
            # Like an approval already decided: nothing changes, and the caller hears so.
            when = run.completed_at.strftime("%Y-%m-%dT%H:%M:%SZ") if run.completed_at else "an earlier time"
            raise FailedPrecondition(f"run {run.run_id} was already completed at {when}; nothing changed",
                                     reason="RUN_ALREADY_COMPLETED")
        completed = self._repo.complete_run(project, run_id, self._clock())
        self.checks.release_run(completed)
        return completed

    def list_runs(self, caller: Principal, parent: str, page_size: int, page_token: str, running_only: bool
                  ) -> tuple[list[Run], str]:
        """A page of runs, newest first, of one pipeline or (`pipelines/-`) of the whole project."""
        project, ref = parse_child(parent, "pipelines")
        self._require(caller, Permission.VIEW, Scope("library", project))
        if not 0 <= page_size:
            raise InvalidArgument("page_size must not be negative", reason="INVALID_PAGE_SIZE")
        limit = min(page_size or RUNS_PAGE_DEFAULT, RUNS_PAGE_MAX)
        pipeline_id = None if ref == ANY_PIPELINE else self._pipeline(project, ref).pipeline_id
        query = f"{project}/{ref}/{int(running_only)}"
        before = _decode_runs_token(page_token, query) if page_token else None
        found = self._repo.list_runs(project, pipeline_id, self._clock() if running_only else None, before,
                                     limit + 1)
        page = found[:limit]
        more = len(found) > limit
        return page, _encode_runs_token(query, page[-1].run_id) if more else ""

    def active_run_of(self, job: Principal) -> Run:
        """The running run a verified job token belongs to, or UNAUTHENTICATED."""
        if not job.is_job:
            raise Unauthenticated("a job token is required", reason="JOB_TOKEN_REQUIRED")
        run = self._repo.get_run(str(job.claims["project"]), int(job.claims["run"]))
        if run is None or run.token_id != job.claims.get("jti"):
            raise Unauthenticated("job token does not belong to a known run", reason="INVALID_TOKEN")
        if run.state is not RunState.RUNNING:
            raise Unauthenticated("the run has completed; its job token is revoked", reason="TOKEN_REVOKED")
        if run.expire_at <= self._clock():
            raise Unauthenticated("the run's job token expired", reason="TOKEN_EXPIRED")
        return run

    def require_operator(self, caller: Principal) -> None:
        """Key operations and audit reads need the organization `operator` role."""
        self._policy.require(caller, Permission.OPERATE, Scope("organization"), reason="OPERATOR_REQUIRED")

    @staticmethod
    def require_storage(caller: Principal) -> None:
        if not caller.is_service_named("storage"):
            raise _denied("only storage asks for use decisions", reason="SERVICE_IDENTITY_REQUIRED")

    def authorize_use(self, caller: Principal, job: Principal, resource: str, evaluate_checks: bool = True) -> Run:
        """valid job token → file in the job's project → pipeline authorized → allow."""
        self.require_storage(caller)
        run = self.active_run_of(job)
        scope = self._file_scope(resource)
        if scope.project != run.project:
            raise _denied("the file belongs to another project than the job", reason="WRONG_PROJECT")
        if not self._repo.get_pipeline_permissions(scope.name).allows(run.pipeline_id):
            raise _denied("the job's pipeline is not authorized to use this file",
                          reason="PIPELINE_NOT_AUTHORIZED")
        if evaluate_checks:
            raise_unless_approved(self.checks.evaluate(run, scope.name))
        return run

    def purge_resource(self, caller: Principal, resource: str) -> dict[str, int]:
        """Storage deleted a file: everything authz kept about it goes (idempotent)."""
        self.require_storage(caller)
        scope = self._file_scope(resource)
        return {**self._repo.purge_resource(scope.name), **self.checks.purge_resource(scope.name)}

    def filter_usable(self, caller: Principal, job: Principal, resources: Sequence[str]) -> list[str]:
        """Of `resources`, those the job's pipeline may use (no checks evaluated)."""
        self.require_storage(caller)
        run = self.active_run_of(job)
        if len(resources) > 1000:
            raise InvalidArgument("at most 1000 resources per request", reason="TOO_MANY_RESOURCES")
        usable = []
        for resource in resources:
            scope = self._file_scope(resource)
            if scope.project == run.project and self._repo.get_pipeline_permissions(scope.name).allows(
                    run.pipeline_id):
                usable.append(resource)
        return usable

    def request_checks(self, caller: Principal, run_name: str, resources: Sequence[str]) -> list[CheckSuite]:
        """Create (and advance) a run's suites for files ahead of use, e.g. to request approvals early."""
        project, _pipeline, run_id = parse_run(run_name)
        is_own_job = caller.is_job and caller.claims.get("project") == project and caller.claims.get(
            "run") == str(run_id)
        if is_own_job:
            run = self.active_run_of(caller)
        else:
            self._require(caller, Permission.ADMINISTER, Scope("library", project))
            found = self._repo.get_run(project, run_id)
            if found is None:
                raise NotFound(f"run {run_name} does not exist", reason="RUN_NOT_FOUND")
            run = found
        if len(resources) > 100:
            raise InvalidArgument("at most 100 files per request", reason="TOO_MANY_RESOURCES")
        suites = []
        for resource in resources:
            scope = self._file_scope(resource)
            if scope.project != project:
                raise _denied("the file belongs to another project than the run", reason="WRONG_PROJECT")
            if not self._repo.get_pipeline_permissions(scope.name).allows(run.pipeline_id):
                raise _denied(f"the run's pipeline is not authorized to use {resource}",
                              reason="PIPELINE_NOT_AUTHORIZED")
            suites.append(self.checks.evaluate(run, scope.name))
        return suites


def _encode_runs_token(query: str, before: int) -> str:
    return base64.urlsafe_b64encode(f"{query}|{before}".encode()).decode()


def _decode_runs_token(token: str, query: str) -> int:
    """The run id to continue below; the token must come from the same query."""
    try:
        text = base64.urlsafe_b64decode(token.encode()).decode()
    except (ValueError, UnicodeError):
        text = ""
    issued_for, _, before = text.rpartition("|")
    if issued_for != query or not is_id(before):
        raise InvalidArgument("page_token does not belong to this listing", reason="INVALID_PAGE_TOKEN")
    return int(before)
