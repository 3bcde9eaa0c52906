"""Approvals and checks: configuring them, evaluating a run's suite, deciding approvals."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from securefiles.authz.domain.access import AccessPolicy, parse_file_scope
from securefiles.authz.domain.check_kinds import ApprovalCheck, CheckTrial, Outcome, check_kind
from securefiles.authz.domain.checks import (
    DEFAULT_TIMEOUT_SECONDS,
    MAX_TIMEOUT_SECONDS,
    Approval,
    ApprovalDecision,
    Check,
    CheckResult,
    CheckSuite,
    CheckType,
    State,
    approval_state,
)
from securefiles.authz.domain.model import Permission, Run, RunState, Scope
from securefiles.authz.domain.ports import AuthzRepository, ChecksRepository
from securefiles.common.errors import (
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
)
from securefiles.common.paging import DEFAULT_PAGE_SIZE, fill_page
from securefiles.common.principal import GROUP_PRINCIPAL, USER_PRINCIPAL, Principal
from securefiles.common.resource_names import is_id, parse_child

MAX_CHECKS_PER_FILE = 16


def _denied(message: str, reason: str = "PERMISSION_DENIED") -> PermissionDenied:
    return PermissionDenied(message, reason=reason)


class Checks:
    """Checks on files and the suites runs get against them."""

    def __init__(
        self,
        repo: ChecksRepository,
        runs: AuthzRepository,
        policy: AccessPolicy,
        clock: Callable[[], dt.datetime],
    ) -> None:
        self._repo = repo
        self._runs = runs
        self._policy = policy
        self._clock = clock

    def _require(self, caller: Principal, permission: Permission, scope: Scope) -> None:
        self._policy.require(caller, permission, scope)

    _file_scope = staticmethod(parse_file_scope)

    # -- configuration ----------------------------------------------------------------

    def create_check(self, caller: Principal, resource: str, check_type: CheckType, settings: Mapping[str, Any],
                     timeout_seconds: int) -> Check:
        """A check of `check_type` with settings as a person gave them (validated: INVALID_CHECK)."""
        scope = self._policy.require_file(caller, Permission.ADMINISTER, resource)
        timeout = timeout_seconds or DEFAULT_TIMEOUT_SECONDS
        if not 0 < timeout <= MAX_TIMEOUT_SECONDS:
            raise InvalidArgument("timeout must be between 1s and 365d", reason="INVALID_TIMEOUT")
        kind = check_kind(check_type, settings)
        if len(self._repo.list_checks(scope.name)) >= MAX_CHECKS_PER_FILE:
            raise FailedPrecondition(f"a file has at most {MAX_CHECKS_PER_FILE} checks", reason="TOO_MANY_CHECKS")
        return self._repo.create_check(scope.project, scope.name, kind, timeout, self._clock(), caller.name)

    def list_checks(self, caller: Principal, resource: str) -> list[Check]:
        scope = self._policy.require_file(caller, Permission.VIEW, resource)
        return self._repo.list_checks(scope.name)

    def delete_check(self, caller: Principal, name: str) -> None:
        resource, sep, check_id = name.rpartition("/checks/")
        if not sep or not is_id(check_id):
            raise InvalidArgument(f"{name!r} is not a check name", reason="INVALID_RESOURCE_NAME")
        scope = self._policy.require_file(caller, Permission.ADMINISTER, resource)
        if not self._repo.delete_check(scope.name, int(check_id)):
            raise NotFound(f"check {check_id} does not exist on this file", reason="CHECK_NOT_FOUND")

    def sync_sign_in_groups(self, principal: str, groups: tuple[str, ...]) -> None:
        """A person signed in: the groups their organization's provider named are theirs (as
        approvers); groups it named at an earlier sign-in and no longer does are not."""
        self._repo.sync_sign_in_groups(principal, list(groups))
    def list_groups(self, caller: Principal) -> dict[str, list[str]]:
        if not caller.is_user:
            raise PermissionDenied("groups are listed to people only", reason="USER_TOKEN_REQUIRED")
        return self._repo.list_groups()

    def set_group_member(self, caller: Principal, group: str, principal: str, member: bool) -> list[str]:
        self._require(caller, Permission.ADMINISTER, Scope("organization"))
        if not GROUP_PRINCIPAL.fullmatch(group) or not USER_PRINCIPAL.fullmatch(principal):
            raise InvalidArgument("give group:<name> and user:<name>", reason="INVALID_PRINCIPAL")
        return self._repo.set_group_member(group, principal, member)

    # -- evaluation -------------------------------------------------------------------

    def evaluate(self, run: Run, resource: str) -> CheckSuite:
        """The run's suite for this file, created on first use and advanced as far as it goes."""
        now = self._clock()
        suite = self._repo.get_suite(run.project, run.run_id, resource)
        current = self._repo.list_checks(resource)
        if suite is None:
            checks = sorted(current, key=lambda c: (c.type.order, c.check_id))
            suite = self._repo.insert_suite(CheckSuite(
                project=run.project, run_id=run.run_id, resource=resource,
                state=State.PENDING if checks else State.APPROVED,
                checks=tuple(checks), results=tuple(CheckResult(c.check_id, c.type, State.PENDING) for c in checks),
                created_at=now,
            ))
        if suite.state is State.REJECTED:
            return suite
        read = suite
        # Checks added (or tightened: deleted and added anew) since the suite was created apply
        # to this run's later downloads; results already reached, approvals included, stay.
        suite = _with_checks(suite, current)
        if suite.state is not State.PENDING:
            if suite is not read:
                self._repo.save_suite(suite, read)
            return suite
        results = list(suite.results)
        for index, check in enumerate(suite.checks):
            if results[index].state is State.APPROVED:
                continue
            results[index] = self._evaluate_check(check, results[index], suite, run, now)
            if results[index].state is not State.APPROVED:
                break
        evaluated = suite.with_results(results)
        if evaluated != read:
            self._repo.save_suite(evaluated, read)
        return evaluated

    def _timed_out(self, check: Check, suite: CheckSuite, now: dt.datetime) -> bool:
        return now >= _started(check, suite) + dt.timedelta(seconds=check.timeout_seconds)

    def _evaluate_check(
        self, check: Check, result: CheckResult, suite: CheckSuite, run: Run, now: dt.datetime
    ) -> CheckResult:
        trial = CheckTrial(
            branch=run.branch, now=now, timed_out=self._timed_out(check, suite, now),
            approval=lambda rule: self._evaluate_approval(rule, check, result, suite, run, now),
            exclusive_lock=lambda: self._evaluate_lock(check, suite, run, now))
        outcome = check.kind.evaluate(trial)
        return replace(result, state=outcome.state, reason=outcome.reason,
                       approval_id=outcome.approval_id or result.approval_id)

    def _eligible(self, approval: Approval) -> set[str]:
        users = {a for a in approval.approvers if a.startswith("user:")}
        groups = [a for a in approval.approvers if a.startswith("group:")]
        eligible = users | (self._repo.group_members(groups) if groups else set())
        if not approval.allow_requester:
            eligible.discard(approval.requested_by)
        return eligible

    def _evaluate_approval(
        self, rule: ApprovalCheck, check: Check, result: CheckResult, suite: CheckSuite, run: Run, now: dt.datetime
    ) -> Outcome:
        """The run's approval for this check, asked for on first evaluation."""
        approval = self._repo.get_approval(run.project, result.approval_id) if result.approval_id else None
        if approval is None:
            approval = self._repo.create_approval(Approval(
                project=run.project, approval_id=0, run_id=run.run_id, resource=suite.resource,
                check_id=check.check_id, approvers=rule.approvers, min_approvals=rule.min_approvals,
                allow_requester=rule.allow_requester, instructions=rule.instructions, requested_by=run.requested_by,
                state=State.PENDING, created_at=now,
                expire_at=_started(check, suite) + dt.timedelta(seconds=check.timeout_seconds),
            ))
        state, reason = self._refresh_approval(approval, now)
        return Outcome(state, reason, approval.approval_id)

    def _refresh_approval(self, approval: Approval, now: dt.datetime) -> tuple[State, str]:
        state, reason = approval_state(approval, self._eligible(approval), now)
        if state is not approval.state:
            self._repo.set_approval_state(approval.project, approval.approval_id, state)
        return state, reason

    def _evaluate_lock(self, check: Check, suite: CheckSuite, run: Run, now: dt.datetime) -> Outcome:
        holder = self._repo.lock_holder(suite.resource)
        if holder == (run.project, run.run_id):
            return Outcome(State.APPROVED, "holds the exclusive lock")
        if holder is not None and not self._still_running(*holder, now):
            self._repo.release_lock(suite.resource, *holder)
            holder = None
        if holder is None:
            newer = [s.run_id for s in self._lock_waiters(suite.resource) if s.run_id > run.run_id]
            if newer:
                return Outcome(State.REJECTED, f"superseded by run {max(newer)}")
            if self._repo.try_acquire_lock(suite.resource, run.project, run.run_id, now):
                return Outcome(State.APPROVED, "holds the exclusive lock")
            holder = self._repo.lock_holder(suite.resource)
        if self._timed_out(check, suite, now):
            return Outcome(State.REJECTED, "the exclusive lock was not free before the timeout")
        return Outcome(State.PENDING, f"waiting for run {holder[1] if holder else '?'} to release the exclusive lock")

    def _still_running(self, project: str, run_id: int, now: dt.datetime) -> bool:
        holder_run = self._runs.get_run(project, run_id)
        return holder_run is not None and holder_run.state is RunState.RUNNING and holder_run.expire_at > now

    def _lock_waiters(self, resource: str) -> list[CheckSuite]:
        """Pending suites that reached the exclusive lock and wait for it (an evaluated
        lock result carries a reason; one never evaluated has none)."""
        waiting = []
        for suite in self._repo.pending_suites(resource):
            pending = [r for r in suite.results if r.state is not State.APPROVED]
            if pending and pending[0].type is CheckType.EXCLUSIVE_LOCK and pending[0].reason:
                waiting.append(suite)
        return waiting

    def purge_resource(self, resource: str) -> dict[str, int]:
        """A deleted file's checks, suites, approvals (no longer pending for anyone) and lock."""
        return self._repo.purge_resource(resource)

    def release_run(self, run: Run) -> None:
        """A completed run frees its locks: the newest waiter proceeds, older waiters are superseded."""
        now = self._clock()
        for resource in self._repo.locks_held(run.project, run.run_id):
            self._repo.release_lock(resource, run.project, run.run_id)
            waiters = sorted(self._lock_waiters(resource), key=lambda s: s.run_id)
            if not waiters:
                continue
            newest = waiters[-1]
            self._repo.try_acquire_lock(resource, newest.project, newest.run_id, now)
            for older in waiters[:-1]:
                results = [
                    replace(r, state=State.REJECTED, reason=f"superseded by run {newest.run_id}")
                    if r.type is CheckType.EXCLUSIVE_LOCK and r.state is State.PENDING else r
                    for r in older.results
                ]
                self._repo.save_suite(older.with_results(results))

    # -- approvals --------------------------------------------------------------------

    def list_approvals(self, caller: Principal, project: str, pending_only: bool, after: int | None = None,
                       limit: int = DEFAULT_PAGE_SIZE) -> tuple[list[Approval], int | None]:
        """One page of the approvals `caller` may see, in id order after `after`, and the id the next
        page resumes after (None at the end): read from the repository a page at a time, never whole."""
        if not caller.is_user:
            raise _denied("approvals are for people", reason="USER_TOKEN_REQUIRED")
        sees_all = self._policy.allows(caller.name, Permission.VIEW, Scope("library", project))
        now = self._clock()

        def shown(approval: Approval) -> Approval | None:
            eligible = self._eligible(replace(approval, allow_requester=True))
            if not sees_all and caller.name not in eligible:
                return None
            if approval.state is State.PENDING:
                state, _ = self._refresh_approval(approval, now)
                approval = replace(approval, state=state)
            if pending_only and approval.state is not State.PENDING:
                return None
            return approval

        return fill_page(lambda after_id, n: self._repo.list_approvals(project, pending_only, after_id, n),
                         lambda a: a.approval_id, after, limit, shown)

    def decide(self, caller: Principal, name: str, approve: bool, comment: str) -> Approval:
        """Approve or reject as one of the listed approvers."""
        if not caller.is_user:
            raise _denied("approvals are decided by people", reason="USER_TOKEN_REQUIRED")
        project, approval_id = parse_child(name, "approvals")
        if not is_id(approval_id):
            raise InvalidArgument(f"{name!r} is not an approval name", reason="INVALID_RESOURCE_NAME")
        if len(comment) > 2048:
            raise InvalidArgument("comments are limited to 2048 characters", reason="INVALID_COMMENT")
        approval = self._repo.get_approval(project, int(approval_id))
        if approval is None:
            raise NotFound(f"approval {approval_id} does not exist", reason="APPROVAL_NOT_FOUND")
        if caller.name not in self._eligible(replace(approval, allow_requester=True)):
            raise _denied(f"{caller.name} is not an approver of this run", reason="NOT_AN_APPROVER")
        if caller.name == approval.requested_by and not approval.allow_requester:
            raise _denied("the requester of a run may not approve it", reason="REQUESTER_CANNOT_APPROVE")
        if approval.requested_by and caller.issued_by == approval.requested_by and not approval.allow_requester:
            # Two people, not one person with two tokens: the approver signed in on their own.
            raise _denied("your token was issued by the run's requester; sign in as yourself",
                          reason="APPROVER_TOKEN_FROM_REQUESTER")
        now = self._clock()
        state, reason = self._refresh_approval(approval, now)
        if state is not State.PENDING:
            raise FailedPrecondition(f"approval is already {state.value.lower()}: {reason}",
                                     reason="APPROVAL_ALREADY_DECIDED")
        self._repo.add_decision(project, approval.approval_id, ApprovalDecision(caller.name, approve, comment, now))
        updated = self._repo.get_approval(project, approval.approval_id)
        assert updated is not None
        state, _ = self._refresh_approval(updated, now)
        return replace(updated, state=state)


def _started(check: Check, suite: CheckSuite) -> dt.datetime:
    """When a check began to apply to a run: with its suite, or when it was added later."""
    return max(suite.created_at, check.created_at)


def _with_checks(suite: CheckSuite, current: list[Check]) -> CheckSuite:
    """The suite against the file's checks as they are now, in evaluation order."""
    checks = sorted(current, key=lambda c: (c.type.order, c.check_id))
    if [c.check_id for c in checks] == [c.check_id for c in suite.checks]:
        return suite
    reached = {r.check_id: r for r in suite.results}
    results = [reached.get(c.check_id) or CheckResult(c.check_id, c.type, State.PENDING) for c in checks]
    return replace(suite, checks=tuple(checks)).with_results(results)


def raise_unless_approved(suite: CheckSuite) -> None:
    """PERMISSION_DENIED CHECK_REJECTED naming the check, or FAILED_PRECONDITION CHECKS_PENDING
    listing what waits (with approval ids)."""
    if suite.state is State.APPROVED:
        return
    if suite.state is State.REJECTED:
        rejected = next(r for r in suite.results if r.state is State.REJECTED)
        raise PermissionDenied(
            f"check {rejected.type.value} rejected the run: {rejected.reason}", reason="CHECK_REJECTED",
            metadata={"check": rejected.type.value, "check_id": str(rejected.check_id), "detail": rejected.reason},
        )
    pending = [r for r in suite.results if r.state is State.PENDING]
    waiting = pending[0]
    approvals = [str(r.approval_id) for r in suite.results if r.approval_id and r.state is State.PENDING]
    raise FailedPrecondition(
        f"checks pending: {waiting.type.value}" + (f" #{waiting.approval_id}" if waiting.approval_id else "")
        + f" ({waiting.reason or 'not evaluated yet'})",
        reason="CHECKS_PENDING",
        metadata={"pending_checks": ",".join(r.type.value for r in pending), "waiting_for": waiting.reason,
                  "approval_ids": ",".join(approvals)},
    )
