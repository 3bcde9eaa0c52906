"""Issue #18 item 6: each kind of file uploaded through the real services comes back with typed
metadata (the `file_metadata` oneof), integers as integers and times as Timestamps, where the
deprecated Struct gives doubles and strings."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import pytest
from cryptography.hazmat.primitives import serialization
from google.protobuf import json_format

from securefiles.storage.v1 import storage_pb2, storage_pb2_grpc
from tests.conftest import LocalSystem, bearer, unique
from tests.unit import test_file_metadata_samples as samples


def _upload(system: LocalSystem, name: str, data: bytes, password: bytes = b"") -> storage_pb2.SecureFile:
    stub = storage_pb2_grpc.SecureFileServiceStub(system.channel("storage"))
    requests = [
        storage_pb2.UploadSecureFileRequest(metadata=storage_pb2.UploadMetadata(
            parent="projects/default", secure_file=storage_pb2.SecureFile(display_name=name), parse_password=password)),
        storage_pb2.UploadSecureFileRequest(chunk=data),
        storage_pb2.UploadSecureFileRequest(commit=storage_pb2.UploadCommit(
            size_bytes=len(data), sha256=hashlib.sha256(data).hexdigest())),
    ]
    return stub.UploadSecureFile(iter(requests), metadata=bearer(system.admin_token), timeout=30)


def _read_back(system: LocalSystem, uploaded: storage_pb2.SecureFile) -> list[storage_pb2.SecureFile]:
    """The file as upload, get, list and the version listing return it."""
    stub = storage_pb2_grpc.SecureFileServiceStub(system.channel("storage"))
    auth = bearer(system.admin_token)
    got = stub.GetSecureFile(storage_pb2.GetSecureFileRequest(name=uploaded.name), metadata=auth, timeout=10)
    listed = stub.ListSecureFiles(storage_pb2.ListSecureFilesRequest(
        parent="projects/default", filter=f'display_name = "{uploaded.display_name}"'), metadata=auth,
        timeout=10).secure_files
    versions = stub.ListSecureFileVersions(storage_pb2.ListSecureFileVersionsRequest(parent=uploaded.name),
                                           metadata=auth, timeout=10).versions
    assert [f.name for f in listed] == [uploaded.name] and len(versions) == 1
    return [uploaded, got, listed[0], versions[0]]  # type: ignore[list-item]  # a version has the same oneof


def _utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(microsecond=0)


def test_a_certificate_has_typed_x509_metadata(system: LocalSystem) -> None:
    cert = samples.leaf_cert(30)
    uploaded = _upload(system, unique("cert") + ".pem", samples.pem(cert))
    for message in _read_back(system, uploaded):
        assert message.WhichOneof("file_metadata") == "x509"
        x509 = message.x509
        assert x509.subject == "CN=leaf 30d" and x509.issuer == "CN=Test Root CA"
        assert x509.public_key_type == "EC" and x509.public_key_size == 256 and x509.public_key_curve == "secp256r1"
        assert x509.not_after.ToDatetime(UTC) == _utc(cert.not_valid_after_utc)
        assert x509.not_before.ToDatetime(UTC) == _utc(cert.not_valid_before_utc)
        assert x509.not_after == message.expire_time
    as_json = json_format.MessageToDict(uploaded)
    assert as_json["x509"]["publicKeySize"] == 256 and isinstance(as_json["x509"]["publicKeySize"], int)
    assert as_json["x509"]["notAfter"].endswith("Z")
    assert "metadata" not in as_json  # the untyped Struct (numbers as doubles) is gone


def test_a_pkcs12_file_has_typed_pkcs12_metadata(system: LocalSystem) -> None:
    main, intermediate = samples.p12_main()
    data = samples.p12(samples.rsa_key(), main, [intermediate], password=b"secret")
    uploaded = _upload(system, unique("signing") + ".p12", data, password=b"secret")
    for message in _read_back(system, uploaded):
        assert message.WhichOneof("file_metadata") == "pkcs12"
        p12 = message.pkcs12
        assert p12.encrypted and p12.key_type == "RSA" and p12.key_size == 2048
        assert p12.subject == "CN=iPhone Distribution: Example" and p12.friendly_name == "signing"
        assert list(p12.aliases) == ["signing"] and p12.entries[0].entry_type == "private_key"
        assert p12.additional_certificates == 1
        assert p12.additional_certificate_details[0].subject == "CN=Intermediate"
        assert p12.additional_certificate_details[0].not_after.ToDatetime(UTC) == _utc(intermediate.not_valid_after_utc)
        assert p12.not_after.ToDatetime(UTC) == _utc(main.not_valid_after_utc)


def test_a_provisioning_profile_has_typed_metadata(system: LocalSystem) -> None:
    uploaded = _upload(system, unique("app") + ".mobileprovision", samples.profile(300))
    for message in _read_back(system, uploaded):
        assert message.WhichOneof("file_metadata") == "provisioning_profile"
        profile = message.provisioning_profile
        assert profile.uuid == "8f1c6a52-3a4b-4c2d-9e8f-0123456789ab" and profile.team_name == "Example Corp"
        assert profile.profile_name == "Example App Store Profile"
        assert list(profile.team_identifier) == ["ABCDE12345"] and list(profile.platform) == ["iOS", "xrOS"]
        assert profile.provisioned_devices == 2
        assert profile.HasField("is_xcode_managed") and profile.is_xcode_managed is False
        assert profile.creation_date.ToDatetime(UTC) == datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
        assert profile.expiration_date == message.expire_time
        assert [c.serial for c in profile.developer_certificates] == ["DEAD01", "DEAD02"]


def test_a_jks_keystore_has_typed_keystore_metadata(system: LocalSystem) -> None:
    uploaded = _upload(system, unique("release") + ".jks", samples.jks_sample())
    upload_cert, _ = samples.upload_chain()
    for message in _read_back(system, uploaded):
        assert message.WhichOneof("file_metadata") == "android_keystore"
        store = message.android_keystore
        assert store.format == "JKS" and store.version == 2 and store.entry_count == 2
        assert list(store.aliases) == ["upload", "partner-ca"]
        assert [e.entry_type for e in store.entries] == ["private_key", "trusted_certificate"]
        assert store.entries[0].certificate_chain_length == 2
        assert store.entries[0].created.ToDatetime(UTC) == datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)
        first = store.certificates[0]
        assert (first.alias, first.chain_index, first.public_key_size) == ("upload", 0, 2048)
        assert first.not_after.ToDatetime(UTC) == _utc(upload_cert.not_valid_after_utc)
        assert not store.certificates[2].HasField("chain_index")  # a trusted entry has no chain
        assert not store.HasField("pkcs12")


def test_a_pkcs12_keystore_has_its_pkcs12_facts_too(system: LocalSystem) -> None:
    main, intermediate = samples.p12_main()
    data = samples.p12(samples.rsa_key(), main, [intermediate], password=b"secret")
    uploaded = _upload(system, unique("upload") + ".keystore", data, password=b"secret")
    for message in _read_back(system, uploaded):
        assert message.WhichOneof("file_metadata") == "android_keystore"
        store = message.android_keystore
        assert store.format == "PKCS12" and list(store.aliases) == ["signing"]
        assert store.pkcs12.key_size == 2048 and store.pkcs12.subject == "CN=iPhone Distribution: Example"


@pytest.mark.parametrize("kind", ["openssh", "encrypted-openssh", "pkcs8"])
def test_an_ssh_private_key_has_typed_metadata(system: LocalSystem, kind: str) -> None:
    if kind == "openssh":
        data = samples.openssh_ed25519_with_comment(samples.ed25519_key(), "deploy@ci")
    elif kind == "encrypted-openssh":
        data = samples.openssh_encrypted_ed25519(samples.ed25519_key())
    else:
        data = samples.pem_key(samples.rsa_key(), serialization.PrivateFormat.PKCS8)
    uploaded = _upload(system, unique("id") + ".key", data)
    for message in _read_back(system, uploaded):
        assert message.WhichOneof("file_metadata") == "ssh_private_key"
        key = message.ssh_private_key
        if kind == "pkcs8":
            assert (key.format, key.key_type, key.key_size, key.encrypted) == ("PKCS#8", "ssh-rsa", 2048, False)
        else:
            assert (key.format, key.key_type, key.key_size) == ("OpenSSH", "ssh-ed25519", 256)
            assert key.fingerprint == samples.expected_fingerprint(samples.ed25519_key())
        if kind == "encrypted-openssh":
            assert key.encrypted and key.kdf == "bcrypt" and key.kdf_rounds == 16
        if kind == "openssh":
            assert key.comment == "deploy@ci"


def test_ssh_public_keys_have_typed_metadata(system: LocalSystem) -> None:
    lines = [key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
             + f" {comment}\n".encode()
             for key, comment in [(samples.ed25519_key(), "a@host"), (samples.ec_key("ssh", "secp384r1"), "b@host")]]
    uploaded = _upload(system, "authorized_keys-" + unique("k") + ".pub", b"".join(lines))
    for message in _read_back(system, uploaded):
        assert message.WhichOneof("file_metadata") == "ssh_public_key"
        keys = message.ssh_public_key
        assert (keys.key_type, keys.key_size, keys.comment, keys.key_count) == ("ssh-ed25519", 256, "a@host", 2)
        assert [(k.key_type, k.key_size) for k in keys.keys] == [("ssh-ed25519", 256), ("ecdsa-sha2-nistp384", 384)]


def test_unknown_content_says_so_typed(system: LocalSystem) -> None:
    uploaded = _upload(system, unique("notes") + ".txt", b"just text\n")
    for message in _read_back(system, uploaded):
        assert message.WhichOneof("file_metadata") == "unknown"
        assert message.HasField("unknown") and not message.unknown.parse_error
