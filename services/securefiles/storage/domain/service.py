"""Storage use cases: upload, metadata management, and the authorized download stream."""

from __future__ import annotations

import asyncio
import builtins
import datetime as dt
import functools
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from securefiles.common.clock import Clock, utcnow
from securefiles.common.errors import (
    AlreadyExists,
    DataLoss,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    SecureFilesError,
)
from securefiles.common.paging import MAX_PAGE_SIZE, decode_page_token, encode_page_token, page_limit
from securefiles.common.principal import Principal
from securefiles.common.resource_names import (
    MAX_RESOURCES_PER_DECISION,
    file_name,
    parse_project,
    project_name,
)
from securefiles.storage.domain.content import ContentStore
from securefiles.storage.domain.file_filter import parse_filter
from securefiles.storage.domain.file_refs import FileRef, by_name, require_id, well_formed
from securefiles.storage.domain.metadata_caps import MAX_PAGE_BYTES, listing_bytes
from securefiles.storage.domain.model import SecureFile, encryption_context, stale_etag
from securefiles.storage.domain.names import (
    validate_display_name,
    validate_properties,
)
from securefiles.storage.domain.plaintext import open_plaintext, plaintext_chunks
from securefiles.storage.domain.ports import (
    Access,
    AccessDecisions,
    BlobStore,
    DataKeys,
    FileRepository,
    MetadataParser,
    Unaudited,
    UnitsOfWork,
)

log = logging.getLogger("securefiles.storage")

CHUNK_BYTES = 1024 * 1024
DEFAULT_MAX_FILE_BYTES = 10 * 1024 * 1024
# An upload still unfinished after this long has surely ended (idle uploads are cut off sooner).
UPLOAD_PURGE_GRACE = dt.timedelta(hours=1)
# One call examines at most this many files; a sparse match returns a short page and a token to go on.
MAX_SCANNED_PER_CALL = 5 * (MAX_PAGE_SIZE + 1)
# A job that asks for a file that does not exist still gets its token checked first.
_NO_FILE = "-"
# Files one multi-file download may ask for (authz decides at most as many at once).
MAX_FILES_PER_DOWNLOAD = 100
T = TypeVar("T")


@dataclass(frozen=True)
class UploadRequest:
    parent: str
    display_name: str
    properties: dict[str, str]
    expected_size: int
    parse_password: bytes | None = None
    # Checks (size, sha256) against what the client says it sent, before anything is stored.
    verify: Callable[[int, str], None] | None = None


@dataclass(frozen=True)
class Download:
    """A file about to be streamed: its metadata, then its plaintext chunks."""

    secure_file: SecureFile
    chunks: AsyncIterator[bytes]
    break_glass: str = ""  # the access request, when an operator downloads under break-glass


async def _done(value: T) -> T:
    return value


def _ignore(_resource: str, **_details: object) -> None:
    return None


class SecureFiles:
    """The storage service's behaviour, independent of gRPC, SQL and the file system."""

    def __init__(
        self,
        files: FileRepository,
        blobs: BlobStore,
        keys: DataKeys,
        access: AccessDecisions,
        max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
        clock: Clock = utcnow,
        note_resource: Callable[[str], None] = _ignore,
        changes: UnitsOfWork | None = None,
        parser: MetadataParser | None = None,
    ) -> None:
        # Which file a request turned out to concern (for its audit entry); each change is a unit
        # of work whose audit entry commits with it (no entry, no change).
        self.note_resource = note_resource
        self.changes: UnitsOfWork = changes or Unaudited()
        self._files = files
        self._blobs = blobs
        self._keys = keys
        self._access = access
        self.content = ContentStore(blobs, keys, max_file_bytes, parser)
        self._clock = clock
        self._regions: dict[str, str] = {}

    # -- helpers ----------------------------------------------------------------------

    @staticmethod
    def _require_user(caller: Principal) -> None:
        if not caller.is_user:
            raise PermissionDenied("managing secure files needs a person's token", reason="USER_TOKEN_REQUIRED")

    async def region_of(self, project: str) -> str:
        region = self._regions.get(project)
        if region is None:
            region = await self._access.project_region(project)
            self._regions[project] = region  # a project's region never changes
        return region

    async def find(self, ref: FileRef) -> SecureFile | None:
        """The file `ref` points at: by id, or by display name where the method took one."""
        require_id(ref)
        if ref.display_name:
            return await self._files.by_display_name(ref.project, ref.display_name)
        return await self._files.by_id(ref.project, ref.file_id)

    async def file_for(self, caller: Principal, name: str, permission: Access) -> SecureFile:
        """Resolve a file a person wants to act on (by its id-based name), never revealing existence
        to outsiders."""
        self._require_user(caller)
        ref = by_name(name)
        project = ref.project
        found = await self.find(ref)
        if found is not None:
            self.note_resource(found.name)
            asks = {p: self._access.check_access(caller.name, p, [found.name]) for p in {Access.VIEW, permission}}
            decided = dict(zip(asks, await asyncio.gather(*asks.values()), strict=True))
            if decided[Access.VIEW][0]:
                if not decided[permission][0]:
                    raise PermissionDenied(f"{caller.name} may not {permission.name.lower()} {name}")
                return found
        # Missing, or not the caller's to see: one answer for both, naming only what the caller gave.
        (member,) = await self._access.check_access(caller.name, Access.VIEW, [project_name(project)])
        if member:
            raise NotFound(f"secure file {ref.shown!r} not found in project {project}", reason="FILE_NOT_FOUND")
        raise PermissionDenied(f"{caller.name} may not access {name}")

    # -- upload -----------------------------------------------------------------------

    async def _new_key(self, project: str, file_id: str) -> tuple[bytes, bytes, str]:
        return await self.content.new_data_key(project, file_id, 1, await self.region_of(project))

    async def upload(self, caller: Principal, request: UploadRequest, chunks: AsyncIterator[bytes]) -> SecureFile:
        """Encrypt a stream into a new file; on any failure nothing remains."""
        self._require_user(caller)
        project = parse_project(request.parent)
        file_id = str(uuid.uuid4())
        # The permission check and the new data key go out at once (one round trip instead of
        # two); the key of a refused upload never leaves this process and is dropped.
        key = asyncio.create_task(self._new_key(project, file_id))
        try:
            (allowed,) = await self._access.check_access(caller.name, Access.CREATE, [project_name(project)])
            if not allowed:
                raise PermissionDenied(f"{caller.name} may not create secure files in project {project}")
            name = validate_display_name(request.display_name)
            properties = validate_properties(request.properties)
            self.content.check_declared_size(request.expected_size)
            if await self._files.by_display_name(project, name) is not None:
                raise AlreadyExists(f"a secure file named {name!r} already exists", reason="FILE_EXISTS")
            new_key = await key
        except BaseException:
            key.cancel()
            await asyncio.gather(key, return_exceptions=True)
            raise
        now = self._clock()
        resource = file_name(project, file_id)
        # Should this upload end without its commit (even by a crash), authz forgets the file: owed
        # now, due once the upload has surely ended, cleared by the commit.
        await self._files.owe_purge(resource, now + UPLOAD_PURGE_GRACE)
        # The uploader administers the file; granted (and the file made known to authz) while the
        # content streams in, and before the file becomes visible: no file is without an administrator.
        grant = asyncio.create_task(self._access.grant_file_administrator(resource, caller.name))
        try:
            version = await self.content.store(
                project=project, file_id=file_id, version=1, region=await self.region_of(project),
                display_name=name, chunks=chunks, expected_size=request.expected_size,
                parse_password=request.parse_password, created_by=caller.name, now=now, verify=request.verify,
                new_key=new_key,
            )
        except BaseException:
            # Not cancelled: a grant authz already received would land after the purge.
            await asyncio.gather(asyncio.shield(grant), return_exceptions=True)
            await self._forget_failed_upload(resource)
            raise
        secure_file = SecureFile(
            file_id=file_id, project=project, display_name=name, properties=properties, created_by=caller.name,
            created_at=now, updated_at=now, current=version,
        )
        try:
            await grant
            async with self.changes.begin() as change:
                change.audit(secure_file.name, display_name=name, size=version.size,
                             key_version=version.key_version_name)
                await self._files.insert(secure_file)
        except BaseException:
            await self.content.discard(version)
            await self._forget_failed_upload(resource)
            raise
        log.info("file uploaded", extra={"file": secure_file.name, "size": version.size,
                                         "key_version": version.key_version_name})
        return secure_file

    async def _forget_failed_upload(self, resource: str) -> None:
        """An upload that did not commit leaves no Administrator role (or registration) in authz;
        if authz cannot be told now, the owed purge is retried once due."""
        try:
            await asyncio.shield(self.purge_policies(resource))
        except asyncio.CancelledError:
            pass  # the client went away; the shielded purge goes on, or stays owed

    # -- metadata ---------------------------------------------------------------------

    async def get(self, caller: Principal, name: str) -> SecureFile:
        """Metadata for a person with VIEW, or for a job whose pipeline may use the file."""
        if caller.is_job:
            return await self._file_for_job(caller, by_name(name), metadata_only=True)
        return await self.file_for(caller, name, Access.VIEW)

    async def _file_for_job(self, caller: Principal, ref: FileRef, metadata_only: bool) -> SecureFile:
        """valid job → file in its project → pipeline authorized (→ checks passed, unless metadata only)."""
        found = await self._resolve_for_job(caller, ref)
        await self._use_decision(caller, found, metadata_only)
        return found

    async def _use_decision(self, caller: Principal, found: SecureFile, metadata_only: bool = False) -> str:
        """authz's decision on a job using `found`; a pipeline that may not use it hears which file."""
        try:
            return await self._access.authorize_use(caller.token, found.name, metadata_only)
        except PermissionDenied as denied:
            if denied.reason != "PIPELINE_NOT_AUTHORIZED":
                raise
            raise PermissionDenied(
                f"the job's pipeline is not authorized to use secure file {found.display_name!r}",
                reason=denied.reason, metadata={**denied.metadata, "secure_file": found.display_name},
                domain=denied.domain) from None

    async def _resolve_for_job(self, caller: Principal, ref: FileRef) -> SecureFile:
        """The file a job asks for, in the job's own project; a missing one only after the token is checked."""
        project = ref.project
        if not caller.is_job_of(project):
            raise PermissionDenied("the file belongs to another project than the job", reason="WRONG_PROJECT")
        found = await self.find(ref)
        if found is None:
            try:
                await self._access.authorize_use(caller.token, file_name(project, _NO_FILE), True)
            except PermissionDenied:
                pass
            raise NotFound(f"secure file {ref.shown!r} not found in project {project}", reason="FILE_NOT_FOUND")
        self.note_resource(found.name)
        return found

    async def _visible(self, caller: Principal, files: list[SecureFile]) -> list[SecureFile]:
        """People see what they may VIEW; jobs see what their pipeline may use."""
        if not files:
            return []
        visible: list[SecureFile] = []
        # A full page is fetched one file beyond the page size, so batches can exceed what
        # authz decides on in one call.
        for start in range(0, len(files), MAX_RESOURCES_PER_DECISION):
            batch = files[start:start + MAX_RESOURCES_PER_DECISION]
            if caller.is_job:
                usable = set(await self._access.filter_usable(caller.token, [f.name for f in batch]))
                visible += [f for f in batch if f.name in usable]
            else:
                decisions = await self._access.check_access(caller.name, Access.VIEW, [f.name for f in batch])
                visible += [f for f, ok in zip(batch, decisions, strict=True) if ok]
        return visible

    async def list(
        self, caller: Principal, parent: str, page_size: int, page_token: str, filter_text: str = "",
    ) -> tuple[list[SecureFile], str]:
        """A page of the files the caller may view (a job: may use), by display name (keyset pagination),
        kept by an AIP-160 `filter_text`."""
        project = parse_project(parent)
        if caller.is_job:
            if not caller.is_job_of(project):
                raise PermissionDenied("the job belongs to another project", reason="WRONG_PROJECT")
            # The job's run must still be running, whatever the listing would contain.
            await self._access.filter_usable(caller.token, [])
        else:
            self._require_user(caller)
            # A typo in a project name is told PROJECT_NOT_FOUND, not shown as an empty library.
            await self.region_of(project)
        limit = page_limit(page_size)
        wanted = parse_filter(filter_text)
        cursor = decode_page_token(page_token, project, wanted.query) if page_token else ""
        prefix = wanted.prefix
        matches = wanted.matcher()
        fetch = limit + 1
        page: list[SecureFile] = []
        more = False
        resume_after = ""
        scanned = page_bytes = 0
        full = False  # the page reached its size in bytes
        while True:
            batch = await self._files.list_page(project, cursor, fetch, prefix, wanted.expires_before)
            if not batch:
                break
            cursor = batch[-1].display_name
            scanned += len(batch)
            # Matching a batch is bounded (common/glob.py) but not free: off the event loop.
            matching = await asyncio.to_thread(_matching, matches, batch) if matches is not None else batch
            visible = await self._visible(caller, matching)
            for index, secure_file in enumerate(visible):
                size = listing_bytes(secure_file)
                if len(page) == limit or (page and page_bytes + size > MAX_PAGE_BYTES):
                    more = full = True
                    break
                page.append(secure_file)
                page_bytes += size
                if len(page) == limit:
                    more = index < len(visible) - 1 or len(batch) == fetch
            if full or len(page) == limit or len(batch) < fetch:
                break
            if scanned >= MAX_SCANNED_PER_CALL:
                more, resume_after = True, cursor
                break
        after = resume_after or (page[-1].display_name if page else "")
        next_token = encode_page_token(project, wanted.query, after) if more else ""
        return page, next_token

    async def update(
        self, caller: Principal, name: str, display_name: str | None, properties: Mapping[str, str] | None,
        etag: str = "", property_changes: Mapping[str, str | None] | None = None,
    ) -> SecureFile:
        """Rename and/or replace the properties, or set (str) and remove (None) single properties.
        With `etag`, only if the file still has it (ABORTED ETAG_MISMATCH, nothing changed)."""
        found = await self.file_for(caller, name, Access.ADMINISTER)
        if etag and etag != found.etag:
            raise stale_etag()
        new_name = validate_display_name(display_name) if display_name is not None else None
        new_properties = validate_properties(properties) if properties is not None else None
        if new_name is not None and new_name != found.display_name:
            existing = await self._files.by_display_name(found.project, new_name)
            if existing is not None and existing.file_id != found.file_id:
                raise AlreadyExists(f"a secure file named {new_name!r} already exists", reason="FILE_EXISTS")
        if property_changes:
            _changed(new_properties or found.properties, property_changes)  # refused before anything is written
        # Single keys are merged into what is stored when the change is written (inside its
        # transaction), so concurrent changes of other keys are kept rather than lost.
        merge = functools.partial(_changed, changes=property_changes) if property_changes else None
        async with self.changes.begin() as change:
            change.audit(found.name)
            return await self._files.update(found.file_id, new_name, new_properties, etag, merge)

    async def delete(self, caller: Principal, name: str) -> None:
        """Crypto-shred: metadata and wrapped keys go in one transaction, then the ciphertext."""
        found = await self.file_for(caller, name, Access.ADMINISTER)
        async with self.changes.begin() as change:
            change.audit(found.name, display_name=found.display_name)
            deleted = await self._files.delete(found.file_id, found.name, self._clock())
        for version in deleted:  # the ciphertext goes once its keys are gone for good
            await self._blobs.delete(version.blob_key)
        log.info("file deleted", extra={"file": found.name})
        await self.purge_policies(found.name)

    async def purge_policies(self, resource: str) -> bool:
        """Have authz forget a deleted file's roles, pipeline permissions, checks and pending
        approvals. The file is gone either way; until authz confirms, the purge stays owed (the
        deletion recorded it) and `settle_owed_purges` tries again."""
        try:
            await self._access.purge_resource_policies(resource)
        except SecureFilesError as error:
            log.warning("file deleted; authz keeps its policies until a retry reaches it",
                        extra={"file": resource, "error": error.reason})
            return False
        try:
            await self._files.purge_settled(resource)
        except Exception:  # the file is deleted and authz forgot it; only the record stays owed
            log.warning("policies purged, but the record of the purge could not be cleared; it is retried",
                        exc_info=True, extra={"file": resource})
            return False
        return True

    async def settle_owed_purges(self, batch: int = 100) -> int:
        """Retry the purges still owed (authz was unreachable, or storage stopped in between);
        stop at the first that fails. Returns how many were settled."""
        settled = 0
        while True:
            owed = await self._files.owed_purges(batch, self._clock())
            for resource in owed:
                if not await self.purge_policies(resource):
                    return settled
                settled += 1
            if len(owed) < batch:
                return settled

    # -- download ---------------------------------------------------------------------

    async def _unwrap(self, found: SecureFile) -> bytes:
        version = found.current
        try:
            return await self._keys.decrypt(
                version.key_region, version.wrapped_key,
                encryption_context(found.project, found.file_id, version.version),
            )
        except InvalidArgument:
            # kms refused the stored wrapped key for this file: it was altered or moved.
            log.error("data key failed to unwrap", extra={"file": found.name})
            raise DataLoss("the file's data key failed to unwrap", reason="DATA_KEY_UNWRAP_FAILED") from None

    async def download(self, caller: Principal, ref: FileRef) -> Download:
        """Authorize a job (or an operator's break-glass grant), unwrap the data key, and return a
        lazy plaintext stream."""
        if caller.is_user:
            return await self._break_glass_download(caller, ref)
        if not caller.is_job:
            raise PermissionDenied("only a pipeline job's token may download a secure file",
                                   reason="JOB_TOKEN_REQUIRED")
        found = await self._resolve_for_job(caller, ref)
        return await self._open(found, self._use_decision(caller, found))

    async def _break_glass_download(self, caller: Principal, ref: FileRef) -> Download:
        project = ref.project
        resource = file_name(project, _NO_FILE)
        found = await self.find(ref) if well_formed(ref) else None
        # The grant is checked first; only its holder learns whether a name exists (or is malformed).
        if found is not None:
            self.note_resource(found.name)
        grant = await self._access.authorize_break_glass(caller.name, found.name if found else resource)
        require_id(ref)
        if found is None:
            raise NotFound(f"secure file {ref.shown!r} not found in project {project}", reason="FILE_NOT_FOUND")
        log.warning("break-glass download", extra={"file": found.name, "principal": caller.name, "grant": grant})
        return await self._open(found, _done(grant), break_glass=grant)

    async def _open(self, found: SecureFile, decision: Awaitable[object], break_glass: str = "") -> Download:
        # Ask authz and kms at once (two round trips become one); the data key stays in this
        # process and is dropped unless authz allows.
        unwrap = asyncio.create_task(self._unwrap(found))
        await _unless_refused(decision, unwrap)
        opened = await open_plaintext(self._blobs, found, await unwrap)  # a missing blob fails before the header
        return Download(found, plaintext_chunks(functools.partial(_done, opened), found), break_glass)

    async def download_many(self, caller: Principal, refs: Sequence[FileRef]) -> builtins.list[Download]:
        """Several files for one job, decided by one authz call and unwrapped by one kms call per
        region: all of them, or (if the job may not use one) none."""
        if not caller.is_job:
            raise PermissionDenied("only a pipeline job's token may download secure files",
                                   reason="JOB_TOKEN_REQUIRED")
        wanted = list(dict.fromkeys(refs))
        if not 1 <= len(wanted) <= MAX_FILES_PER_DOWNLOAD:
            raise InvalidArgument(f"give 1 to {MAX_FILES_PER_DOWNLOAD} files", reason="TOO_MANY_FILES")
        found: dict[str, SecureFile] = {}
        for ref in wanted:  # a file asked for twice (by name and by display name) is sent once
            secure_file = await self._resolve_for_job(caller, ref)
            found.setdefault(secure_file.file_id, secure_file)
        files = list(found.values())
        unwrap = asyncio.create_task(self._unwrap_many(files))
        await _unless_refused(self._access.authorize_uses(caller.token, [f.name for f in files]), unwrap)
        # Each blob is opened when its turn in the stream comes.
        return [Download(f, plaintext_chunks(functools.partial(open_plaintext, self._blobs, f, key), f))
                for f, key in zip(files, await unwrap, strict=True)]

    async def _unwrap_many(self, files: builtins.list[SecureFile]) -> builtins.list[bytes]:
        """Every file's data key, one kms call per region."""
        by_region: dict[str, list[int]] = {}
        for index, secure_file in enumerate(files):
            by_region.setdefault(secure_file.current.key_region, []).append(index)
        keys = [b""] * len(files)

        async def unwrap_region(region: str, indexes: builtins.list[int]) -> None:
            asked = [(files[i].current.wrapped_key, encryption_context(files[i].project, files[i].file_id,
                                                                       files[i].current.version)) for i in indexes]
            try:
                unwrapped = await self._keys.decrypt_many(region, asked)
            except InvalidArgument:
                log.error("a data key failed to unwrap", extra={"files": ",".join(files[i].name for i in indexes)})
                raise DataLoss("a file's data key failed to unwrap", reason="DATA_KEY_UNWRAP_FAILED") from None
            for index, key in zip(indexes, unwrapped, strict=True):
                keys[index] = key

        await asyncio.gather(*(unwrap_region(region, indexes) for region, indexes in by_region.items()))
        return keys


async def _unless_refused(decision: Awaitable[object], unwrap: asyncio.Task[Any]) -> None:
    """Wait for the decision; if it refuses, the key fetched meanwhile is dropped unseen."""
    try:
        await decision
    except BaseException:
        unwrap.cancel()
        await asyncio.gather(unwrap, return_exceptions=True)
        raise


def _changed(properties: Mapping[str, str], changes: Mapping[str, str | None]) -> dict[str, str]:
    """`properties` with keys set (str) or removed (None), within the limits of properties."""
    changed = dict(properties)
    for key, value in changes.items():
        if value is None:
            changed.pop(key, None)
        else:
            changed[key] = value
    return validate_properties(changed)


def _matching(matches: Callable[[SecureFile], bool], files: list[SecureFile]) -> list[SecureFile]:
    return [f for f in files if matches(f)]
