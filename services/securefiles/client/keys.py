"""`client.keys`: each region's key versions, rotation, state changes and rewrap (operators)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from securefiles.client import convert
from securefiles.client.types import KeyVersion, RewrapReport

if TYPE_CHECKING:
    from securefiles.client.api import SecureFilesClient


class KeysClient:
    """`region` None: the only configured region (REGION_REQUIRED when there are several)."""

    def __init__(self, api: SecureFilesClient) -> None:
        self._api = api

    def versions(self, region: str | None = None) -> tuple[str, list[KeyVersion]]:
        """The region asked (or the only one) and its key versions."""
        region, versions = self._api.list_key_versions(region)
        return region, [convert.key_version(v) for v in versions]

    def version_name(self, region: str, version: str) -> str:
        """`regions/R/keyVersions/N` for a number or a full name of `region`'s (INVALID_ARGUMENT otherwise)."""
        return self._api._key_version_name(region, version)

    def rotate(self, region: str | None = None, reason: str = "") -> KeyVersion:
        return convert.key_version(self._api.rotate_key(region, reason))

    def set_state(self, version: str, action: str, region: str | None = None) -> KeyVersion:
        """`action` is disable, enable or destroy; `version` a number or a full name."""
        return convert.key_version(self._api.set_key_version_state(version, action, region))

    def data_keys(self, region: str | None = None) -> dict[str, int]:
        """{key version name: data keys it wraps} as storage sees it."""
        return self._api.count_data_keys(region)

    def rewrap(self, region: str | None = None) -> RewrapReport:
        """Re-wrap every data key under the primary version (ciphertext is not touched)."""
        return convert.rewrap_report(self._api.rewrap_data_keys(region))
