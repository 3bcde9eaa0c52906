"""Authorization use cases: each checks the caller's permission before anything else."""

from __future__ import annotations

import base64
import datetime as dt
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from securefiles.authz.domain.access import (
    AccessPolicy,
    canonical_file_scope,
    parse_file_scope,
    parse_scope,
    validate_role_for_scope,
)
from securefiles.authz.domain.break_glass import AccessRequestRepository, BreakGlass
from securefiles.authz.domain.check_service import Checks, raise_unless_approved
from securefiles.authz.domain.checks import CheckSuite
from securefiles.authz.domain.job_identity import JobIdentity, TrustRepository, issue_job_token
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
from securefiles.authz.domain.oidc import KeySource
from securefiles.authz.domain.ports import AuthzRepository, ChecksRepository
from securefiles.authz.domain.refs import validate_ref
from securefiles.authz.domain.sign_in import Session, SignIn, SignInSettings
from securefiles.authz.domain.token_exchange import OidcTokenVerifier
from securefiles.authz.domain.token_registry import TokenRegistry, TokenRegistryRepository
from securefiles.common.clock import Clock, utcnow
from securefiles.common.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    Unauthenticated,
)
from securefiles.common.principal import USER_PRINCIPAL, Principal, is_service_account
from securefiles.common.resource_names import (
    ANY_PIPELINE,
    MAX_RESOURCES_PER_DECISION,
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
_DISPLAY_NAME = re.compile(r"^[^\x00-\x1f\x7f/\\]{1,128}$")


def _denied(message: str, reason: str = "PERMISSION_DENIED") -> PermissionDenied:
    return PermissionDenied(message, reason=reason)


@dataclass(frozen=True)
class IdentitySettings:
    """Where identity comes from: trusts (jobs), sign-in (people), and whether this is the
    zero-setup development mode of `securefiles up` (administrators may mint people's tokens)."""

    dev_mode: bool = False
    sign_in: SignInSettings | None = None
    allowed_issuers: tuple[str, ...] = ("*",)


class Authorization:
    """The authz service's behaviour, independent of gRPC and SQL."""

    def __init__(
        self,
        repo: AuthzRepository,
        checks: ChecksRepository,
        issuer: TokenIssuer,
        regions: Sequence[str],
        clock: Clock = utcnow,
        access_requests: AccessRequestRepository | None = None,
        trusts: TrustRepository | None = None,
        oidc_keys: KeySource | None = None,
        identity: IdentitySettings | None = None,
        issued_tokens: TokenRegistryRepository | None = None,
    ) -> None:
        if not regions:
            raise ValueError("at least one region is required")
        self._repo = repo
        self._policy = AccessPolicy(repo)
        self._issuer = issuer
        self.regions = tuple(regions)
        self._clock = clock
        self.identity = identity or IdentitySettings()
        self.checks = Checks(checks, repo, self._policy, clock)
        self.break_glass = BreakGlass(access_requests, self._policy, clock) if access_requests else None
        self.jobs = JobIdentity(trusts, repo, self._policy, issuer, OidcTokenVerifier(trusts, oidc_keys, clock),
                                clock, self.identity.allowed_issuers) if trusts and oidc_keys else None
        self.sign_in = SignIn(self.identity.sign_in, oidc_keys, issuer, clock) if oidc_keys else None
        self.tokens = TokenRegistry(issued_tokens, self._policy, clock) if issued_tokens else None

    def get_run(self, project: str, run_id: int) -> Run | None:
        """A run, for describing what refers to it (an approval's pipeline and branch)."""
        return self._repo.get_run(project, run_id)

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
        """Make `admin` organization administrator and operator (and, in development mode,
        orchestrator: `runs start` works out of the box); create the default project."""
        if not USER_PRINCIPAL.fullmatch(admin):
            raise ValueError("bootstrap admin must look like user:<name>")
        self._repo.set_role(ORGANIZATION, admin, Role.ADMINISTRATOR, exclusive=False)
        self._repo.set_role(ORGANIZATION, admin, Role.OPERATOR, exclusive=False)
        if self.identity.dev_mode:
            self._repo.set_role(ORGANIZATION, admin, Role.ORCHESTRATOR, exclusive=False)
        if self._repo.get_project(default_project) is None:
            try:
                self._repo.create_project(default_project, self.regions[0], self._clock())
            except AlreadyExists:
                pass

    def issue_token(self, caller: Principal, subject: str, ttl_seconds: int) -> tuple[str, int, str]:
        """(token, expiry, issued_by). Organization administrators make tokens for service
        accounts; anyone refreshes their own (never outliving it, keeping who issued it); people's
        tokens come from signing in, except in development mode."""
        if not (caller.is_user or caller.is_account):
            raise _denied("this operation needs a person's or a service account's token",
                          reason="USER_TOKEN_REQUIRED")
        ttl = ttl_seconds or USER_TOKEN_DEFAULT_TTL
        if not 0 < ttl <= USER_TOKEN_MAX_TTL:
            raise InvalidArgument("ttl must be between 1s and 30d", reason="INVALID_TTL")
        if subject == caller.name:
            # A refresh never outlives the token it refreshes, and keeps who issued it.
            remaining = int(caller.claims.get("exp", 0)) - int(self._clock().timestamp())
            ttl = min(ttl, max(remaining, 0))
            if ttl <= 0:
                raise Unauthenticated("token expired", reason="TOKEN_EXPIRED")
            return self._mint(caller.kind, subject, ttl, caller.issued_by, caller.groups)
        if is_service_account(subject):
            kind = "account"
        elif USER_PRINCIPAL.fullmatch(subject):
            if not self.identity.dev_mode:
                raise _denied("a person's token comes only from signing in (`securefiles login`); tokens issue "
                              "makes service accounts (service:NAME)", reason="USER_TOKENS_COME_FROM_SIGN_IN")
            kind = "user"
        else:
            raise InvalidArgument("principal must look like service:<name> (lowercase letters, digits, -)",
                                  reason="INVALID_PRINCIPAL")
        self._require(caller, Permission.ADMINISTER, Scope("organization"))
        return self._mint(kind, subject, ttl, caller.name)

    def _mint(self, kind: str, subject: str, ttl: int, issued_by: str, groups: Sequence[str] = ()
              ) -> tuple[str, int, str]:
        extra = {"groups": list(groups)} if groups else {}
        token_id = uuid.uuid4().hex
        token, exp = self._issuer.issue(subject, ttl, kind=kind, issued_by=issued_by, jti=token_id, **extra)
        if self.tokens is not None:
            self.tokens.record(token_id, subject, kind, issued_by, exp)
        return token, exp, issued_by

    def remember_session(self, session: Session) -> None:
        """A person signed in: their session token is recorded (to be listed and revoked), and the
        groups their provider named become their sign-in memberships."""
        if self.tokens is not None and self.sign_in is not None:
            self.tokens.record(session.token_id, session.principal, "user", f"oidc:{self.sign_in.issuer}",
                               session.expire_at)
        self.checks.sync_sign_in_groups(session.principal, session.groups)

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
        if caller.is_job and not caller.is_job_of(project_id):
            raise _denied("a job may only read its own project", reason="WRONG_PROJECT")
        return self._project(project_id)

    def list_projects(self, caller: Principal) -> list[Project]:
        if caller.job is not None:
            return [self._project(caller.job.project)]
        return self._repo.list_projects()

    # -- roles ------------------------------------------------------------------------

    def set_role(self, caller: Principal, assignment: RoleAssignment) -> RoleAssignment:
        scope = parse_scope(assignment.scope)
        if caller.is_service_named("storage"):
            # Storage commits an upload: the file becomes known here, its uploader its administrator.
            scope = canonical_file_scope(assignment.scope)
            if assignment.role is not Role.ADMINISTRATOR:
                raise _denied("storage may only grant a file's administrator role")
        elif scope.kind == "file":
            scope = self._policy.require_file(caller, Permission.ADMINISTER, assignment.scope)
        else:
            self._require(caller, Permission.ADMINISTER, scope)
        account = is_service_account(assignment.principal)
        if not (USER_PRINCIPAL.fullmatch(assignment.principal) or account):
            raise InvalidArgument("principal must look like user:<name> or service:<name>", reason="INVALID_PRINCIPAL")
        if account and assignment.role is Role.OPERATOR:
            raise InvalidArgument("service accounts never hold the operator role", reason="INVALID_ROLE_FOR_PRINCIPAL")
        validate_role_for_scope(assignment.role, scope)
        if scope.kind != "organization":
            self._project(scope.project)
        if caller.is_service_named("storage"):
            self._repo.register_file(scope.name, scope.project, assignment.principal, self._clock())
            return RoleAssignment(scope.name, assignment.principal, assignment.role)
        return self._repo.set_role(scope.name, assignment.principal, assignment.role,
                                   exclusive=scope.kind != "organization" and assignment.role is not Role.ORCHESTRATOR)

    def list_roles(self, caller: Principal, scope_name: str) -> tuple[list[RoleAssignment], bool]:
        scope = parse_scope(scope_name)
        if scope.kind == "file":
            scope = self._policy.require_file(caller, Permission.VIEW, scope_name)
        else:
            self._require(caller, Permission.VIEW if scope.kind != "organization" else Permission.ADMINISTER, scope)
        inherit = self._repo.inherits([scope.name]).get(scope.name, True) if scope.kind == "file" else False
        return self._repo.list_roles(scope.name), inherit

    def delete_role(self, caller: Principal, scope_name: str, principal: str) -> None:
        scope = parse_scope(scope_name)
        if scope.kind == "file":
            scope = self._policy.require_file(caller, Permission.ADMINISTER, scope_name)
        else:
            self._require(caller, Permission.ADMINISTER, scope)
        if self._repo.delete_roles(scope.name, principal) == 0:
            raise NotFound(f"{principal} has no role on {scope.name}", reason="ROLE_ASSIGNMENT_NOT_FOUND")

    def set_inheritance(self, caller: Principal, scope_name: str, inherit: bool) -> bool:
        scope = self._policy.require_file(caller, Permission.ADMINISTER, scope_name)
        self._repo.set_inheritance(scope.name, inherit)
        return inherit

    def check_access(
        self, caller: Principal, principal: str, permission: Permission, resources: Sequence[str]
    ) -> list[bool]:
        if not (caller.is_service_named("storage") or caller.is_service_named("kms")):
            raise _denied("only services may ask for access decisions", reason="SERVICE_IDENTITY_REQUIRED")
        if not USER_PRINCIPAL.fullmatch(principal):
            return [False] * len(resources)
        if len(resources) > MAX_RESOURCES_PER_DECISION:
            raise InvalidArgument(f"at most {MAX_RESOURCES_PER_DECISION} resources per check",
                                  reason="TOO_MANY_RESOURCES")
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
        trusted = self.jobs.trusts_of_pipeline(pipeline) if self.jobs else []
        if trusted:
            # A trust names its pipeline by id: delete the trusts first, so none points nowhere.
            raise FailedPrecondition(
                f"pipeline {pipeline.display_name!r} is the pipeline of trust(s) "
                f"{', '.join(t.display_name for t in trusted)}; delete them first", reason="PIPELINE_HAS_TRUSTS")
        running = self._repo.delete_pipeline(project, pipeline.pipeline_id, self._clock())
        if running:
            ids = ", ".join(str(r.run_id) for r in running)
            raise FailedPrecondition(
                f"pipeline {pipeline.display_name!r} has {len(running)} running run(s) (id {ids}); "
                "complete them first", reason="PIPELINE_HAS_RUNNING_RUNS")
        return pipeline

    def pipeline_permissions(self, caller: Principal, resource: str) -> tuple[PipelinePermissions, list[Pipeline]]:
        scope = self._policy.require_file(caller, Permission.VIEW, resource)
        return self._permissions_with_pipelines(scope)

    def _permissions_with_pipelines(self, scope: Scope) -> tuple[PipelinePermissions, list[Pipeline]]:
        permissions = self._repo.get_pipeline_permissions(scope.name)
        pipelines = [p for p in self._repo.list_pipelines(scope.project) if p.pipeline_id in permissions.pipeline_ids]
        return permissions, pipelines

    def set_pipeline_permission(
        self, caller: Principal, resource: str, pipeline_ref: str, all_pipelines: bool, authorized: bool
    ) -> tuple[PipelinePermissions, list[Pipeline]]:
        scope = self._policy.require_file(caller, Permission.ADMINISTER, resource)
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
        """A run started by hand: its branch and requester are what the caller asserts, so this
        needs the orchestrator role (never implied by administering), and the run records who
        asserted them. Jobs of CI systems with OIDC get in through trusts instead. `ttl_seconds`
        None: the default lifetime."""
        project, ref = parse_child(pipeline_name, "pipelines")
        library = Scope("library", project)
        self._policy.require(caller, Permission.ORCHESTRATE, library, reason="ORCHESTRATOR_REQUIRED")
        requester = requested_by or (caller.name if caller.is_user else "")
        if requester and not USER_PRINCIPAL.fullmatch(requester):
            raise InvalidArgument("requested_by must look like user:<name>", reason="INVALID_PRINCIPAL")
        if requester and not self._policy.allows(requester, Permission.USE, library):
            raise _denied(f"{requester} may not use this library's files in pipelines",
                          reason="REQUESTER_NOT_ALLOWED")
        validate_ref(branch)
        ttl = JOB_TOKEN_DEFAULT_TTL if ttl_seconds is None else ttl_seconds
        if not 0 < ttl <= JOB_TOKEN_MAX_TTL:
            raise InvalidArgument("ttl must be between 1s and 31d", reason="INVALID_TTL")
        pipeline = self._pipeline(project, ref)
        now = self._clock()
        run, _ = self._repo.create_run(Run(
            project=project, run_id=0, pipeline_id=pipeline.pipeline_id, branch=branch, requested_by=requester,
            state=RunState.RUNNING, created_at=now, expire_at=now + dt.timedelta(seconds=ttl), completed_at=None,
            token_id=uuid.uuid4().hex, asserted_by=caller.name,
        ))
        token, _ = issue_job_token(self._issuer, run, pipeline, ttl, issued_by=caller.name)
        return run, token

    def complete_run(self, caller: Principal, run_name: str) -> Run:
        project, _pipeline, run_id = parse_run(run_name)
        is_own_job = caller.is_job_of(project, run_id)
        library = Scope("library", project)
        if not is_own_job and not self._policy.allows(caller.name, Permission.ORCHESTRATE, library):
            self._require(caller, Permission.ADMINISTER, library)
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
        if job.job is None:
            raise Unauthenticated("a job token is required", reason="JOB_TOKEN_REQUIRED")
        run = self._repo.get_run(job.job.project, job.job.run_id)
        if run is None or run.token_id != job.job.run_token_id:
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
        if len(resources) > MAX_RESOURCES_PER_DECISION:
            raise InvalidArgument(f"at most {MAX_RESOURCES_PER_DECISION} resources per request",
                                  reason="TOO_MANY_RESOURCES")
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
        is_own_job = caller.is_job_of(project, run_id)
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
            scope = canonical_file_scope(resource)
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
