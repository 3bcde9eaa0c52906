"""Bad input gets a clear error and changes nothing; a failed upload leaves no file."""

from __future__ import annotations

import hashlib
import threading

import grpc
import pytest

from securefiles.client import AlreadyExists, InvalidArgument
from securefiles.common.rich_status import error_info_of
from securefiles.storage.v1 import storage_pb2, storage_pb2_grpc
from tests.conftest import LocalSystem, bearer, blob_files, job_token_for, stored_blob_keys, unique

MAX_BYTES = 10 * 1024 * 1024


def _names(system: LocalSystem) -> set[str]:
    with system.client() as admin:
        return {f.display_name for f in admin.list_files()}


def test_oversize_by_one_byte_stores_nothing(system: LocalSystem) -> None:
    name = unique("big")
    before = blob_files(system)
    with system.client() as admin, pytest.raises(InvalidArgument) as error:
        admin.upload_file(b"\0" * (MAX_BYTES + 1), name=name)
    assert error.value.reason == "FILE_TOO_LARGE"
    assert name not in _names(system)
    assert blob_files(system) == before


def test_oversize_without_declared_size_stores_nothing(system: LocalSystem) -> None:
    """A client that does not announce the size is cut off at the limit as well."""
    import io

    name = unique("big-stream")
    before = blob_files(system)
    with system.client() as admin, pytest.raises(InvalidArgument) as error:
        admin.upload_file(io.BytesIO(b"\1" * (MAX_BYTES + 1)), name=name)
    assert error.value.reason == "FILE_TOO_LARGE"
    assert name not in _names(system)
    assert blob_files(system) == before


def test_exactly_the_limit_is_accepted(system: LocalSystem) -> None:
    name = unique("limit")
    with system.client() as admin:
        created = admin.upload_file(b"\2" * MAX_BYTES, name=name)
        assert created.size_bytes == MAX_BYTES
        admin.delete_file(name)


@pytest.mark.parametrize(
    "bad_name",
    ["", "x" * 257, "a/b", "a\\b", "nul\0byte", "bell\x07", "del\x7f", ".", "..", " padded", "rtl\u202eexe"],
    ids=["empty", "257-chars", "slash", "backslash", "nul", "control", "del", "dot", "dotdot", "leading-space",
         "bidi-override"],
)
def test_invalid_names(system: LocalSystem, bad_name: str) -> None:
    """Validated by the server, whatever the client does."""
    stub = storage_pb2_grpc.SecureFileServiceStub(system.channel("storage"))
    requests = [
        storage_pb2.UploadSecureFileRequest(metadata=storage_pb2.UploadMetadata(
            parent="projects/default", secure_file=storage_pb2.SecureFile(display_name=bad_name))),
        storage_pb2.UploadSecureFileRequest(chunk=b"content"),
    ]
    before = blob_files(system)
    with pytest.raises(grpc.RpcError) as error:
        stub.UploadSecureFile(iter(requests), metadata=bearer(system.admin_token), timeout=10)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_info_of(error.value).reason == "INVALID_NAME"
    assert blob_files(system) == before


def test_the_longest_name_is_one_an_agent_can_write_to_disk(system: LocalSystem, tmp_path) -> None:
    """255 bytes of UTF-8 is the longest file name ext4 or tmpfs takes; a longer name would upload
    but never download to a file."""
    name = unique("")[:6] + "é" * 124 + "a"  # 6 + 248 + 1 = 255 bytes
    assert len(name.encode()) == 255
    with system.client() as admin:
        admin.upload_file(b"long", name=name)
        with pytest.raises(InvalidArgument) as error:
            admin.upload_file(b"longer", name=name + "a")
        assert error.value.reason == "INVALID_NAME"
        assert "255 bytes" in str(error.value)
        with pytest.raises(InvalidArgument):
            admin.update_file(name, rename=name + "a")
    with system.client(token=job_token_for(system, name)) as job:
        downloaded = job.download_secure_file(name, tmp_path, retry_count=0)
    assert downloaded.path == tmp_path / name
    assert (tmp_path / name).read_bytes() == b"long"
    with system.client() as admin:
        admin.delete_file(name)


def test_duplicate_name(system: LocalSystem) -> None:
    name = unique("dup")
    with system.client() as admin:
        first = admin.upload_file(b"first", name=name)
        with pytest.raises(AlreadyExists) as error:
            admin.upload_file(b"second", name=name)
        assert error.value.reason == "FILE_EXISTS"
        assert admin.get_file(name).sha256 == first.sha256


def test_concurrent_uploads_of_one_name_exactly_one_wins(system: LocalSystem) -> None:
    name = unique("race")
    contents = [bytes([i]) * (2 * 1024 * 1024) for i in range(4)]
    outcomes: list[object] = [None] * len(contents)
    barrier = threading.Barrier(len(contents))

    def upload(index: int) -> None:
        with system.client() as admin:
            barrier.wait()
            try:
                outcomes[index] = admin.upload_file(contents[index], name=name)
            except AlreadyExists as error:
                outcomes[index] = error

    threads = [threading.Thread(target=upload, args=(i,)) for i in range(len(contents))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    winners = [o for o in outcomes if not isinstance(o, AlreadyExists)]
    assert len(winners) == 1, outcomes
    with system.client() as admin:
        stored = admin.get_file(name)
    assert stored.sha256 in {hashlib.sha256(c).hexdigest() for c in contents}
    assert {k for k in blob_files(system) if not k.startswith("partial/")} == stored_blob_keys(system)


def test_empty_file_is_allowed_and_downloads(system: LocalSystem, tmp_path) -> None:
    name = unique("empty")
    with system.client() as admin:
        created = admin.upload_file(b"", name=name)
    assert created.size_bytes == 0
    assert created.sha256 == hashlib.sha256(b"").hexdigest()
    with system.client(token=job_token_for(system, name)) as job:
        downloaded = job.download_secure_file(name, tmp_path)
    assert downloaded.path.read_bytes() == b""


@pytest.mark.parametrize("messages", ["nothing", "chunk-first"])
def test_stream_without_metadata(system: LocalSystem, messages: str) -> None:
    stub = storage_pb2_grpc.SecureFileServiceStub(system.channel("storage"))
    requests = [] if messages == "nothing" else [storage_pb2.UploadSecureFileRequest(chunk=b"data")]
    with pytest.raises(grpc.RpcError) as error:
        stub.UploadSecureFile(iter(requests), metadata=bearer(system.admin_token), timeout=10)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    info = error_info_of(error.value)
    assert info is not None and info.reason == "MISSING_METADATA" and info.domain == "storage.securefiles"


def test_metadata_twice_and_oversized_chunk(system: LocalSystem) -> None:
    stub = storage_pb2_grpc.SecureFileServiceStub(system.channel("storage"))
    meta = storage_pb2.UploadSecureFileRequest(metadata=storage_pb2.UploadMetadata(
        parent="projects/default", secure_file=storage_pb2.SecureFile(display_name=unique("twice"))))
    cases = {
        "DUPLICATE_METADATA": [meta, meta],
        "CHUNK_TOO_LARGE": [meta, storage_pb2.UploadSecureFileRequest(chunk=b"\0" * (1024 * 1024 + 1))],
    }
    before = blob_files(system)
    for reason, requests in cases.items():
        with pytest.raises(grpc.RpcError) as error:
            stub.UploadSecureFile(iter(requests), metadata=bearer(system.admin_token), timeout=10)
        assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert error_info_of(error.value).reason == reason
    assert blob_files(system) == before
    assert meta.metadata.secure_file.display_name not in _names(system)


def test_declared_size_that_lies(system: LocalSystem) -> None:
    stub = storage_pb2_grpc.SecureFileServiceStub(system.channel("storage"))
    name = unique("liar")
    requests = [
        storage_pb2.UploadSecureFileRequest(metadata=storage_pb2.UploadMetadata(
            parent="projects/default", secure_file=storage_pb2.SecureFile(display_name=name), expected_size_bytes=100)),
        storage_pb2.UploadSecureFileRequest(chunk=b"x" * 10),
        storage_pb2.UploadSecureFileRequest(commit=storage_pb2.UploadCommit(size_bytes=10)),
    ]
    with pytest.raises(grpc.RpcError) as error:
        stub.UploadSecureFile(iter(requests), metadata=bearer(system.admin_token), timeout=10)
    assert error_info_of(error.value).reason == "SIZE_MISMATCH"
    assert name not in _names(system)


@pytest.mark.parametrize(("commit", "reason"), [
    (None, "INCOMPLETE_UPLOAD"),
    (storage_pb2.UploadCommit(size_bytes=11), "SIZE_MISMATCH"),
    (storage_pb2.UploadCommit(size_bytes=10, sha256="0" * 64), "CHECKSUM_MISMATCH"),
], ids=["no-commit", "wrong-size", "wrong-sha256"])
def test_only_a_committed_stream_becomes_a_file(system: LocalSystem, commit, reason: str) -> None:
    """A stream that just ends (a crashed or cancelled client looks the same) stores nothing."""
    stub = storage_pb2_grpc.SecureFileServiceStub(system.channel("storage"))
    name = unique("uncommitted")
    requests = [
        storage_pb2.UploadSecureFileRequest(metadata=storage_pb2.UploadMetadata(
            parent="projects/default", secure_file=storage_pb2.SecureFile(display_name=name))),
        storage_pb2.UploadSecureFileRequest(chunk=b"y" * 10),
    ]
    if commit is not None:
        requests.append(storage_pb2.UploadSecureFileRequest(commit=commit))
    before = blob_files(system)
    with pytest.raises(grpc.RpcError) as error:
        stub.UploadSecureFile(iter(requests), metadata=bearer(system.admin_token), timeout=10)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_info_of(error.value).reason == reason
    assert name not in _names(system)
    assert blob_files(system) == before


def test_cli_invalid_input_exit_codes(system: LocalSystem, tmp_path) -> None:
    source = tmp_path / "a.pem"
    source.write_bytes(b"pem")
    bad = system.cli("files", "upload", str(source), "--name", "bad/name")
    assert bad.code == 2 and "INVALID_NAME" in bad.stderr
    name = unique("cli-dup")
    assert system.cli("files", "upload", str(source), "--name", name).code == 0
    dup = system.cli("files", "upload", str(source), "--name", name)
    assert dup.code == 6 and "FILE_EXISTS" in dup.stderr
