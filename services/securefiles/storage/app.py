"""Composition root of the storage service."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from securefiles.common.audit import AuditLog
from securefiles.common.audit import metadata as audit_metadata
from securefiles.common.config import ServerSettings, env_int, env_str, parse_endpoints
from securefiles.common.db import make_engine
from securefiles.common.interceptors import Authenticator
from securefiles.common.logging import configure_logging
from securefiles.common.server import RunningServer, create_server, run_until_signalled
from securefiles.common.service_clients import AuthzClient
from securefiles.common.tokens import TokenVerifier
from securefiles.storage.adapters.blob_directory import DirectoryBlobStore
from securefiles.storage.adapters.kms_router import RegionalDataKeys
from securefiles.storage.adapters.sql_files import SqlFileRepository, metadata
from securefiles.storage.api.servicer import SecureFileServicer
from securefiles.storage.domain.service import DEFAULT_MAX_FILE_BYTES, SecureFiles
from securefiles.storage.v1 import storage_pb2, storage_pb2_grpc

log = logging.getLogger("securefiles.storage")


@dataclass(frozen=True)
class StorageSettings:
    server: ServerSettings
    blob_dir: Path
    kms_endpoints: dict[str, str]
    authz_endpoint: str
    max_file_bytes: int

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> StorageSettings:
        env = os.environ if env is None else env
        return cls(
            server=ServerSettings.from_env("storage", env),
            blob_dir=Path(env_str(env, "BLOB_DIR", "blobs")),
            kms_endpoints=parse_endpoints(env_str(env, "KMS_ENDPOINTS")),
            authz_endpoint=env_str(env, "AUTHZ_ENDPOINT"),
            max_file_bytes=env_int(env, "MAX_FILE_BYTES", DEFAULT_MAX_FILE_BYTES),
        )


@dataclass
class StorageApp:
    running: RunningServer
    files: SecureFiles
    authz: AuthzClient
    keys: RegionalDataKeys

    async def close(self) -> None:
        await self.authz.close()
        await self.keys.close()


def build(settings: StorageSettings) -> StorageApp:
    """Wire the storage service (call inside the event loop); sweep leftovers of a crash."""
    engine = make_engine(settings.server.database_url, metadata, audit_metadata)
    repository = SqlFileRepository(engine)
    blobs = DirectoryBlobStore(settings.blob_dir)
    removed = blobs.sweep(repository.all_blob_keys())
    if removed:
        log.warning("removed partial or orphaned blobs", extra={"count": removed})
    authz = AuthzClient(settings.authz_endpoint, settings.server.tls)
    keys = RegionalDataKeys(settings.kms_endpoints, settings.server.tls)
    files = SecureFiles(repository, blobs, keys, authz, max_file_bytes=settings.max_file_bytes)
    running = create_server(
        service="storage",
        registrations=[(storage_pb2_grpc.add_SecureFileServiceServicer_to_server, SecureFileServicer(files))],
        service_names=[storage_pb2.DESCRIPTOR.services_by_name["SecureFileService"].full_name],
        tls=settings.server.tls,
        authenticator=Authenticator(TokenVerifier(authz.signing_keys)),
        address=settings.server.listen,
        reflection_enabled=settings.server.reflection,
        audit=AuditLog(engine, "storage"),
        audit_reader=authz.require_operator,
        unaudited_methods=frozenset({"GetSecureFile", "ListSecureFiles"}),
    )
    return StorageApp(running, files, authz, keys)


async def serve(settings: StorageSettings) -> None:
    app = build(settings)
    await run_until_signalled(
        app.running, settings.server.port_file, parent_pid=settings.server.parent_pid, on_stop=app.close
    )


def main() -> None:
    settings = StorageSettings.from_env()
    configure_logging("storage", settings.server.log_level)
    asyncio.run(serve(settings))
