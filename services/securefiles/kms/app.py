"""Composition root of the kms service: settings, key ring, server."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from securefiles import __version__
from securefiles.audit.api import SERVICE_NAME as AUDIT_SERVICE
from securefiles.audit.api import WITNESS_METHODS, audit_registration
from securefiles.common.audit import AuditLog
from securefiles.common.authentication import Authenticator
from securefiles.common.config import ConfigError, ServerSettings, env_bool, env_optional, env_str
from securefiles.common.db import make_engine, ping
from securefiles.common.db_threads import DatabaseThreads
from securefiles.common.housekeeping import Job, archive_audit, keep_house
from securefiles.common.logging import configure_logging
from securefiles.common.migrations import upgrade
from securefiles.common.server import RunningServer, create_server, run_until_signalled
from securefiles.common.tokens import TokenVerifier
from securefiles.common.tracing import configure_tracing
from securefiles.common.unit_of_work import UnitsOfWork
from securefiles.kms.adapters.authz_client import AuthzClient
from securefiles.kms.adapters.metrics import register_key_version_gauges
from securefiles.kms.adapters.pkcs11_root_key import Pkcs11ConfigError, Pkcs11RootKey, Pkcs11Settings
from securefiles.kms.adapters.sql_key_store import SqlKeyVersionStore
from securefiles.kms.api.servicer import KeyManagementServicer
from securefiles.kms.domain.key_ring import KeyRing, KeyVersionRecord, deployment_principal, load_root_key
from securefiles.kms.domain.root_key import FileRootKey, RootKey
from securefiles.kms.v1 import kms_pb2, kms_pb2_grpc

log = logging.getLogger("securefiles.kms")


@dataclass(frozen=True)
class KmsSettings:
    server: ServerSettings
    region: str
    root_key_file: Path | None  # the root key in a secret file, or
    deployment_id: str
    authz_endpoint: str
    pkcs11: Pkcs11Settings | None = None  # in a PKCS#11 token (wins when both are set)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> KmsSettings:
        env = os.environ if env is None else env
        region = env_str(env, "REGION")
        pkcs11 = _pkcs11_settings(env, region)
        return cls(
            server=ServerSettings.from_env("kms", env),
            region=region,
            root_key_file=None if pkcs11 else Path(env_str(env, "KMS_ROOT_KEY_FILE")),
            deployment_id=env_str(env, "DEPLOYMENT_ID", __version__),
            authz_endpoint=env_str(env, "AUTHZ_ENDPOINT"),
            pkcs11=pkcs11,
        )


def _pkcs11_settings(env: Mapping[str, str], region: str) -> Pkcs11Settings | None:
    """`KMS_PKCS11_MODULE` (the library), `KMS_PKCS11_TOKEN_LABEL`, `KMS_PKCS11_PIN(_FILE)` and
    `KMS_PKCS11_KEY_LABEL` (default `securefiles-kms-<region>-root`); `KMS_PKCS11_GENERATE_KEY`
    creates the key in the token when it is missing (development)."""
    module = env_optional(env, "KMS_PKCS11_MODULE")
    if module is None:
        return None
    return Pkcs11Settings(
        module=module,
        token_label=env_str(env, "KMS_PKCS11_TOKEN_LABEL"),
        key_label=env_str(env, "KMS_PKCS11_KEY_LABEL", f"securefiles-kms-{region}-root"),
        pin=env_str(env, "KMS_PKCS11_PIN"),
        generate=env_bool(env, "KMS_PKCS11_GENERATE_KEY"),
    )


def load_root(settings: KmsSettings) -> RootKey:
    """The region root key from its holder: a PKCS#11 token, or a secret file."""
    if settings.pkcs11 is not None:
        try:
            return Pkcs11RootKey(settings.pkcs11)
        except Pkcs11ConfigError as error:
            raise ConfigError(f"SECUREFILES_KMS_PKCS11_*: {error}") from None
    assert settings.root_key_file is not None
    return FileRootKey(load_root_key(settings.root_key_file.read_bytes()))


def rotate_on_deploy(ring: KeyRing, units: UnitsOfWork, deployment_id: str) -> tuple[KeyVersionRecord, bool]:
    """One new primary per deployment id (idempotent); a new version commits with its
    RotateKeyOnDeploy entry, or neither is made (AUDIT_UNAVAILABLE: the service does not start)."""
    with units.for_job(deployment_principal(deployment_id), "RotateKeyOnDeploy")() as change:
        record, created = ring.ensure_deployment_version(deployment_id)
        if created:
            change.audit(record.name, deployment_id=deployment_id)
    return record, created


def build(settings: KmsSettings) -> tuple[RunningServer, Callable[[], Awaitable[None]], list[Job]]:
    """Wire the kms service (call inside the event loop); rotate on deploy if needed. Returns the
    server, what closes its client of authz, database threads and connections once the server
    has stopped, and its housekeeping."""
    upgrade("kms", settings.server.database_url)
    engine = make_engine(settings.server.database_url, busy_timeout=settings.server.database_busy_timeout)
    audit = AuditLog(engine, f"kms-{settings.region}", key=settings.server.audit_key)
    store = SqlKeyVersionStore(engine)
    ring = KeyRing(settings.region, load_root(settings), store)
    register_key_version_gauges(store, settings.region)
    record, created = rotate_on_deploy(ring, UnitsOfWork(engine, audit), settings.deployment_id)
    log.info("key ring ready", extra={"region": settings.region, "primary": record.name, "rotated": created})
    authz = AuthzClient(settings.authz_endpoint, settings.server.tls, settings.server.outbound_timeout)
    database = DatabaseThreads(settings.server.database_threads, "kms-db")
    running = create_server(
        service="kms",
        registrations=[(kms_pb2_grpc.add_KeyManagementServiceServicer_to_server,
                        KeyManagementServicer(ring, authz, database, UnitsOfWork(engine, audit, database))),
                       audit_registration(audit, authz.require_operator, database)],
        service_names=[kms_pb2.DESCRIPTOR.services_by_name["KeyManagementService"].full_name, AUDIT_SERVICE],
        tls=settings.server.tls,
        authenticator=Authenticator(
            TokenVerifier(authz.signing_keys, max_key_age=settings.server.signing_keys_max_age)),
        address=settings.server.listen,
        internal_address=settings.server.internal_listen,
        reflection_enabled=settings.server.reflection,
        limits=settings.server.limits,
        audit=audit,
        readiness={
            "database": lambda: ping(engine),
            "primary_key": lambda: asyncio.to_thread(ring.require_usable_primary),
            "authz": authz.ready,
        },
        unaudited_methods=frozenset({"ListKeyVersions"}) | WITNESS_METHODS,
    )
    async def close() -> None:
        await authz.close()
        audit.close()
        database.close()
        engine.dispose()

    return running, close, [archive_audit(audit, database, settings.server.audit_retention_days)]


async def serve(settings: KmsSettings, stop: asyncio.Event | None = None) -> None:
    """Serve until signalled, or until `stop` is set (a server sharing its process)."""
    running, close, housekeeping = build(settings)
    background = asyncio.create_task(keep_house(housekeeping, settings.server.retention_interval))
    try:
        await run_until_signalled(running, settings.server, on_stop=close, stop=stop)
    finally:
        background.cancel()


def main() -> None:
    settings = KmsSettings.from_env()
    configure_logging("kms", settings.server.log_level)
    configure_tracing(f"kms-{settings.region}")
    asyncio.run(serve(settings))
