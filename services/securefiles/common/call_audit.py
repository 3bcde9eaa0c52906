"""Which calls the interceptor audits, and the entries it writes: a call's ALLOW when no unit of
work wrote it with a change, and every denial and failure (reads included)."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Sequence
from concurrent.futures import Future
from typing import Any

from securefiles.common.audit import ALLOW, DENY, FAIL, AuditLog
from securefiles.common.call_context import AllowOnce, audit_note, entries_of_call, principal_var
from securefiles.common.errors import SecureFilesError, Unavailable
from securefiles.common.repeated_failures import RepeatedFailures

log = logging.getLogger("securefiles.rpc")

# A flood must not flood the audit log too; the access log has it.
_NOT_AUDITED_REASONS = ("RATE_LIMITED", "TOO_MANY_STREAMS")


class CallAudit:
    """The audit policy of one service's calls."""

    def __init__(self, audit: AuditLog | None, unaudited_methods: frozenset[str]) -> None:
        self._audit = audit
        self._unaudited = unaudited_methods
        self._repeated = RepeatedFailures()

    def owed(self, method: str, accountable: bool) -> AllowOnce | None:
        """The ALLOW entry a successful call owes (reads owe none: too many, and they change nothing)."""
        if self._audit is None or not accountable or _action(method) in self._unaudited:
            return None
        return AllowOnce(lambda: self._submit(ALLOW))

    def records_failure(self, accountable: bool, error: BaseException) -> bool:
        """Denials and failures are audited for every method, reads included (not a failure to
        write the audit entry itself)."""
        return self._audit is not None and accountable and not is_audit_failure(error)

    async def record_failure(self, method: str, error: BaseException, client: str) -> None:
        """Audit a failed call; a failure to do so is logged, the original error still goes out."""
        if isinstance(error, SecureFilesError) and error.reason in _NOT_AUDITED_REASONS:
            return
        if is_anonymous_failure(error):
            # Nobody is known yet: identical failures from one client are one entry per interval.
            repeated = self._repeated.count((method, getattr(error, "reason", ""), client))
            if not repeated:
                return
            audit_note(client=client, repeated=repeated)
        if isinstance(error, SecureFilesError):
            denied = error.code in ("UNAUTHENTICATED", "PERMISSION_DENIED")
            decision, reason = (DENY if denied else FAIL), f"{error.code}/{error.reason}"
        else:
            decision, reason = FAIL, "INTERNAL"
        try:
            await asyncio.wrap_future(self._submit(decision, reason))
        except Exception:
            log.error("audit entry could not be written", exc_info=True, extra={"method": method})

    def _submit(self, decision: str, reason: str = "") -> Future[object]:
        """Queue the audit entry of this call, or of each of its items (its future resolves once
        the entries are durable)."""
        assert self._audit is not None
        return _all_written([
            self._audit.submit(e.principal, e.action, e.resource, decision, reason, e.request_id, e.details)
            for e in entries_of_call(decision == ALLOW)])


def is_anonymous_failure(error: BaseException) -> bool:
    """A failure of a caller nobody knows yet (counted per client, not per person)."""
    return isinstance(error, SecureFilesError) and (
        error.code == "UNAUTHENTICATED" or error.reason == "AUTHENTICATION_THROTTLED"
        or principal_var.get() is None)


def is_audit_failure(error: BaseException) -> bool:
    return isinstance(error, Unavailable) and error.reason == "AUDIT_UNAVAILABLE"


def _action(method: str) -> str:
    return method.rsplit("/", 1)[-1]


def _all_written(entries: Sequence[Future[Any]]) -> Future[Any]:
    """One future for several entries: done once all are, failed if any failed."""
    if len(entries) == 1:
        return entries[0]
    combined: Future[Any] = Future()
    remaining = [len(entries)]
    lock = threading.Lock()

    def one_done(_entry: Future[Any]) -> None:
        with lock:
            remaining[0] -= 1
            if remaining[0]:
                return
        failed = [e for e in entries if e.cancelled() or e.exception() is not None]
        if not failed:
            combined.set_result(None)
        elif failed[0].cancelled():
            combined.cancel()
        else:
            error = failed[0].exception()
            assert error is not None
            combined.set_exception(error)

    for entry in entries:
        entry.add_done_callback(one_done)
    return combined
