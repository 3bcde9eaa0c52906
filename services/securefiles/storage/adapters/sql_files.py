"""Secure file metadata and wrapped data keys in SQL (SQLite or PostgreSQL)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Engine,
    ForeignKey,
    Integer,
    LargeBinary,
    MetaData,
    Select,
    String,
    Table,
    Text,
    UniqueConstraint,
    and_,
    bindparam,
    delete,
    func,
    select,
    tuple_,
    update,
)
from sqlalchemy.exc import IntegrityError

from securefiles.common.db import read_transaction, write_transaction
from securefiles.common.db_threads import DatabaseThreads, in_database_thread
from securefiles.common.errors import AlreadyExists, NotFound
from securefiles.storage.domain.metadata_caps import MAX_METADATA_BYTES, cap_metadata, json_size
from securefiles.storage.domain.model import FileVersion, LibrarySettings, SecureFile, StoredDataKey, stale_etag
from securefiles.storage.domain.versioning import concurrent_replace

metadata = MetaData()

secure_files = Table(
    "secure_files", metadata,
    Column("file_id", String(36), primary_key=True),
    Column("project", String(63), nullable=False),
    # Byte order ("C") on PostgreSQL, as SQLite compares: keyset pages and prefix ranges rely on it.
    Column("display_name", String(256).with_variant(String(256, collation="C"), "postgresql"), nullable=False),
    Column("properties", Text, nullable=False, default="{}"),
    Column("created_by", String(160), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("current_version", Integer, nullable=False),
    UniqueConstraint("project", "display_name", name="uq_secure_files_name"),
)

file_versions = Table(
    "file_versions", metadata,
    Column("file_id", String(36), ForeignKey("secure_files.file_id", ondelete="CASCADE"), primary_key=True),
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("size", Integer, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("blob_key", String(64), nullable=False),
    Column("wrapped_key", LargeBinary, nullable=False),
    Column("key_region", String(32), nullable=False),
    Column("key_version", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("created_by", String(160), nullable=False),
    Column("metadata", Text, nullable=False, server_default="{}"),
    Column("expires_at", DateTime(timezone=True), nullable=True, index=True),
)

library_settings = Table(
    "library_settings", metadata,
    Column("project", String(63), primary_key=True),
    Column("allow_replace", Boolean, nullable=False),
    Column("keep_versions", Integer, nullable=False),
)

# Deleted files whose policies authz has not yet confirmed forgetting (PurgeResourcePolicies):
# recorded in the deletion's own transaction, settled when authz answers. An upload records its
# file here before authz hears of it, due only once the upload has surely ended ("deleted_at" is
# then when it is due); the upload's commit clears it, so a crash mid-upload leaves nothing in authz.
owed_purges = Table(
    "owed_purges", metadata,
    Column("resource", String(128), primary_key=True),
    Column("deleted_at", DateTime(timezone=True), nullable=False),
)

# Expiry alerts sent: one row per file version and threshold (see domain/expiry_alerts.py).
expiry_alerts = Table(
    "expiry_alerts", metadata,
    Column("file_id", String(36), ForeignKey("secure_files.file_id", ondelete="CASCADE"), primary_key=True),
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("threshold_days", Integer, primary_key=True, autoincrement=False),
    Column("sent_at", DateTime(timezone=True), nullable=False),
)

_MAX_CHAR = "\U0010ffff"


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def _metadata(raw: str) -> tuple[dict[str, Any], int]:
    """Stored metadata and its size; rows written before the caps are capped as they are read."""
    if len(raw) <= MAX_METADATA_BYTES:
        return json.loads(raw), len(raw)
    capped = cap_metadata(json.loads(raw))
    return capped, json_size(capped)


def _version(m: Mapping[Any, Any]) -> FileVersion:
    expires = m["expires_at"]
    metadata, metadata_bytes = _metadata(m["metadata"] or "{}")
    return FileVersion(
        version=m["version"], size=m["size"], sha256=m["sha256"], blob_key=m["blob_key"],
        wrapped_key=m["wrapped_key"], key_region=m["key_region"], key_version=m["key_version"],
        created_at=_aware(m["version_created_at"]), created_by=m["version_created_by"],
        metadata=metadata, expires_at=_aware(expires) if expires else None, metadata_bytes=metadata_bytes,
    )


def _version_columns() -> list[Any]:
    v = file_versions
    return [
        v.c.version, v.c.size, v.c.sha256, v.c.blob_key, v.c.wrapped_key, v.c.key_region, v.c.key_version,
        v.c.created_at.label("version_created_at"), v.c.created_by.label("version_created_by"), v.c.metadata,
        v.c.expires_at,
    ]


def _version_values(file_id: str, v: FileVersion) -> dict[str, Any]:
    return {
        "file_id": file_id, "version": v.version, "size": v.size, "sha256": v.sha256, "blob_key": v.blob_key,
        "wrapped_key": v.wrapped_key, "key_region": v.key_region, "key_version": v.key_version,
        "created_at": v.created_at, "created_by": v.created_by, "metadata": json.dumps(v.metadata, sort_keys=True),
        "expires_at": v.expires_at,
    }


def _file(m: Mapping[Any, Any]) -> SecureFile:
    return SecureFile(
        file_id=m["file_id"], project=m["project"], display_name=m["display_name"],
        properties=json.loads(m["properties"]), created_by=m["created_by"], created_at=_aware(m["created_at"]),
        updated_at=_aware(m["updated_at"]), current=_version(m),
    )


def _current_join() -> Any:
    v = file_versions
    return select(secure_files, *_version_columns()).select_from(
        secure_files.join(v, and_(v.c.file_id == secure_files.c.file_id, v.c.version == secure_files.c.current_version))
    )


# Built once: resolving a file runs on every request.
_BY_ID = _current_join().where(secure_files.c.project == bindparam("project"),
                               secure_files.c.file_id == bindparam("ref"))
_BY_NAME = _current_join().where(secure_files.c.project == bindparam("project"),
                                 secure_files.c.display_name == bindparam("ref"))


# Compare and swap: a key a concurrent delete or rewrap changed meanwhile is left alone.
_SWAP_KEY = update(file_versions).where(
    file_versions.c.file_id == bindparam("f"), file_versions.c.version == bindparam("v"),
    file_versions.c.wrapped_key == bindparam("old"),
).values(wrapped_key=bindparam("new"), key_version=bindparam("kv"))


class SqlFileRepository:
    """FileRepository on SQLAlchemy Core; every method runs in the service's database threads."""

    def __init__(self, engine: Engine, threads: DatabaseThreads) -> None:
        self._engine = engine
        self._threads = threads

    @in_database_thread
    def insert(self, secure_file: SecureFile) -> None:
        v = secure_file.current
        try:
            with write_transaction(self._engine) as conn:
                conn.execute(secure_files.insert().values(
                    file_id=secure_file.file_id, project=secure_file.project, display_name=secure_file.display_name,
                    properties=json.dumps(secure_file.properties, sort_keys=True), created_by=secure_file.created_by,
                    created_at=secure_file.created_at, updated_at=secure_file.updated_at, current_version=v.version,
                ))
                conn.execute(file_versions.insert().values(**_version_values(secure_file.file_id, v)))
                conn.execute(delete(owed_purges).where(owed_purges.c.resource == secure_file.name))
        except IntegrityError:
            raise AlreadyExists(f"a secure file named {secure_file.display_name!r} already exists",
                                reason="FILE_EXISTS") from None

    @in_database_thread
    def by_id(self, project: str, file_id: str) -> SecureFile | None:
        return self._one(_BY_ID, {"project": project, "ref": file_id})

    @in_database_thread
    def by_display_name(self, project: str, display_name: str) -> SecureFile | None:
        return self._one(_BY_NAME, {"project": project, "ref": display_name})

    def _one(self, query: Select[Any], params: dict[str, str]) -> SecureFile | None:
        with read_transaction(self._engine) as conn:
            row = conn.execute(query, params).first()
        return _file(row._mapping) if row is not None else None

    @in_database_thread
    def list_page(
        self, project: str, after: str, limit: int, name_prefix: str, expires_before: dt.datetime | None = None
    ) -> list[SecureFile]:
        query = _current_join().where(secure_files.c.project == project)
        if expires_before is not None:
            query = query.where(file_versions.c.expires_at < expires_before)
        if after:
            query = query.where(secure_files.c.display_name > after)
        if name_prefix:
            query = query.where(
                secure_files.c.display_name >= name_prefix, secure_files.c.display_name < name_prefix + _MAX_CHAR
            )
        query = query.order_by(secure_files.c.display_name).limit(limit)
        with read_transaction(self._engine) as conn:
            return [_file(r._mapping) for r in conn.execute(query)]

    @in_database_thread
    def update(self, file_id: str, display_name: str | None, properties: Mapping[str, str] | None,
               expected_etag: str = "", merge_properties: Callable[[Mapping[str, str]], dict[str, str]] | None = None
               ) -> SecureFile:
        values: dict[str, Any] = {"updated_at": dt.datetime.now(dt.UTC)}
        if display_name is not None:
            values["display_name"] = display_name
        if properties is not None:
            values["properties"] = json.dumps(dict(properties), sort_keys=True)
        try:
            with write_transaction(self._engine) as conn:
                if expected_etag or merge_properties is not None:
                    # Locked until the update commits: two updates with one etag cannot both pass,
                    # and a merge starts from what no one else is changing.
                    stored = conn.execute(_current_join().where(secure_files.c.file_id == file_id)
                                          .with_for_update(of=secure_files)).first()
                    if stored is None:
                        raise NotFound("secure file not found", reason="FILE_NOT_FOUND")
                    current = _file(stored._mapping)
                    if expected_etag and current.etag != expected_etag:
                        raise stale_etag()
                    if merge_properties is not None:
                        values["properties"] = json.dumps(merge_properties(current.properties), sort_keys=True)
                conn.execute(update(secure_files).where(secure_files.c.file_id == file_id).values(**values))
                row = conn.execute(_current_join().where(secure_files.c.file_id == file_id)).first()
        except IntegrityError:
            raise AlreadyExists(f"a secure file named {display_name!r} already exists", reason="FILE_EXISTS") from None
        if row is None:
            raise NotFound("secure file not found", reason="FILE_NOT_FOUND")
        return _file(row._mapping)

    @in_database_thread
    def delete(self, file_id: str, resource: str, now: dt.datetime) -> list[FileVersion]:
        v = file_versions
        with write_transaction(self._engine) as conn:
            rows = conn.execute(select(*_version_columns()).where(v.c.file_id == file_id)).all()
            conn.execute(delete(file_versions).where(file_versions.c.file_id == file_id))
            conn.execute(delete(secure_files).where(secure_files.c.file_id == file_id))
            conn.execute(owed_purges.insert().values(resource=resource, deleted_at=now))
        return [_version(r._mapping) for r in rows]

    @in_database_thread
    def owe_purge(self, resource: str, due: dt.datetime) -> None:
        with write_transaction(self._engine) as conn:
            conn.execute(owed_purges.insert().values(resource=resource, deleted_at=due))

    @in_database_thread
    def owed_purges(self, limit: int, now: dt.datetime | None = None) -> list[str]:
        query = select(owed_purges.c.resource).where(owed_purges.c.deleted_at <= (now or dt.datetime.now(dt.UTC)))
        query = query.order_by(owed_purges.c.deleted_at, owed_purges.c.resource)
        with read_transaction(self._engine) as conn:
            return list(conn.execute(query.limit(limit)).scalars())

    @in_database_thread
    def purge_settled(self, resource: str) -> None:
        with write_transaction(self._engine) as conn:
            conn.execute(delete(owed_purges).where(owed_purges.c.resource == resource))

    @in_database_thread
    def list_versions(self, file_id: str) -> list[FileVersion]:
        v = file_versions
        with read_transaction(self._engine) as conn:
            rows = conn.execute(select(*_version_columns()).where(v.c.file_id == file_id).order_by(
                v.c.version.desc())).all()
        return [_version(r._mapping) for r in rows]

    @in_database_thread
    def add_version(self, file_id: str, new: FileVersion, keep: int) -> tuple[SecureFile, list[FileVersion]]:
        """Make `new` current and shred (delete) every version beyond the newest `keep`, in one
        transaction; return the file and the shredded versions (whose blobs go next)."""
        v = file_versions
        with write_transaction(self._engine) as conn:
            try:
                conn.execute(file_versions.insert().values(**_version_values(file_id, new)))
            except IntegrityError:
                # (file id, version) is the primary key: of two replaces that numbered the same
                # version, the database lets one in.
                raise concurrent_replace() from None
            conn.execute(update(secure_files).where(secure_files.c.file_id == file_id).values(
                current_version=new.version, updated_at=new.created_at))
            rows = conn.execute(select(*_version_columns()).where(v.c.file_id == file_id).order_by(
                v.c.version.desc())).all()
            shredded = [_version(r._mapping) for r in rows[max(keep, 1):]]
            if shredded:
                conn.execute(delete(v).where(v.c.file_id == file_id, v.c.version.in_([x.version for x in shredded])))
            row = conn.execute(_current_join().where(secure_files.c.file_id == file_id)).first()
        assert row is not None
        return _file(row._mapping), shredded

    @in_database_thread
    def set_current(self, file_id: str, version: int, now: dt.datetime) -> SecureFile:
        v = file_versions
        with write_transaction(self._engine) as conn:
            exists = conn.execute(select(v.c.version).where(v.c.file_id == file_id, v.c.version == version)).first()
            if exists is None:
                raise NotFound(f"version {version} is not kept", reason="VERSION_NOT_FOUND")
            conn.execute(update(secure_files).where(secure_files.c.file_id == file_id).values(
                current_version=version, updated_at=now))
            row = conn.execute(_current_join().where(secure_files.c.file_id == file_id)).first()
        assert row is not None
        return _file(row._mapping)

    @in_database_thread
    def get_library(self, project: str) -> LibrarySettings:
        with read_transaction(self._engine) as conn:
            row = conn.execute(select(library_settings).where(library_settings.c.project == project)).first()
        if row is None:
            return LibrarySettings(project)
        return LibrarySettings(project, bool(row.allow_replace), int(row.keep_versions))

    @in_database_thread
    def set_library(self, settings: LibrarySettings, expected_etag: str = "") -> LibrarySettings:
        with write_transaction(self._engine) as conn:
            if expected_etag:
                row = conn.execute(select(library_settings).where(library_settings.c.project == settings.project)
                                   .with_for_update()).first()
                stored = (LibrarySettings(settings.project, bool(row.allow_replace), int(row.keep_versions))
                          if row is not None else LibrarySettings(settings.project))
                if stored.etag != expected_etag:
                    raise stale_etag("library")
            conn.execute(delete(library_settings).where(library_settings.c.project == settings.project))
            conn.execute(library_settings.insert().values(
                project=settings.project, allow_replace=settings.allow_replace, keep_versions=settings.keep_versions))
        return settings

    @in_database_thread
    def count_data_keys(self, region: str | None) -> dict[tuple[str, int], int]:
        return self.count_data_keys_blocking(region)

    def count_data_keys_blocking(self, region: str | None) -> dict[tuple[str, int], int]:
        """`count_data_keys` in the calling thread (the metrics scrape runs in its own)."""
        v = file_versions
        query = select(v.c.key_region, v.c.key_version, func.count()).group_by(v.c.key_region, v.c.key_version)
        if region:
            query = query.where(v.c.key_region == region)
        with read_transaction(self._engine) as conn:
            return {(r, int(n)): int(count) for r, n, count in conn.execute(query)}

    @in_database_thread
    def data_keys_not_under(
        self, region: str, primary: int, after: tuple[str, int], limit: int
    ) -> list[StoredDataKey]:
        v, f = file_versions, secure_files
        query = (
            select(v.c.file_id, f.c.project, v.c.version, v.c.wrapped_key, v.c.key_region, v.c.key_version)
            .select_from(v.join(f, f.c.file_id == v.c.file_id))
            .where(v.c.key_region == region, v.c.key_version != primary, tuple_(v.c.file_id, v.c.version) > after)
            .order_by(v.c.file_id, v.c.version)
            .limit(limit)
        )
        with read_transaction(self._engine) as conn:
            return [StoredDataKey(*row) for row in conn.execute(query)]

    @in_database_thread
    def swap_wrapped_keys(self, swaps: list[tuple[StoredDataKey, bytes, int]]) -> int:
        swapped = 0
        with write_transaction(self._engine) as conn:
            for key, wrapped, key_version in swaps:
                result = conn.execute(_SWAP_KEY, {"f": key.file_id, "v": key.version, "old": key.wrapped_key,
                                                  "new": wrapped, "kv": key_version})
                swapped += int(result.rowcount or 0)
        return swapped

    @in_database_thread
    def all_blob_keys(self) -> set[str]:
        with read_transaction(self._engine) as conn:
            return set(conn.execute(select(file_versions.c.blob_key)).scalars())
