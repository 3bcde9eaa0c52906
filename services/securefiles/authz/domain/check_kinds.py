"""The four kinds of check, each a frozen value that validates its settings and decides for a run.

Branch control and business hours decide from the run and the clock alone; an approval and
the exclusive lock keep state across calls, which the check service reads and keeps for them
(`CheckTrial.approval`, `CheckTrial.exclusive_lock`).
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, ClassVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from securefiles.authz.domain.refs import ref_problem
from securefiles.common.errors import InvalidArgument
from securefiles.common.principal import GROUP_PRINCIPAL, USER_PRINCIPAL
from securefiles.common.weekdays import DAYS

_TIME = re.compile(r"([01][0-9]|2[0-3]):([0-5][0-9])|24:00")
MAX_PATTERNS = 64
MAX_APPROVERS = 64
MAX_INSTRUCTIONS = 2048


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
class Outcome:
    """What one check decided for a run, and why (an approval's id, when it asked for one)."""

    state: State
    reason: str
    approval_id: int = 0


@dataclass(frozen=True)
class CheckTrial:
    """One run meeting one check: the run's branch, the time, whether the check's timeout passed,
    and the state that approvals and the lock keep."""

    branch: str
    now: dt.datetime
    timed_out: bool
    approval: Callable[[ApprovalCheck], Outcome]
    exclusive_lock: Callable[[], Outcome]


def _invalid(message: str) -> InvalidArgument:
    return InvalidArgument(message, reason="INVALID_CHECK")


@dataclass(frozen=True)
class BranchControl:
    """Only runs of a branch or tag matching one of the patterns (`*` matches `/` too)."""

    allowed_refs: tuple[str, ...]
    type: ClassVar[CheckType] = CheckType.BRANCH_CONTROL

    @classmethod
    def validated(cls, settings: Mapping[str, Any]) -> BranchControl:
        patterns = [p.strip() for p in settings.get("allowed_refs", []) if p.strip()]
        if not patterns or len(patterns) > MAX_PATTERNS:
            raise _invalid(f"branch control needs 1-{MAX_PATTERNS} allowed ref patterns")
        for pattern in patterns:
            problem = ref_problem(pattern, pattern=True)
            if problem:
                raise _invalid(f"allowed ref {pattern[:80]!r} is not a valid git ref pattern: {problem}")
        return cls(tuple(patterns))

    @classmethod
    def stored(cls, settings: Mapping[str, Any]) -> BranchControl:
        return cls(tuple(settings["allowed_refs"]))

    def settings(self) -> dict[str, Any]:
        return {"allowed_refs": list(self.allowed_refs)}

    def allows(self, branch: str) -> bool:
        if ref_problem(branch):
            return False  # a run started before refs were validated
        return any(fnmatch.fnmatchcase(branch, pattern) for pattern in self.allowed_refs)

    def evaluate(self, trial: CheckTrial) -> Outcome:
        if self.allows(trial.branch):
            return Outcome(State.APPROVED, f"{trial.branch} is allowed")
        return Outcome(State.REJECTED, f"{trial.branch} is not among {', '.join(self.allowed_refs)}")


@dataclass(frozen=True)
class ApprovalCheck:
    """People (or groups) who must approve each run; the requester only if allowed."""

    approvers: tuple[str, ...]
    min_approvals: int = 1
    allow_requester: bool = False
    instructions: str = ""
    type: ClassVar[CheckType] = CheckType.APPROVAL

    @classmethod
    def validated(cls, settings: Mapping[str, Any]) -> ApprovalCheck:
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
        if len(instructions) > MAX_INSTRUCTIONS:
            raise _invalid(f"instructions are limited to {MAX_INSTRUCTIONS} characters")
        return cls(tuple(approvers), minimum, bool(settings.get("allow_requester", False)), instructions)

    @classmethod
    def stored(cls, settings: Mapping[str, Any]) -> ApprovalCheck:
        return cls(tuple(settings["approvers"]), settings["min_approvals"], settings["allow_requester"],
                   settings["instructions"])

    def settings(self) -> dict[str, Any]:
        return {"approvers": list(self.approvers), "min_approvals": self.min_approvals,
                "allow_requester": self.allow_requester, "instructions": self.instructions}

    def evaluate(self, trial: CheckTrial) -> Outcome:
        return trial.approval(self)


@dataclass(frozen=True)
class BusinessHours:
    """Runs proceed only within a weekly window in a time zone; outside it they wait."""

    time_zone: str
    days: tuple[str, ...]
    start_time: str  # HH:MM
    end_time: str  # HH:MM, or 24:00
    type: ClassVar[CheckType] = CheckType.BUSINESS_HOURS

    @classmethod
    def validated(cls, settings: Mapping[str, Any]) -> BusinessHours:
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
        return cls(zone, tuple(sorted(set(days), key=DAYS.index)), start, end)

    @classmethod
    def stored(cls, settings: Mapping[str, Any]) -> BusinessHours:
        return cls(settings["time_zone"], tuple(settings["days"]), settings["start_time"], settings["end_time"])

    def settings(self) -> dict[str, Any]:
        return {"time_zone": self.time_zone, "days": list(self.days), "start_time": self.start_time,
                "end_time": self.end_time}

    def contains(self, now: dt.datetime) -> bool:
        local = now.astimezone(ZoneInfo(self.time_zone))
        if DAYS[local.weekday()] not in self.days:
            return False
        return self.start_time <= local.strftime("%H:%M") < self.end_time

    def evaluate(self, trial: CheckTrial) -> Outcome:
        if self.contains(trial.now):
            return Outcome(State.APPROVED, "within business hours")
        if trial.timed_out:
            return Outcome(State.REJECTED, "business hours did not come before the timeout")
        return Outcome(State.PENDING, f"outside business hours ({','.join(self.days)} {self.start_time}-"
                                      f"{self.end_time} {self.time_zone})")


@dataclass(frozen=True)
class ExclusiveLock:
    """One run at a time holds the file; the newest waiter goes next, older waiters are superseded."""

    type: ClassVar[CheckType] = CheckType.EXCLUSIVE_LOCK

    @classmethod
    def validated(cls, settings: Mapping[str, Any]) -> ExclusiveLock:
        return cls()

    @classmethod
    def stored(cls, settings: Mapping[str, Any]) -> ExclusiveLock:
        return cls()

    def settings(self) -> dict[str, Any]:
        return {}

    def evaluate(self, trial: CheckTrial) -> Outcome:
        return trial.exclusive_lock()


CheckKind = BranchControl | ApprovalCheck | BusinessHours | ExclusiveLock
_KINDS: dict[CheckType, type[CheckKind]] = {
    kind.type: kind for kind in (BranchControl, ApprovalCheck, BusinessHours, ExclusiveLock)}


def check_kind(check_type: CheckType, settings: Mapping[str, Any]) -> CheckKind:
    """A check of `check_type` from settings as a person gave them: normalised, or INVALID_CHECK."""
    return _KINDS[check_type].validated(settings)


def stored_check_kind(check_type: CheckType, settings: Mapping[str, Any]) -> CheckKind:
    """A check as it was stored (validated when it was made)."""
    return _KINDS[check_type].stored(settings)
