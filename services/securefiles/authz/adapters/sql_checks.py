"""Checks, check suites, approvals, exclusive locks and groups in SQL."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Engine,
    Index,
    Integer,
    String,
    Table,
    Text,
    bindparam,
    delete,
    func,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from securefiles.authz.adapters.sql_repository import lock_project_numbering, metadata
from securefiles.authz.domain.check_kinds import CheckKind, stored_check_kind
from securefiles.authz.domain.checks import (
    Approval,
    ApprovalDecision,
    Check,
    CheckResult,
    CheckSuite,
    CheckType,
    State,
)
from securefiles.common.db import read_transaction, write_transaction

checks = Table(
    "checks", metadata,
    Column("project", String(63), primary_key=True),
    Column("check_id", Integer, primary_key=True, autoincrement=False),
    Column("resource", String(512), nullable=False, index=True),
    Column("type", String(32), nullable=False),
    Column("settings", Text, nullable=False),
    Column("timeout_seconds", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("created_by", String(160), nullable=False),
)

check_suites = Table(
    "check_suites", metadata,
    Column("project", String(63), primary_key=True),
    Column("run_id", Integer, primary_key=True, autoincrement=False),
    Column("resource", String(512), primary_key=True),
    Column("state", String(16), nullable=False, index=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("checks", Text, nullable=False),
    Column("results", Text, nullable=False),
)

approvals = Table(
    "approvals", metadata,
    Column("project", String(63), primary_key=True),
    Column("approval_id", Integer, primary_key=True, autoincrement=False),
    Column("run_id", Integer, nullable=False),
    Column("resource", String(512), nullable=False),
    Column("check_id", Integer, nullable=False),
    Column("approvers", Text, nullable=False),
    Column("min_approvals", Integer, nullable=False),
    Column("allow_requester", Boolean, nullable=False),
    Column("instructions", Text, nullable=False),
    Column("requested_by", String(160), nullable=False),
    Column("state", String(16), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expire_at", DateTime(timezone=True), nullable=False),
)

# The pending approvals of a project, in order: without approval_id in it SQLite walks the primary
# key (for the order) through every approval the project ever had.
Index("ix_approvals_project_state", approvals.c.project, approvals.c.state, approvals.c.approval_id)
# A run's approval for one check of one file, found before another is created.
Index("ix_approvals_run_check", approvals.c.project, approvals.c.run_id, approvals.c.resource, approvals.c.check_id)

approval_decisions = Table(
    "approval_decisions", metadata,
    Column("project", String(63), primary_key=True),
    Column("approval_id", Integer, primary_key=True, autoincrement=False),
    Column("approver", String(160), primary_key=True),
    Column("approved", Boolean, nullable=False),
    Column("comment", Text, nullable=False),
    Column("decided_at", DateTime(timezone=True), nullable=False),
)

resource_locks = Table(
    "resource_locks", metadata,
    Column("resource", String(512), primary_key=True),
    Column("project", String(63), nullable=False),
    Column("run_id", Integer, nullable=False),
    Column("acquired_at", DateTime(timezone=True), nullable=False),
)

group_members = Table(
    "group_members", metadata,
    Column("group_name", String(160), primary_key=True),
    Column("principal", String(160), primary_key=True),
    # `manual` (an administrator added it) or `sign-in` (the organization's provider named it).
    Column("source", String(16), nullable=False, server_default="manual"),
)


_GET_SUITE = select(check_suites).where(
    check_suites.c.project == bindparam("project"), check_suites.c.run_id == bindparam("run_id"),
    check_suites.c.resource == bindparam("resource"))


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def _check_dict(c: Check) -> dict[str, Any]:
    return {"project": c.project, "check_id": c.check_id, "resource": c.resource, "type": c.type.value,
            "settings": c.kind.settings(), "timeout_seconds": c.timeout_seconds, "created_at": c.created_at.isoformat(),
            "created_by": c.created_by}


def _check_from_dict(d: dict[str, Any]) -> Check:
    return Check(d["project"], d["check_id"], d["resource"], stored_check_kind(CheckType(d["type"]), d["settings"]),
                 d["timeout_seconds"], dt.datetime.fromisoformat(d["created_at"]), d["created_by"])


def _check(m: Any) -> Check:
    return Check(m["project"], m["check_id"], m["resource"],
                 stored_check_kind(CheckType(m["type"]), json.loads(m["settings"])), m["timeout_seconds"],
                 _aware(m["created_at"]), m["created_by"])


def _suite(m: Any) -> CheckSuite:
    results = tuple(CheckResult(r["check_id"], CheckType(r["type"]), State(r["state"]), r["reason"],
                                r["approval_id"]) for r in json.loads(m["results"]))
    return CheckSuite(m["project"], m["run_id"], m["resource"], State(m["state"]),
                      tuple(_check_from_dict(c) for c in json.loads(m["checks"])), results, _aware(m["created_at"]))


def _suite_values(s: CheckSuite) -> dict[str, Any]:
    return {
        "project": s.project, "run_id": s.run_id, "resource": s.resource, "state": s.state.value,
        "created_at": s.created_at, "checks": json.dumps([_check_dict(c) for c in s.checks]),
        "results": json.dumps([{"check_id": r.check_id, "type": r.type.value, "state": r.state.value,
                                "reason": r.reason, "approval_id": r.approval_id} for r in s.results]),
    }


class SqlChecksRepository:
    """ChecksRepository on SQLAlchemy Core (same database as the rest of authz)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    # -- checks -----------------------------------------------------------------------

    def create_check(
        self, project: str, resource: str, kind: CheckKind, timeout_seconds: int, now: dt.datetime, created_by: str,
    ) -> Check:
        for _attempt in range(5):
            try:
                with write_transaction(self._engine) as conn:
                    latest = conn.execute(
                        select(func.max(checks.c.check_id)).where(checks.c.project == project)).scalar()
                    check = Check(project, (latest or 0) + 1, resource, kind, timeout_seconds, now, created_by)
                    conn.execute(checks.insert().values(
                        project=project, check_id=check.check_id, resource=resource, type=kind.type.value,
                        settings=json.dumps(kind.settings()), timeout_seconds=timeout_seconds, created_at=now,
                        created_by=created_by))
                    return check
            except IntegrityError:
                continue
        raise RuntimeError("could not allocate a check id")

    def list_checks(self, resource: str) -> list[Check]:
        with read_transaction(self._engine) as conn:
            rows = conn.execute(select(checks).where(checks.c.resource == resource).order_by(checks.c.check_id)).all()
        return [_check(r._mapping) for r in rows]

    def purge_resource(self, resource: str) -> dict[str, int]:
        """Checks, suites, approvals (with their decisions) and the lock of a file that is gone."""
        with write_transaction(self._engine) as conn:
            for project, approval_id in conn.execute(
                    select(approvals.c.project, approvals.c.approval_id).where(approvals.c.resource == resource)).all():
                conn.execute(delete(approval_decisions).where(
                    approval_decisions.c.project == project, approval_decisions.c.approval_id == approval_id))
            return {
                "approvals": int(conn.execute(delete(approvals).where(approvals.c.resource == resource)).rowcount or 0),
                "check_suites": int(conn.execute(delete(check_suites).where(
                    check_suites.c.resource == resource)).rowcount or 0),
                "checks": int(conn.execute(delete(checks).where(checks.c.resource == resource)).rowcount or 0),
                "locks": int(conn.execute(delete(resource_locks).where(
                    resource_locks.c.resource == resource)).rowcount or 0),
            }

    def delete_check(self, resource: str, check_id: int) -> bool:
        with write_transaction(self._engine) as conn:
            result = conn.execute(delete(checks).where(checks.c.resource == resource, checks.c.check_id == check_id))
        return bool(result.rowcount)

    # -- suites -----------------------------------------------------------------------

    def get_suite(self, project: str, run_id: int, resource: str) -> CheckSuite | None:
        with read_transaction(self._engine) as conn:
            row = conn.execute(_GET_SUITE, {"project": project, "run_id": run_id, "resource": resource}).first()
        return _suite(row._mapping) if row else None

    def insert_suite(self, suite: CheckSuite) -> CheckSuite:
        try:
            with write_transaction(self._engine) as conn:
                conn.execute(check_suites.insert().values(**_suite_values(suite)))
            return suite
        except IntegrityError:
            existing = self.get_suite(suite.project, suite.run_id, suite.resource)
            assert existing is not None
            return existing

    def save_suite(self, suite: CheckSuite, previous: CheckSuite | None = None) -> None:
        values = _suite_values(suite)
        where = [check_suites.c.project == suite.project, check_suites.c.run_id == suite.run_id,
                 check_suites.c.resource == suite.resource]
        if previous is None:
            # A decided suite never changes again: rejections are not loosened.
            where.append(check_suites.c.state == State.PENDING.value)
        else:
            # A rejection is final; otherwise only the suite as it was read is replaced (two
            # evaluations at once must not put back results the other one advanced).
            where += [check_suites.c.state != State.REJECTED.value,
                      check_suites.c.results == _suite_values(previous)["results"]]
        with write_transaction(self._engine) as conn:
            conn.execute(update(check_suites).where(*where).values(
                state=values["state"], results=values["results"], checks=values["checks"]))

    def pending_suites(self, resource: str) -> list[CheckSuite]:
        with read_transaction(self._engine) as conn:
            rows = conn.execute(select(check_suites).where(
                check_suites.c.resource == resource, check_suites.c.state == State.PENDING.value)).all()
        return [_suite(r._mapping) for r in rows]

    # -- approvals --------------------------------------------------------------------

    def create_approval(self, approval: Approval) -> Approval:
        for _attempt in range(5):
            try:
                with write_transaction(self._engine) as conn:
                    lock_project_numbering(conn, approval.project)
                    # Two evaluations of one run at once (the agent polling, someone asking) both
                    # find no approval in the suite they read: the second gets the first's, or
                    # approvers would be asked for one that gates nothing.
                    existing = self._approvals(
                        conn, approvals.c.project == approval.project, approvals.c.run_id == approval.run_id,
                        approvals.c.resource == approval.resource, approvals.c.check_id == approval.check_id)
                    if existing:
                        return existing[0]
                    latest = conn.execute(select(func.max(approvals.c.approval_id)).where(
                        approvals.c.project == approval.project)).scalar()
                    created = Approval(**{**approval.__dict__, "approval_id": (latest or 0) + 1})
                    conn.execute(approvals.insert().values(
                        project=created.project, approval_id=created.approval_id, run_id=created.run_id,
                        resource=created.resource, check_id=created.check_id,
                        approvers=json.dumps(list(created.approvers)), min_approvals=created.min_approvals,
                        allow_requester=created.allow_requester, instructions=created.instructions,
                        requested_by=created.requested_by, state=created.state.value, created_at=created.created_at,
                        expire_at=created.expire_at))
                    return created
            except IntegrityError:
                continue
        raise RuntimeError("could not allocate an approval id")

    def _approvals(self, conn: Any, *where: Any, limit: int | None = None) -> list[Approval]:
        query = select(approvals).where(*where).order_by(approvals.c.approval_id)
        rows = [row._mapping for row in conn.execute(query if limit is None else query.limit(limit))]
        decisions = self._decisions_of(conn, rows)
        return [Approval(
            project=m["project"], approval_id=m["approval_id"], run_id=m["run_id"], resource=m["resource"],
            check_id=m["check_id"], approvers=tuple(json.loads(m["approvers"])),
            min_approvals=m["min_approvals"], allow_requester=bool(m["allow_requester"]),
            instructions=m["instructions"], requested_by=m["requested_by"], state=State(m["state"]),
            created_at=_aware(m["created_at"]), expire_at=_aware(m["expire_at"]),
            decisions=tuple(decisions.get((m["project"], m["approval_id"]), ())),
        ) for m in rows]

    @staticmethod
    def _decisions_of(conn: Any, rows: list[Any]) -> dict[tuple[str, int], list[ApprovalDecision]]:
        """The decisions on `rows`' approvals, in the order they were made: one query per project
        (every caller reads one project), not one per approval."""
        found: dict[tuple[str, int], list[ApprovalDecision]] = {}
        ids_by_project: dict[str, list[int]] = {}
        for m in rows:
            ids_by_project.setdefault(m["project"], []).append(m["approval_id"])
        for project, ids in ids_by_project.items():
            for d in conn.execute(select(approval_decisions).where(
                    approval_decisions.c.project == project, approval_decisions.c.approval_id.in_(ids),
            ).order_by(approval_decisions.c.decided_at)):
                found.setdefault((project, d.approval_id), []).append(
                    ApprovalDecision(d.approver, bool(d.approved), d.comment, _aware(d.decided_at)))
        return found

    def get_approval(self, project: str, approval_id: int) -> Approval | None:
        with read_transaction(self._engine) as conn:
            found = self._approvals(conn, approvals.c.project == project, approvals.c.approval_id == approval_id)
        return found[0] if found else None

    def list_approvals(self, project: str, pending_only: bool = False, after: int | None = None,
                       limit: int | None = None) -> list[Approval]:
        where = [approvals.c.project == project]
        if pending_only:
            where.append(approvals.c.state == State.PENDING.value)  # index ix_approvals_project_state
        if after is not None:
            where.append(approvals.c.approval_id > after)  # the primary key, or the index's last column
        with read_transaction(self._engine) as conn:
            return self._approvals(conn, *where, limit=limit)

    def add_decision(self, project: str, approval_id: int, decision: ApprovalDecision) -> None:
        with write_transaction(self._engine) as conn:
            conn.execute(delete(approval_decisions).where(
                approval_decisions.c.project == project, approval_decisions.c.approval_id == approval_id,
                approval_decisions.c.approver == decision.approver))
            conn.execute(approval_decisions.insert().values(
                project=project, approval_id=approval_id, approver=decision.approver, approved=decision.approved,
                comment=decision.comment, decided_at=decision.decided_at))

    def set_approval_state(self, project: str, approval_id: int, state: State) -> None:
        with write_transaction(self._engine) as conn:
            conn.execute(update(approvals).where(
                approvals.c.project == project, approvals.c.approval_id == approval_id,
                approvals.c.state == State.PENDING.value).values(state=state.value))

    # -- exclusive locks --------------------------------------------------------------

    def lock_holder(self, resource: str) -> tuple[str, int] | None:
        with read_transaction(self._engine) as conn:
            row = conn.execute(select(resource_locks).where(resource_locks.c.resource == resource)).first()
        return (row.project, row.run_id) if row else None

    def try_acquire_lock(self, resource: str, project: str, run_id: int, now: dt.datetime) -> bool:
        try:
            with write_transaction(self._engine) as conn:
                conn.execute(resource_locks.insert().values(
                    resource=resource, project=project, run_id=run_id, acquired_at=now))
            return True
        except IntegrityError:
            return self.lock_holder(resource) == (project, run_id)

    def release_lock(self, resource: str, project: str, run_id: int) -> None:
        with write_transaction(self._engine) as conn:
            conn.execute(delete(resource_locks).where(
                resource_locks.c.resource == resource, resource_locks.c.project == project,
                resource_locks.c.run_id == run_id))

    def locks_held(self, project: str, run_id: int) -> list[str]:
        with read_transaction(self._engine) as conn:
            return list(conn.execute(select(resource_locks.c.resource).where(
                resource_locks.c.project == project, resource_locks.c.run_id == run_id)).scalars())

    # -- groups -----------------------------------------------------------------------

    def group_members(self, groups: list[str]) -> set[str]:
        with read_transaction(self._engine) as conn:
            return set(conn.execute(select(group_members.c.principal).where(
                group_members.c.group_name.in_(groups))).scalars())

    def list_groups(self) -> dict[str, list[str]]:
        with read_transaction(self._engine) as conn:
            rows = conn.execute(select(group_members).order_by(group_members.c.group_name,
                                                               group_members.c.principal)).all()
        groups: dict[str, list[str]] = {}
        for row in rows:
            groups.setdefault(row.group_name, []).append(row.principal)
        return groups

    def set_group_member(self, group: str, principal: str, member: bool) -> list[str]:
        with write_transaction(self._engine) as conn:
            conn.execute(delete(group_members).where(
                group_members.c.group_name == group, group_members.c.principal == principal))
            if member:
                conn.execute(group_members.insert().values(group_name=group, principal=principal, source="manual"))
            return sorted(conn.execute(select(group_members.c.principal).where(
                group_members.c.group_name == group)).scalars())

    def sync_sign_in_groups(self, principal: str, groups: list[str]) -> None:
        with write_transaction(self._engine) as conn:
            conn.execute(delete(group_members).where(
                group_members.c.principal == principal, group_members.c.source == "sign-in"))
            manual = set(conn.execute(select(group_members.c.group_name).where(
                group_members.c.principal == principal)).scalars())
            rows = [{"group_name": g, "principal": principal, "source": "sign-in"} for g in groups if g not in manual]
            if rows:
                conn.execute(group_members.insert(), rows)
