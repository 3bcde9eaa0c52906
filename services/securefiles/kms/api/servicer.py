"""gRPC face of the key ring: who may call what, and message conversion."""

from __future__ import annotations

import collections
import logging
from collections.abc import Mapping
from typing import Any

import grpc

from securefiles.common.call_context import audit_items, audit_note, current_principal
from securefiles.common.db_threads import DatabaseThreads
from securefiles.common.errors import InvalidArgument, PermissionDenied, SecureFilesError
from securefiles.common.paging import int_key, page_request, repository_page
from securefiles.common.proto_time import to_timestamp
from securefiles.common.resource_names import parse_key_version, parse_region
from securefiles.common.unit_of_work import UnitsOfWork
from securefiles.kms.adapters.authz_client import AuthzClient
from securefiles.kms.domain.key_ring import KeyRing, KeyVersionRecord
from securefiles.kms.v1 import kms_pb2, kms_pb2_grpc

log = logging.getLogger("securefiles.kms")

MAX_REASON = 1024
MAX_DECRYPT_BATCH = 100
MAX_REENCRYPT_BATCH = 1000


def key_version_message(record: KeyVersionRecord) -> kms_pb2.KeyVersion:
    return kms_pb2.KeyVersion(
        name=record.name,
        region=record.region,
        version=record.version,
        state=kms_pb2.KeyVersion.State.Value(f"STATE_{record.state.value}"),
        create_time=to_timestamp(record.created_at),
        created_by=record.created_by,
        reason=record.reason,
    )


class KeyManagementServicer(kms_pb2_grpc.KeyManagementServiceServicer):
    """One region's KMS."""

    def __init__(self, key_ring: KeyRing, authz: AuthzClient, database: DatabaseThreads,
                 changes: UnitsOfWork) -> None:
        self._ring = key_ring
        self._authz = authz
        self._db = database  # the key ring reads and writes its versions: off the event loop
        self._changes = changes  # a key-state change and its audit entry: one transaction

    # -- authorization ----------------------------------------------------------------

    def _require_storage(self) -> None:
        principal = current_principal()
        if not principal.is_service_named("storage"):
            raise PermissionDenied("only the storage service may use data keys", reason="NOT_STORAGE_SERVICE")

    async def _require_operator(self, allow_storage: bool = False) -> str:
        principal = current_principal()
        if not (allow_storage and principal.is_service_named("storage")):
            await self._authz.require_operator(principal)
        return principal.name

    def _check_ring(self, ring: str) -> None:
        if parse_region(ring) != self._ring.region:
            raise InvalidArgument(f"this kms serves region {self._ring.region}, not {ring}", reason="WRONG_REGION")

    def _version_of(self, name: str) -> int:
        region, version = parse_key_version(name)
        if region != self._ring.region:
            raise InvalidArgument(f"this kms serves region {self._ring.region}", reason="WRONG_REGION")
        return version

    @staticmethod
    def _context(context: Mapping[str, str]) -> Mapping[str, str]:
        if not context:
            raise InvalidArgument("an encryption context is required", reason="INVALID_ENCRYPTION_CONTEXT")
        return context

    # -- data keys --------------------------------------------------------------------

    async def GenerateDataKey(
        self, request: kms_pb2.GenerateDataKeyRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> kms_pb2.GenerateDataKeyResponse:
        self._require_storage()
        self._check_ring(request.name)
        audit_note(request.name, **{f"context.{k}": v for k, v in request.encryption_context.items()})
        plaintext, wrapped, record = await self._db.run(self._ring.generate_data_key,
                                                        self._context(request.encryption_context))
        audit_note(key_version=record.name)
        return kms_pb2.GenerateDataKeyResponse(plaintext=plaintext, wrapped_key=wrapped, key_version=record.name)

    async def DecryptDataKey(
        self, request: kms_pb2.DecryptDataKeyRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> kms_pb2.DecryptDataKeyResponse:
        self._require_storage()
        self._check_ring(request.name)
        audit_note(request.name, **{f"context.{k}": v for k, v in request.encryption_context.items()})
        plaintext, record = await self._db.run(self._ring.decrypt_data_key, request.wrapped_key,
                                               self._context(request.encryption_context))
        audit_note(key_version=record.name)
        return kms_pb2.DecryptDataKeyResponse(plaintext=plaintext, key_version=record.name)

    async def ReEncryptDataKey(
        self, request: kms_pb2.ReEncryptDataKeyRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> kms_pb2.ReEncryptDataKeyResponse:
        self._require_storage()
        self._check_ring(request.name)
        audit_note(request.name, **{f"context.{k}": v for k, v in request.encryption_context.items()})
        wrapped, primary, previous = await self._db.run(
            self._ring.reencrypt_data_key, request.wrapped_key, self._context(request.encryption_context))
        audit_note(key_version=primary.name, previous_key_version=previous.name)
        return kms_pb2.ReEncryptDataKeyResponse(
            wrapped_key=wrapped, key_version=primary.name, previous_key_version=previous.name
        )

    def _batch(self, request: kms_pb2.BatchDecryptDataKeysRequest | kms_pb2.BatchReEncryptDataKeysRequest,
               limit: int) -> list[tuple[bytes, Mapping[str, str]]]:
        self._require_storage()
        self._check_ring(request.name)
        if not 1 <= len(request.keys) <= limit:
            raise InvalidArgument(f"give 1 to {limit} keys", reason="INVALID_BATCH_SIZE")
        return [(k.wrapped_key, self._context(k.encryption_context)) for k in request.keys]

    async def BatchDecryptDataKeys(
        self, request: kms_pb2.BatchDecryptDataKeysRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> kms_pb2.BatchDecryptDataKeysResponse:
        keys = self._batch(request, MAX_DECRYPT_BATCH)
        unwrapped = await self._db.run(self._ring.decrypt_data_keys, keys)
        # One entry per key, as DecryptDataKey writes: which file's key, under which version.
        audit_items([(request.name, {**{f"context.{k}": v for k, v in ctx.items()}, "key_version": record.name})
                     for (_, ctx), (_, record) in zip(keys, unwrapped, strict=True)])
        return kms_pb2.BatchDecryptDataKeysResponse(keys=[
            kms_pb2.DecryptDataKeyResponse(plaintext=plaintext, key_version=record.name)
            for plaintext, record in unwrapped])

    async def BatchReEncryptDataKeys(
        self, request: kms_pb2.BatchReEncryptDataKeysRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> kms_pb2.BatchReEncryptDataKeysResponse:
        keys = self._batch(request, MAX_REENCRYPT_BATCH)
        outcomes = await self._db.run(self._ring.reencrypt_data_keys, keys)
        results = []
        moved: collections.Counter[str] = collections.Counter()
        primary = ""
        for outcome in outcomes:
            if isinstance(outcome, SecureFilesError):
                results.append(kms_pb2.ReEncryptDataKeyResult(error_reason=outcome.reason))
                moved["failed"] += 1
                continue
            primary = outcome.primary.name
            moved[outcome.previous.name] += 1
            results.append(kms_pb2.ReEncryptDataKeyResult(
                wrapped_key=outcome.wrapped, key_version=outcome.primary.name,
                previous_key_version=outcome.previous.name))
        # One entry for the batch: how many keys moved from which version to the primary.
        audit_note(request.name, keys=len(keys), key_version=primary,
                   **{f"from.{version}": n for version, n in sorted(moved.items())})
        return kms_pb2.BatchReEncryptDataKeysResponse(results=results)

    # -- key versions -----------------------------------------------------------------

    async def RotateKey(
        self, request: kms_pb2.RotateKeyRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> kms_pb2.KeyVersion:
        operator = await self._require_operator()
        self._check_ring(request.parent)
        if len(request.reason) > MAX_REASON:
            raise InvalidArgument("reason is too long", reason="INVALID_REASON")
        # The entry names the version the database numbered, and commits with it.
        record = await self._changes.run_noted(lambda r: audit_note(r.name, reason=request.reason),
                                               self._ring.rotate, operator, request.reason)
        log.info("key rotated", extra={"key_version": record.name, "operator": operator})
        return key_version_message(record)

    async def ListKeyVersions(
        self, request: kms_pb2.ListKeyVersionsRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> kms_pb2.ListKeyVersionsResponse:
        await self._require_operator(allow_storage=True)
        self._check_ring(request.parent)
        wanted = page_request(request.parent, "", request.page_size, request.page_token, int_key)
        page, token = await self._db.run(repository_page, self._ring.versions_page, lambda r: r.version, wanted)
        return kms_pb2.ListKeyVersionsResponse(key_versions=[key_version_message(r) for r in page],
                                               next_page_token=token)

    async def DisableKeyVersion(
        self, request: kms_pb2.DisableKeyVersionRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> kms_pb2.KeyVersion:
        await self._require_operator()
        return key_version_message(await self._changes.run(self._ring.disable, self._version_of(request.name)))

    async def EnableKeyVersion(
        self, request: kms_pb2.EnableKeyVersionRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> kms_pb2.KeyVersion:
        await self._require_operator()
        return key_version_message(await self._changes.run(self._ring.enable, self._version_of(request.name)))

    async def DestroyKeyVersion(
        self, request: kms_pb2.DestroyKeyVersionRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> kms_pb2.KeyVersion:
        await self._require_operator()
        return key_version_message(await self._changes.run(self._ring.destroy, self._version_of(request.name)))
