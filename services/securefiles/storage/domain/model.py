"""Secure files as storage keeps them: metadata plus one wrapped data key per version."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from securefiles.common.errors import Aborted
from securefiles.common.etags import etag
from securefiles.common.resource_names import file_name, key_version_name


@dataclass(frozen=True)
class FileVersion:
    """One content version: its ciphertext blob and its data key wrapped by kms."""

    version: int
    size: int
    sha256: str
    blob_key: str
    wrapped_key: bytes = field(repr=False)
    key_region: str
    key_version: int
    created_at: dt.datetime
    created_by: str
    metadata: dict[str, Any] = field(default_factory=dict)
    expires_at: dt.datetime | None = None
    metadata_bytes: int = field(default=0, compare=False)  # JSON size of `metadata`, when known (0: not known)

    @property
    def key_version_name(self) -> str:
        return key_version_name(self.key_region, self.key_version)


@dataclass(frozen=True)
class SecureFile:
    file_id: str
    project: str
    display_name: str
    properties: dict[str, str]
    created_by: str
    created_at: dt.datetime
    updated_at: dt.datetime
    current: FileVersion

    @property
    def name(self) -> str:
        return file_name(self.project, self.file_id)

    @property
    def etag(self) -> str:
        """Changes whenever the file's metadata or content does (AIP-154): from its content version
        and the time of its last change. Opaque to clients."""
        return etag(self.file_id, self.current.version, self.updated_at.isoformat())


@dataclass(frozen=True)
class LibrarySettings:
    """Per project: replacing content is off by default (Azure's rule); N versions are kept."""

    project: str
    allow_replace: bool = False
    keep_versions: int = 5

    @property
    def etag(self) -> str:
        """Changes whenever a setting does (AIP-154); the settings are the library's whole state."""
        return etag(self.project, self.allow_replace, self.keep_versions)


@dataclass(frozen=True)
class StoredDataKey:
    """A wrapped data key as rewrap sees it: which file version, which key version."""

    file_id: str
    project: str
    version: int
    wrapped_key: bytes = field(repr=False)
    key_region: str
    key_version: int


def encryption_context(project: str, file_id: str, version: int) -> dict[str, str]:
    """What kms binds a data key to: a wrapped key moved to another file fails to unwrap."""
    return {"project": project, "secure_file_id": file_id, "version": str(version)}


def content_aad(project: str, file_id: str, version: int) -> bytes:
    """What the segment cipher binds ciphertext to."""
    return f"{file_name(project, file_id)}#v{version}".encode()


def stale_etag(what: str = "secure file") -> Aborted:
    """An update conditioned on an etag that is no longer current (AIP-154)."""
    return Aborted(f"the {what} changed since this etag was read; get it again and retry",
                   reason="ETAG_MISMATCH")
