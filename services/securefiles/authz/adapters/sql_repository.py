"""Authz state in SQL (SQLite or PostgreSQL)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Collection
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    Connection,
    DateTime,
    Engine,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    bindparam,
    delete,
    func,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from securefiles.authz.domain.model import (
    SPECIAL_ROLES,
    Pipeline,
    PipelinePermissions,
    Project,
    Role,
    RoleAssignment,
    Run,
    RunState,
)
from securefiles.common.db import read_transaction, write_transaction
from securefiles.common.errors import AlreadyExists, NotFound
from securefiles.common.resource_names import is_id, project_name

metadata = MetaData()

projects = Table(
    "projects", metadata,
    Column("project_id", String(63), primary_key=True),
    Column("region", String(32), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

role_assignments = Table(
    "role_assignments", metadata,
    Column("scope", String(512), primary_key=True),
    Column("principal", String(160), primary_key=True),
    Column("role", String(16), primary_key=True),
)

file_inheritance = Table(
    "file_inheritance", metadata,
    Column("scope", String(512), primary_key=True),
    Column("inherit", Boolean, nullable=False),
)

# The files storage told authz about when their upload committed; only these take policies.
registered_files = Table(
    "registered_files", metadata,
    Column("resource", String(512), primary_key=True),
    Column("project", String(63), nullable=False),
    Column("registered_at", DateTime(timezone=True), nullable=False),
)

pipelines = Table(
    "pipelines", metadata,
    Column("project", String(63), primary_key=True),
    Column("pipeline_id", Integer, primary_key=True, autoincrement=False),
    Column("display_name", String(128), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("project", "display_name", name="uq_pipelines_name"),
)

# A deleted pipeline's id and name: ids are never given to another pipeline (runs, audit
# entries and permissions name pipelines by id).
deleted_pipelines = Table(
    "deleted_pipelines", metadata,
    Column("project", String(63), primary_key=True),
    Column("pipeline_id", Integer, primary_key=True, autoincrement=False),
    Column("display_name", String(128), nullable=False),
    Column("deleted_at", DateTime(timezone=True), nullable=False),
)

pipeline_permissions = Table(
    "pipeline_permissions", metadata,
    Column("resource", String(512), primary_key=True),
    # 0 stands for "all pipelines of the project" (open access).
    Column("pipeline_id", Integer, primary_key=True, autoincrement=False),
)

runs = Table(
    "runs", metadata,
    Column("project", String(63), primary_key=True),
    Column("run_id", Integer, primary_key=True, autoincrement=False),
    Column("pipeline_id", Integer, nullable=False),
    Column("branch", String(256), nullable=False),
    Column("requested_by", String(160), nullable=False),
    Column("state", String(16), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expire_at", DateTime(timezone=True), nullable=False),
    Column("completed_at", DateTime(timezone=True), nullable=True),
    Column("token_id", String(64), nullable=False),
    # Runs of OIDC jobs: the trust, and the key its run claims make (one run per distinct key).
    Column("trust_id", Integer, nullable=True),
    Column("external_key", String(320), nullable=True),
    Column("asserted_by", String(160), nullable=False, server_default=""),
    Column("claims", Text, nullable=False, server_default="{}"),
    Index("uq_runs_external_key", "project", "external_key", unique=True),
    Index("ix_runs_state_completed", "state", "completed_at"),  # retention finds old completed runs
)

_ALL_PIPELINES = 0

# Built once: read on every decision.
_ROLES_OF = select(role_assignments.c.scope, role_assignments.c.role).where(
    role_assignments.c.principal == bindparam("principal"),
    role_assignments.c.scope.in_(bindparam("scopes", expanding=True)))
_INHERITS = select(file_inheritance).where(file_inheritance.c.scope.in_(bindparam("scopes", expanding=True)))
_PERMISSIONS = select(pipeline_permissions.c.pipeline_id).where(
    pipeline_permissions.c.resource == bindparam("resource"))
_GET_RUN = select(runs).where(runs.c.project == bindparam("project"), runs.c.run_id == bindparam("run_id"))


def lock_project_numbering(conn: Connection, project: str) -> None:
    """Number a project's runs (or approvals) one transaction at a time: the next number is the
    highest plus one, and concurrent requests (served by several database threads, or replicas)
    would all read the same highest. SQLite's write lock already serializes writers; on PostgreSQL
    the project's row is locked until the transaction ends."""
    if conn.dialect.name == "postgresql":
        conn.execute(select(projects.c.project_id).where(projects.c.project_id == project).with_for_update())


def _aware(value: dt.datetime | None) -> dt.datetime | None:
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def _pipeline(m: Any) -> Pipeline:
    return Pipeline(m["project"], m["pipeline_id"], m["display_name"], _aware(m["created_at"]))  # type: ignore[arg-type]


def _run(m: Any) -> Run:
    return Run(
        project=m["project"], run_id=m["run_id"], pipeline_id=m["pipeline_id"], branch=m["branch"],
        requested_by=m["requested_by"], state=RunState(m["state"]), created_at=_aware(m["created_at"]),  # type: ignore[arg-type]
        expire_at=_aware(m["expire_at"]), completed_at=_aware(m["completed_at"]), token_id=m["token_id"],  # type: ignore[arg-type]
        trust_id=m["trust_id"], asserted_by=m["asserted_by"] or "",
        claims=tuple(sorted(json.loads(m["claims"] or "{}").items())),
    )


def insert_named(engine: Engine, table: Table, id_column: str, values: dict[str, Any], exists: AlreadyExists,
                 retired: Table | None = None) -> dict[str, Any]:
    """Insert a row numbered `id_column` = the project's next id (past those in `retired` too: a
    deleted row's id is never given again), unless its project already has one with its
    `display_name` (then raise `exists`); retried when a concurrent insert takes the number."""
    project, name = table.c.project == values["project"], table.c.display_name == values["display_name"]
    for _attempt in range(5):
        try:
            with write_transaction(engine) as conn:
                lock_project_numbering(conn, values["project"])
                if conn.execute(select(table.c[id_column]).where(project, name)).first():
                    raise exists
                latest = max(conn.execute(select(func.max(t.c[id_column])).where(t.c.project == values["project"]))
                             .scalar() or 0 for t in (table, *([retired] if retired is not None else [])))
                numbered = {**values, id_column: latest + 1}
                conn.execute(table.insert().values(**numbered))
                return numbered
        except IntegrityError:
            continue
    raise exists


def find_named(engine: Engine, table: Table, id_column: str, project: str, id_or_name: str) -> Any | None:
    """The project's row numbered `id_or_name` (a number) or named so (anything else)."""
    by_id = is_id(id_or_name)
    column = table.c[id_column] if by_id else table.c.display_name
    value: object = int(id_or_name) if by_id else id_or_name
    with read_transaction(engine) as conn:
        row = conn.execute(select(table).where(table.c.project == project, column == value)).first()
    return row._mapping if row else None


def _count(result: Any) -> int:
    return int(result.rowcount or 0)


class SqlAuthzRepository:
    """AuthzRepository on SQLAlchemy Core."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    # -- projects ---------------------------------------------------------------------

    def create_project(self, project_id: str, region: str, now: dt.datetime) -> Project:
        try:
            with write_transaction(self._engine) as conn:
                conn.execute(projects.insert().values(project_id=project_id, region=region, created_at=now))
        except IntegrityError:
            raise AlreadyExists(f"project {project_id} already exists", reason="PROJECT_EXISTS") from None
        return Project(project_id, region, now)

    def get_project(self, project_id: str) -> Project | None:
        with read_transaction(self._engine) as conn:
            row = conn.execute(select(projects).where(projects.c.project_id == project_id)).first()
        if row is None:
            return None
        return Project(row.project_id, row.region, _aware(row.created_at))  # type: ignore[arg-type]

    def list_projects(self) -> list[Project]:
        with read_transaction(self._engine) as conn:
            rows = conn.execute(select(projects).order_by(projects.c.project_id)).all()
        return [Project(r.project_id, r.region, _aware(r.created_at)) for r in rows]  # type: ignore[arg-type]

    # -- roles ------------------------------------------------------------------------

    def roles_of(self, principal: str, scopes: list[str]) -> dict[str, set[Role]]:
        with read_transaction(self._engine) as conn:
            rows = conn.execute(_ROLES_OF, {"principal": principal, "scopes": scopes}).all()
        result: dict[str, set[Role]] = {}
        for scope, role in rows:
            result.setdefault(scope, set()).add(Role[role])
        return result

    def set_role(self, scope: str, principal: str, role: Role, exclusive: bool) -> RoleAssignment:
        with write_transaction(self._engine) as conn:
            where = (role_assignments.c.scope == scope) & (role_assignments.c.principal == principal)
            if exclusive:  # one library-ordered role per principal and scope; special roles stay
                conn.execute(delete(role_assignments).where(
                    where & role_assignments.c.role.not_in([r.name for r in SPECIAL_ROLES])))
            else:
                conn.execute(delete(role_assignments).where(where & (role_assignments.c.role == role.name)))
            conn.execute(role_assignments.insert().values(scope=scope, principal=principal, role=role.name))
        return RoleAssignment(scope, principal, role)

    def register_file(self, resource: str, project: str, administrator: str, now: dt.datetime) -> None:
        with write_transaction(self._engine) as conn:
            known = conn.execute(select(registered_files.c.resource).where(
                registered_files.c.resource == resource)).first()
            if known is None:
                conn.execute(registered_files.insert().values(resource=resource, project=project, registered_at=now))
            where = (role_assignments.c.scope == resource) & (role_assignments.c.principal == administrator)
            conn.execute(delete(role_assignments).where(where))
            conn.execute(role_assignments.insert().values(scope=resource, principal=administrator,
                                                          role=Role.ADMINISTRATOR.name))

    def is_registered(self, resource: str) -> bool:
        with read_transaction(self._engine) as conn:
            return conn.execute(select(registered_files.c.resource).where(
                registered_files.c.resource == resource)).first() is not None

    def list_roles(self, scope: str) -> list[RoleAssignment]:
        with read_transaction(self._engine) as conn:
            rows = conn.execute(
                select(role_assignments).where(role_assignments.c.scope == scope).order_by(
                    role_assignments.c.principal, role_assignments.c.role
                )
            ).all()
        return [RoleAssignment(r.scope, r.principal, Role[r.role]) for r in rows]

    def purge_resource(self, resource: str) -> dict[str, int]:
        """Role assignments, inheritance and pipeline permissions of a file that is gone."""
        with write_transaction(self._engine) as conn:
            return {
                "role_assignments": _count(conn.execute(delete(role_assignments).where(
                    role_assignments.c.scope == resource))),
                "inheritance": _count(conn.execute(delete(file_inheritance).where(
                    file_inheritance.c.scope == resource))),
                "pipeline_permissions": _count(conn.execute(delete(pipeline_permissions).where(
                    pipeline_permissions.c.resource == resource))),
                "registration": _count(conn.execute(delete(registered_files).where(
                    registered_files.c.resource == resource))),
            }

    def delete_roles(self, scope: str, principal: str) -> int:
        with write_transaction(self._engine) as conn:
            result = conn.execute(
                delete(role_assignments).where(
                    role_assignments.c.scope == scope, role_assignments.c.principal == principal
                )
            )
        return int(result.rowcount or 0)

    def inherits(self, file_scopes: list[str]) -> dict[str, bool]:
        with read_transaction(self._engine) as conn:
            rows = conn.execute(_INHERITS, {"scopes": file_scopes}).all()
        found = {r.scope: bool(r.inherit) for r in rows}
        return {s: found.get(s, True) for s in file_scopes}

    def set_inheritance(self, file_scope: str, inherit: bool) -> None:
        with write_transaction(self._engine) as conn:
            conn.execute(delete(file_inheritance).where(file_inheritance.c.scope == file_scope))
            conn.execute(file_inheritance.insert().values(scope=file_scope, inherit=inherit))

    # -- pipelines --------------------------------------------------------------------

    def create_pipeline(self, project: str, display_name: str, now: dt.datetime) -> Pipeline:
        values = insert_named(self._engine, pipelines, "pipeline_id", {
            "project": project, "display_name": display_name, "created_at": now,
        }, AlreadyExists(f"pipeline {display_name} already exists", reason="PIPELINE_EXISTS"),
            retired=deleted_pipelines)
        return _pipeline(values)

    def find_pipeline(self, project: str, id_or_name: str) -> Pipeline | None:
        row = find_named(self._engine, pipelines, "pipeline_id", project, id_or_name)
        return _pipeline(row) if row else None

    def list_pipelines(self, project: str) -> list[Pipeline]:
        with read_transaction(self._engine) as conn:
            rows = conn.execute(
                select(pipelines).where(pipelines.c.project == project).order_by(pipelines.c.pipeline_id)
            ).all()
        return [_pipeline(r._mapping) for r in rows]

    def get_pipeline_permissions(self, resource: str) -> PipelinePermissions:
        with read_transaction(self._engine) as conn:
            ids = conn.execute(_PERMISSIONS, {"resource": resource}).scalars().all()
        return PipelinePermissions(
            resource, _ALL_PIPELINES in ids, tuple(sorted(i for i in ids if i != _ALL_PIPELINES))
        )

    def set_pipeline_permission(self, resource: str, pipeline_id: int | None, authorized: bool) -> None:
        key = _ALL_PIPELINES if pipeline_id is None else pipeline_id
        with write_transaction(self._engine) as conn:
            conn.execute(delete(pipeline_permissions).where(
                pipeline_permissions.c.resource == resource, pipeline_permissions.c.pipeline_id == key
            ))
            if authorized:
                conn.execute(pipeline_permissions.insert().values(resource=resource, pipeline_id=key))

    def delete_pipeline(self, project: str, pipeline_id: int, now: dt.datetime) -> list[Run]:
        with write_transaction(self._engine) as conn:
            # The pipeline's row stays locked until the end: a run cannot start meanwhile.
            row = conn.execute(select(pipelines).where(
                pipelines.c.project == project, pipelines.c.pipeline_id == pipeline_id).with_for_update()).first()
            if row is None:
                raise NotFound("pipeline does not exist", reason="PIPELINE_NOT_FOUND")
            running = conn.execute(select(runs).where(
                runs.c.project == project, runs.c.pipeline_id == pipeline_id,
                runs.c.state == RunState.RUNNING.value, runs.c.expire_at > now)).all()
            if running:
                return [_run(r._mapping) for r in running]
            conn.execute(delete(pipeline_permissions).where(
                pipeline_permissions.c.pipeline_id == pipeline_id,
                pipeline_permissions.c.resource.startswith(project_name(project) + "/", autoescape=True)))
            conn.execute(delete(pipelines).where(
                pipelines.c.project == project, pipelines.c.pipeline_id == pipeline_id))
            conn.execute(deleted_pipelines.insert().values(
                project=project, pipeline_id=pipeline_id, display_name=row.display_name, deleted_at=now))
        return []

    # -- runs -------------------------------------------------------------------------

    def create_run(self, run: Run, external_key: str | None = None) -> tuple[Run, bool]:
        """Insert `run` with the next run id of its project; with an `external_key`, join the run
        that key already made instead (its expiry moved to the later of the two). (run, joined)."""
        for _attempt in range(5):
            try:
                with write_transaction(self._engine) as conn:
                    if external_key is not None:
                        row = conn.execute(select(runs).where(
                            runs.c.project == run.project, runs.c.external_key == external_key)).first()
                        if row is not None:
                            existing = _run(row._mapping)
                            if existing.state is RunState.RUNNING and run.expire_at > existing.expire_at:
                                conn.execute(update(runs).where(
                                    runs.c.project == run.project, runs.c.run_id == existing.run_id
                                ).values(expire_at=run.expire_at))
                                existing = _run({**row._mapping, "expire_at": run.expire_at})
                            return existing, True
                    # Locks the pipeline's row: it cannot be deleted while its run starts.
                    if conn.execute(select(pipelines.c.pipeline_id).where(
                            pipelines.c.project == run.project, pipelines.c.pipeline_id == run.pipeline_id
                    ).with_for_update()).first() is None:
                        raise NotFound("the pipeline was deleted", reason="PIPELINE_NOT_FOUND")
                    lock_project_numbering(conn, run.project)
                    latest = conn.execute(select(func.max(runs.c.run_id)).where(
                        runs.c.project == run.project)).scalar()
                    values = {
                        "project": run.project, "run_id": (latest or 0) + 1, "pipeline_id": run.pipeline_id,
                        "branch": run.branch, "requested_by": run.requested_by, "state": RunState.RUNNING.value,
                        "created_at": run.created_at, "expire_at": run.expire_at, "completed_at": None,
                        "token_id": run.token_id, "trust_id": run.trust_id, "external_key": external_key,
                        "asserted_by": run.asserted_by, "claims": json.dumps(dict(run.claims)),
                    }
                    conn.execute(runs.insert().values(**values))
                    return _run(values), False
            except IntegrityError:
                continue  # another request numbered (or keyed) the same run first: look again
        raise RuntimeError("could not allocate a run id")

    def get_run(self, project: str, run_id: int) -> Run | None:
        with read_transaction(self._engine) as conn:
            row = conn.execute(_GET_RUN, {"project": project, "run_id": run_id}).first()
        return _run(row._mapping) if row else None

    def get_runs(self, project: str, run_ids: Collection[int]) -> dict[int, Run]:
        with read_transaction(self._engine) as conn:
            rows = conn.execute(select(runs).where(runs.c.project == project, runs.c.run_id.in_(set(run_ids))))
            return {row.run_id: _run(row._mapping) for row in rows}

    def list_runs(self, project: str, pipeline_id: int | None, running_at: dt.datetime | None,
                  before_run_id: int | None, limit: int) -> list[Run]:
        query = select(runs).where(runs.c.project == project)
        if pipeline_id is not None:
            query = query.where(runs.c.pipeline_id == pipeline_id)
        if running_at is not None:
            query = query.where(runs.c.state == RunState.RUNNING.value, runs.c.expire_at > running_at)
        if before_run_id is not None:
            query = query.where(runs.c.run_id < before_run_id)
        with read_transaction(self._engine) as conn:
            rows = conn.execute(query.order_by(runs.c.run_id.desc()).limit(limit)).all()
        return [_run(r._mapping) for r in rows]

    def complete_run(self, project: str, run_id: int, now: dt.datetime) -> Run:
        with write_transaction(self._engine) as conn:
            conn.execute(
                update(runs).where(runs.c.project == project, runs.c.run_id == run_id)
                .values(state=RunState.COMPLETED.value, completed_at=now)
            )
            row = conn.execute(select(runs).where(runs.c.project == project, runs.c.run_id == run_id)).first()
        if row is None:
            raise NotFound("run does not exist", reason="RUN_NOT_FOUND")
        return _run(row._mapping)
