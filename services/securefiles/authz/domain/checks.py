"""Checks on a secure file and the check suite each run gets against it.

Evaluation order follows Azure Pipelines: branch control → approvals → business hours →
exclusive lock. Evaluation stops at the first check that is not approved: a rejection
rejects the suite, anything pending leaves it pending. The exclusive lock comes last so
that only a run that passed everything else ever holds it.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import re
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from securefiles.authz.domain.refs import ref_problem
from securefiles.common.errors import InvalidArgument
from securefiles.common.principal import GROUP_PRINCIPAL, USER_PRINCIPAL
from securefiles.common.resource_names import approval_name
from securefiles.common.weekdays import DAYS

DEFAULT_TIMEOUT_SECONDS = 30 * 24 * 3600
MAX_TIMEOUT_SECONDS = 365 * 24 * 3600
_TIME = re.compile(r"([01][0-9]|2[0-3]):([0-5][0-9])|24:00")
MAX_PATTERNS = 64
MAX_APPROVERS = 64


class CheckType(StrEnum):
    BRANCH_CONTROL = "branch-control"
    APPROVAL = "approval"
    BUSINESS_HOURS = "business-hours"
    EXCLUSIVE_LOCK = "exclusive-lock"

    @property
    def order(self) -> int:
        return list(CheckType).index(self)


class State(StrEnum):
    PENDING = "PENDING"
    APPROVED = "APPROVED"
    REJECTED = "REJECTED"


@dataclass(frozen=True)
class Check:
    """A check configured on one file."""

    project: str
    check_id: int
    resource: str
    type: CheckType
    settings: dict[str, Any]
    timeout_seconds: int
    created_at: dt.datetime
    created_by: str

    @property
    def name(self) -> str:
        return f"{self.resource}/checks/{self.check_id}"


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


# -- settings validation -------------------------------------------------------------


def _invalid(message: str) -> InvalidArgument:
    return InvalidArgument(message, reason="INVALID_CHECK")


def validate_settings(check_type: CheckType, settings: dict[str, Any]) -> dict[str, Any]:
    """Normalise one check's settings; raise INVALID_CHECK on anything malformed."""
    if check_type is CheckType.BRANCH_CONTROL:
        patterns = [p.strip() for p in settings.get("allowed_refs", []) if p.strip()]
        if not patterns or len(patterns) > MAX_PATTERNS:
            raise _invalid(f"branch control needs 1-{MAX_PATTERNS} allowed ref patterns")
        for pattern in patterns:
            problem = ref_problem(pattern, pattern=True)
            if problem:
                raise _invalid(f"allowed ref {pattern[:80]!r} is not a valid git ref pattern: {problem}")
        return {"allowed_refs": patterns}
    if check_type is CheckType.APPROVAL:
        approvers = list(dict.fromkeys(a.strip() for a in settings.get("approvers", []) if a.strip()))
        if not approvers or len(approvers) > MAX_APPROVERS:
            raise _invalid(f"an approval check needs 1-{MAX_APPROVERS} approvers")
        for approver in approvers:
            if not (USER_PRINCIPAL.fullmatch(approver) or GROUP_PRINCIPAL.fullmatch(approver)):
                raise _invalid(f"approver {approver!r} must look like user:<name> or group:<name>")
        minimum = int(settings.get("min_approvals") or 1)
        if minimum < 1 or minimum > 100:
            raise _invalid("min_approvals must be between 1 and 100")
        instructions = str(settings.get("instructions", ""))
        if len(instructions) > 2048:
            raise _invalid("instructions are limited to 2048 characters")
        return {"approvers": approvers, "min_approvals": minimum,
                "allow_requester": bool(settings.get("allow_requester", False)), "instructions": instructions}
    if check_type is CheckType.BUSINESS_HOURS:
        zone = str(settings.get("time_zone", ""))
        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise _invalid(f"unknown IANA time zone {zone!r}") from None
        days = [d.lower()[:3] for d in settings.get("days", [])]
        if not days or any(d not in DAYS for d in days):
            raise _invalid("days must be among mon tue wed thu fri sat sun")
        start, end = str(settings.get("start_time", "")), str(settings.get("end_time", ""))
        if not (_TIME.fullmatch(start) and _TIME.fullmatch(end)) or start >= end:
            raise _invalid("start and end must be HH:MM with start before end")
        return {"time_zone": zone, "days": sorted(set(days), key=DAYS.index), "start_time": start, "end_time": end}
    return {}


# -- pure decisions ------------------------------------------------------------------


def branch_allowed(branch: str, patterns: list[str]) -> bool:
    """A valid ref name matching a pattern (`*` matches any characters, `/` included)."""
    if ref_problem(branch):
        return False  # a run started before refs were validated
    return any(fnmatch.fnmatchcase(branch, pattern) for pattern in patterns)


def within_business_hours(settings: dict[str, Any], now: dt.datetime) -> bool:
    local = now.astimezone(ZoneInfo(settings["time_zone"]))
    if DAYS[local.weekday()] not in settings["days"]:
        return False
    return settings["start_time"] <= local.strftime("%H:%M") < settings["end_time"]


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
