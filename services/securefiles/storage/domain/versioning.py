"""Opt-in versioned replacement of content, with rollback and retention (crypto-shredding).

Off by default: Azure DevOps' rule "a secure file cannot be replaced" stays the default.
While a library allows it, a replace keeps the file's id, name, roles, pipeline
permissions and checks, and stores a new version under a new data key.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import AsyncIterator, Callable

from securefiles.common.errors import Aborted, FailedPrecondition, InvalidArgument, NotFound, PermissionDenied
from securefiles.common.principal import Principal
from securefiles.common.resource_names import parse_file_version, project_name
from securefiles.storage.domain.model import FileVersion, LibrarySettings, SecureFile, stale_etag
from securefiles.storage.domain.ports import Access, AccessDecisions, FileRepository
from securefiles.storage.domain.service import SecureFiles

log = logging.getLogger("securefiles.storage")

MAX_KEEP_VERSIONS = 100
MAX_REASON = 1024


def concurrent_replace() -> Aborted:
    """Two replaces numbered the same version; the one the database let in won."""
    return Aborted("another replace of this file stored its version first; nothing was stored, retry",
                   reason="CONCURRENT_REPLACE")


class Versioning:
    def __init__(self, files: SecureFiles, repository: FileRepository, access: AccessDecisions,
                 clock: Callable[[], dt.datetime]) -> None:
        self._files = files
        self._repo = repository
        self._access = access
        self._clock = clock

    # -- library settings -------------------------------------------------------------

    @staticmethod
    def _library_project(name: str) -> str:
        project, sep, rest = name.removeprefix("projects/").partition("/")
        if not name.startswith("projects/") or not sep or rest != "library":
            raise InvalidArgument(f"{name!r} is not a library name (projects/P/library)",
                                  reason="INVALID_RESOURCE_NAME")
        return project

    async def get_library(self, caller: Principal, name: str) -> LibrarySettings:
        project = self._library_project(name)
        (allowed,) = await self._access.check_access(caller.name, Access.VIEW, [project_name(project)])
        if not (caller.is_user and allowed):
            raise PermissionDenied(f"{caller.name} may not view {name}")
        return await self._repo.get_library(project)

    async def update_library(
        self, caller: Principal, name: str, allow_replace: bool | None, keep_versions: int | None, etag: str = ""
    ) -> LibrarySettings:
        """Change the settings given (None: keep); with `etag`, only if nobody changed them meanwhile."""
        project = self._library_project(name)
        (allowed,) = await self._access.check_access(caller.name, Access.ADMINISTER, [project_name(project)])
        if not (caller.is_user and allowed):
            raise PermissionDenied(f"{caller.name} may not administer {name}")
        current = await self._repo.get_library(project)
        if etag and etag != current.etag:
            raise stale_etag("library")
        if keep_versions is not None and not 1 <= keep_versions <= MAX_KEEP_VERSIONS:
            raise InvalidArgument(f"keep_versions must be between 1 and {MAX_KEEP_VERSIONS}",
                                  reason="INVALID_KEEP_VERSIONS")
        async with self._files.changes.begin():
            return await self._repo.set_library(LibrarySettings(
                project,
                current.allow_replace if allow_replace is None else allow_replace,
                current.keep_versions if keep_versions is None else keep_versions,
            ), etag)

    # -- versions ---------------------------------------------------------------------

    async def replace(
        self, caller: Principal, name: str, reason: str, chunks: AsyncIterator[bytes], expected_size: int,
        parse_password: bytes | None, verify: Callable[[int, str], None] | None = None,
    ) -> SecureFile:
        """Store new content as the current version; versions beyond the library's limit are shredded."""
        found = await self._files.file_for(caller, name, Access.ADMINISTER)
        settings = await self._repo.get_library(found.project)
        if not settings.allow_replace:
            raise FailedPrecondition(
                "this library does not allow replacing content (securefiles library update --allow-replace true)",
                reason="REPLACE_NOT_ALLOWED")
        if len(reason) > MAX_REASON:
            raise InvalidArgument("reason is too long", reason="INVALID_REASON")
        latest = await self._latest(found.file_id)
        version = await self._files.content.store(
            project=found.project, file_id=found.file_id, version=latest + 1,
            region=await self._files.region_of(found.project), display_name=found.display_name, chunks=chunks,
            expected_size=expected_size, parse_password=parse_password, created_by=caller.name, now=self._clock(),
            verify=verify,
        )
        try:
            if await self._latest(found.file_id) >= version.version:
                raise concurrent_replace()  # before the entry: this replace changes nothing
            async with self._files.changes.begin() as change:
                change.audit(found.name, reason=reason, version=version.version, key_version=version.key_version_name)
                updated, shredded = await self._repo.add_version(found.file_id, version, settings.keep_versions)
        except BaseException:
            await self._files.content.discard(version)
            raise
        for old in shredded:
            await self._files.content.discard(old)
        log.info("content replaced", extra={"file": found.name, "version": version.version,
                                            "shredded": len(shredded)})
        return updated

    async def _latest(self, file_id: str) -> int:
        """The newest kept version (the newest is always kept, so numbers are never reused)."""
        return max((v.version for v in await self._repo.list_versions(file_id)), default=0)

    async def versions(self, caller: Principal, name: str) -> tuple[SecureFile, list[FileVersion]]:
        found = await self._files.file_for(caller, name, Access.VIEW)
        return found, await self._repo.list_versions(found.file_id)

    async def version(self, caller: Principal, name: str) -> tuple[SecureFile, FileVersion]:
        """One kept version (`projects/{p}/secureFiles/{id}/versions/{n}`) of a file the caller may view."""
        file, number = parse_file_version(name)
        found, kept = await self.versions(caller, file)
        for version in kept:
            if version.version == number:
                return found, version
        raise NotFound(f"version {number} is not kept", reason="VERSION_NOT_FOUND")

    async def rollback(self, caller: Principal, name: str, version: int, reason: str) -> SecureFile:
        found = await self._files.file_for(caller, name, Access.ADMINISTER)
        if len(reason) > MAX_REASON:
            raise InvalidArgument("reason is too long", reason="INVALID_REASON")
        async with self._files.changes.begin() as change:
            change.audit(found.name, reason=reason, version=version)
            return await self._repo.set_current(found.file_id, version, self._clock())

