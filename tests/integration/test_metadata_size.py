"""One file's metadata cannot break listing: per-file caps with a "truncated" marker, and listing
pages bounded in bytes as well as in count."""

from __future__ import annotations

import json
import uuid

from securefiles.storage.v1 import storage_pb2, storage_pb2_grpc
from tests.conftest import LocalSystem, bearer, job_token_for, unique
from tests.file_rows import FileRow, delete_project_rows, insert_file_rows
from tests.unit.test_file_metadata_samples import Entry, java_keystore

GRPC_MAX_MESSAGE = 4 * 1024 * 1024


def _keystore(aliases: int, prefix: str) -> bytes:
    """`aliases` key entries with 256-character aliases (tiny keys, no chains: as many as fit)."""
    return java_keystore([Entry(f"{prefix}{i:05d}".ljust(256, "x"), "key") for i in range(aliases)],
                         encrypted_key=b"\x30\x03\x02\x01\x00")


def test_keystores_with_thousands_of_long_aliases_still_show_and_list(system: LocalSystem, tmp_path) -> None:
    """Two such keystores made every `files list` of the project fail ("Sent message larger than
    max") and with it every glob download of the project's pipelines; with 10,000 aliases the upload
    reported an error although the file was stored, and `files show` failed for it."""
    project = unique("aliases")
    with system.client() as admin:
        admin.create_project(project)
    names = []
    for count in (4000, 4000, 10_000):
        path = tmp_path / f"{unique('release')}.jks"
        path.write_bytes(_keystore(count, uuid.uuid4().hex[:6]))
        uploaded = system.cli("--project", project, "files", "upload", str(path), "--authorize-all-pipelines",
                              "--output", "json")
        assert uploaded.code == 0, uploaded.stderr
        metadata = uploaded.json()["androidKeystore"]
        assert metadata["entryCount"] == count
        assert len(metadata["aliases"]) == 100 and "aliases" in metadata["truncated"]
        names.append(path.name)
    shown = system.cli("--project", project, "files", "show", names[2], "--output", "json")
    assert shown.code == 0, shown.stderr
    assert shown.json()["androidKeystore"]["entryCount"] == 10_000
    listed = system.cli("--project", project, "files", "list", "--output", "json")
    assert listed.code == 0, listed.stderr
    assert sorted(f["displayName"] for f in listed.json()) == sorted(names)

    other = unique("unrelated") + ".pem"
    with system.client(project=project) as admin:
        admin.upload_file(b"unrelated", name=other)
    token = job_token_for(system, other, project=project)
    downloaded = system.cli("--project", project, "agent", "download", other.split("-")[0] + "-*",
                            "--dest", str(tmp_path / "job"), env={"SECUREFILES_JOB_TOKEN": token})
    assert downloaded.code == 0, downloaded.stderr
    assert (tmp_path / "job" / other).read_bytes() == b"unrelated"


def test_metadata_stored_before_the_caps_is_capped_when_read(system: LocalSystem) -> None:
    project = unique("legacy")
    with system.client() as admin:
        admin.create_project(project)
    aliases = [f"alias-{i:05d}" * 20 for i in range(20_000)]
    huge = {"type": "android_keystore", "entry_count": 20_000, "aliases": aliases}
    raw = json.dumps(huge)
    assert len(raw) > GRPC_MAX_MESSAGE
    _seed(system, project, [FileRow(str(uuid.uuid4()), "legacy.jks", metadata=raw)])
    try:
        shown = system.cli("--project", project, "files", "show", "legacy.jks", "--output", "json")
        listed = system.cli("--project", project, "files", "list", "--output", "json")
    finally:
        _remove(system, project)
    assert shown.code == 0, shown.stderr
    metadata = shown.json()["androidKeystore"]
    assert metadata["entryCount"] == 20_000 and metadata["truncated"] == ["aliases"]
    assert metadata["aliases"] == huge["aliases"][: len(metadata["aliases"])]
    assert listed.code == 0, listed.stderr
    assert [f["displayName"] for f in listed.json()] == ["legacy.jks"]


def test_a_page_is_bounded_in_bytes(system: LocalSystem) -> None:
    """Files whose metadata and properties are each near their caps: a page of 1000 would be far
    over gRPC's 4 MiB; pages stop earlier and the token goes on."""
    project = unique("heavy")
    with system.client() as admin:
        admin.create_project(project)
    metadata = json.dumps({"type": "x509", "certificates": [{"subject": "CN=" + "s" * 1000}] * 60})
    properties = json.dumps({f"key-{i:02d}": "v" * 1024 for i in range(64)})
    rows = [FileRow(str(uuid.uuid4()), f"heavy-{i:03d}.pem", metadata=metadata, properties=properties)
            for i in range(80)]
    _seed(system, project, rows)
    try:
        pages = []
        with system.channel("storage") as channel:
            stub = storage_pb2_grpc.SecureFileServiceStub(channel)
            token = ""
            while True:
                page = stub.ListSecureFiles(storage_pb2.ListSecureFilesRequest(
                    parent=f"projects/{project}", page_size=1000, page_token=token),
                    metadata=bearer(system.admin_token), timeout=30)
                pages.append(page)
                token = page.next_page_token
                if not token:
                    break
    finally:
        _remove(system, project)
    assert len(pages) > 1
    assert all(page.ByteSize() < GRPC_MAX_MESSAGE * 3 // 4 for page in pages)
    assert [f.display_name for page in pages for f in page.secure_files] == [r.display_name for r in rows]


def _seed(system: LocalSystem, project: str, rows: list[FileRow]) -> None:
    engine = system.engine("storage")
    try:
        with engine.begin() as conn:
            insert_file_rows(conn, project, rows, created_by="user:test")
    finally:
        engine.dispose()


def _remove(system: LocalSystem, project: str) -> None:
    engine = system.engine("storage")
    try:
        delete_project_rows(engine, project)
    finally:
        engine.dispose()
