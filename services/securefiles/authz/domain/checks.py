"""Checks on a secure file and the check suite each run gets against it.

Evaluation order follows Azure Pipelines: branch control → approvals → business hours →
exclusive lock. Evaluation stops at the first check that is not approved: a rejection
rejects the suite, anything pending leaves it pending. The exclusive lock comes last so
that only a run that passed everything else ever holds it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, replace

from securefiles.authz.domain.check_kinds import CheckKind
from securefiles.authz.domain.check_kinds import CheckType as CheckType  # re-exported: the records speak these
from securefiles.authz.domain.check_kinds import State as State
from securefiles.common.etags import etag
from securefiles.common.resource_names import approval_name

DEFAULT_TIMEOUT_SECONDS = 30 * 24 * 3600
MAX_TIMEOUT_SECONDS = 365 * 24 * 3600


@dataclass(frozen=True)
class Check:
    """A check configured on one file."""

    project: str
    check_id: int
    resource: str
    kind: CheckKind
    timeout_seconds: int
    created_at: dt.datetime
    created_by: str

    @property
    def type(self) -> CheckType:
        return self.kind.type

    @property
    def name(self) -> str:
        return f"{self.resource}/checks/{self.check_id}"

    @property
    def etag(self) -> str:
        """AIP-154: from the check's settings (a check is not changed after it is made)."""
        return etag(self.name, self.kind, self.timeout_seconds)


@dataclass(frozen=True)
class CheckResult:
    check_id: int
    type: CheckType
    state: State
    reason: str = ""
    approval_id: int = 0


@dataclass(frozen=True)
class CheckSuite:
    """One run against one file: the checks as they were when the suite was created."""

    project: str
    run_id: int
    resource: str
    state: State
    checks: tuple[Check, ...]
    results: tuple[CheckResult, ...]
    created_at: dt.datetime

    def with_results(self, results: list[CheckResult]) -> CheckSuite:
        if any(r.state is State.REJECTED for r in results):
            state = State.REJECTED
        elif all(r.state is State.APPROVED for r in results):
            state = State.APPROVED
        else:
            state = State.PENDING
        return replace(self, state=state, results=tuple(results))


@dataclass(frozen=True)
class ApprovalDecision:
    approver: str
    approved: bool
    comment: str
    decided_at: dt.datetime


@dataclass(frozen=True)
class Approval:
    project: str
    approval_id: int
    run_id: int
    resource: str
    check_id: int
    approvers: tuple[str, ...]
    min_approvals: int
    allow_requester: bool
    instructions: str
    requested_by: str
    state: State
    created_at: dt.datetime
    expire_at: dt.datetime
    decisions: tuple[ApprovalDecision, ...] = field(default=())

    @property
    def name(self) -> str:
        return approval_name(self.project, self.approval_id)


# -- pure decisions ------------------------------------------------------------------


def approval_state(approval: Approval, eligible: set[str], now: dt.datetime) -> tuple[State, str]:
    """Any eligible rejection rejects; enough distinct eligible approvals approve; else timeout or pending."""
    if any(not d.approved and d.approver in eligible for d in approval.decisions):
        rejecter = next(d.approver for d in approval.decisions if not d.approved and d.approver in eligible)
        return State.REJECTED, f"rejected by {rejecter}"
    approvers = {d.approver for d in approval.decisions if d.approved and d.approver in eligible}
    if len(approvers) >= approval.min_approvals:
        return State.APPROVED, f"approved by {', '.join(sorted(approvers))}"
    if now >= approval.expire_at:
        return State.REJECTED, "approval timed out"
    return State.PENDING, f"waiting for {approval.min_approvals - len(approvers)} more approval(s)"
