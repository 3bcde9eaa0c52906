"""Storage's data-key calls to one region's kms."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from securefiles.audit.peer import AuditPeer
from securefiles.common.peer_calls import DEFAULT_TIMEOUT, call_peer, require_serving, secure_channel
from securefiles.common.resource_names import region_name
from securefiles.common.tls import TlsFiles, kms_server_name
from securefiles.kms.v1 import kms_pb2, kms_pb2_grpc


class KmsClient:
    """Data-key calls to one region's kms."""

    def __init__(self, region: str, target: str, tls: TlsFiles, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.region = region
        self._timeout = timeout
        self._channel = secure_channel(target, tls, kms_server_name(region))  # only this region's kms
        self._stub = kms_pb2_grpc.KeyManagementServiceStub(self._channel)
        self._ring = region_name(region)

    async def close(self) -> None:
        await self._channel.close()

    def audit_peer(self) -> AuditPeer:
        return AuditPeer(f"kms-{self.region}", self._channel, self._timeout)

    async def ready(self) -> None:
        await require_serving(self._channel, f"kms-{self.region}")

    async def generate_data_key(self, context: Mapping[str, str]) -> kms_pb2.GenerateDataKeyResponse:
        request = kms_pb2.GenerateDataKeyRequest(name=self._ring, encryption_context=dict(context))
        response = await call_peer(self._stub.GenerateDataKey, request, "kms", self._timeout)
        assert isinstance(response, kms_pb2.GenerateDataKeyResponse)
        return response

    async def decrypt_data_key(self, wrapped: bytes, context: Mapping[str, str]) -> bytes:
        request = kms_pb2.DecryptDataKeyRequest(
            name=self._ring, wrapped_key=wrapped, encryption_context=dict(context)
        )
        response = await call_peer(self._stub.DecryptDataKey, request, "kms", self._timeout)
        assert isinstance(response, kms_pb2.DecryptDataKeyResponse)
        return response.plaintext

    async def decrypt_data_keys(self, keys: Sequence[tuple[bytes, Mapping[str, str]]]) -> list[bytes]:
        request = kms_pb2.BatchDecryptDataKeysRequest(name=self._ring, keys=[
            kms_pb2.WrappedDataKey(wrapped_key=wrapped, encryption_context=dict(context)) for wrapped, context in keys])
        response = await call_peer(self._stub.BatchDecryptDataKeys, request, "kms", self._timeout)
        assert isinstance(response, kms_pb2.BatchDecryptDataKeysResponse)
        return [key.plaintext for key in response.keys]

    async def reencrypt_data_keys(
        self, keys: Sequence[tuple[bytes, Mapping[str, str]]]
    ) -> list[kms_pb2.ReEncryptDataKeyResult]:
        request = kms_pb2.BatchReEncryptDataKeysRequest(name=self._ring, keys=[
            kms_pb2.WrappedDataKey(wrapped_key=wrapped, encryption_context=dict(context)) for wrapped, context in keys])
        response = await call_peer(self._stub.BatchReEncryptDataKeys, request, "kms", self._timeout)
        assert isinstance(response, kms_pb2.BatchReEncryptDataKeysResponse)
        return list(response.results)

    async def list_key_versions(self) -> list[kms_pb2.KeyVersion]:
        versions: list[kms_pb2.KeyVersion] = []
        request = kms_pb2.ListKeyVersionsRequest(parent=self._ring, page_size=1000)
        while True:  # every page: a ring rotated on each deploy outgrows one
            response = await call_peer(self._stub.ListKeyVersions, request, "kms", self._timeout)
            assert isinstance(response, kms_pb2.ListKeyVersionsResponse)
            versions += response.key_versions
            if not response.next_page_token or response.next_page_token == request.page_token:
                return versions
            request.page_token = response.next_page_token

    async def reencrypt_data_key(
        self, wrapped: bytes, context: Mapping[str, str]
    ) -> kms_pb2.ReEncryptDataKeyResponse:
        request = kms_pb2.ReEncryptDataKeyRequest(
            name=self._ring, wrapped_key=wrapped, encryption_context=dict(context)
        )
        response = await call_peer(self._stub.ReEncryptDataKey, request, "kms", self._timeout)
        assert isinstance(response, kms_pb2.ReEncryptDataKeyResponse)
        return response
