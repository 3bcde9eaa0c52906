"""A check as people describe it (the CLI's options, the console's form fields) turned into the
`Check` authz validates: one place for what both accept."""

from __future__ import annotations

from collections.abc import Sequence

from google.protobuf.duration_pb2 import Duration

from securefiles.authz.v1 import authz_pb2
from securefiles.common.durations import parse_duration
from securefiles.common.errors import InvalidArgument
from securefiles.common.weekdays import parse_days

CHECK_TYPES = ("branch-control", "approval", "business-hours", "exclusive-lock")


def _duration(text: str | None) -> Duration | None:
    if not text:
        return None
    try:
        return Duration(seconds=parse_duration(text))
    except ValueError as error:
        raise InvalidArgument(str(error), reason="INVALID_DURATION") from None


def build_check(kind: str, *, allowed: str = "", approvers: Sequence[str] = (), min_approvals: int | None = None,
                allow_requester: bool = False, instructions: str = "", timezone: str = "", days: str = "",
                start: str = "", end: str = "", timeout: str = "") -> authz_pb2.Check:
    """`allowed` is comma-separated ref patterns, `days` e.g. `mon-fri`, `timeout` e.g. `30d`."""
    check = authz_pb2.Check(timeout=_duration(timeout))
    if kind == "branch-control":
        if not allowed:
            raise InvalidArgument("give --allowed 'refs/heads/main,refs/heads/release/*'", reason="INVALID_CHECK")
        check.branch_control.allowed_refs.extend(p.strip() for p in allowed.split(",") if p.strip())
    elif kind == "approval":
        check.approval.CopyFrom(authz_pb2.ApprovalSettings(
            approvers=list(approvers), min_approvals=min_approvals or 1, allow_requester=allow_requester,
            instructions=instructions))
    elif kind == "business-hours":
        if not (timezone and days and start and end):
            raise InvalidArgument("give --timezone, --days, --start and --end", reason="INVALID_CHECK")
        check.business_hours.CopyFrom(authz_pb2.BusinessHours(
            time_zone=timezone, days=parse_days(days), start_time=start, end_time=end))
    elif kind == "exclusive-lock":
        check.exclusive_lock.SetInParent()
    else:
        raise InvalidArgument(f"unknown check type {kind!r}; one of {', '.join(CHECK_TYPES)}", reason="INVALID_CHECK")
    return check
