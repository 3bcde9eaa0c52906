"""How jobs get in: trusts of a project, and the exchange of a CI provider's OIDC token for a
job token of a run (created, or joined by a later step of the same job).

A job token carries only what somebody vouched for: through a trust, what the CI provider
signed (branch, requester, run); from `runs start`, what an orchestrator asserted (recorded
as such, with who asserted it).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Protocol

from securefiles.authz.domain.access import AccessPolicy
from securefiles.authz.domain.model import Permission, Pipeline, Run, RunState, Scope
from securefiles.authz.domain.ports import AuthzRepository
from securefiles.authz.domain.token_exchange import OidcTokenVerifier
from securefiles.authz.domain.trusts import JobClaims, Trust, job_claims, validate_issuer, validate_trust
from securefiles.common.db_threads import Blocking, run_inline
from securefiles.common.errors import InvalidArgument, NotFound, PermissionDenied
from securefiles.common.glob import glob_match
from securefiles.common.job_token import JobToken
from securefiles.common.principal import Principal
from securefiles.common.resource_names import parse_child, parse_project
from securefiles.common.tokens import TokenIssuer

JOB_TOKEN_TYPE = "urn:securefiles:params:oauth:token-type:job"
SUBJECT_TOKEN_TYPES = ("", "urn:ietf:params:oauth:token-type:jwt", "urn:ietf:params:oauth:token-type:id_token")


class TrustRepository(Protocol):
    def create_trust(self, trust: Trust) -> Trust:
        """Store with the next trust id of the project (`trust.trust_id` is ignored)."""
        ...
    def find_trust(self, project: str, id_or_name: str) -> Trust | None: ...
    def list_trusts(self, project: str) -> list[Trust]: ...
    def delete_trust(self, project: str, trust_id: int) -> bool: ...
    def trusts_of_issuer(self, issuer: str, project: str | None) -> list[Trust]: ...


def issue_job_token(issuer: TokenIssuer, run: Run, pipeline: Pipeline, ttl_seconds: int, issued_by: str,
                    trust: str = "") -> tuple[str, int]:
    """A job token of `run`: valid while the run runs and until it expires (its `rtk` ties it
    to the run; `issued_by` says who vouched for the job)."""
    job = JobToken(project=run.project, pipeline=str(run.pipeline_id), run=str(run.run_id), branch=run.branch,
                   pipeline_name=pipeline.display_name, requested_by=run.requested_by, trust=trust,
                   issued_by=issued_by, run_token_id=run.token_id)
    return issuer.issue(f"job:{run.name}", ttl_seconds, kind="job", **job.claims())


@dataclass(frozen=True)
class Exchanged:
    token: str
    expire_at: int
    run: Run
    trust: Trust
    pipeline: Pipeline


class JobIdentity:
    """Trusts, and the token exchange that runs through them."""

    def __init__(self, trusts: TrustRepository, repo: AuthzRepository, policy: AccessPolicy, issuer: TokenIssuer,
                 verifier: OidcTokenVerifier, clock: Callable[[], dt.datetime],
                 allowed_issuers: tuple[str, ...] = ("*",), blocking: Blocking = run_inline) -> None:
        self._blocking = blocking
        self._trusts = trusts
        self._repo = repo
        self._policy = policy
        self._issuer = issuer
        self._verifier = verifier
        self._clock = clock
        self._allowed_issuers = allowed_issuers

    # -- trusts -------------------------------------------------------------------------

    def _find(self, name: str) -> Trust:
        project, ref = parse_child(name, "trusts")
        found = self._trusts.find_trust(project, ref)
        if found is None:
            raise NotFound(f"trust {ref[:64]!r} does not exist in project {project}", reason="TRUST_NOT_FOUND")
        return found

    def create_trust(self, caller: Principal, parent: str, trust: Trust, pipeline_ref: str) -> Trust:
        project = parse_project(parent)
        self._policy.require(caller, Permission.ADMINISTER, Scope("library", project))
        if trust.static_jwks or trust.ca_pem:
            # These say whose keys count for an issuer (whoever holds them mints its tokens): the
            # organization decides that, not a project.
            self._policy.require(caller, Permission.ADMINISTER, Scope("organization"),
                                 reason="ORGANIZATION_ADMINISTRATOR_REQUIRED")
        if not any(glob_match(allowed, trust.issuer) for allowed in self._allowed_issuers):
            validate_issuer(trust.issuer)
            raise PermissionDenied(f"issuer {trust.issuer} is not among the issuers this installation trusts "
                                   "(SECUREFILES_OIDC_ALLOWED_ISSUERS)", reason="ISSUER_NOT_ALLOWED")
        if pipeline_ref.startswith("projects/"):
            pipeline_project, pipeline_ref = parse_child(pipeline_ref, "pipelines")
            if pipeline_project != project:
                raise InvalidArgument("the pipeline belongs to another project", reason="WRONG_PROJECT")
        pipeline = self._repo.find_pipeline(project, pipeline_ref) if pipeline_ref else None
        if pipeline is None:
            raise NotFound(f"pipeline {pipeline_ref[:128]!r} does not exist in project {project}",
                           reason="PIPELINE_NOT_FOUND")
        trust = validate_trust(replace(trust, project=project, pipeline_id=pipeline.pipeline_id,
                                       created_by=caller.name, created_at=self._clock()))
        return self._trusts.create_trust(trust)

    def get_trust(self, caller: Principal, name: str) -> Trust:
        trust = self._find(name)
        self._policy.require(caller, Permission.VIEW, Scope("library", trust.project))
        return trust

    def list_trusts(self, caller: Principal, parent: str) -> list[Trust]:
        project = parse_project(parent)
        self._policy.require(caller, Permission.VIEW, Scope("library", project))
        return self._trusts.list_trusts(project)

    def delete_trust(self, caller: Principal, name: str) -> Trust:
        project, _ = parse_child(name, "trusts")
        self._policy.require(caller, Permission.ADMINISTER, Scope("library", project))
        trust = self._find(name)
        self._trusts.delete_trust(trust.project, trust.trust_id)
        return trust

    def trusts_of_pipeline(self, pipeline: Pipeline) -> list[Trust]:
        return [t for t in self._trusts.list_trusts(pipeline.project) if t.pipeline_id == pipeline.pipeline_id]

    def pipeline_of(self, trust: Trust) -> Pipeline:
        pipeline = self._repo.find_pipeline(trust.project, str(trust.pipeline_id))
        if pipeline is None:
            raise NotFound("the trust's pipeline no longer exists", reason="PIPELINE_NOT_FOUND")
        return pipeline

    # -- the exchange ---------------------------------------------------------------------

    async def exchange(self, subject_token: str, subject_token_type: str, project_name: str,
                       ttl_seconds: int) -> Exchanged:
        """Verify a CI provider's OIDC token through a trust, create or join its run, and issue
        the job token."""
        if subject_token_type not in SUBJECT_TOKEN_TYPES:
            raise InvalidArgument("subject_token_type must be a JWT or an ID token", reason="INVALID_TOKEN_TYPE")
        project = parse_project(project_name) if project_name else None
        verified = await self._verifier.verify(subject_token, project)
        trust = verified.trust
        ttl = ttl_seconds or trust.max_ttl_seconds
        if not 0 < ttl <= trust.max_ttl_seconds:
            raise InvalidArgument(f"ttl must be between 1s and the trust's maximum ({trust.max_ttl_seconds}s)",
                                  reason="INVALID_TTL")
        return await self._blocking(self._admit, trust, job_claims(trust, verified.claims), ttl)

    def _admit(self, trust: Trust, job: JobClaims, ttl: int) -> Exchanged:
        """The verified job's run, created or joined, and its job token."""
        pipeline = self.pipeline_of(trust)
        now = self._clock()
        run, _joined = self._repo.create_run(Run(
            project=trust.project, run_id=0, pipeline_id=pipeline.pipeline_id, branch=job.branch,
            requested_by=job.requester, state=RunState.RUNNING, created_at=now,
            expire_at=now + dt.timedelta(seconds=ttl), completed_at=None, token_id=uuid.uuid4().hex,
            trust_id=trust.trust_id, claims=tuple(sorted(job.recorded.items())),
        ), external_key=job.run_key)
        if run.state is not RunState.RUNNING:
            raise PermissionDenied(f"run {run.run_id} of this job has completed; a re-run attempt is a new run",
                                   reason="RUN_COMPLETED")
        token, expire_at = issue_job_token(self._issuer, run, pipeline, ttl, issued_by=trust.name, trust=trust.name)
        return Exchanged(token, expire_at, run, trust, pipeline)
