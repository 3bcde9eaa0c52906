"""Composition root of the storage service."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Engine

from securefiles.audit.api import SERVICE_NAME as AUDIT_SERVICE
from securefiles.audit.api import WITNESS_METHODS, audit_registration
from securefiles.common.audit import ALLOW, AuditLog
from securefiles.common.authentication import Authenticator
from securefiles.common.call_context import audit_note
from securefiles.common.clock import utcnow
from securefiles.common.config import (
    ConfigError,
    ServerSettings,
    env_float,
    env_int,
    env_optional,
    env_str,
    parse_endpoints,
)
from securefiles.common.db import make_engine, ping
from securefiles.common.db_threads import DatabaseThreads
from securefiles.common.housekeeping import archive_audit, keep_house
from securefiles.common.logging import configure_logging
from securefiles.common.migrations import upgrade
from securefiles.common.server import RunningServer, create_server, run_until_signalled
from securefiles.common.tokens import TokenVerifier
from securefiles.common.tracing import configure_tracing
from securefiles.common.unit_of_work import UnitsOfWork
from securefiles.storage.adapters.authz_client import AuthzClient
from securefiles.storage.adapters.blob_directory import DirectoryBlobStore
from securefiles.storage.adapters.expiry_webhook import LogOnlyNotifier, WebhookNotifier
from securefiles.storage.adapters.kms_router import RegionalDataKeys
from securefiles.storage.adapters.metrics import PrometheusEvents, register_data_key_gauges
from securefiles.storage.adapters.parser_pool import ParserPool, ParserSettings
from securefiles.storage.adapters.s3_blobs import S3BlobStore, S3Settings
from securefiles.storage.adapters.sql_blobs import SqlBlobStore
from securefiles.storage.adapters.sql_expiry_alerts import SqlExpiryAlerts
from securefiles.storage.adapters.sql_files import SqlFileRepository
from securefiles.storage.api.servicer import SecureFileServicer
from securefiles.storage.domain.expiry_alerts import THRESHOLDS_DAYS, ExpiryAlerts
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
    expiry: ExpirySettings = field(default_factory=lambda: ExpirySettings())
    s3: S3Settings | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> StorageSettings:
        env = os.environ if env is None else env
        blob_store = _blob_store(env_str(env, "BLOB_STORE", "directory"))
        s3 = _s3_settings(env) if blob_store == "s3" else None
        return cls(
            server=ServerSettings.from_env("storage", env),
            blob_dir=Path(env_str(env, "BLOB_DIR", "blobs")),
            blob_store=blob_store,
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
            expiry=ExpirySettings.from_env(env),
            s3=s3,
        )


@dataclass(frozen=True)
class ExpirySettings:
    """The expiry alert job: every `EXPIRY_CHECK_SECONDS` (0: off), thresholds in days
    (`EXPIRY_THRESHOLDS_DAYS`, "30,7,1"), and a webhook (`EXPIRY_WEBHOOK_URL`, signed with
    `EXPIRY_WEBHOOK_SECRET(_FILE)`, at least 32 bytes; `EXPIRY_WEBHOOK_CA_FILE` for its TLS)."""

    interval: int = 3600
    thresholds: tuple[int, ...] = THRESHOLDS_DAYS
    webhook_url: str | None = None
    webhook_secret: bytes = b""
    webhook_ca_file: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ExpirySettings:
        try:
            thresholds = tuple(int(d) for d in env_str(env, "EXPIRY_THRESHOLDS_DAYS", "30,7,1").split(",") if d.strip())
        except ValueError:
            raise ConfigError("SECUREFILES_EXPIRY_THRESHOLDS_DAYS must be whole days, e.g. 30,7,1") from None
        if not thresholds or min(thresholds) <= 0:
            raise ConfigError("SECUREFILES_EXPIRY_THRESHOLDS_DAYS must be positive whole days, e.g. 30,7,1")
        url = env_optional(env, "EXPIRY_WEBHOOK_URL")
        secret = env_optional(env, "EXPIRY_WEBHOOK_SECRET") or ""
        if url is not None:
            if not url.startswith(("https://", "http://")):
                raise ConfigError("SECUREFILES_EXPIRY_WEBHOOK_URL must be an http(s) URL")
            if len(secret.encode()) < 32:
                raise ConfigError("SECUREFILES_EXPIRY_WEBHOOK_SECRET(_FILE) must hold at least 32 bytes")
        return cls(interval=env_int(env, "EXPIRY_CHECK_SECONDS", 3600), thresholds=thresholds, webhook_url=url,
                   webhook_secret=secret.encode(), webhook_ca_file=env_optional(env, "EXPIRY_WEBHOOK_CA_FILE"))


def _blob_store(kind: str) -> str:
    if kind not in ("directory", "db", "s3"):
        raise ConfigError("SECUREFILES_BLOB_STORE must be 'directory', 'db' or 's3'")
    return kind


def _s3_settings(env: Mapping[str, str]) -> S3Settings:
    """The bucket (required), an endpoint for S3-compatible servers, a region and a key prefix;
    credentials are boto3's standard chain (AWS_* variables, shared config, an instance role)."""
    bucket = env_optional(env, "S3_BUCKET")
    if bucket is None:
        raise ConfigError("SECUREFILES_S3_BUCKET is required when SECUREFILES_BLOB_STORE is 's3'")
    endpoint = env_optional(env, "S3_ENDPOINT_URL")
    if endpoint is not None and not endpoint.startswith(("https://", "http://")):
        raise ConfigError("SECUREFILES_S3_ENDPOINT_URL must be an http(s) URL")
    return S3Settings(bucket=bucket, endpoint_url=endpoint, region=env_optional(env, "S3_REGION"),
                      prefix=env_optional(env, "S3_PREFIX") or "")


def _blobs(settings: StorageSettings, engine: Engine, database: DatabaseThreads) -> BlobStore:
    if settings.blob_store == "db":
        return SqlBlobStore(engine, database)
    if settings.blob_store == "s3":
        assert settings.s3 is not None  # from_env reads them for s3
        return S3BlobStore(settings.s3)
    return DirectoryBlobStore(settings.blob_dir)


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
    expiry: ExpiryAlerts | None = None
    expiry_interval: int = 0
    notifier: WebhookNotifier | LogOnlyNotifier | None = None
    _background: list[asyncio.Task[None]] = field(default_factory=list)

    def start_background_work(self) -> None:
        self._background.append(asyncio.create_task(keep_house(
            [archive_audit(self.audit, self.database, self.audit_retention_days)], self.retention_interval)))
        if self.expiry is not None and self.expiry_interval > 0:
            self._background.append(asyncio.create_task(self._alert_expiry_periodically()))
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

    async def _alert_expiry_periodically(self) -> None:
        """Announce files expiring soon: at start, then every interval."""
        assert self.expiry is not None
        while True:
            try:
                await self.expiry.run_once()
            except Exception:
                log.warning("expiry alert run failed; will retry", exc_info=True)
            await asyncio.sleep(self.expiry_interval)

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
        if self.notifier is not None:
            await self.notifier.close()
        self.audit.close()
        self.database.close()
        self.audit.engine.dispose()


async def build(settings: StorageSettings) -> StorageApp:
    """Wire the storage service (inside the event loop); sweep leftovers of a crash."""
    upgrade("storage", settings.server.database_url)
    engine = make_engine(settings.server.database_url, busy_timeout=settings.server.database_busy_timeout)
    database = DatabaseThreads(settings.server.database_threads, "storage-db")
    repository = SqlFileRepository(engine, database)
    blobs = _blobs(settings, engine, database)
    removed = await database.run(blobs.sweep, await repository.all_blob_keys())
    if removed:
        log.warning("removed partial or orphaned blobs", extra={"count": removed})
    authz = AuthzClient(settings.authz_endpoint, settings.server.tls, settings.server.outbound_timeout)
    keys = RegionalDataKeys(settings.kms_endpoints, settings.server.tls, settings.server.outbound_timeout)
    events = PrometheusEvents(keys.regions)
    parser = ParserPool(settings.parser, events)
    audit = AuditLog(engine, "storage", key=settings.server.audit_key)
    changes = UnitsOfWork(engine, audit, database)
    files = SecureFiles(repository, blobs, keys, authz, max_file_bytes=settings.max_file_bytes,
                        note_resource=audit_note, changes=changes, parser=parser)
    rewrapper = DataKeyRewrapper(repository, keys, events, changes)
    register_data_key_gauges(repository.count_data_keys_blocking)
    versioning = Versioning(files, repository, authz, utcnow)
    servicer = SecureFileServicer(files, versioning, rewrapper, repository, authz.require_operator,
                                  settings.stream_idle_seconds)
    running = create_server(
        service="storage",
        registrations=[(storage_pb2_grpc.add_SecureFileServiceServicer_to_server, servicer),
                       audit_registration(audit, authz.require_operator, database)],
        service_names=[storage_pb2.DESCRIPTOR.services_by_name["SecureFileService"].full_name, AUDIT_SERVICE],
        tls=settings.server.tls,
        authenticator=Authenticator(
            TokenVerifier(authz.signing_keys, max_key_age=settings.server.signing_keys_max_age)),
        address=settings.server.listen,
        internal_address=settings.server.internal_listen,
        reflection_enabled=settings.server.reflection,
        limits=settings.server.limits,
        audit=audit,
        readiness={"database": lambda: ping(engine), "authz": authz.ready,
                   **{f"kms-{region}": keys.client(region).ready for region in keys.regions}},
        unaudited_methods=frozenset({"GetSecureFile", "ListSecureFiles", "CountDataKeys", "ListSecureFileVersions",
                                     "GetSecureFileVersion", "GetLibrary"}) | WITNESS_METHODS,
    )
    expiry = settings.expiry
    notifier = (WebhookNotifier(expiry.webhook_url, expiry.webhook_secret, settings.server.outbound_timeout,
                                expiry.webhook_ca_file) if expiry.webhook_url else LogOnlyNotifier())

    alert_units = changes.for_job("service:storage", "ExpiryAlert",
                                  delivered_to="webhook" if expiry.webhook_url else "log")
    alerts = ExpiryAlerts(SqlExpiryAlerts(engine), notifier, alert_units, utcnow, expiry.thresholds, events)
    # Last: a failure above leaves no parser process behind (nor a task that outlives the loop).
    parser.start()
    return StorageApp(running, files, authz, keys, rewrapper, audit, parser, database, settings.rewrap_interval,
                      settings.purge_retry_interval, settings.audit_witness_interval,
                      audit_retention_days=settings.server.audit_retention_days,
                      retention_interval=settings.server.retention_interval, expiry=alerts,
                      expiry_interval=expiry.interval, notifier=notifier)


async def serve(settings: StorageSettings, stop: asyncio.Event | None = None) -> None:
    """Serve until signalled, or until `stop` is set (a server sharing its process)."""
    app = await build(settings)
    app.start_background_work()
    await run_until_signalled(app.running, settings.server, on_stop=app.close, stop=stop)


def main() -> None:
    settings = StorageSettings.from_env()
    configure_logging("storage", settings.server.log_level)
    configure_tracing("storage")
    asyncio.run(serve(settings))
