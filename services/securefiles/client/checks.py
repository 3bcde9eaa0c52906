"""`client.checks`: checks on files, a run's check suites, approvals and approver groups, as the
client's own types."""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from typing import TYPE_CHECKING

from securefiles.client import convert
from securefiles.client.check_spec import build_check
from securefiles.client.types import Approval, Check, CheckSuite, Group

if TYPE_CHECKING:
    from securefiles.client.api import SecureFilesClient


class ChecksClient:
    def __init__(self, api: SecureFilesClient) -> None:
        self._api = api

    def add(self, file: str, kind: str, *, allowed: str = "", approvers: Sequence[str] = (),
            min_approvals: int | None = None, allow_requester: bool = False, instructions: str = "",
            timezone: str = "", days: str = "", start: str = "", end: str = "", timeout: str = "") -> Check:
        """Add a check of `kind` (branch-control, approval, business-hours, exclusive-lock) to a file;
        the settings as `client.check_spec.build_check` reads them (`allowed` comma-separated, `days`
        e.g. mon-fri, `timeout` e.g. 30d)."""
        check = build_check(kind, allowed=allowed, approvers=approvers, min_approvals=min_approvals,
                            allow_requester=allow_requester, instructions=instructions, timezone=timezone, days=days,
                            start=start, end=end, timeout=timeout)
        return convert.check(self._api.add_check(file, check))

    def list(self, file: str) -> builtins.list[Check]:
        return [convert.check(c) for c in self._api.list_checks(file)]

    def delete(self, file: str, check_id: int) -> None:
        self._api.delete_check(file, check_id)

    def request(self, run: str, files: builtins.list[str]) -> builtins.list[CheckSuite]:
        """Create a run's check suites (and approval requests) ahead of use, one per file."""
        return [convert.check_suite(s) for s in self._api.request_checks(run, files)]

    def approvals(self, pending_only: bool = False) -> builtins.list[Approval]:
        return [convert.approval(a) for a in self._api.list_approvals(pending_only)]

    def decide(self, approval_id: int, approve: bool, comment: str = "") -> Approval:
        return convert.approval(self._api.decide_approval(approval_id, approve, comment))

    def groups(self) -> builtins.list[Group]:
        return [convert.group(g) for g in self._api.list_groups()]

    def set_group_member(self, group: str, principal: str, member: bool = True) -> Group:
        return convert.group(self._api.set_group_member(group, principal, member))
