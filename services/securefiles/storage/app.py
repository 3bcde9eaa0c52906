"""Composition root of the storage service."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from securefiles.common.audit import ALLOW, AuditLog
from securefiles.common.config import ConfigError, ServerSettings, env_float, env_int, env_str, parse_endpoints
from securefiles.common.db import make_engine
from securefiles.common.db_threads import DatabaseThreads
from securefiles.common.housekeeping import archive_audit, keep_house
from securefiles.common.interceptors import Authenticator, audit_note, audit_now
from securefiles.common.logging import configure_logging
from securefiles.common.migrations import upgrade
from securefiles.common.server import RunningServer, create_server, run_until_signalled
from securefiles.common.service_clients import AuthzClient
from securefiles.common.tokens import TokenVerifier
from securefiles.storage.adapters.blob_directory import DirectoryBlobStore
from securefiles.storage.adapters.kms_router import RegionalDataKeys
from securefiles.storage.adapters.parser_pool import ParserPool, ParserSettings
from securefiles.storage.adapters.sql_blobs import SqlBlobStore
from securefiles.storage.adapters.sql_files import SqlFileRepository
from securefiles.storage.api.servicer import SecureFileServicer
from securefiles.storage.domain.ports import BlobStore
from securefiles.storage.domain.rewrap import DataKeyRewrapper
from securefiles.storage.domain.service import DEFAULT_MAX_FILE_BYTES, SecureFiles
from securefiles.storage.domain.versioning import Versioning
from securefiles.storage.v1 import storage_pb2, storage_pb2_grpc

log = logging.getLogger("securefiles.storage")


@dataclass(frozen=True)
class StorageSettings:
    server: ServerSettings
    blob_dir: Path
    blob_store: str
    kms_endpoints: dict[str, str]
    authz_endpoint: str
    max_file_bytes: int
    rewrap_interval: int
    purge_retry_interval: int
    stream_idle_seconds: int
    parser: ParserSettings
    audit_witness_interval: int = 60

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> StorageSettings:
        env = os.environ if env is None else env
        return cls(
            server=ServerSettings.from_env("storage", env),
            blob_dir=Path(env_str(env, "BLOB_DIR", "blobs")),
            blob_store=_blob_store(env_str(env, "BLOB_STORE", "directory")),
            kms_endpoints=parse_endpoints(env_str(env, "KMS_ENDPOINTS")),
            authz_endpoint=env_str(env, "AUTHZ_ENDPOINT"),
            max_file_bytes=env_int(env, "MAX_FILE_BYTES", DEFAULT_MAX_FILE_BYTES),
            rewrap_interval=env_int(env, "REWRAP_INTERVAL_SECONDS", 300),
            purge_retry_interval=env_int(env, "PURGE_RETRY_SECONDS", 60),
            stream_idle_seconds=env_int(env, "STREAM_IDLE_SECONDS", 30),
            parser=ParserSettings(
                workers=env_int(env, "PARSER_WORKERS", ParserSettings.workers),
                queue=env_int(env, "PARSER_QUEUE", ParserSettings.queue),
                timeout=env_float(env, "PARSE_TIMEOUT_SECONDS", ParserSettings.timeout),
            ),
            audit_witness_interval=env_int(env, "AUDIT_WITNESS_SECONDS", 60),
        )


def _blob_store(kind: str) -> str:
    if kind not in ("directory", "db"):
        raise ConfigError("SECUREFILES_BLOB_STORE must be 'directory' or 'db'")
    return kind


@dataclass
class StorageApp:
    running: RunningServer
    files: SecureFiles
    authz: AuthzClient
    keys: RegionalDataKeys
    rewrapper: DataKeyRewrapper
    audit: AuditLog
    parser: ParserPool
    database: DatabaseThreads
    rewrap_interval: int
    purge_retry_interval: int
    audit_witness_interval: int = 60
    audit_retention_days: int = 365
    retention_interval: int = 3600
    _background: list[asyncio.Task[None]] = field(default_factory=list)

    def start_background_work(self) -> None:
        self._background.append(asyncio.create_task(keep_house(
            [archive_audit(self.audit, self.database, self.audit_retention_days)], self.retention_interval)))
        if self.rewrap_interval > 0:
            self._background.append(asyncio.create_task(self._rewrap_periodically()))
        if self.purge_retry_interval > 0:
            self._background.append(asyncio.create_task(self._settle_purges_periodically()))
        if self.audit_witness_interval > 0:
            self._background.append(asyncio.create_task(self._witness_periodically()))

    async def _witness_periodically(self) -> None:
        """Anchor every chain outside its own database: storage records authz's and each kms's
        head, and has each of them record storage's (`audit verify` checks chains against them)."""
        peers = [self.authz.audit_peer(), *self.keys.audit_peers()]
        while True:
            for peer in peers:
                try:
                    await self.database.run(self.audit.witness, await peer.head())
                    await peer.witness(await self.database.run(self.audit.head))
                except Exception:
                    log.warning("audit heads could not be exchanged; will retry", exc_info=True,
                                extra={"peer": peer.service})
            await asyncio.sleep(self.audit_witness_interval)

    async def _rewrap_periodically(self) -> None:
        """After a rotation (on deploy or by an operator), move data keys to the new primary."""
        while True:
            await asyncio.sleep(self.rewrap_interval)
            try:
                report = await self.rewrapper.rewrap(None)
            except Exception:
                log.warning("background rewrap failed; will retry", exc_info=True)
                continue
            if report.rewrapped or report.failed:
                await self.audit.append("service:storage", "RewrapDataKeys", "regions/-", ALLOW, details={
                    "rewrapped": str(report.rewrapped), "failed": str(report.failed), "trigger": "background"})

    async def _settle_purges_periodically(self) -> None:
        """Policies of deleted files that authz could not be told to forget: at start, then
        every interval until authz confirms."""
        while True:
            try:
                settled = await self.files.settle_owed_purges()
            except Exception:
                log.warning("settling owed policy purges failed; will retry", exc_info=True)
            else:
                if settled:
                    log.info("owed policy purges settled", extra={"count": settled})
            await asyncio.sleep(self.purge_retry_interval)

    async def close(self) -> None:
        for task in self._background:
            task.cancel()
        await self.authz.close()
        await self.keys.close()
        await self.parser.close()
        self.database.close()


async def build(settings: StorageSettings) -> StorageApp:
    """Wire the storage service (inside the event loop); sweep leftovers of a crash."""
    upgrade("storage", settings.server.database_url)
    engine = make_engine(settings.server.database_url, busy_timeout=settings.server.database_busy_timeout)
    database = DatabaseThreads(settings.server.database_threads, "storage-db")
    repository = SqlFileRepository(engine, database)
    blobs: BlobStore = (SqlBlobStore(engine, database) if settings.blob_store == "db"
                        else DirectoryBlobStore(settings.blob_dir))
    removed = await database.run(blobs.sweep, await repository.all_blob_keys())
    if removed:
        log.warning("removed partial or orphaned blobs", extra={"count": removed})
    authz = AuthzClient(settings.authz_endpoint, settings.server.tls, settings.server.outbound_timeout)
    keys = RegionalDataKeys(settings.kms_endpoints, settings.server.tls, settings.server.outbound_timeout)
    parser = ParserPool(settings.parser)
    parser.start()
    files = SecureFiles(repository, blobs, keys, authz, max_file_bytes=settings.max_file_bytes,
                        note_resource=audit_note, before_change=audit_now, parser=parser)
    rewrapper = DataKeyRewrapper(repository, keys)
    audit = AuditLog(engine, "storage", key=settings.server.audit_key)
    versioning = Versioning(files, repository, authz, lambda: dt.datetime.now(dt.UTC))
    servicer = SecureFileServicer(files, versioning, rewrapper, repository, authz.require_operator,
                                  settings.stream_idle_seconds)
    running = create_server(
        service="storage",
        registrations=[(storage_pb2_grpc.add_SecureFileServiceServicer_to_server, servicer)],
        service_names=[storage_pb2.DESCRIPTOR.services_by_name["SecureFileService"].full_name],
        tls=settings.server.tls,
        authenticator=Authenticator(
            TokenVerifier(authz.signing_keys, max_key_age=settings.server.signing_keys_max_age)),
        address=settings.server.listen,
        internal_address=settings.server.internal_listen,
        reflection_enabled=settings.server.reflection,
        limits=settings.server.limits,
        audit=audit,
        audit_reader=authz.require_operator,
        unaudited_methods=frozenset({"GetSecureFile", "ListSecureFiles", "CountDataKeys", "ListSecureFileVersions",
                                     "GetLibrary"}),
        # File changes call `audit_now` themselves (an upload writes blob segments before it is
        # accepted); these two have their entry written right before their first write.
        audit_before_writes=frozenset({"UpdateLibrary", "RewrapDataKeys"}),
        database=database,
    )
    return StorageApp(running, files, authz, keys, rewrapper, audit, parser, database, settings.rewrap_interval,
                      settings.purge_retry_interval, settings.audit_witness_interval,
                      settings.server.audit_retention_days, settings.server.retention_interval)


async def serve(settings: StorageSettings) -> None:
    app = await build(settings)
    app.start_background_work()
    await run_until_signalled(
        app.running, settings.server, on_stop=app.close
    )


def main() -> None:
    settings = StorageSettings.from_env()
    configure_logging("storage", settings.server.log_level)
    asyncio.run(serve(settings))
