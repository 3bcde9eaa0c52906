"""In-memory fakes of storage's ports (storage/domain/ports.py), for unit tests of its domain.

Each keeps what the real adapter keeps and answers as it answers (same errors and reasons), and
records the calls a test needs to see: which keys were unwrapped, which blobs were opened.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import json
import os
from collections.abc import Callable, Mapping, Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from securefiles.common.errors import AlreadyExists, InvalidArgument, NotFound, PermissionDenied, Unavailable
from securefiles.common.principal import Principal
from securefiles.common.resource_names import key_version_name, parse_child, project_name
from securefiles.storage.domain.file_metadata import FileMetadata
from securefiles.storage.domain.model import FileVersion, LibrarySettings, SecureFile, StoredDataKey, stale_etag
from securefiles.storage.domain.ports import Access
from securefiles.storage.domain.versioning import concurrent_replace

# -- files ---------------------------------------------------------------------------------


class InMemoryFileRepository:
    """FileRepository in dicts: display names unique per project, versions keyed by number."""

    def __init__(self) -> None:
        self.files: dict[str, SecureFile] = {}  # by file id; `current` is the current version
        self.versions: dict[str, dict[int, FileVersion]] = {}
        self.owed: dict[str, dt.datetime] = {}  # resource name -> when its purge is due
        self.libraries: dict[str, LibrarySettings] = {}
        self.list_page_calls: list[tuple[str, str, int, str]] = []

    def _named(self, project: str, display_name: str) -> SecureFile | None:
        return next((f for f in self.files.values() if f.project == project and f.display_name == display_name),
                    None)

    async def insert(self, secure_file: SecureFile) -> None:
        if self._named(secure_file.project, secure_file.display_name) is not None:
            raise AlreadyExists(f"a secure file named {secure_file.display_name!r} already exists",
                                reason="FILE_EXISTS")
        self.files[secure_file.file_id] = secure_file
        self.versions[secure_file.file_id] = {secure_file.current.version: secure_file.current}
        self.owed.pop(secure_file.name, None)

    async def by_id(self, project: str, file_id: str) -> SecureFile | None:
        found = self.files.get(file_id)
        return found if found is not None and found.project == project else None

    async def by_display_name(self, project: str, display_name: str) -> SecureFile | None:
        return self._named(project, display_name)

    async def list_page(
        self, project: str, after: str, limit: int, name_prefix: str, expires_before: dt.datetime | None = None
    ) -> list[SecureFile]:
        self.list_page_calls.append((project, after, limit, name_prefix))
        chosen = sorted(
            (f for f in self.files.values()
             if f.project == project and f.display_name > after and f.display_name.startswith(name_prefix)
             and (expires_before is None
                  or (f.current.expires_at is not None and f.current.expires_at < expires_before))),
            key=lambda f: f.display_name)
        return chosen[:limit]

    async def list_versions(self, file_id: str) -> list[FileVersion]:
        return sorted(self.versions.get(file_id, {}).values(), key=lambda v: -v.version)

    async def add_version(self, file_id: str, new: FileVersion, keep: int) -> tuple[SecureFile, list[FileVersion]]:
        kept = self.versions[file_id]
        if new.version in kept:  # the SQL primary key (file id, version) refuses the second
            raise concurrent_replace()
        kept[new.version] = new
        shredded = (await self.list_versions(file_id))[max(keep, 1):]
        for old in shredded:
            del kept[old.version]
        updated = dataclasses.replace(self.files[file_id], current=new, updated_at=new.created_at)
        self.files[file_id] = updated
        return updated, shredded

    async def set_current(self, file_id: str, version: int, now: dt.datetime) -> SecureFile:
        kept = self.versions[file_id].get(version)
        if kept is None:
            raise NotFound(f"version {version} is not kept", reason="VERSION_NOT_FOUND")
        updated = dataclasses.replace(self.files[file_id], current=kept, updated_at=now)
        self.files[file_id] = updated
        return updated

    async def get_library(self, project: str) -> LibrarySettings:
        return self.libraries.get(project, LibrarySettings(project))

    async def set_library(self, settings: LibrarySettings, expected_etag: str = "") -> LibrarySettings:
        stored = self.libraries.get(settings.project, LibrarySettings(settings.project))
        if expected_etag and stored.etag != expected_etag:
            raise stale_etag("library")
        self.libraries[settings.project] = settings
        return settings

    async def update(
        self, file_id: str, display_name: str | None, properties: Mapping[str, str] | None, expected_etag: str = "",
        merge_properties: Callable[[Mapping[str, str]], dict[str, str]] | None = None,
    ) -> SecureFile:
        found = self.files[file_id]
        if expected_etag and found.etag != expected_etag:
            raise stale_etag()
        if merge_properties is not None:
            properties = merge_properties(found.properties)
        if display_name is not None:
            other = self._named(found.project, display_name)
            if other is not None and other.file_id != file_id:
                raise AlreadyExists(f"a secure file named {display_name!r} already exists", reason="FILE_EXISTS")
        updated = dataclasses.replace(
            found, display_name=found.display_name if display_name is None else display_name,
            properties=found.properties if properties is None else dict(properties),
            updated_at=found.updated_at + dt.timedelta(microseconds=1))
        self.files[file_id] = updated
        return updated

    async def delete(self, file_id: str, resource: str, now: dt.datetime) -> list[FileVersion]:
        self.files.pop(file_id, None)
        removed = list(self.versions.pop(file_id, {}).values())
        self.owed[resource] = now
        return removed

    async def owe_purge(self, resource: str, due: dt.datetime) -> None:
        self.owed[resource] = due

    async def owed_purges(self, limit: int, now: dt.datetime | None = None) -> list[str]:
        due = sorted((when, resource) for resource, when in self.owed.items()
                     if now is None or when <= now)
        return [resource for _, resource in due[:limit]]

    async def purge_settled(self, resource: str) -> None:
        self.owed.pop(resource, None)

    async def all_blob_keys(self) -> set[str]:
        return {v.blob_key for kept in self.versions.values() for v in kept.values()}

    async def count_data_keys(self, region: str | None) -> dict[tuple[str, int], int]:
        counts: dict[tuple[str, int], int] = {}
        for kept in self.versions.values():
            for v in kept.values():
                if region is None or v.key_region == region:
                    counts[(v.key_region, v.key_version)] = counts.get((v.key_region, v.key_version), 0) + 1
        return counts

    async def data_keys_not_under(
        self, region: str, primary: int, after: tuple[str, int], limit: int
    ) -> list[StoredDataKey]:
        keys = (
            StoredDataKey(file_id, self.files[file_id].project, v.version, v.wrapped_key, v.key_region, v.key_version)
            for file_id, kept in self.versions.items() for v in kept.values()
            if v.key_region == region and v.key_version != primary and (file_id, v.version) > after)
        return sorted(keys, key=lambda k: (k.file_id, k.version))[:limit]

    async def swap_wrapped_keys(self, swaps: list[tuple[StoredDataKey, bytes, int]]) -> int:
        swapped = 0
        for key, wrapped, key_version in swaps:
            kept = self.versions.get(key.file_id, {})
            stored = kept.get(key.version)
            if stored is None or stored.wrapped_key != key.wrapped_key:
                continue  # compare and swap: a concurrent change wins
            kept[key.version] = dataclasses.replace(stored, wrapped_key=wrapped, key_version=key_version)
            found = self.files[key.file_id]
            if found.current.version == key.version:
                self.files[key.file_id] = dataclasses.replace(found, current=kept[key.version])
            swapped += 1
        return swapped


# -- blobs ---------------------------------------------------------------------------------


class InMemoryBlobWriter:
    def __init__(self, store: InMemoryBlobStore, key: str) -> None:
        self._store = store
        self._key = key
        self._parts: list[bytes] = []
        self._aborted = False

    def write(self, data: bytes) -> None:
        self._parts.append(bytes(data))

    async def commit(self) -> None:
        if not self._aborted:
            self._store.blobs[self._key] = b"".join(self._parts)

    def abort(self) -> None:
        self._aborted = True
        self._parts.clear()


class InMemoryBlobReader:
    def __init__(self, data: bytes) -> None:
        self._data = data
        self.size = len(data)

    async def read_at(self, offset: int, length: int) -> bytes:
        return self._data[offset:offset + length]

    def close(self) -> None:
        return None


class InMemoryBlobStore:
    """BlobStore in a dict of committed blobs; `opened` records every blob a download opened."""

    def __init__(self) -> None:
        self.blobs: dict[str, bytes] = {}
        self.opened: list[str] = []

    def begin(self, key: str) -> InMemoryBlobWriter:
        return InMemoryBlobWriter(self, key)

    async def open(self, key: str) -> InMemoryBlobReader:
        self.opened.append(key)
        if key not in self.blobs:
            raise NotFound("the file's content is missing", reason="BLOB_MISSING")
        return InMemoryBlobReader(self.blobs[key])

    async def delete(self, key: str) -> None:
        self.blobs.pop(key, None)

    def sweep(self, keep: set[str]) -> int:
        gone = [key for key in self.blobs if key not in keep]
        for key in gone:
            del self.blobs[key]
        return len(gone)


# -- kms -----------------------------------------------------------------------------------


class FakeDataKeys:
    """DataKeys with real envelope encryption: each region's key versions wrap data keys with
    AES-GCM, the encryption context as AAD, so a wrapped key moved to another file fails to unwrap
    (InvalidArgument, as kms answers). `hold`, when set, keeps every unwrap waiting until it is set."""

    def __init__(self, regions: Sequence[str] = ("eu", "us")) -> None:
        self._versions: dict[str, dict[int, bytes]] = {r: {1: AESGCM.generate_key(256)} for r in regions}
        self._primary: dict[str, int] = dict.fromkeys(regions, 1)
        self.hold: asyncio.Event | None = None
        self.answered: asyncio.Event | None = None  # set once an unwrap has returned its keys
        self.generated = 0
        self.unwrap_calls: list[tuple[str, int]] = []  # (region, keys asked) per call
        self.unwrapped: list[bytes] = []  # data keys handed back to storage
        self.unwraps_cancelled = 0

    @property
    def regions(self) -> list[str]:
        return list(self._versions)

    def rotate(self, region: str) -> int:
        """A new primary key version; the old ones still decrypt."""
        version = max(self._versions[region]) + 1
        self._versions[region][version] = AESGCM.generate_key(256)
        self._primary[region] = version
        return version

    @staticmethod
    def _aad(context: Mapping[str, str]) -> bytes:
        return json.dumps(dict(context), sort_keys=True).encode()

    def _wrap(self, region: str, data_key: bytes, context: Mapping[str, str]) -> tuple[bytes, int]:
        version = self._primary[region]
        nonce = os.urandom(12)
        sealed = AESGCM(self._versions[region][version]).encrypt(nonce, data_key, self._aad(context))
        return version.to_bytes(4, "big") + nonce + sealed, version

    def _unwrap(self, region: str, wrapped: bytes, context: Mapping[str, str]) -> bytes:
        key = self._versions.get(region, {}).get(int.from_bytes(wrapped[:4], "big"))
        try:
            if key is None:
                raise InvalidTag
            return AESGCM(key).decrypt(wrapped[4:16], wrapped[16:], self._aad(context))
        except InvalidTag:
            raise InvalidArgument("the wrapped key does not unwrap in this context",
                                  reason="INVALID_WRAPPED_KEY") from None

    async def _held(self) -> None:
        if self.hold is not None:
            try:
                await self.hold.wait()
            except asyncio.CancelledError:
                self.unwraps_cancelled += 1
                raise

    async def generate(self, region: str, context: Mapping[str, str]) -> tuple[bytes, bytes, str]:
        data_key = AESGCM.generate_key(256)
        wrapped, version = self._wrap(region, data_key, context)
        self.generated += 1
        return data_key, wrapped, key_version_name(region, version)

    async def decrypt(self, region: str, wrapped: bytes, context: Mapping[str, str]) -> bytes:
        (key,) = await self.decrypt_many(region, [(wrapped, context)])
        return key

    async def decrypt_many(self, region: str, keys: Sequence[tuple[bytes, Mapping[str, str]]]) -> list[bytes]:
        self.unwrap_calls.append((region, len(keys)))
        await self._held()
        unwrapped = [self._unwrap(region, wrapped, context) for wrapped, context in keys]
        self.unwrapped += unwrapped
        if self.answered is not None:
            self.answered.set()
        return unwrapped

    async def reencrypt(self, region: str, wrapped: bytes, context: Mapping[str, str]) -> tuple[bytes, int]:
        return self._wrap(region, self._unwrap(region, wrapped, context), context)

    async def reencrypt_many(
        self, region: str, keys: Sequence[tuple[bytes, Mapping[str, str]]]
    ) -> list[tuple[bytes, int] | str]:
        results: list[tuple[bytes, int] | str] = []
        for wrapped, context in keys:
            try:
                results.append(await self.reencrypt(region, wrapped, context))
            except InvalidArgument as refused:
                results.append(refused.reason)
        return results

    async def primary_version(self, region: str) -> int:
        return self._primary[region]


# -- authz ---------------------------------------------------------------------------------


@dataclasses.dataclass
class FakeJob:
    project: str
    usable: set[str] = dataclasses.field(default_factory=set)  # file resource names its pipeline may use
    running: bool = True


class FakeAccessDecisions:
    """AccessDecisions from grants in memory: a role on a project applies to its files unless the
    file does not inherit (`private`); jobs use the files their pipeline is authorized on.
    Every call is a round trip (it yields to the loop once); the methods named in `down` fail
    UNAVAILABLE; `decide`, when set, keeps each job decision waiting until it is set."""

    ROLES: Mapping[str, frozenset[Access]] = {
        "reader": frozenset({Access.VIEW}),
        "user": frozenset({Access.VIEW, Access.USE}),
        "creator": frozenset({Access.VIEW, Access.CREATE}),
        "administrator": frozenset(Access),
    }

    def __init__(self, regions: Mapping[str, str]) -> None:
        self.regions = dict(regions)  # project -> region
        self.grants: dict[tuple[str, str], set[Access]] = {}
        self.private: set[str] = set()
        self.jobs: dict[str, FakeJob] = {}
        self.break_glass: dict[tuple[str, str], str] = {}  # (principal, resource) -> access request
        self.down: set[str] = set()
        self.decide: asyncio.Event | None = None
        self.purged: list[str] = []
        self.use_decisions: list[tuple[str, ...]] = []

    def grant(self, principal: str, role: str, resource: str) -> None:
        self.grants.setdefault((principal, resource), set()).update(self.ROLES[role])

    def add_job(self, token: str, project: str, *usable: str) -> Principal:
        """A job of `project` whose pipeline may use `usable`; its principal, as tokens verify it."""
        self.jobs[token] = FakeJob(project, set(usable))
        claims = {"project": project, "pipeline": "1", "run": "7", "rtk": token}
        return Principal("job", f"job:projects/{project}/pipelines/1/runs/7", claims=claims, token=token)

    def _allows(self, principal: str, permission: Access, resource: str) -> bool:
        if permission in self.grants.get((principal, resource), set()):
            return True
        if "/secureFiles/" in resource and resource not in self.private:
            project, _ = parse_child(resource, "secureFiles")
            return permission in self.grants.get((principal, project_name(project)), set())
        return False

    async def _reach(self, method: str) -> None:
        await asyncio.sleep(0)  # the request is on its way: other tasks run meanwhile
        if method in self.down:
            raise Unavailable("authz is unavailable", reason="PEER_UNAVAILABLE")

    async def _job(self, token: str, method: str) -> FakeJob:
        await self._reach(method)
        if self.decide is not None:
            await self.decide.wait()
        job = self.jobs.get(token)
        if job is None or not job.running:
            raise PermissionDenied("the job's run has completed", reason="RUN_NOT_RUNNING")
        return job

    async def check_access(self, principal: str, permission: Access, resources: Sequence[str]) -> list[bool]:
        await self._reach("check_access")
        return [self._allows(principal, permission, r) for r in resources]

    async def authorize_use(self, job_token: str, resource: str, metadata_only: bool = False) -> str:
        return await self.authorize_uses(job_token, [resource])

    async def authorize_uses(self, job_token: str, resources: Sequence[str]) -> str:
        self.use_decisions.append(tuple(resources))
        job = await self._job(job_token, "authorize_uses")
        for resource in resources:
            if resource not in job.usable:
                raise PermissionDenied("the job's pipeline may not use the file", reason="PIPELINE_NOT_AUTHORIZED")
        return f"projects/{job.project}/pipelines/1/runs/7"

    async def filter_usable(self, job_token: str, resources: Sequence[str]) -> list[str]:
        job = await self._job(job_token, "filter_usable")
        return [r for r in resources if r in job.usable]

    async def authorize_break_glass(self, principal: str, resource: str) -> str:
        await self._reach("authorize_break_glass")
        grant = self.break_glass.get((principal, resource))
        if grant is None:
            raise PermissionDenied(f"{principal} holds no break-glass access to {resource}",
                                   reason="BREAK_GLASS_REQUIRED")
        return grant

    async def project_region(self, project: str) -> str:
        await self._reach("project_region")
        if project not in self.regions:
            raise NotFound(f"project {project} not found", reason="PROJECT_NOT_FOUND")
        return self.regions[project]

    async def grant_file_administrator(self, file_resource: str, principal: str) -> None:
        await self._reach("grant_file_administrator")
        self.grant(principal, "administrator", file_resource)

    async def purge_resource_policies(self, file_resource: str) -> dict[str, int]:
        await self._reach("purge_resource_policies")
        removed = [key for key in self.grants if key[1] == file_resource]
        for key in removed:
            del self.grants[key]
        self.purged.append(file_resource)
        return {"role_assignments": len(removed)}


# -- metadata ------------------------------------------------------------------------------


class FakeMetadataParser:
    """MetadataParser that reads nothing: each file is `unknown`, expiring when `expiry` names it."""

    def __init__(self) -> None:
        self.expiry: dict[str, dt.datetime] = {}
        self.parsed: list[str] = []

    async def parse(self, name: str, plaintext: bytes, password: bytes | None) -> FileMetadata:
        self.parsed.append(name)
        return FileMetadata({"type": "unknown"}, self.expiry.get(name))


def stored_file(project: str, display_name: str, file_id: str, now: dt.datetime) -> SecureFile:
    """A file row with no content behind it, for listing tests that need thousands of files."""
    version = FileVersion(version=1, size=0, sha256="", blob_key=f"{file_id}/v1", wrapped_key=b"",
                          key_region="eu", key_version=1, created_at=now, created_by="user:alice")
    return SecureFile(file_id=file_id, project=project, display_name=display_name, properties={},
                      created_by="user:alice", created_at=now, updated_at=now, current=version)

