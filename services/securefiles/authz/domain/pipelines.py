"""Pipelines, the files each may use, and their runs (started by hand here; through a trust in
job_identity.py)."""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Collection
from contextlib import nullcontext

from securefiles.authz.domain.access import AccessPolicy
from securefiles.authz.domain.check_service import Checks
from securefiles.authz.domain.job_identity import JobIdentity, issue_job_token
from securefiles.authz.domain.library import Library
from securefiles.authz.domain.model import Permission, Pipeline, PipelinePermissions, Run, RunState, Scope
from securefiles.authz.domain.ports import AuthzRepository, UnitOfWork
from securefiles.authz.domain.refs import validate_ref
from securefiles.common.clock import Clock
from securefiles.common.errors import FailedPrecondition, InvalidArgument, NotFound, PermissionDenied
from securefiles.common.paging import decode_page_token, encode_page_token, page_limit
from securefiles.common.principal import USER_PRINCIPAL, Principal
from securefiles.common.resource_names import ANY_PIPELINE, is_id, parse_child, parse_project, parse_run
from securefiles.common.tokens import TokenIssuer

JOB_TOKEN_DEFAULT_TTL = 6 * 3600
# Long enough for a run that waits for approvals or business hours over a weekend or longer.
JOB_TOKEN_MAX_TTL = 31 * 24 * 3600
_DISPLAY_NAME = re.compile(r"^[^\x00-\x1f\x7f/\\]{1,128}$")


def _denied(message: str, reason: str = "PERMISSION_DENIED") -> PermissionDenied:
    return PermissionDenied(message, reason=reason)


class Pipelines:
    """Pipelines, their permissions on files, and runs."""

    def __init__(self, repo: AuthzRepository, policy: AccessPolicy, issuer: TokenIssuer, library: Library,
                 checks: Checks, jobs: JobIdentity | None, clock: Clock,
                 unit_of_work: UnitOfWork = nullcontext) -> None:
        self._repo = repo
        self._unit_of_work = unit_of_work
        self._policy = policy
        self._issuer = issuer
        self._library = library
        self._checks = checks
        self._jobs = jobs
        self._clock = clock

    def _require(self, caller: Principal, permission: Permission, scope: Scope) -> None:
        self._policy.require(caller, permission, scope)

    def get_run(self, project: str, run_id: int) -> Run | None:
        """A run, for describing what refers to it (an approval's pipeline and branch)."""
        return self._repo.get_run(project, run_id)

    def get_runs(self, project: str, run_ids: Collection[int]) -> dict[int, Run]:
        """Runs by id, read at once (a page of approvals describes each one's run)."""
        return self._repo.get_runs(project, run_ids) if run_ids else {}

    def pipeline(self, project: str, ref: str) -> Pipeline:
        pipeline = self._repo.find_pipeline(project, ref)
        if pipeline is None:
            raise NotFound(f"pipeline {ref} does not exist in project {project}", reason="PIPELINE_NOT_FOUND")
        return pipeline

    # -- pipelines --------------------------------------------------------------------

    def create_pipeline(self, caller: Principal, parent: str, display_name: str) -> Pipeline:
        project = parse_project(parent)
        self._require(caller, Permission.CREATE, Scope("library", project))
        if not _DISPLAY_NAME.fullmatch(display_name) or display_name.isdigit():
            raise InvalidArgument(
                "pipeline name must be 1-128 characters, not all digits, without / \\ or control characters",
                reason="INVALID_NAME",
            )
        self._library.project(project)
        return self._repo.create_pipeline(project, display_name, self._clock())

    def list_pipelines(self, caller: Principal, parent: str) -> list[Pipeline]:
        project = parse_project(parent)
        self._require(caller, Permission.VIEW, Scope("library", project))
        return self._repo.list_pipelines(project)

    def delete_pipeline(self, caller: Principal, name: str) -> Pipeline:
        """Delete a pipeline and its permissions; refused while one of its runs is running."""
        project, ref = parse_child(name, "pipelines")
        self._require(caller, Permission.ADMINISTER, Scope("library", project))
        pipeline = self.pipeline(project, ref)
        trusted = self._jobs.trusts_of_pipeline(pipeline) if self._jobs else []
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
            pipeline_id = self.pipeline(project, ref).pipeline_id
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
        pipeline = self.pipeline(project, ref)
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
        with self._unit_of_work():  # a completed run holds no lock: both writes, or neither
            completed = self._repo.complete_run(project, run_id, self._clock())
            self._checks.release_run(completed)
        return completed

    def list_runs(self, caller: Principal, parent: str, page_size: int, page_token: str, running_only: bool
                  ) -> tuple[list[Run], str]:
        """A page of runs, newest first, of one pipeline or (`pipelines/-`) of the whole project."""
        project, ref = parse_child(parent, "pipelines")
        self._require(caller, Permission.VIEW, Scope("library", project))
        limit = page_limit(page_size)
        pipeline_id = None if ref == ANY_PIPELINE else self.pipeline(project, ref).pipeline_id
        query = f"{ref}/{int(running_only)}"
        before = _run_id(decode_page_token(page_token, project, query)) if page_token else None
        found = self._repo.list_runs(project, pipeline_id, self._clock() if running_only else None, before,
                                     limit + 1)
        page = found[:limit]
        more = len(found) > limit
        return page, encode_page_token(project, query, str(page[-1].run_id)) if more else ""


def _run_id(after: str) -> int:
    if not is_id(after):
        raise InvalidArgument("page_token is not valid for this request", reason="INVALID_PAGE_TOKEN")
    return int(after)
