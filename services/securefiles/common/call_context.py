"""The RPC being served: who calls, and what its audit entries will say.

The interceptor fills this in when a call begins; servicers and the domain add facts
(`audit_note`, `audit_items`); the call's ALLOW entry is written once (`AllowOnce`), either in
the transaction of its change (`common/unit_of_work.py`) or by the interceptor when the call
succeeds without one. No gRPC here: adapters on database threads read it too.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass

from securefiles.common.errors import Unauthenticated, Unavailable
from securefiles.common.logging import request_id_var
from securefiles.common.principal import Principal

log = logging.getLogger("securefiles.rpc")

principal_var: contextvars.ContextVar[Principal | None] = contextvars.ContextVar("principal", default=None)
audit_note_var: contextvars.ContextVar[dict[str, str] | None] = contextvars.ContextVar("audit_note", default=None)
_action_var: contextvars.ContextVar[str] = contextvars.ContextVar("action", default="")
_allow_var: contextvars.ContextVar[AllowOnce | None] = contextvars.ContextVar("allow_once", default=None)
_items_var: contextvars.ContextVar[list[tuple[str, dict[str, str]]] | None] = contextvars.ContextVar(
    "audit_items", default=None)


@dataclass(frozen=True)
class EntryFields:
    """One audit entry as the call describes it (the audit log numbers, times and chains it)."""

    principal: str
    action: str
    resource: str
    details: dict[str, str]
    request_id: str


def current_principal() -> Principal:
    """The authenticated caller of the RPC being served."""
    principal = principal_var.get()
    if principal is None:
        raise Unauthenticated("no authenticated caller", reason="MISSING_CREDENTIALS")
    return principal


def begin_call(action: str, resource: str) -> None:
    """A new call: nobody authenticated yet, its audit entries about `resource` until told otherwise."""
    principal_var.set(None)
    audit_note_var.set({"resource": resource})
    _items_var.set(None)
    _action_var.set(action)
    _allow_var.set(None)


def owe_allow(allow: AllowOnce | None) -> None:
    """The call's ALLOW entry, owed when the call is audited."""
    _allow_var.set(allow)


def owed_allow() -> AllowOnce | None:
    """The current call's ALLOW entry if it is owed and not written yet."""
    allow = _allow_var.get()
    return allow if allow is not None and not allow.is_written() else None


def audit_note(resource: str | None = None, **details: object) -> None:
    """Tell the audit entry of the current RPC which resource it concerns and extra facts."""
    note = audit_note_var.get()
    if note is None:
        return
    if resource is not None:
        note["resource"] = resource
    note.update({k: str(v) for k, v in details.items()})


def audit_items(items: Sequence[tuple[str, Mapping[str, object]]]) -> None:
    """The current RPC acts on several things (a batch): its ALLOW is one entry per item (resource,
    facts), all written before its result goes out. A refusal stays one entry."""
    _items_var.set([(resource, {k: str(v) for k, v in details.items()}) for resource, details in items])


def entries_of_call(allowed: bool) -> list[EntryFields]:
    """The current call's entries: one per item for an ALLOW of a batch, else one."""
    principal = principal_var.get()
    note = dict(audit_note_var.get() or {})
    resource = note.pop("resource", "")
    items = (_items_var.get() if allowed else None) or [(resource, {})]
    who = principal.name if principal else "anonymous"
    action, request_id = _action_var.get(), request_id_var.get()
    return [EntryFields(who, action, item, {**note, **details}, request_id) for item, details in items]


class AllowOnce:
    """The ALLOW entry of one call: written once, by whoever comes first (the transaction of the
    call's change, or the interceptor as the call ends or before its first message); the others
    wait for the same entry. One that could not be written is tried again by the next who asks."""

    def __init__(self, write: Callable[[], Future[object]]) -> None:
        self._write = write
        self._lock = threading.Lock()
        self._entry: Future[object] | None = None

    def _started(self) -> Future[object]:
        with self._lock:
            entry = self._entry
            if entry is None or (entry.done() and (entry.cancelled() or entry.exception() is not None)):
                entry = self._entry = self._write()
            return entry

    def is_written(self) -> bool:
        with self._lock:
            entry = self._entry
        return entry is not None and entry.done() and not entry.cancelled() and entry.exception() is None

    def written_with_change(self) -> None:
        """The entry was committed in the transaction of the call's change."""
        done: Future[object] = Future()
        done.set_result(None)
        with self._lock:
            self._entry = done

    async def wait(self) -> None:
        entry = self._started()
        await asyncio.wait([asyncio.wrap_future(entry)])
        unavailable_unless_written(entry)


def unavailable_unless_written(entry: Future[object]) -> None:
    try:
        entry.result()
    except Exception:
        raise audit_unavailable() from None


def audit_unavailable() -> Unavailable:
    """The refusal of an operation whose audit entry could not be written (logged here)."""
    log.error("audit entry could not be written", exc_info=True)
    return Unavailable("the audit log cannot be written; operation refused", reason="AUDIT_UNAVAILABLE")
