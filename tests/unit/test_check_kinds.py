"""Each kind of check is a value that validates its settings and decides a run on its own
(approvals and the lock through the state the check service keeps for them)."""

from __future__ import annotations

import datetime as dt

import pytest

from securefiles.authz.domain.check_kinds import (
    ApprovalCheck,
    BranchControl,
    BusinessHours,
    CheckTrial,
    CheckType,
    ExclusiveLock,
    Outcome,
    State,
    check_kind,
    stored_check_kind,
)
from securefiles.common.errors import InvalidArgument

MONDAY_10_UTC = dt.datetime(2026, 11, 23, 10, 0, tzinfo=dt.UTC)


def trial(branch: str = "refs/heads/main", now: dt.datetime = MONDAY_10_UTC, timed_out: bool = False) -> CheckTrial:
    return CheckTrial(branch, now, timed_out,
                      approval=lambda rule: Outcome(State.PENDING, f"ask {','.join(rule.approvers)}", 7),
                      exclusive_lock=lambda: Outcome(State.APPROVED, "holds the exclusive lock"))


@pytest.mark.parametrize(("kind", "branch", "now", "timed_out", "expected"), [
    (BranchControl(("refs/heads/main",)), "refs/heads/main", MONDAY_10_UTC, False,
     Outcome(State.APPROVED, "refs/heads/main is allowed")),
    (BranchControl(("refs/heads/release/*",)), "refs/heads/main", MONDAY_10_UTC, False,
     Outcome(State.REJECTED, "refs/heads/main is not among refs/heads/release/*")),
    (BusinessHours("Europe/Zurich", ("mon",), "09:00", "17:00"), "", MONDAY_10_UTC, False,
     Outcome(State.APPROVED, "within business hours")),
    (BusinessHours("Europe/Zurich", ("tue",), "09:00", "17:00"), "", MONDAY_10_UTC, False,
     Outcome(State.PENDING, "outside business hours (tue 09:00-17:00 Europe/Zurich)")),
    (BusinessHours("Europe/Zurich", ("tue",), "09:00", "17:00"), "", MONDAY_10_UTC, True,
     Outcome(State.REJECTED, "business hours did not come before the timeout")),
    (ApprovalCheck(("user:bob", "group:release")), "", MONDAY_10_UTC, False,
     Outcome(State.PENDING, "ask user:bob,group:release", 7)),
    (ExclusiveLock(), "", MONDAY_10_UTC, False, Outcome(State.APPROVED, "holds the exclusive lock")),
])
def test_each_kind_decides_for_a_run(kind, branch, now, timed_out, expected) -> None:
    assert kind.evaluate(trial(branch, now, timed_out)) == expected


@pytest.mark.parametrize(("check_type", "settings", "expected"), [
    (CheckType.BRANCH_CONTROL, {"allowed_refs": [" refs/heads/main ", ""]}, BranchControl(("refs/heads/main",))),
    (CheckType.APPROVAL, {"approvers": ["user:bob", "user:bob", "group:ops"], "min_approvals": 0},
     ApprovalCheck(("user:bob", "group:ops"), 1, False, "")),
    (CheckType.BUSINESS_HOURS, {"time_zone": "UTC", "days": ["Friday", "mon"], "start_time": "08:00",
                                "end_time": "24:00"}, BusinessHours("UTC", ("mon", "fri"), "08:00", "24:00")),
    (CheckType.EXCLUSIVE_LOCK, {}, ExclusiveLock()),
])
def test_settings_are_normalised_and_stored_as_they_read_back(check_type, settings, expected) -> None:
    kind = check_kind(check_type, settings)
    assert kind == expected
    assert kind.type is check_type
    assert stored_check_kind(check_type, kind.settings()) == kind


@pytest.mark.parametrize(("check_type", "settings"), [
    (CheckType.BRANCH_CONTROL, {"allowed_refs": []}),
    (CheckType.APPROVAL, {"approvers": ["bob"]}),
    (CheckType.APPROVAL, {"approvers": ["user:bob"], "instructions": "x" * 2049}),
    (CheckType.BUSINESS_HOURS, {"time_zone": "Mars/Olympus", "days": ["mon"], "start_time": "09:00",
                                "end_time": "17:00"}),
    (CheckType.BUSINESS_HOURS, {"time_zone": "UTC", "days": ["mon"], "start_time": "17:00", "end_time": "09:00"}),
])
def test_malformed_settings_are_refused(check_type, settings) -> None:
    with pytest.raises(InvalidArgument) as refused:
        check_kind(check_type, settings)
    assert refused.value.reason == "INVALID_CHECK"
