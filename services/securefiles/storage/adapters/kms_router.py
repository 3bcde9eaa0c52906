"""Data keys from the kms of the file's region (one channel per region)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from securefiles.audit.peer import AuditPeer
from securefiles.common.errors import FailedPrecondition
from securefiles.common.tls import TlsFiles
from securefiles.kms.v1 import kms_pb2
from securefiles.storage.adapters.kms_client import KmsClient


class RegionalDataKeys:
    """DataKeys routed by region: `SECUREFILES_KMS_ENDPOINTS=eu=host:port,us=host:port`."""

    def __init__(self, endpoints: Mapping[str, str], tls: TlsFiles, timeout: float) -> None:
        self._clients = {region: KmsClient(region, target, tls, timeout) for region, target in endpoints.items()}

    def client(self, region: str) -> KmsClient:
        client = self._clients.get(region)
        if client is None:
            raise FailedPrecondition(f"no kms is configured for region {region}", reason="REGION_NOT_SERVED")
        return client

    def audit_peers(self) -> list[AuditPeer]:
        return [client.audit_peer() for _, client in sorted(self._clients.items())]

    @property
    def regions(self) -> list[str]:
        return sorted(self._clients)

    async def generate(self, region: str, context: Mapping[str, str]) -> tuple[bytes, bytes, str]:
        response = await self.client(region).generate_data_key(context)
        return response.plaintext, response.wrapped_key, response.key_version

    async def decrypt(self, region: str, wrapped: bytes, context: Mapping[str, str]) -> bytes:
        return await self.client(region).decrypt_data_key(wrapped, context)

    async def decrypt_many(self, region: str, keys: Sequence[tuple[bytes, Mapping[str, str]]]) -> list[bytes]:
        return await self.client(region).decrypt_data_keys(keys)

    async def reencrypt_many(
        self, region: str, keys: Sequence[tuple[bytes, Mapping[str, str]]]
    ) -> list[tuple[bytes, int] | str]:
        results = await self.client(region).reencrypt_data_keys(keys)
        return [r.error_reason if r.error_reason else (r.wrapped_key, int(r.key_version.rsplit("/", 1)[1]))
                for r in results]

    async def reencrypt(self, region: str, wrapped: bytes, context: Mapping[str, str]) -> tuple[bytes, int]:
        response = await self.client(region).reencrypt_data_key(wrapped, context)
        return response.wrapped_key, int(response.key_version.rsplit("/", 1)[1])

    async def primary_version(self, region: str) -> int:
        for version in await self.client(region).list_key_versions():
            if version.state == kms_pb2.KeyVersion.STATE_PRIMARY:
                return int(version.version)
        raise FailedPrecondition(f"region {region} has no primary key version", reason="NO_PRIMARY_KEY_VERSION")

    async def close(self) -> None:
        for client in self._clients.values():
            await client.close()
