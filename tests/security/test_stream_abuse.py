"""Streams and inputs shaped to hurt: stalled and abandoned uploads, absurd chunking, huge
property maps, deceptive names, forged page tokens.

Metadata twice, chunk before metadata and chunks over 1 MiB are covered in
tests/integration/test_upload_validation.py.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import threading
import time
import unicodedata
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest

from securefiles.client import AlreadyExists, InvalidArgument, PermissionDenied
from securefiles.client.config import load_config
from securefiles.client.list_filter import combined_filter
from securefiles.common.rich_status import error_info_of
from securefiles.common.tls import client_channel_credentials
from securefiles.storage.v1 import storage_pb2, storage_pb2_grpc
from tests.conftest import LocalSystem, bearer, blob_files, job_token_for, stored_blob_keys, unique
from tests.security.support import listed

MAX_MESSAGE = 4 * 1024 * 1024


def _upload_metadata(name: str, project: str = "default", properties: dict[str, str] | None = None
                     ) -> storage_pb2.UploadSecureFileRequest:
    return storage_pb2.UploadSecureFileRequest(metadata=storage_pb2.UploadMetadata(
        parent=f"projects/{project}", secure_file=storage_pb2.SecureFile(display_name=name, properties=properties)))


def _chunk(data: bytes) -> storage_pb2.UploadSecureFileRequest:
    return storage_pb2.UploadSecureFileRequest(chunk=data)


def _committed_blobs(system: LocalSystem) -> set[str]:
    return {k for k in blob_files(system) if not k.startswith("partial/")}


# -- (a) stalled and abandoned uploads -------------------------------------------------------


def test_stalled_upload_is_cut_off_and_leaves_nothing(fresh_system: LocalSystem) -> None:
    fresh_system.extra_env["SECUREFILES_STREAM_IDLE_SECONDS"] = "2"
    fresh_system.start()
    name = unique("stalled")
    release = threading.Event()

    def stall() -> Iterator[storage_pb2.UploadSecureFileRequest]:
        yield _upload_metadata(name)
        yield _chunk(b"first and only chunk")
        release.wait(60)  # the stream stays open, nothing more is sent

    before = blob_files(fresh_system)
    with fresh_system.channel("storage") as channel:
        stub = storage_pb2_grpc.SecureFileServiceStub(channel)
        try:
            with pytest.raises(grpc.RpcError) as error:
                stub.UploadSecureFile(stall(), metadata=bearer(fresh_system.admin_token), timeout=30)
        finally:
            release.set()
    assert error.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    info = error_info_of(error.value)  # the server's cut-off, not our own 30 s deadline
    assert info is not None and info.reason == "STREAM_IDLE" and info.domain == "storage.securefiles"
    assert listed(fresh_system, name) == []
    assert blob_files(fresh_system) == before
    assert stored_blob_keys(fresh_system) == _committed_blobs(fresh_system)


def _upload_cut_short(system: LocalSystem, name: str, how: str) -> None:
    """Start an upload, send half a certificate, then let it end badly on the client's side."""
    cancelled = threading.Event()

    def requests() -> Iterator[storage_pb2.UploadSecureFileRequest]:
        yield _upload_metadata(name)
        yield _chunk(b"-----BEGIN CERTIFICATE-----\nthe first half of a certificate")
        time.sleep(0.2)
        if how == "client-crash":
            raise RuntimeError("the CI agent crashed")
        if how == "oversized-message":  # refused by gRPC's 4 MiB limit, on the server
            yield _chunk(b"\0" * MAX_MESSAGE)
            return
        cancelled.wait(30)

    target = load_config(system.env()).storage
    options = [("grpc.max_send_message_length", 4 * MAX_MESSAGE), ("grpc.ssl_target_name_override", "localhost")]
    with grpc.secure_channel(target, client_channel_credentials(system.tls("client").ca), options=options) as channel:
        upload = storage_pb2_grpc.SecureFileServiceStub(channel).UploadSecureFile
        if how == "client-cancel":
            call = upload.future(requests(), metadata=bearer(system.admin_token), timeout=30)
            time.sleep(0.5)
            call.cancel()
            cancelled.set()
            return
        with pytest.raises(grpc.RpcError) as error:
            upload(requests(), metadata=bearer(system.admin_token), timeout=30)
        if how == "oversized-message":
            assert error.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_upload_cut_short_leaves_no_file(system: LocalSystem) -> None:
    """Whether the server sees the break as the end of the stream or as a cancellation varies
    from call to call, so each way is tried three times at once."""
    prefix = unique("cut-short")
    attempts = [(f"{prefix}-{how}-{n}", how) for how in ("client-crash", "client-cancel", "oversized-message")
                for n in range(3)]
    with ThreadPoolExecutor(len(attempts)) as pool:
        for done in [pool.submit(_upload_cut_short, system, name, how) for name, how in attempts]:
            done.result()
    deadline = time.monotonic() + 5  # the server finishes an abandoned upload a little later
    while time.monotonic() < deadline:
        assert listed(system, f"{prefix}-*") == []
        time.sleep(0.2)


# -- (b) absurd chunking -------------------------------------------------------------------


def test_ten_thousand_one_byte_chunks(system: LocalSystem, tmp_path) -> None:
    name = unique("confetti")
    content = bytes(i * 7 % 256 for i in range(10_000))

    def requests() -> Iterator[storage_pb2.UploadSecureFileRequest]:
        yield _upload_metadata(name)
        for index in range(len(content)):
            yield _chunk(content[index:index + 1])
        yield storage_pb2.UploadSecureFileRequest(commit=storage_pb2.UploadCommit(
            size_bytes=len(content), sha256=hashlib.sha256(content).hexdigest()))

    with system.channel("storage") as channel:
        created = storage_pb2_grpc.SecureFileServiceStub(channel).UploadSecureFile(
            requests(), metadata=bearer(system.admin_token), timeout=120)
    assert created.size_bytes == len(content)
    assert created.sha256 == hashlib.sha256(content).hexdigest()
    with system.client(token=job_token_for(system, name)) as job:
        downloaded = job.download_secure_file(name, tmp_path)
    assert downloaded.path.read_bytes() == content


# -- (c) property maps -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("properties", "reason"),
    [
        ({f"key{i}": "v" for i in range(65)}, "TOO_MANY_PROPERTIES"),
        ({"team": "x" * 2000}, "INVALID_PROPERTY"),
        ({"k" * 129: "v"}, "INVALID_PROPERTY"),
        ({"": "empty key"}, "INVALID_PROPERTY"),
        ({"bell\x07": "control character in key"}, "INVALID_PROPERTY"),
    ],
    ids=["65-properties", "2000-char-value", "129-char-key", "empty-key", "control-in-key"],
)
def test_oversized_property_maps_store_nothing(system: LocalSystem, properties: dict, reason: str) -> None:
    name = unique("props")
    before = blob_files(system)
    with system.channel("storage") as channel, pytest.raises(grpc.RpcError) as error:
        storage_pb2_grpc.SecureFileServiceStub(channel).UploadSecureFile(
            iter([_upload_metadata(name, properties=properties), _chunk(b"content")]),
            metadata=bearer(system.admin_token), timeout=10)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_info_of(error.value).reason == reason
    assert listed(system, name) == []
    assert blob_files(system) == before

    with system.client() as admin:  # nor can an existing file be given them
        admin.upload_file(b"existing", name=name, properties={"team": "ios"})
        with pytest.raises(InvalidArgument) as refused:
            admin.update_file(name, properties=properties)
        assert refused.value.reason == reason
        assert dict(admin.get_file(name).properties) == {"team": "ios"}


def test_property_limits_are_inclusive(system: LocalSystem) -> None:
    """Control: exactly the limits (64 properties, 128-char keys, 1024-char values) are fine."""
    properties = {f"key{i}": "v" for i in range(63)} | {"k" * 128: "x" * 1024}
    with system.client() as admin:
        created = admin.upload_file(b"limits", name=unique("limits"), properties=properties)
    assert dict(created.properties) == properties


# -- (d) names --------------------------------------------------------------------------------


def _upload_error(system: LocalSystem, name: str) -> InvalidArgument:
    with system.client() as admin, pytest.raises(InvalidArgument) as error:
        admin.upload_file(b"x", name=name)
    return error.value


def test_overlong_name_counts_characters_not_bytes(system: LocalSystem) -> None:
    assert _upload_error(system, "é" * 257).reason == "INVALID_NAME"
    name = unique("short")
    with system.client() as admin:
        admin.upload_file(b"x", name=name)
        with pytest.raises(InvalidArgument) as error:
            admin.update_file(name, rename="x" * 257)
        assert error.value.reason == "INVALID_NAME"
        assert admin.get_file(name).display_name == name


INVISIBLE = {
    "zero-width-space": "\u200b", "zero-width-non-joiner": "\u200c", "zero-width-joiner": "\u200d",
    "word-joiner": "\u2060", "byte-order-mark": "\ufeff", "left-to-right-mark": "\u200e",
    "right-to-left-mark": "\u200f", "lre": "\u202a", "rle": "\u202b", "lro": "\u202d", "pdf": "\u202c",
    "lri": "\u2066", "rli": "\u2067", "fsi": "\u2068", "pdi": "\u2069", "arabic-letter-mark": "\u061c",
}


@pytest.mark.parametrize("character", list(INVISIBLE.values()), ids=list(INVISIBLE))
def test_bidi_and_zero_width_characters_are_invalid_names(system: LocalSystem, character: str) -> None:
    spoof = f"signing{character}.p12-{unique('')}"
    assert _upload_error(system, spoof).reason == "INVALID_NAME"
    assert listed(system, spoof) == []
    name = unique("honest")
    with system.client() as admin:  # nor can a file be renamed to one
        admin.upload_file(b"x", name=name)
        with pytest.raises(InvalidArgument) as error:
            admin.update_file(name, rename=spoof)
        assert error.value.reason == "INVALID_NAME"
        assert admin.get_file(name).display_name == name


def test_confusable_names_are_distinct_files(system: LocalSystem, tmp_path) -> None:
    """Documented behaviour: Latin `a` and Cyrillic U+0430 make different names (no skeleton
    matching). What matters is that the look-alike never gives access to the original."""
    suffix = unique("")
    latin, cyrillic = f"signing-a{suffix}.p12", f"signing-\u0430{suffix}.p12"
    assert latin != cyrillic and unicodedata.name(cyrillic[8]) == "CYRILLIC SMALL LETTER A"
    with system.client() as admin:
        admin.upload_file(b"the real signing key", name=latin)
        admin.upload_file(b"the look-alike", name=cyrillic)
        assert admin.get_file(latin).secure_file_id != admin.get_file(cyrillic).secure_file_id
    with system.client(token=job_token_for(system, cyrillic)) as job:
        assert job.download_secure_file(cyrillic, tmp_path / "c").path.read_bytes() == b"the look-alike"
        with pytest.raises(PermissionDenied) as denied:
            job.download_secure_file(latin, tmp_path / "l", retry_count=0)
        assert denied.value.reason == "PIPELINE_NOT_AUTHORIZED"
        assert [f.display_name for f in job.list_authorized_files(f"signing-*{suffix}.p12")] == [cyrillic]
    assert not (tmp_path / "l").exists() or list((tmp_path / "l").iterdir()) == []


def test_composed_and_decomposed_spellings_are_one_name(system: LocalSystem) -> None:
    composed = unicodedata.normalize("NFC", f"caf\u00e9-{unique('')}.p12")
    decomposed = unicodedata.normalize("NFD", composed)
    assert composed != decomposed
    with system.client() as admin:
        admin.upload_file(b"composed", name=composed)
        with pytest.raises(AlreadyExists) as error:
            admin.upload_file(b"decomposed", name=decomposed)
        assert error.value.reason == "FILE_EXISTS"
        assert admin.get_file(decomposed).secure_file_id == admin.get_file(composed).secure_file_id


# -- (e) page tokens ----------------------------------------------------------------------------


def _page(system: LocalSystem, project: str, pattern: str, token: str = "",
          expires_before: int | None = None) -> storage_pb2.ListSecureFilesResponse:
    before = dt.datetime.fromtimestamp(expires_before, dt.UTC) if expires_before is not None else None
    request = storage_pb2.ListSecureFilesRequest(parent=f"projects/{project}", page_size=1,
                                                 filter=combined_filter("", pattern, before), page_token=token)
    with system.channel("storage") as channel:
        return storage_pb2_grpc.SecureFileServiceStub(channel).ListSecureFiles(
            request, metadata=bearer(system.admin_token), timeout=10)


@pytest.fixture(scope="module")
def paged(system: LocalSystem) -> tuple[str, str, str]:
    """The same three file names in `default` and in another project: (pattern, other project, prefix)."""
    prefix, project = unique("paged"), unique("proj")
    with system.client() as admin:
        admin.create_project(project)
    for target in ("default", project):
        with system.client(project=target) as admin:
            for index in range(3):
                admin.upload_file(b"page", name=f"{prefix}-{index}")
    return f"{prefix}-*", project, prefix


def test_page_tokens_continue_only_the_listing_they_came_from(system: LocalSystem, paged: tuple) -> None:
    pattern, other_project, prefix = paged
    first = _page(system, "default", pattern)
    assert [f.display_name for f in first.secure_files] == [f"{prefix}-0"] and first.next_page_token
    assert [f.display_name for f in _page(system, "default", pattern, first.next_page_token).secure_files] == [
        f"{prefix}-1"]  # control: the genuine token works

    foreign = _page(system, other_project, pattern).next_page_token
    assert foreign
    forged_random = base64.urlsafe_b64encode(hashlib.sha256(b"not a page token").digest()).decode().rstrip("=")
    forged_shape = base64.urlsafe_b64encode(json.dumps({"p": other_project, "q": "*|", "a": ""}).encode()).decode()
    cases = {
        "random base64": (forged_random, pattern, None),
        "not base64": ("%%%not-base64%%%", pattern, None),
        "well-formed for another project": (forged_shape, pattern, None),
        "another project's listing": (foreign, pattern, None),
        "another name pattern": (first.next_page_token, f"{prefix}-?", None),
        "no name pattern": (first.next_page_token, "", None),
        "another expiry filter": (first.next_page_token, pattern, int(time.time()) + 86400),
    }
    for case, (token, with_pattern, expires_before) in cases.items():
        with pytest.raises(grpc.RpcError) as error:
            _page(system, "default", with_pattern, token, expires_before)
        assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT, case
        assert error_info_of(error.value).reason == "INVALID_PAGE_TOKEN", case
