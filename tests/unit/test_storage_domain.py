"""Storage's use cases through SecureFiles with in-memory fakes of its ports (no gRPC, no SQL):
the domain's own AES-GCM segments, listing pages, what a caller may see, a job's download decision
before its key is used, multi-file downloads, replace races, deletion and the purge it owes."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import hashlib
import os
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pytest

from securefiles.common.errors import (
    Aborted,
    AlreadyExists,
    DataLoss,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    SecureFilesError,
)
from securefiles.common.principal import Principal
from securefiles.common.resource_names import file_name
from securefiles.storage.domain import service as storage_service
from securefiles.storage.domain.file_refs import by_display_name, by_name
from securefiles.storage.domain.model import SecureFile
from securefiles.storage.domain.ports import Access
from securefiles.storage.domain.rewrap import DataKeyRewrapper
from securefiles.storage.domain.service import Download, SecureFiles, UploadRequest
from securefiles.storage.domain.versioning import Versioning
from tests.unit.storage_fakes import (
    FakeAccessDecisions,
    FakeDataKeys,
    FakeMetadataParser,
    InMemoryBlobStore,
    InMemoryFileRepository,
    stored_file,
)

T = TypeVar("T")
NOW = dt.datetime(2025, 3, 1, 12, 0, tzinfo=dt.UTC)
ALICE = Principal("user", "user:alice")  # administers project demo
BOB = Principal("user", "user:bob")  # reads project demo
EVE = Principal("user", "user:eve")  # no role anywhere
DEMO = "projects/demo"
ABSENT_ID = "00000000-0000-4000-8000-00000000abcd"


def _glob(pattern: str) -> str:
    """A listing's filter keeping display names that match `pattern` (all, when empty)."""
    return f'display_name = "{pattern}"' if pattern else ""


def run(coroutine: Awaitable[T]) -> T:
    """Run a scenario; one that waits for what never comes fails at its deadline instead of hanging."""
    async def main() -> T:
        return await asyncio.wait_for(coroutine, 30)
    return asyncio.run(main())


@dataclass
class RecordedChanges:
    """Units of work whose entries are a list: a unit's entry counts once it commits; `down`:
    the audit log refuses, and the unit (like the real one) changes nothing."""

    audited: list[str] = field(default_factory=list)
    down: bool = False
    _pending: list[str] = field(default_factory=list)

    def begin(self) -> RecordedChanges:
        return self

    def audit(self, resource: str | None = None, **_details: object) -> None:
        if self.down:
            raise DataLoss("the audit log cannot be written", reason="AUDIT_UNAVAILABLE")
        self._pending.append(resource or "")

    async def __aenter__(self) -> RecordedChanges:
        self._pending.clear()
        return self

    async def __aexit__(self, kind: object, *_rest: object) -> None:
        if kind is None:
            self.audited.extend(self._pending)
        self._pending.clear()


@dataclass
class Storage:
    files: InMemoryFileRepository = field(default_factory=InMemoryFileRepository)
    blobs: InMemoryBlobStore = field(default_factory=InMemoryBlobStore)
    keys: FakeDataKeys = field(default_factory=FakeDataKeys)
    access: FakeAccessDecisions = field(default_factory=lambda: FakeAccessDecisions({"demo": "eu", "other": "us"}))
    parser: FakeMetadataParser = field(default_factory=FakeMetadataParser)
    now: dt.datetime = NOW
    changes: RecordedChanges = field(default_factory=RecordedChanges)
    service: SecureFiles = field(init=False)
    versioning: Versioning = field(init=False)

    def __post_init__(self) -> None:
        self.access.grant(ALICE.name, "administrator", DEMO)
        self.access.grant(BOB.name, "reader", DEMO)

        self.service = SecureFiles(self.files, self.blobs, self.keys, self.access, clock=lambda: self.now,
                                   changes=self.changes, parser=self.parser)
        self.versioning = Versioning(self.service, self.files, self.access, lambda: self.now)

    async def upload(self, name: str, content: bytes, caller: Principal = ALICE, parent: str = DEMO) -> SecureFile:
        return await self.service.upload(caller, UploadRequest(parent, name, {}, len(content)), chunks(content))


async def chunks(content: bytes, size: int = 256 * 1024) -> AsyncIterator[bytes]:
    for start in range(0, len(content), size):
        yield content[start:start + size]


async def read(download: Download) -> bytes:
    return b"".join([chunk async for chunk in download.chunks])


def refused(kind: type[SecureFilesError], awaitable: Awaitable[Any]) -> SecureFilesError:
    with pytest.raises(kind) as caught:
        run(awaitable)
    return caught.value


@pytest.fixture
def storage() -> Storage:
    return Storage()


# -- upload and download -------------------------------------------------------------------


def test_upload_then_download_returns_the_bytes_and_stores_only_ciphertext(storage: Storage) -> None:
    content = os.urandom(2 * 1024 * 1024 + 12345)  # three segments, the last one short

    async def scenario() -> tuple[SecureFile, bytes]:
        uploaded = await storage.upload("signing.p12", content)
        job = storage.access.add_job("tok-1", "demo", uploaded.name)
        return uploaded, await read(await storage.service.download(job, by_display_name(DEMO, "signing.p12")))

    uploaded, downloaded = run(scenario())
    assert downloaded == content
    assert uploaded.current.size == len(content)
    assert uploaded.current.sha256 == hashlib.sha256(content).hexdigest()
    (blob,) = storage.blobs.blobs.values()
    assert content[:4096] not in blob and content[-4096:] not in blob
    # The uploader administers the new file, and its upload owes authz no purge once committed.
    assert run(storage.access.check_access(ALICE.name, Access.ADMINISTER, [uploaded.name])) == [True]
    assert storage.files.owed == {}


def test_a_refused_upload_stores_nothing(storage: Storage) -> None:
    error = refused(PermissionDenied, storage.upload("a.pem", b"secret", caller=BOB))
    assert error.reason == "PERMISSION_DENIED"
    assert storage.blobs.blobs == {} and storage.files.files == {} and storage.changes.audited == []


def test_an_upload_that_ends_short_leaves_nothing_and_no_owed_purge(storage: Storage) -> None:
    async def short() -> SecureFile:
        return await storage.service.upload(ALICE, UploadRequest(DEMO, "a.pem", {}, 100), chunks(b"x" * 60))

    assert refused(InvalidArgument, short()).reason == "SIZE_MISMATCH"
    assert storage.blobs.blobs == {} and storage.files.files == {}
    (forgotten,) = storage.access.purged  # the administrator role granted meanwhile is purged again
    assert storage.files.owed == {} and storage.access.grants.get((ALICE.name, forgotten)) is None


def test_a_name_taken_is_refused(storage: Storage) -> None:
    run(storage.upload("a.pem", b"one"))
    assert refused(AlreadyExists, storage.upload("a.pem", b"two")).reason == "FILE_EXISTS"
    assert len(storage.blobs.blobs) == 1


def test_a_wrapped_key_moved_to_another_file_fails_to_unwrap(storage: Storage) -> None:
    async def scenario() -> None:
        a = await storage.upload("a.pem", b"aaa")
        b = await storage.upload("b.pem", b"bbb")
        moved = dataclasses.replace(b.current, wrapped_key=a.current.wrapped_key)
        storage.files.files[b.file_id] = dataclasses.replace(b, current=moved)
        job = storage.access.add_job("tok-1", "demo", a.name, b.name)
        await storage.service.download(job, by_name(b.name))

    assert refused(DataLoss, scenario()).reason == "DATA_KEY_UNWRAP_FAILED"
    assert storage.blobs.opened == []


def test_tampered_ciphertext_is_refused_as_corrupt(storage: Storage) -> None:
    async def scenario() -> bytes:
        uploaded = await storage.upload("a.pem", os.urandom(3000))
        key = uploaded.current.blob_key
        blob = bytearray(storage.blobs.blobs[key])
        blob[-20] ^= 1
        storage.blobs.blobs[key] = bytes(blob)
        job = storage.access.add_job("tok-1", "demo", uploaded.name)
        return await read(await storage.service.download(job, by_name(uploaded.name)))

    assert refused(DataLoss, scenario()).reason == "CIPHERTEXT_CORRUPT"


# -- listing -------------------------------------------------------------------------------


def _listing(storage: Storage, caller: Principal, page_size: int, pattern: str = "",
             parent: str = DEMO) -> tuple[list[list[str]], list[str]]:
    """Every page of a listing: (display names per page, the tokens that led to them)."""
    async def walk() -> tuple[list[list[str]], list[str]]:
        pages: list[list[str]] = []
        tokens: list[str] = []
        token = ""
        while True:
            page, token = await storage.service.list(caller, parent, page_size, token, _glob(pattern))
            pages.append([f.display_name for f in page])
            if not token:
                return pages, tokens
            tokens.append(token)
    return run(walk())


def _seed(storage: Storage, names: list[str], project: str = "demo") -> list[SecureFile]:
    first = len(storage.files.files)
    seeded = [stored_file(project, name, f"00000000-0000-4000-8000-{first + index:012d}", NOW)
              for index, name in enumerate(names)]
    for secure_file in seeded:
        storage.files.files[secure_file.file_id] = secure_file
        storage.files.versions[secure_file.file_id] = {1: secure_file.current}
    return seeded


def test_listing_pages_through_every_file_once_in_name_order(storage: Storage) -> None:
    names = [f"file-{i:03d}.pem" for i in range(23)]
    _seed(storage, list(reversed(names)))
    pages, tokens = _listing(storage, BOB, 10)
    assert [len(p) for p in pages] == [10, 10, 3]
    assert [n for p in pages for n in p] == names
    assert len(set(tokens)) == 2


def test_a_page_exactly_full_says_there_is_no_more(storage: Storage) -> None:
    _seed(storage, [f"f{i}" for i in range(10)])
    pages, _ = _listing(storage, BOB, 10)
    assert pages == [[f"f{i}" for i in range(10)]]


def test_a_glob_lists_only_matching_names_across_pages(storage: Storage) -> None:
    names = [f"app-{i:02d}.p12" for i in range(12)] + [f"app-{i:02d}.pem" for i in range(12)] + ["other.p12"]
    _seed(storage, names)
    pages, _ = _listing(storage, BOB, 5, "app-*.p12")
    assert [n for p in pages for n in p] == [f"app-{i:02d}.p12" for i in range(12)]
    assert all(len(p) == 5 for p in pages[:-1])
    # The literal prefix narrows what the repository is asked for.
    assert {call[3] for call in storage.files.list_page_calls} == {"app-"}


def test_a_sparse_match_returns_a_short_page_and_a_token_instead_of_scanning_everything(storage: Storage) -> None:
    count = storage_service.MAX_SCANNED_PER_CALL + 1500
    _seed(storage, [f"n{i:05d}" for i in range(count - 1)] + ["n99999-match"])

    async def first() -> tuple[list[SecureFile], str]:
        return await storage.service.list(BOB, DEMO, 1000, "", _glob("*-match"))

    page, token = run(first())
    scanned = sum(limit for *_, limit, _ in storage.files.list_page_calls)
    assert page == [] and token
    assert scanned <= storage_service.MAX_SCANNED_PER_CALL
    page, token = run(storage.service.list(BOB, DEMO, 1000, token, _glob("*-match")))
    assert [f.display_name for f in page] == ["n99999-match"] and token == ""


def test_a_page_token_works_only_for_its_project_and_pattern(storage: Storage) -> None:
    _seed(storage, [f"a{i}" for i in range(5)])
    _seed(storage, [f"a{i}" for i in range(5, 10)], project="other")
    storage.access.grant(BOB.name, "reader", "projects/other")
    _, (token,) = _listing(storage, BOB, 3, "a*")
    for parent, pattern, given in [("projects/other", "a*", token), (DEMO, "a?", token), (DEMO, "", token),
                                   (DEMO, "a*", "not-a-token"), (DEMO, "a*", token[:-3])]:
        error = refused(InvalidArgument, storage.service.list(BOB, parent, 3, given, _glob(pattern)))
        assert error.reason == "INVALID_PAGE_TOKEN", (parent, pattern, given)
    page, _ = run(storage.service.list(BOB, DEMO, 3, token, _glob("a*")))
    assert [f.display_name for f in page] == ["a3", "a4"]


def test_listing_rejects_a_negative_page_size_and_an_unknown_project(storage: Storage) -> None:
    assert refused(InvalidArgument, storage.service.list(BOB, DEMO, -1, "", "")).reason == "INVALID_PAGE_SIZE"
    assert refused(NotFound, storage.service.list(BOB, "projects/nope", 10, "", "")).reason == "PROJECT_NOT_FOUND"


# -- what a caller may see -----------------------------------------------------------------


def test_pages_hold_only_files_the_caller_may_view_and_stay_full(storage: Storage) -> None:
    seeded = _seed(storage, [f"f{i:02d}" for i in range(30)])
    for hidden in seeded[::3]:
        storage.access.private.add(hidden.name)
    pages, _ = _listing(storage, BOB, 4)
    visible = [f.display_name for i, f in enumerate(seeded) if i % 3]
    assert [n for p in pages for n in p] == visible
    assert all(len(p) == 4 for p in pages[:-1])
    assert [n for p in _listing(storage, ALICE, 4)[0] for n in p] == visible  # private means private to all


def test_a_file_the_caller_may_not_view_is_told_as_missing(storage: Storage) -> None:
    hidden = run(storage.upload("hidden.pem", b"s"))
    storage.access.private.add(hidden.name)
    storage.access.grant(ALICE.name, "administrator", hidden.name)
    hidden_ref, absent_ref = hidden.file_id, ABSENT_ID
    seen = refused(NotFound, storage.service.get(BOB, f"{DEMO}/secureFiles/{hidden_ref}"))
    missing = refused(NotFound, storage.service.get(BOB, f"{DEMO}/secureFiles/{absent_ref}"))
    assert seen.reason == missing.reason == "FILE_NOT_FOUND"
    assert str(seen).replace(hidden_ref, absent_ref) == str(missing)  # it names only what was asked
    assert "hidden.pem" not in str(seen)
    # A display name is no name: refused alike whether such a file exists or not, before any lookup.
    by_display = [refused(InvalidArgument, storage.service.get(caller, f"{DEMO}/secureFiles/{n}"))
                  for caller in (BOB, EVE) for n in ("hidden.pem", "absent.pem")]
    assert {e.reason for e in by_display} == {"INVALID_RESOURCE_NAME"}
    # Someone outside the project hears PERMISSION_DENIED whether the file exists or not.
    assert refused(PermissionDenied, storage.service.get(EVE, hidden.name)).reason == "PERMISSION_DENIED"
    assert refused(PermissionDenied, storage.service.get(EVE, f"{DEMO}/secureFiles/{ABSENT_ID}")).reason \
        == "PERMISSION_DENIED"
    assert run(storage.service.get(ALICE, hidden.name)).display_name == "hidden.pem"


def test_a_reader_may_see_but_not_delete(storage: Storage) -> None:
    uploaded = run(storage.upload("a.pem", b"s"))
    assert refused(PermissionDenied, storage.service.delete(BOB, uploaded.name)).reason == "PERMISSION_DENIED"
    assert run(storage.service.get(BOB, uploaded.name)).file_id == uploaded.file_id
    assert len(storage.blobs.blobs) == 1 and storage.changes.audited == [uploaded.name]  # the upload's entry only


def test_a_job_lists_only_what_its_pipeline_may_use(storage: Storage) -> None:
    seeded = _seed(storage, ["a", "b", "c", "d"])
    job = storage.access.add_job("tok-1", "demo", seeded[1].name, seeded[3].name)
    assert _listing(storage, job, 10)[0] == [["b", "d"]]
    error = refused(PermissionDenied, storage.service.list(job, "projects/other", 10, "", ""))
    assert error.reason == "WRONG_PROJECT"


# -- a job's download ----------------------------------------------------------------------


def test_a_refused_job_gets_nothing_and_its_key_is_dropped_before_it_is_unwrapped(storage: Storage) -> None:
    uploaded = run(storage.upload("a.pem", b"secret"))
    job = storage.access.add_job("tok-1", "demo")  # its pipeline may use nothing

    async def scenario() -> Download:
        storage.keys.hold = asyncio.Event()  # kms answers only after authz decided
        return await storage.service.download(job, by_name(uploaded.name))

    error = refused(PermissionDenied, scenario())
    assert error.reason == "PIPELINE_NOT_AUTHORIZED" and error.metadata["secure_file"] == "a.pem"
    assert storage.keys.unwraps_cancelled == 1 and storage.keys.unwrapped == []
    assert storage.blobs.opened == []


def test_a_key_unwrapped_before_authz_refuses_is_never_used(storage: Storage) -> None:
    uploaded = run(storage.upload("a.pem", b"secret"))
    job = storage.access.add_job("tok-1", "demo")

    async def scenario() -> Download:
        storage.access.decide = asyncio.Event()
        storage.keys.answered = asyncio.Event()
        download = asyncio.create_task(storage.service.download(job, by_name(uploaded.name)))
        await storage.keys.answered.wait()  # kms answered; authz has not yet
        storage.access.decide.set()
        return await download

    assert refused(PermissionDenied, scenario()).reason == "PIPELINE_NOT_AUTHORIZED"
    assert storage.blobs.opened == []


def test_a_job_of_another_project_is_refused_before_anything_is_looked_up(storage: Storage) -> None:
    uploaded = run(storage.upload("a.pem", b"secret"))
    job = storage.access.add_job("tok-1", "other", uploaded.name)
    assert refused(PermissionDenied, storage.service.download(job, by_name(uploaded.name))).reason == "WRONG_PROJECT"
    assert storage.keys.unwrap_calls == [] and storage.blobs.opened == []


def test_a_missing_file_is_told_to_a_job_only_after_its_token_was_decided(storage: Storage) -> None:
    job = storage.access.add_job("tok-1", "demo")
    error = refused(NotFound, storage.service.download(job, by_display_name(DEMO, "absent")))
    assert error.reason == "FILE_NOT_FOUND"
    assert storage.access.use_decisions == [(file_name("demo", "-"),)]


def test_a_job_looks_a_display_name_up_only_in_its_own_project(storage: Storage) -> None:
    uploaded = run(storage.upload("a.pem", b"secret"))
    job = storage.access.add_job("tok-1", "demo", uploaded.name)
    other = refused(PermissionDenied, storage.service.download(job, by_display_name("projects/other", "a.pem")))
    assert other.reason == "WRONG_PROJECT" and storage.blobs.opened == []
    assert run(read(run(storage.service.download(job, by_display_name(DEMO, "a.pem"))))) == b"secret"


def test_a_display_name_in_a_name_is_refused_for_a_job_after_its_project(storage: Storage) -> None:
    run(storage.upload("a.pem", b"secret"))
    job = storage.access.add_job("tok-1", "demo")
    wrong = refused(PermissionDenied, storage.service.download(job, by_name("projects/other/secureFiles/a.pem")))
    assert wrong.reason == "WRONG_PROJECT"
    named = refused(InvalidArgument, storage.service.download(job, by_name(f"{DEMO}/secureFiles/a.pem")))
    assert named.reason == "INVALID_RESOURCE_NAME" and storage.blobs.opened == []


def test_a_person_without_a_break_glass_grant_may_not_download(storage: Storage) -> None:
    uploaded = run(storage.upload("a.pem", b"secret"))
    error = refused(PermissionDenied, storage.service.download(ALICE, by_name(uploaded.name)))
    assert error.reason == "BREAK_GLASS_REQUIRED" and storage.blobs.opened == []
    storage.access.break_glass[(ALICE.name, uploaded.name)] = "accessRequests/1"
    download = run(storage.service.download(ALICE, by_name(uploaded.name)))
    assert download.break_glass == "accessRequests/1" and run(read(download)) == b"secret"


# -- several files at once -----------------------------------------------------------------


def test_a_multi_file_download_is_all_or_nothing(storage: Storage) -> None:
    contents = {"a.pem": b"A" * 70000, "b.pem": os.urandom(1_500_000), "c.pem": b"C"}
    uploaded = {name: run(storage.upload(name, data)) for name, data in contents.items()}
    job = storage.access.add_job("tok-1", "demo", uploaded["a.pem"].name, uploaded["b.pem"].name)
    names = [by_display_name(DEMO, n) for n in ("a.pem", "b.pem", "c.pem")]

    error = refused(PermissionDenied, storage.service.download_many(job, names))
    assert error.reason == "PIPELINE_NOT_AUTHORIZED" and storage.blobs.opened == []

    async def both() -> list[tuple[str, bytes]]:
        # by display name, and "a" once more by its name: it is sent once
        downloads = await storage.service.download_many(job, [*names[:2], by_name(uploaded["a.pem"].name)])
        return [(d.secure_file.display_name, await read(d)) for d in downloads]

    storage.keys.unwrap_calls.clear()
    assert run(both()) == [("a.pem", contents["a.pem"]), ("b.pem", contents["b.pem"])]
    assert storage.keys.unwrap_calls == [("eu", 2)]  # one kms call for the region


def test_a_multi_file_download_with_a_missing_file_returns_nothing(storage: Storage) -> None:
    uploaded = run(storage.upload("a.pem", b"A"))
    job = storage.access.add_job("tok-1", "demo", uploaded.name)
    asked = [by_name(uploaded.name), by_display_name(DEMO, "absent")]
    error = refused(NotFound, storage.service.download_many(job, asked))
    assert error.reason == "FILE_NOT_FOUND"
    assert storage.keys.unwrap_calls == [] and storage.blobs.opened == []


def test_a_multi_file_download_is_bounded(storage: Storage) -> None:
    job = storage.access.add_job("tok-1", "demo")
    names = [by_display_name(DEMO, f"f{i}") for i in range(storage_service.MAX_FILES_PER_DOWNLOAD + 1)]
    assert refused(InvalidArgument, storage.service.download_many(job, names)).reason == "TOO_MANY_FILES"
    assert refused(InvalidArgument, storage.service.download_many(job, [])).reason == "TOO_MANY_FILES"


# -- replacing content ---------------------------------------------------------------------


async def _gated(content: bytes, started: list[asyncio.Event], mine: int) -> AsyncIterator[bytes]:
    """Content that streams only once every replace has started (read the latest version)."""
    started[mine].set()
    for event in started:
        await event.wait()
    yield content


def _allow_replace(storage: Storage, keep: int = 5) -> None:
    run(storage.versioning.update_library(ALICE, f"{DEMO}/library", True, keep))


def test_replacing_is_refused_unless_the_library_allows_it(storage: Storage) -> None:
    uploaded = run(storage.upload("a.pem", b"one"))
    error = refused(FailedPrecondition, storage.versioning.replace(ALICE, uploaded.name, "", chunks(b"two"), 3, None))
    assert error.reason == "REPLACE_NOT_ALLOWED"
    assert len(storage.blobs.blobs) == 1


def test_of_two_replaces_racing_one_wins_and_the_other_is_aborted_unaudited(storage: Storage) -> None:
    uploaded = run(storage.upload("a.pem", b"one"))
    _allow_replace(storage)
    storage.changes.audited.clear()

    async def race() -> list[SecureFile | BaseException]:
        started = [asyncio.Event(), asyncio.Event()]
        return await asyncio.gather(*(
            storage.versioning.replace(ALICE, uploaded.name, "", _gated(data, started, i), len(data), None)
            for i, data in enumerate((b"two", b"TWO"))), return_exceptions=True)

    outcomes = run(race())
    (winner,) = [o for o in outcomes if isinstance(o, SecureFile)]
    (loser,) = [o for o in outcomes if isinstance(o, BaseException)]
    assert isinstance(loser, Aborted) and loser.reason == "CONCURRENT_REPLACE"
    assert storage.changes.audited == [uploaded.name]  # one entry: the replace that changed something
    assert winner.current.version == 2 and len(storage.blobs.blobs) == 2  # the loser's blob is gone
    job = storage.access.add_job("tok-1", "demo", uploaded.name)
    assert run(read(run(storage.service.download(job, by_name(uploaded.name))))) in (b"two", b"TWO")


def test_replaced_versions_beyond_the_kept_number_are_shredded_and_rollback_restores(storage: Storage) -> None:
    uploaded = run(storage.upload("a.pem", b"v1"))
    _allow_replace(storage, keep=2)
    for data in (b"v2", b"v3"):
        run(storage.versioning.replace(ALICE, uploaded.name, "", chunks(data), 2, None))
    _, versions = run(storage.versioning.versions(BOB, uploaded.name))
    assert [v.version for v in versions] == [3, 2] and len(storage.blobs.blobs) == 2
    job = storage.access.add_job("tok-1", "demo", uploaded.name)
    run(storage.versioning.rollback(ALICE, uploaded.name, 2, "bad v3"))
    assert run(read(run(storage.service.download(job, by_name(uploaded.name))))) == b"v2"
    assert refused(NotFound, storage.versioning.rollback(ALICE, uploaded.name, 1, "")).reason == "VERSION_NOT_FOUND"


# -- deleting ------------------------------------------------------------------------------


def test_a_delete_shreds_at_once_and_owes_authz_a_purge_until_it_is_reachable(storage: Storage) -> None:
    uploaded = run(storage.upload("a.pem", b"secret"))
    storage.access.down = {"purge_resource_policies"}
    run(storage.service.delete(ALICE, uploaded.name))  # authz's answer is not waited for
    assert storage.blobs.blobs == {} and storage.files.files == {}
    assert list(storage.files.owed) == [uploaded.name]
    storage.access.down = set()
    assert refused(NotFound, storage.service.get(ALICE, uploaded.name)).reason == "FILE_NOT_FOUND"
    assert (ALICE.name, uploaded.name) in storage.access.grants  # authz still holds the file's role
    assert run(storage.service.settle_owed_purges()) == 1
    assert storage.files.owed == {} and storage.access.purged == [uploaded.name]
    assert (ALICE.name, uploaded.name) not in storage.access.grants


def test_a_delete_that_cannot_be_audited_changes_nothing(storage: Storage) -> None:
    uploaded = run(storage.upload("a.pem", b"secret"))

    storage.changes.down = True
    assert refused(DataLoss, storage.service.delete(ALICE, uploaded.name)).reason == "AUDIT_UNAVAILABLE"
    assert run(storage.service.get(ALICE, uploaded.name)).file_id == uploaded.file_id
    assert len(storage.blobs.blobs) == 1 and storage.files.owed == {}


def test_an_upload_that_could_not_tell_authz_owes_the_purge_after_the_grace(storage: Storage) -> None:
    def checksum_differs(_size: int, _sha256: str) -> None:
        storage.access.down = {"purge_resource_policies"}  # and authz goes away meanwhile
        raise InvalidArgument("the content's sha256 differs", reason="CHECKSUM_MISMATCH")

    upload = storage.service.upload(ALICE, UploadRequest(DEMO, "a.pem", {}, 6, verify=checksum_differs),
                                    chunks(b"secret"))
    assert refused(InvalidArgument, upload).reason == "CHECKSUM_MISMATCH"
    assert storage.blobs.blobs == {} and storage.files.files == {}
    (owed,) = storage.files.owed
    storage.access.down = set()
    assert run(storage.service.settle_owed_purges()) == 0  # its upload might still be running
    storage.now = NOW + storage_service.UPLOAD_PURGE_GRACE
    assert run(storage.service.settle_owed_purges()) == 1
    assert storage.access.purged == [owed] and storage.files.owed == {}


# -- rewrap --------------------------------------------------------------------------------


def test_rewrap_moves_every_key_to_the_primary_and_files_still_download(storage: Storage) -> None:
    uploaded = [run(storage.upload(f"f{i}.pem", f"content {i}".encode())) for i in range(3)]
    primary = storage.keys.rotate("eu")
    report = run(DataKeyRewrapper(storage.files, storage.keys).rewrap("eu"))
    assert report.before == {"regions/eu/keyVersions/1": 3}
    assert report.after == {f"regions/eu/keyVersions/{primary}": 3}
    assert (report.rewrapped, report.failed) == (3, 0)
    job = storage.access.add_job("tok-1", "demo", *(f.name for f in uploaded))
    assert [run(read(run(storage.service.download(job, by_name(f.name))))) for f in uploaded] == \
        [f"content {i}".encode() for i in range(3)]
