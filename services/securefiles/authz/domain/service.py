"""Authorization use cases: each checks the caller's permission before anything else."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass

from securefiles.authz.domain.access import (
    AccessPolicy,
    canonical_file_scope,
    parse_file_scope,
)
from securefiles.authz.domain.break_glass import AccessRequestRepository, BreakGlass
from securefiles.authz.domain.check_service import Checks, raise_unless_approved
from securefiles.authz.domain.checks import CheckSuite
from securefiles.authz.domain.job_identity import JobIdentity, TrustRepository
from securefiles.authz.domain.library import Library
from securefiles.authz.domain.model import (
    ORGANIZATION,
    Permission,
    Role,
    Run,
    RunState,
    Scope,
)
from securefiles.authz.domain.oidc import KeySource
from securefiles.authz.domain.pipelines import Pipelines
from securefiles.authz.domain.ports import AuthzRepository, ChecksRepository, UnitOfWork
from securefiles.authz.domain.sign_in import Session, SignIn, SignInSettings
from securefiles.authz.domain.token_exchange import OidcTokenVerifier
from securefiles.authz.domain.token_registry import TokenRegistry, TokenRegistryRepository
from securefiles.common.clock import Clock, utcnow
from securefiles.common.db_threads import Blocking, run_inline
from securefiles.common.errors import (
    AlreadyExists,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    Unauthenticated,
)
from securefiles.common.principal import USER_PRINCIPAL, Principal, is_service_account
from securefiles.common.resource_names import (
    MAX_RESOURCES_PER_DECISION,
    parse_run,
)
from securefiles.common.tokens import TokenIssuer

USER_TOKEN_DEFAULT_TTL = 8 * 3600
USER_TOKEN_MAX_TTL = 30 * 24 * 3600
MAX_USES_PER_DECISION = 100  # files one multi-file download may ask for


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
    """The authz service's behaviour, independent of gRPC and SQL: tokens and the decisions
    storage asks for here; the rest in its parts (library, pipelines, checks, break_glass, jobs,
    sign_in, tokens)."""

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
        blocking: Blocking = run_inline,
        unit_of_work: UnitOfWork = nullcontext,
    ) -> None:
        """`blocking`: how the use cases that await (the token exchange) run their repository calls;
        `unit_of_work`: one transaction for a use case that writes twice."""
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
        self.jobs = JobIdentity(
            trusts, repo, self._policy, issuer, OidcTokenVerifier(trusts, oidc_keys, clock, blocking), clock,
            self.identity.allowed_issuers, blocking) if trusts and oidc_keys else None
        self.sign_in = SignIn(self.identity.sign_in, oidc_keys, issuer, clock) if oidc_keys else None
        self.tokens = TokenRegistry(issued_tokens, self._policy, clock) if issued_tokens else None
        self.library = Library(repo, self._policy, self.regions, clock)
        self.pipelines = Pipelines(repo, self._policy, issuer, self.library, self.checks, self.jobs, clock,
                                   unit_of_work)

    # -- helpers ----------------------------------------------------------------------

    def _require_user(self, caller: Principal) -> None:
        if not caller.is_user:
            raise _denied("this operation needs a person's token", reason="USER_TOKEN_REQUIRED")

    def _require(self, caller: Principal, permission: Permission, scope: Scope) -> None:
        self._policy.require(caller, permission, scope)

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
        self._decide_use(run, resource, evaluate_checks)
        return run

    def authorize_uses(self, caller: Principal, job: Principal, resources: Sequence[str],
                       before_each: Callable[[str], None] = lambda _resource: None) -> Run:
        """Every one of `resources` for the job, decided in order as `authorize_use` decides one; the
        first it may not use refuses the request (those after it stay undecided). `before_each`
        hears which file is decided next (the audit names the one refused)."""
        self.require_storage(caller)
        if not 1 <= len(resources) <= MAX_USES_PER_DECISION:
            raise InvalidArgument(f"give 1 to {MAX_USES_PER_DECISION} files", reason="TOO_MANY_RESOURCES")
        run = self.active_run_of(job)
        for resource in resources:
            before_each(resource)
            self._decide_use(run, resource, evaluate_checks=True)
        return run

    def _decide_use(self, run: Run, resource: str, evaluate_checks: bool) -> None:
        scope = self._file_scope(resource)
        if scope.project != run.project:
            raise _denied("the file belongs to another project than the job", reason="WRONG_PROJECT")
        if not self._repo.get_pipeline_permissions(scope.name).allows(run.pipeline_id):
            raise _denied("the job's pipeline is not authorized to use this file",
                          reason="PIPELINE_NOT_AUTHORIZED")
        if evaluate_checks:
            raise_unless_approved(self.checks.evaluate(run, scope.name))

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

