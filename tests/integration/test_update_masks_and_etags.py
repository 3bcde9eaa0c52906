"""UpdateSecureFile: `*` masks (AIP-134), map sub-paths (`properties.k2`), and etags (AIP-154) that
make an update conditional on nobody having changed the file meanwhile."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest
from google.protobuf import field_mask_pb2

from securefiles.authz.v1 import authz_pb2
from securefiles.common.rich_status import error_info_of
from securefiles.storage.v1 import storage_pb2, storage_pb2_grpc
from tests.conftest import LocalSystem, bearer, unique


def _stub(channel: grpc.Channel) -> storage_pb2_grpc.SecureFileServiceStub:
    return storage_pb2_grpc.SecureFileServiceStub(channel)


def _get(system: LocalSystem, name: str) -> storage_pb2.SecureFile:
    with system.channel("storage") as channel:
        return _stub(channel).GetSecureFile(storage_pb2.GetSecureFileRequest(name=name),
                                            metadata=bearer(system.admin_token), timeout=30)


def _update(system: LocalSystem, secure_file: storage_pb2.SecureFile, *paths: str) -> storage_pb2.SecureFile:
    with system.channel("storage") as channel:
        return _stub(channel).UpdateSecureFile(storage_pb2.UpdateSecureFileRequest(
            secure_file=secure_file, update_mask=field_mask_pb2.FieldMask(paths=list(paths))),
            metadata=bearer(system.admin_token), timeout=30)


def _refused(call) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as raised:
        call()
    info = error_info_of(raised.value)
    return raised.value.code(), info.reason if info else ""


@pytest.fixture
def uploaded(system: LocalSystem) -> storage_pb2.SecureFile:
    with system.client() as admin:
        return admin.upload_file(b"content", name=unique("masked") + ".pem", properties={"k1": "a", "k2": "b"})


def test_get_list_and_update_return_the_etag_and_a_stale_one_changes_nothing(
        system: LocalSystem, uploaded: storage_pb2.SecureFile) -> None:
    read = _get(system, uploaded.name)
    assert read.etag and read.etag == uploaded.etag
    with system.client() as admin:
        (listed,) = [f for f in admin.list_files(read.display_name)]
    assert listed.etag == read.etag

    changed = _update(system, storage_pb2.SecureFile(name=read.name, etag=read.etag, properties={"k3": "c"}),
                      "properties.k3")
    assert changed.etag != read.etag and dict(changed.properties) == {"k1": "a", "k2": "b", "k3": "c"}
    assert _get(system, read.name).etag == changed.etag

    stale = storage_pb2.SecureFile(name=read.name, etag=read.etag, display_name="stale.pem")
    assert _refused(lambda: _update(system, stale, "display_name")) == (grpc.StatusCode.ABORTED, "ETAG_MISMATCH")
    after = _get(system, read.name)
    assert (after.display_name, after.etag) == (read.display_name, changed.etag)

    # An empty etag is unconditional.
    renamed = _update(system, storage_pb2.SecureFile(name=read.name, display_name=unique("renamed")), "display_name")
    assert renamed.display_name != read.display_name


def test_new_content_changes_the_etag(system: LocalSystem) -> None:
    project = unique("etags")
    with system.client() as admin:
        admin.create_project(project)
    with system.client(project=project) as admin:
        admin.update_library(allow_replace=True)
        first = admin.upload_file(b"v1", name="f.pem")
        second = admin.replace_file("f.pem", b"v2")
    assert second.etag != first.etag
    stale = storage_pb2.SecureFile(name=first.name, etag=first.etag, properties={"x": "y"})
    assert _refused(lambda: _update(system, stale, "properties")) == (grpc.StatusCode.ABORTED, "ETAG_MISMATCH")


def test_a_star_mask_replaces_every_updatable_field(system: LocalSystem, uploaded: storage_pb2.SecureFile) -> None:
    new_name = unique("starred") + ".pem"
    replaced = _update(system, storage_pb2.SecureFile(name=uploaded.name, display_name=new_name,
                                                      properties={"only": "this"}), "*")
    assert (replaced.display_name, dict(replaced.properties)) == (new_name, {"only": "this"})
    # `*` with a display name left empty is refused like any empty name; nothing changes.
    code, reason = _refused(lambda: _update(system, storage_pb2.SecureFile(name=uploaded.name), "*"))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and reason == "INVALID_NAME"
    assert _get(system, uploaded.name).display_name == new_name


def test_map_sub_paths_set_and_remove_single_properties(system: LocalSystem, uploaded: storage_pb2.SecureFile) -> None:
    changed = _update(system, storage_pb2.SecureFile(name=uploaded.name, properties={"k2": "B", "a.b": "dotted"}),
                      "properties.k2", "properties.k1", "properties.`a.b`")
    assert dict(changed.properties) == {"k2": "B", "a.b": "dotted"}  # k1 was masked and absent: removed


@pytest.mark.parametrize("paths", [("*", "display_name"), ("size_bytes",), ("properties", "properties.k1"),
                                   ("properties.",), ("properties.a b",), ("name",)])
def test_bad_masks_are_refused_and_change_nothing(system: LocalSystem, uploaded: storage_pb2.SecureFile,
                                                  paths: tuple[str, ...]) -> None:
    wanted = storage_pb2.SecureFile(name=uploaded.name, display_name="x.pem", properties={"k1": "z"})
    assert _refused(lambda: _update(system, wanted, *paths)) == (grpc.StatusCode.INVALID_ARGUMENT,
                                                                 "INVALID_UPDATE_MASK")
    after = _get(system, uploaded.name)
    assert (after.display_name, dict(after.properties), after.etag) == (
        uploaded.display_name, dict(uploaded.properties), uploaded.etag)


def test_concurrent_single_key_changes_are_all_kept(system: LocalSystem, uploaded: storage_pb2.SecureFile) -> None:
    """Each sub-path update merges into what is stored when it writes: none is lost."""
    keys = [f"c{i}" for i in range(8)]

    def set_key(key: str) -> None:
        _update(system, storage_pb2.SecureFile(name=uploaded.name, properties={key: "set"}), f"properties.{key}")

    with ThreadPoolExecutor(len(keys)) as pool:
        list(pool.map(set_key, keys))
    assert dict(_get(system, uploaded.name).properties) == {"k1": "a", "k2": "b", **{k: "set" for k in keys}}


def _update_library(system: LocalSystem, library: storage_pb2.Library, *paths: str) -> storage_pb2.Library:
    with system.channel("storage") as channel:
        return _stub(channel).UpdateLibrary(storage_pb2.UpdateLibraryRequest(
            library=library, update_mask=field_mask_pb2.FieldMask(paths=list(paths))),
            metadata=bearer(system.admin_token), timeout=30)


def test_library_updates_take_star_and_refuse_a_stale_etag(system: LocalSystem) -> None:
    project = unique("library-etag")
    with system.client() as admin:
        admin.create_project(project)
    with system.client(project=project) as admin:
        read = admin.get_library()
    assert read.etag and (read.allow_replace, read.keep_versions) == (False, 5)
    starred = _update_library(system, storage_pb2.Library(name=read.name, allow_replace=True, keep_versions=7,
                                                          etag=read.etag), "*")
    assert (starred.allow_replace, starred.keep_versions) == (True, 7) and starred.etag != read.etag
    stale = storage_pb2.Library(name=read.name, keep_versions=2, etag=read.etag)
    assert _refused(lambda: _update_library(system, stale, "keep_versions")) == (grpc.StatusCode.ABORTED,
                                                                                  "ETAG_MISMATCH")
    assert _refused(lambda: _update_library(system, stale, "*", "keep_versions")) == (
        grpc.StatusCode.INVALID_ARGUMENT, "INVALID_UPDATE_MASK")
    with system.client(project=project) as admin:
        after = admin.get_library()
    assert (after.keep_versions, after.etag) == (7, starred.etag)


def test_pipelines_and_checks_carry_their_etag(system: LocalSystem, uploaded: storage_pb2.SecureFile) -> None:
    with system.client() as admin:
        pipeline = admin.create_pipeline(unique("etagged"))
        check = admin.add_check(uploaded.display_name, authz_pb2.Check(
            branch_control=authz_pb2.BranchControl(allowed_refs=["refs/heads/main"])))
        other = admin.add_check(uploaded.display_name, authz_pb2.Check(
            branch_control=authz_pb2.BranchControl(allowed_refs=["refs/heads/release"])))
        (listed_pipeline,) = [p for p in admin.list_pipelines() if p.name == pipeline.name]
        listed_checks = {c.name: c.etag for c in admin.list_checks(uploaded.display_name)}
    assert pipeline.etag and listed_pipeline.etag == pipeline.etag
    assert check.etag and listed_checks == {check.name: check.etag, other.name: other.etag}
    assert check.etag != other.etag
