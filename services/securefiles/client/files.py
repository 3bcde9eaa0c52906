"""`client.files`: secure files and library settings, as the client's own types."""

from __future__ import annotations

import builtins
import datetime as dt
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from securefiles.client import convert
from securefiles.client.types import Library, SecureFile, SecureFileVersion

if TYPE_CHECKING:
    from securefiles.client.api import SecureFilesClient


class FilesClient:
    """Upload, list, inspect, change, version and delete files (downloads: `SecureFilesClient`, as a job)."""

    def __init__(self, api: SecureFilesClient) -> None:
        self._api = api

    def upload(self, source: Path | BinaryIO | bytes, name: str | None = None,
               properties: Mapping[str, str] | None = None, parse_password: bytes | None = None) -> SecureFile:
        return convert.secure_file(self._api.upload_file(source, name, properties, parse_password))

    def replace(self, name: str, source: Path | BinaryIO | bytes, reason: str = "",
                parse_password: bytes | None = None) -> SecureFile:
        return convert.secure_file(self._api.replace_file(name, source, reason, parse_password))

    def get(self, name: str) -> SecureFile:
        return convert.secure_file(self._api.get_file(name))

    def list(self, name_pattern: str = "", expires_before: dt.datetime | None = None,
             filter: str = "") -> Iterator[SecureFile]:
        """Every file the caller may view (a job: may use), following pages. `filter`: an AIP-160
        filter (`type = "pkcs12" AND properties.team = "ios"`), to which `name_pattern` and
        `expires_before` are then added as terms."""
        return map(convert.secure_file, self._api.list_files(name_pattern, expires_before=expires_before,
                                                             filter=filter))

    def update(self, name: str, rename: str | None = None, properties: Mapping[str, str] | None = None,
               etag: str = "") -> SecureFile:
        """`etag` (a SecureFile's): change it only if nobody changed it since (ABORTED ETAG_MISMATCH otherwise)."""
        return convert.secure_file(self._api.update_file(name, rename, properties, etag=etag))

    def delete(self, name: str) -> None:
        self._api.delete_file(name)

    def versions(self, name: str) -> builtins.list[SecureFileVersion]:
        return [convert.secure_file_version(v) for v in self._api.list_versions(name)]

    def version(self, name: str, version: int) -> SecureFileVersion:
        return convert.secure_file_version(self._api.get_version(name, version))

    def rollback(self, name: str, version: int, reason: str = "") -> SecureFile:
        return convert.secure_file(self._api.rollback_file(name, version, reason))

    def library(self) -> Library:
        return convert.library(self._api.get_library())

    def update_library(self, allow_replace: bool | None = None, keep_versions: int | None = None) -> Library:
        return convert.library(self._api.update_library(allow_replace, keep_versions))
