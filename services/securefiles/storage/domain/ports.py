"""What storage's domain needs from the outside world.

Repositories and blob stores are awaited: whatever blocks (SQL, fsync) runs off the event loop
in the adapter, so one slow statement or one lock wait never stalls the other calls.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from enum import Enum
from types import TracebackType
from typing import Protocol

from securefiles.storage.domain.file_metadata import FileMetadata
from securefiles.storage.domain.model import FileVersion, LibrarySettings, SecureFile, StoredDataKey


class Change(Protocol):
    """A unit of work under way: its writes and the call's audit entry commit together."""

    def audit(self, resource: str | None = None, **details: object) -> None:
        """Name what the change's entry concerns (and facts about it)."""
        ...


class UnitsOfWork(Protocol):
    """`async with units.begin() as change: change.audit(...); await repo.write(...)`: both or neither."""

    def begin(self) -> AbstractAsyncContextManager[Change]: ...


class Unaudited:
    """Units of work for tools and tests: the repository's own transactions, no entry."""

    def begin(self) -> Unaudited:
        return self

    def audit(self, resource: str | None = None, **details: object) -> None:
        return None

    async def __aenter__(self) -> Unaudited:
        return self

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None,
                        tb: TracebackType | None) -> None:
        return None


class BlobWriter(Protocol):
    def write(self, data: bytes) -> None: ...
    async def commit(self) -> None:
        """Make the blob durable and visible under its key (fsync + rename)."""
        ...
    def abort(self) -> None:
        """Discard everything written; nothing remains."""
        ...


class BlobReader(Protocol):
    size: int
    async def read_at(self, offset: int, length: int) -> bytes: ...
    def close(self) -> None: ...


class BlobStore(Protocol):
    def begin(self, key: str) -> BlobWriter: ...
    async def open(self, key: str) -> BlobReader: ...
    async def delete(self, key: str) -> None: ...
    def sweep(self, keep: set[str]) -> int:
        """Remove partial writes and blobs not in `keep`; return how many (blocking: at start-up)."""
        ...


class FileRepository(Protocol):
    async def insert(self, secure_file: SecureFile) -> None:
        """Add a file with its first version (settling the purge its upload owed); AlreadyExists if
        the name is taken."""
        ...
    async def by_id(self, project: str, file_id: str) -> SecureFile | None: ...
    async def by_display_name(self, project: str, display_name: str) -> SecureFile | None: ...
    async def list_page(
        self, project: str, after: str, limit: int, name_prefix: str, expires_before: dt.datetime | None = None
    ) -> list[SecureFile]: ...
    async def list_versions(self, file_id: str) -> list[FileVersion]:
        """Kept versions, newest first."""
        ...
    async def add_version(self, file_id: str, new: FileVersion, keep: int) -> tuple[SecureFile, list[FileVersion]]:
        """Make `new` current and remove versions beyond the newest `keep`: (file, removed versions)."""
        ...
    async def set_current(self, file_id: str, version: int, now: dt.datetime) -> SecureFile: ...
    async def get_library(self, project: str) -> LibrarySettings: ...
    async def set_library(self, settings: LibrarySettings, expected_etag: str = "") -> LibrarySettings:
        """Store the settings; with `expected_etag`, only if the stored ones still have it (ABORTED
        ETAG_MISMATCH), decided inside the writing transaction."""
        ...
    async def update(
        self, file_id: str, display_name: str | None, properties: Mapping[str, str] | None, expected_etag: str = "",
        merge_properties: Callable[[Mapping[str, str]], dict[str, str]] | None = None,
    ) -> SecureFile:
        """Change the file; with `expected_etag`, only if the stored file still has it (ABORTED
        ETAG_MISMATCH otherwise); `merge_properties` makes the new properties from the stored
        ones. Both inside the writing transaction."""
        ...
    async def delete(self, file_id: str, resource: str, now: dt.datetime) -> list[FileVersion]:
        """Remove the file and its wrapped keys, and record that authz still has to forget
        `resource`'s policies, in one transaction; return its versions."""
        ...
    async def owe_purge(self, resource: str, due: dt.datetime) -> None:
        """Record that authz must forget `resource` from `due` on, unless the upload of it commits."""
        ...
    async def owed_purges(self, limit: int, now: dt.datetime | None = None) -> list[str]:
        """Resource names whose policies authz has not confirmed forgetting and that are due, oldest first."""
        ...
    async def purge_settled(self, resource: str) -> None: ...
    async def all_blob_keys(self) -> set[str]: ...
    async def count_data_keys(self, region: str | None) -> dict[tuple[str, int], int]:
        """{(region, key version): number of wrapped data keys}."""
        ...
    async def data_keys_not_under(
        self, region: str, primary: int, after: tuple[str, int], limit: int
    ) -> list[StoredDataKey]:
        """Wrapped keys of `region` under any version but `primary`, ordered by (file id, version)."""
        ...
    async def swap_wrapped_keys(self, swaps: list[tuple[StoredDataKey, bytes, int]]) -> int:
        """Replace each wrapped key that is still the one read (compare and swap), in one transaction."""
        ...


class DataKeys(Protocol):
    """kms, routed by region."""

    async def generate(self, region: str, context: Mapping[str, str]) -> tuple[bytes, bytes, str]:
        """(plaintext data key, wrapped key, key version name)."""
        ...
    async def decrypt(self, region: str, wrapped: bytes, context: Mapping[str, str]) -> bytes: ...
    async def decrypt_many(self, region: str, keys: Sequence[tuple[bytes, Mapping[str, str]]]) -> list[bytes]:
        """Several keys of one region in one call; fails as `decrypt` would for the first that cannot."""
        ...
    async def reencrypt(self, region: str, wrapped: bytes, context: Mapping[str, str]) -> tuple[bytes, int]:
        """(wrapped under the primary, primary version number)."""
        ...
    async def reencrypt_many(
        self, region: str, keys: Sequence[tuple[bytes, Mapping[str, str]]]
    ) -> list[tuple[bytes, int] | str]:
        """Each key re-wrapped, or the reason it was not, in one call."""
        ...
    async def primary_version(self, region: str) -> int: ...
    @property
    def regions(self) -> list[str]: ...


class Access(Enum):
    """What a person may do with a file or a library (authz's adapter translates)."""

    VIEW = "view"
    USE = "use"
    CREATE = "create"
    ADMINISTER = "administer"


class AccessDecisions(Protocol):
    """authz."""

    async def check_access(self, principal: str, permission: Access, resources: Sequence[str]) -> list[bool]: ...
    async def authorize_use(self, job_token: str, resource: str, metadata_only: bool = False) -> str: ...
    async def authorize_uses(self, job_token: str, resources: Sequence[str]) -> str:
        """Every file for the job at once; refused as `authorize_use` refuses the first it may not use."""
        ...
    async def filter_usable(self, job_token: str, resources: Sequence[str]) -> list[str]: ...
    async def authorize_break_glass(self, principal: str, resource: str) -> str: ...
    async def project_region(self, project: str) -> str: ...
    async def grant_file_administrator(self, file_resource: str, principal: str) -> None: ...
    async def purge_resource_policies(self, file_resource: str) -> dict[str, int]: ...


class MetadataParser(Protocol):
    """Reads typed metadata from an uploaded file's plaintext, bounded in time; never raises for
    what the file contains (a parse that cannot finish gives a metadata note instead)."""

    async def parse(self, name: str, plaintext: bytes, password: bytes | None) -> FileMetadata: ...
class OperationalEvents(Protocol):
    """What the domain reports for monitoring (metrics); reporting changes no behaviour."""

    def metadata_parse_timed_out(self) -> None: ...

    def data_keys_rewrapped(self, region: str, rewrapped: int, failed: int) -> None: ...


class NoEvents:
    def metadata_parse_timed_out(self) -> None:
        return None

    def data_keys_rewrapped(self, region: str, rewrapped: int, failed: int) -> None:
        return None
