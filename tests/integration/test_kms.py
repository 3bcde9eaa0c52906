"""kms: only storage gets data keys, contexts bind, rotation keeps old files readable."""

from __future__ import annotations

import grpc
import pytest

from securefiles.client import PermissionDenied
from securefiles.common.rich_status import error_info_of
from securefiles.kms.v1 import kms_pb2, kms_pb2_grpc
from tests.conftest import LocalSystem, bearer, job_token_for, unique, user_token

CONTEXT = {"project": "default", "secure_file_id": "a", "version": "1"}


def _stub(system: LocalSystem, identity: str) -> kms_pb2_grpc.KeyManagementServiceStub:
    return kms_pb2_grpc.KeyManagementServiceStub(system.channel("kms", identity=identity))


@pytest.mark.parametrize("identity", ["client", "authz", "kms-eu"])
def test_only_storage_identity_gets_data_keys(system: LocalSystem, identity: str) -> None:
    stub = _stub(system, identity)
    request = kms_pb2.GenerateDataKeyRequest(name="regions/eu", encryption_context=CONTEXT)
    with pytest.raises(grpc.RpcError) as error:
        stub.GenerateDataKey(request, timeout=10)  # no token: a certificate alone is not storage
    assert error.value.code() in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED)
    with pytest.raises(grpc.RpcError) as error:
        stub.GenerateDataKey(request, metadata=bearer(system.admin_token), timeout=10)  # even the admin
    assert error.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert error_info_of(error.value).reason == "NOT_STORAGE_SERVICE"


def test_wrapped_key_only_unwraps_with_its_own_context(system: LocalSystem) -> None:
    stub = _stub(system, "storage")
    generated = stub.GenerateDataKey(
        kms_pb2.GenerateDataKeyRequest(name="regions/eu", encryption_context=CONTEXT), timeout=10)
    same = stub.DecryptDataKey(kms_pb2.DecryptDataKeyRequest(
        name="regions/eu", wrapped_key=generated.wrapped_key, encryption_context=CONTEXT), timeout=10)
    assert same.plaintext == generated.plaintext and len(same.plaintext) == 32
    other_file = dict(CONTEXT, secure_file_id="b")
    with pytest.raises(grpc.RpcError) as error:
        stub.DecryptDataKey(kms_pb2.DecryptDataKeyRequest(
            name="regions/eu", wrapped_key=generated.wrapped_key, encryption_context=other_file), timeout=10)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_info_of(error.value).reason == "INVALID_CIPHERTEXT"


def test_rotation_keeps_old_files_and_wraps_new_ones_under_the_new_version(system: LocalSystem, tmp_path) -> None:
    old_name, new_name = unique("before-rotation"), unique("after-rotation")
    with system.client() as admin:
        old = admin.upload_file(b"old secret", name=old_name)
        rotated = system.cli("keys", "rotate", "--reason", "test rotation", "--output", "json")
        assert rotated.code == 0, rotated.stderr
        new_version = rotated.json()
        assert new_version["state"] == "STATE_PRIMARY" and new_version["reason"] == "test rotation"
        new = admin.upload_file(b"new secret", name=new_name)
    assert new.key_version == new_version["name"] != old.key_version
    listed = system.cli("keys", "list", "--output", "json").json()
    states = {v["name"]: v["state"] for v in listed}
    assert states[new_version["name"]] == "STATE_PRIMARY" and states[old.key_version] == "STATE_ENABLED"
    table = system.cli("keys", "list").stdout  # people read the words; JSON carries the enum's names
    assert "PRIMARY" in table and "ENABLED" in table and "STATE_" not in table
    with system.client(token=job_token_for(system, old_name, new_name)) as job:
        assert job.download_secure_file(old_name, tmp_path).path.read_bytes() == b"old secret"
        assert job.download_secure_file(new_name, tmp_path).path.read_bytes() == b"new secret"


def test_rotation_needs_the_operator_role(system: LocalSystem) -> None:
    token = user_token(system, f"user:{unique('dev')}")
    with system.client(token=token) as client, pytest.raises(PermissionDenied) as error:
        client.rotate_key(reason="not mine to do")
    assert error.value.reason == "OPERATOR_REQUIRED"
    denied = system.cli("keys", "rotate", env={"SECUREFILES_TOKEN": token})
    assert denied.code == 3


def _versions(system: LocalSystem) -> list[dict]:
    """Key versions without their data key counts (those change as files come and go)."""
    result = system.cli("keys", "list", "--output", "json")
    assert result.code == 0, result.stderr
    return [{k: v for k, v in version.items() if k != "dataKeys"} for version in result.json()]


def test_rotation_on_deploy_happens_once_per_deployment_id(fresh_system: LocalSystem, tmp_path) -> None:
    fresh_system.extra_env["SECUREFILES_DEPLOYMENT_ID"] = "deploy-1"
    fresh_system.start()
    first = _versions(fresh_system)
    assert [(v["version"], v["createdBy"]) for v in first] == [(1, "deployment:deploy-1")]
    with fresh_system.client() as admin:
        admin.upload_file(b"survives restarts", name="kept.pem")
    fresh_system.stop()

    fresh_system.start()  # same deployment: no rotation
    assert _versions(fresh_system) == first
    fresh_system.stop()

    fresh_system.extra_env["SECUREFILES_DEPLOYMENT_ID"] = "deploy-2"
    fresh_system.start()  # new deployment: exactly one new primary
    second = _versions(fresh_system)
    assert [(v["version"], v["state"], v["createdBy"]) for v in second] == [
        (2, "STATE_PRIMARY", "deployment:deploy-2"), (1, "STATE_ENABLED", "deployment:deploy-1")]
    fresh_system.stop()
    fresh_system.start()
    assert _versions(fresh_system) == second
    with fresh_system.client(token=job_token_for(fresh_system, "kept.pem")) as job:
        assert job.download_secure_file("kept.pem", tmp_path).path.read_bytes() == b"survives restarts"
