"""Private keys: OpenSSH and PEM; the fingerprint must be exactly what `ssh-keygen -l` prints."""

from __future__ import annotations

import base64
import json
import subprocess

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import PrivateFormat

from securefiles.storage.domain.file_metadata import parse_file_metadata
from tests.unit.test_file_metadata_samples import (
    PASSWORD,
    ec_key,
    ed25519_key,
    expected_fingerprint,
    needs_ssh_keygen,
    openssh,
    openssh_container,
    openssh_ed25519_with_comment,
    openssh_encrypted_ed25519,
    pem_key,
    rsa_key,
    secret_forms,
    ssh_keygen_fingerprint,
    ssh_string,
)

KEYS = {
    "ed25519": (lambda: ed25519_key("ssh"), "ssh-ed25519", 256),
    "rsa": (rsa_key, "ssh-rsa", 2048),
    "p256": (lambda: ec_key("ssh256", "secp256r1"), "ecdsa-sha2-nistp256", 256),
    "p384": (lambda: ec_key("ssh384", "secp384r1"), "ecdsa-sha2-nistp384", 384),
    "p521": (lambda: ec_key("ssh521", "secp521r1"), "ecdsa-sha2-nistp521", 521),
}


@pytest.mark.parametrize("kind", KEYS)
def test_openssh_key_type_size_and_fingerprint(kind):
    make, key_type, bits = KEYS[kind]
    key = make()
    metadata = parse_file_metadata(f"id_{kind}", openssh(key)).metadata
    assert metadata == {"type": "ssh_private_key", "format": "OpenSSH", "encrypted": False, "key_type": key_type,
                        "key_size": bits, "fingerprint": expected_fingerprint(key), "comment": ""}


def test_openssh_comment_is_shown():
    key = ed25519_key("comment")
    metadata = parse_file_metadata("deploy.key", openssh_ed25519_with_comment(key, "deploy@ci-runner")).metadata
    assert metadata["comment"] == "deploy@ci-runner"
    assert metadata["fingerprint"] == expected_fingerprint(key)


def test_encrypted_openssh_key_still_shows_type_and_fingerprint_but_no_comment():
    key = ed25519_key("encrypted")
    metadata = parse_file_metadata("id_ed25519", openssh_encrypted_ed25519(key)).metadata
    assert metadata == {"type": "ssh_private_key", "format": "OpenSSH", "encrypted": True, "cipher": "aes256-ctr",
                        "kdf": "bcrypt", "kdf_rounds": 16, "key_type": "ssh-ed25519", "key_size": 256,
                        "fingerprint": expected_fingerprint(key)}


@pytest.mark.parametrize(("private_format", "label_format"), [
    (PrivateFormat.TraditionalOpenSSL, None), (PrivateFormat.PKCS8, "PKCS#8")])
@pytest.mark.parametrize("kind", ["rsa", "p256", "ed25519"])
def test_unencrypted_pem_keys(kind, private_format, label_format):
    make, key_type, bits = KEYS[kind]
    key = make()
    if kind == "ed25519" and private_format is PrivateFormat.TraditionalOpenSSL:
        private_format = PrivateFormat.PKCS8
    metadata = parse_file_metadata("key.pem", pem_key(key, private_format)).metadata
    expected_format = label_format or {"rsa": "PKCS#1", "p256": "SEC1"}.get(kind, "PKCS#8")
    assert metadata == {"type": "ssh_private_key", "format": expected_format, "encrypted": False,
                        "key_type": key_type, "key_size": bits, "fingerprint": expected_fingerprint(key)}


def test_encrypted_traditional_pem_key_without_and_with_the_password():
    data = pem_key(rsa_key(), PrivateFormat.TraditionalOpenSSL, PASSWORD)
    assert b"Proc-Type: 4,ENCRYPTED" in data
    locked = parse_file_metadata("key.pem", data).metadata
    assert locked == {"type": "ssh_private_key", "format": "PKCS#1", "encrypted": True, "cipher": "AES-256-CBC",
                      "key_type": "ssh-rsa"}
    assert parse_file_metadata("key.pem", data, password=b"wrong").metadata == {**locked,
                                                                                "parse_error": "wrong password"}
    opened = parse_file_metadata("key.pem", data, password=PASSWORD).metadata
    assert opened == {**locked, "key_size": 2048, "fingerprint": expected_fingerprint(rsa_key())}


def test_encrypted_pkcs8_key_without_and_with_the_password():
    key = ec_key("pkcs8", "secp384r1")
    data = pem_key(key, PrivateFormat.PKCS8, PASSWORD)
    assert b"ENCRYPTED PRIVATE KEY" in data
    locked = parse_file_metadata("key.pem", data).metadata
    assert locked == {"type": "ssh_private_key", "format": "PKCS#8", "encrypted": True,
                      "cipher": "PBES2/PBKDF2/AES-256-CBC"}
    assert parse_file_metadata("key.pem", data, password=b"wrong").metadata == {**locked,
                                                                                "parse_error": "wrong password"}
    opened = parse_file_metadata("key.pem", data, password=PASSWORD).metadata
    assert opened == {**locked, "key_type": "ecdsa-sha2-nistp384", "key_size": 384,
                      "fingerprint": expected_fingerprint(key)}


def test_keys_that_ssh_cannot_use_are_still_described():
    key = ec.generate_private_key(ec.SECP256K1())
    metadata = parse_file_metadata("k.pem", pem_key(key, PrivateFormat.PKCS8)).metadata
    assert metadata["key_type"] == "EC-secp256k1" and metadata["key_size"] == 256
    assert "fingerprint" not in metadata


def test_content_decides_a_pem_named_file_holding_a_key_is_a_key():
    for file_name in ("key.pem", "server.crt", "id_rsa", "deploy", "secrets.p12"):
        assert parse_file_metadata(file_name, openssh(rsa_key())).metadata["type"] == "ssh_private_key"


@pytest.mark.parametrize(("file_name", "data", "expected"), [
    ("id_rsa", b"not a key", {"type": "ssh_private_key", "parse_error": "no private key found"}),
    ("x.key", b"", {"type": "ssh_private_key", "parse_error": "no private key found"}),
    ("x.key", b"-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n",
     {"type": "ssh_private_key", "format": "OpenSSH", "parse_error": "truncated PEM block"}),
    ("x.key", b"-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n",
     {"type": "ssh_private_key", "format": "OpenSSH", "parse_error": "not an openssh-key-v1 key"}),
    ("x.key", b"-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n",
     {"type": "ssh_private_key", "format": "PKCS#1", "encrypted": False, "parse_error": "invalid private key"}),
])
def test_broken_keys(file_name, data, expected):
    assert parse_file_metadata(file_name, data).metadata == expected


def test_openssh_key_count_is_capped_and_blob_lengths_checked():
    blob = ssh_string(b"ssh-ed25519") + ssh_string(b"\x00" * 32)
    many = openssh_container(blob, b"", count=100_000)
    assert parse_file_metadata("k", many).metadata["parse_error"] == "invalid number of keys"
    lying = openssh_container(blob[:-36] + b"\xff\xff\xff\xff", b"")
    assert parse_file_metadata("k", lying).metadata["parse_error"] == "truncated SSH key"


def test_a_corrupt_private_section_hides_the_comment_instead_of_guessing():
    key = ed25519_key("comment")
    good = openssh_ed25519_with_comment(key, "me@host")
    blob_text = good.split(b"\n")
    # Re-encode with the check integers disagreeing.
    body = base64.b64decode(b"".join(blob_text[1:-2]))
    corrupt = body.replace(b"\x00\x5e\xc2\xe7\x00\x5e\xc2\xe7", b"\x00\x5e\xc2\xe7\x00\x5e\xc2\xe8")
    text = base64.b64encode(corrupt)
    data = b"-----BEGIN OPENSSH PRIVATE KEY-----\n" + text + b"\n-----END OPENSSH PRIVATE KEY-----\n"
    metadata = parse_file_metadata("k", data).metadata
    assert "comment" not in metadata
    assert metadata["parse_error"] == "corrupt SSH private section"
    assert metadata["fingerprint"] == expected_fingerprint(key)


@pytest.mark.parametrize("kind", KEYS)
def test_private_key_material_and_password_never_appear(kind):
    key = KEYS[kind][0]()
    samples = [openssh(key), pem_key(key, PrivateFormat.PKCS8), pem_key(key, PrivateFormat.PKCS8, PASSWORD)]
    if kind != "ed25519":
        samples.append(pem_key(key, PrivateFormat.TraditionalOpenSSL, PASSWORD))
    for data in samples:
        for password in (None, PASSWORD):
            text = json.dumps(parse_file_metadata("k.pem", data, password=password).metadata)
            assert not any(form in text for form in secret_forms(key)), data[:40]
            assert PASSWORD.decode() not in text


@needs_ssh_keygen
@pytest.mark.parametrize("kind", KEYS)
def test_fingerprint_matches_ssh_keygen_for_openssh_and_pem_keys(kind, tmp_path):
    make, _, _ = KEYS[kind]
    key = make()
    samples = [openssh(key)]
    if kind != "ed25519":  # OpenSSH reads Ed25519 keys only in its own format
        samples += [pem_key(key, PrivateFormat.PKCS8), pem_key(key, PrivateFormat.TraditionalOpenSSL)]
    for data in samples:
        metadata = parse_file_metadata("key", data).metadata
        bits, fingerprint, _ = ssh_keygen_fingerprint(tmp_path, data)
        assert (metadata["key_size"], metadata["fingerprint"]) == (bits, fingerprint)


@needs_ssh_keygen
def test_key_written_by_ssh_keygen_with_passphrase_and_comment(tmp_path):
    path = tmp_path / "id_ecdsa"
    subprocess.run(["ssh-keygen", "-q", "-t", "ecdsa", "-b", "521", "-N", PASSWORD.decode(), "-C", "ops@example",
                    "-f", str(path)], check=True, capture_output=True, timeout=60, stdin=subprocess.DEVNULL)
    public_line = (tmp_path / "id_ecdsa.pub").read_text()
    (tmp_path / "id_ecdsa.pub").unlink()
    data = path.read_bytes()
    metadata = parse_file_metadata("id_ecdsa", data).metadata
    bits, fingerprint, _ = ssh_keygen_fingerprint(tmp_path, data)
    assert metadata["encrypted"] is True and "comment" not in metadata
    assert metadata["key_type"] == public_line.split()[0] == "ecdsa-sha2-nistp521"
    assert (metadata["key_size"], metadata["fingerprint"]) == (bits, fingerprint)
    assert bits == 521
    unencrypted = tmp_path / "plain"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "build@runner", "-f", str(unencrypted)],
                   check=True, capture_output=True, timeout=60, stdin=subprocess.DEVNULL)
    metadata = parse_file_metadata("plain", unencrypted.read_bytes()).metadata
    assert metadata["comment"] == "build@runner"
    assert metadata["fingerprint"] == ssh_keygen_fingerprint(tmp_path, unencrypted.read_bytes())[1]
