"""PKCS#12 (.p12/.pfx): the main certificate's fields, its real expiry, and nothing without the password."""

from __future__ import annotations

import json
import shutil
import subprocess
import time

import pytest
from cryptography.hazmat.primitives import serialization

from securefiles.storage.domain.file_metadata import parse_file_metadata, pbe
from tests.unit.test_file_metadata_samples import (
    PASSWORD,
    cert_bag,
    data_content,
    der,
    ec_key,
    encrypted_content,
    leaf_cert,
    mac_data,
    octets,
    oid,
    p12,
    p12_main,
    pbes2_algorithm,
    pbes2_encrypt,
    pem,
    pfx,
    rsa_key,
    secret_forms,
    seq,
    shrouded_key_bag,
)
from tests.unit.test_file_metadata_samples import ctx as context


def assert_main_certificate(metadata: dict) -> None:
    main, _ = p12_main()
    assert metadata["subject"] == "CN=iPhone Distribution: Example"
    assert metadata["issuer"] == "CN=Intermediate"
    assert metadata["serial"] == "7777"
    assert metadata["not_before"] == main.not_valid_before_utc.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert metadata["not_after"] == main.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert metadata["public_key_type"] == "RSA" and metadata["public_key_size"] == 2048
    assert metadata["key_type"] == "RSA" and metadata["key_size"] == 2048
    assert metadata["friendly_name"] == "signing"
    assert metadata["additional_certificates"] == 1
    assert metadata["additional_certificate_details"][0]["subject"] == "CN=Intermediate"


def test_unencrypted_p12_reports_the_main_certificate_and_its_not_after():
    main, intermediate = p12_main()
    result = parse_file_metadata("dist.p12", p12(rsa_key(), main, [intermediate]))
    assert_main_certificate(result.metadata)
    assert result.metadata["encrypted"] is False
    # The expiry is the main certificate's NOT_AFTER: not its not_before, not the intermediate's earlier end.
    assert result.expires_at == main.not_valid_after_utc
    assert result.expires_at != main.not_valid_before_utc
    assert intermediate.not_valid_after_utc < result.expires_at


@pytest.mark.parametrize("legacy", [False, True], ids=["aes-pbkdf2", "3des-sha1"])
def test_password_protected_p12_opens_with_the_given_password(legacy):
    main, intermediate = p12_main()
    data = p12(rsa_key(), main, [intermediate], password=PASSWORD, legacy=legacy)
    result = parse_file_metadata("dist.pfx", data, password=PASSWORD)
    assert_main_certificate(result.metadata)
    assert result.metadata["encrypted"] is True
    assert result.expires_at == main.not_valid_after_utc


@pytest.mark.parametrize(("password", "problem"), [(None, {}), (b"", {}),
                                                    (b"Incorrect-Horse", {"parse_error": "wrong password"})])
def test_unknown_password_reveals_nothing_but_that_it_is_encrypted(password, problem):
    """Without the password nothing of an all-encrypted file is known; a wrong one is said to be wrong."""
    main, intermediate = p12_main()
    data = p12(rsa_key(), main, [intermediate], password=PASSWORD)
    result = parse_file_metadata("dist.p12", data, password=password)
    assert result.metadata == {"type": "pkcs12", "encrypted": True, **problem}
    assert result.expires_at is None


def shrouded(key, password: bytes) -> bytes:
    plain = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption())
    return shrouded_key_bag(*pbes2_encrypt(plain, password, 1000))


def test_p12_encrypted_with_the_empty_password_opens_without_one():
    key = ec_key("p12-empty")
    cert = leaf_cert(20, "p12-empty")
    data = pfx(encrypted_content(seq(cert_bag(der(cert))), b""), data_content(seq(shrouded(key, b""))))
    for given in (None, b"", b"some other password"):
        metadata = parse_file_metadata("empty.p12", data, password=given).metadata
        assert metadata["subject"] == "CN=p12-empty 20d"
        assert metadata["key_type"] == "EC" and metadata["key_curve"] == "secp256r1"
        assert metadata["encrypted"] is False
        assert "friendly_name" not in metadata


def test_certificates_only_p12_expires_with_its_earliest_certificate():
    first, second = leaf_cert(50, "only-a"), leaf_cert(5, "only-b")
    data = p12(None, None, [first, second])
    result = parse_file_metadata("trust.p12", data)
    assert "subject" not in result.metadata and "key_type" not in result.metadata
    assert result.metadata["additional_certificates"] == 2
    assert result.expires_at == second.not_valid_after_utc


def test_secrets_never_reach_the_metadata():
    main, intermediate = p12_main()
    data = p12(rsa_key(), main, [intermediate], password=PASSWORD)
    for given in (PASSWORD, b"Incorrect-Horse"):
        text = json.dumps(parse_file_metadata("dist.p12", data, password=given).metadata)
        assert PASSWORD.decode() not in text and "Incorrect-Horse" not in text
        assert not any(form in text for form in secret_forms(rsa_key()))


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl not on PATH")
def test_legacy_rc2_40_p12_from_openssl(tmp_path):
    """Old macOS Keychain / OpenSSL 1.x exports encrypt certificates with 40-bit RC2."""
    main, intermediate = p12_main()
    (tmp_path / "key.pem").write_bytes(rsa_key().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    (tmp_path / "certs.pem").write_bytes(pem(main) + pem(intermediate))
    command = ["openssl", "pkcs12", "-export", "-legacy", "-inkey", str(tmp_path / "key.pem"),
               "-in", str(tmp_path / "certs.pem"), "-name", "signing", "-passout", "pass:" + PASSWORD.decode(),
               "-out", str(tmp_path / "legacy.p12")]
    if subprocess.run(command, capture_output=True, timeout=60, stdin=subprocess.DEVNULL).returncode != 0:
        pytest.skip("this openssl cannot write legacy PKCS#12")
    info = subprocess.run(["openssl", "pkcs12", "-info", "-noout", "-nomacver", "-passin", "pass:x",
                           "-in", str(tmp_path / "legacy.p12")], capture_output=True, text=True, timeout=60)
    assert "RC2" in info.stdout + info.stderr
    result = parse_file_metadata("legacy.p12", (tmp_path / "legacy.p12").read_bytes(), password=PASSWORD)
    assert_main_certificate(result.metadata)
    assert result.expires_at == main.not_valid_after_utc


# --- hostile files: every costly step is chosen by the file, so every one is capped ---

def test_mac_with_two_billion_iterations_is_refused_at_once():
    data = pfx(data_content(seq(cert_bag(der(leaf_cert(10, "hostile"))))), mac=mac_data(2**31 - 1))
    started = time.monotonic()
    result = parse_file_metadata("hostile.p12", data)
    assert time.monotonic() - started < 1
    assert result.metadata == {"type": "pkcs12", "parse_error": "key derivation iteration count out of range"}


def test_key_bag_hidden_inside_encrypted_content_is_checked_before_decrypting():
    hostile_key = shrouded_key_bag(pbes2_algorithm(2**31 - 1), b"\x00" * 64)
    inner = seq(cert_bag(der(leaf_cert(10, "hostile"))), hostile_key)
    data = pfx(encrypted_content(inner, b""))
    started = time.monotonic()
    result = parse_file_metadata("hostile.p12", data)
    assert time.monotonic() - started < 1
    assert result.metadata["parse_error"] == "key derivation iteration count out of range"


def test_hand_built_p12_with_encrypted_content_and_key_opens():
    key = ec_key("hand-built")
    cert = leaf_cert(77, "hand-built")
    data = pfx(encrypted_content(seq(cert_bag(der(cert))), PASSWORD), data_content(seq(shrouded(key, PASSWORD))))
    result = parse_file_metadata("hand.p12", data, password=PASSWORD)
    assert result.metadata["subject"] == "CN=hand-built 77d"
    assert result.metadata["key_type"] == "EC"
    assert result.metadata["encrypted"] is True
    assert parse_file_metadata("hand.p12", data, password=b"nope").metadata == {
        "type": "pkcs12", "encrypted": True, "parse_error": "wrong password"}


def test_total_key_derivation_work_is_budgeted(monkeypatch):
    monkeypatch.setattr(pbe, "DEFAULT_WORK_UNITS", 5000)
    main, intermediate = p12_main()
    data = p12(rsa_key(), main, [intermediate], password=PASSWORD)
    result = parse_file_metadata("dist.p12", data, password=b"wrong")
    assert result.metadata == {"type": "pkcs12", "parse_error": "key derivation too expensive"}


def test_unsupported_key_derivation_is_reported():
    scrypt = seq(oid("1.2.840.113549.1.5.13"), seq(
        seq(oid("1.3.6.1.4.1.11591.4.11"), seq(octets(b"salt"), b"\x02\x04\x7f\xff\xff\xff", b"\x02\x01\x08",
                                                b"\x02\x01\x01")),
        seq(oid("2.16.840.1.101.3.4.1.42"), octets(b"\x00" * 16))))
    data = pfx(data_content(seq(shrouded_key_bag(scrypt, b"\x00" * 32))))
    assert parse_file_metadata("scrypt.p12", data).metadata == {"type": "pkcs12",
                                                                "parse_error": "unsupported encryption algorithm"}


def test_deeply_nested_safe_contents_bags_are_refused():
    bag = seq(cert_bag(der(leaf_cert(10, "nested"))))
    for _ in range(6):
        bag = seq(seq(oid("1.2.840.113549.1.12.10.1.6"), context(0, bag)))
    result = parse_file_metadata("nested.p12", pfx(data_content(bag)))
    assert result.metadata == {"type": "pkcs12", "parse_error": "PKCS#12 bags nested too deeply"}


def test_many_bags_are_capped():
    data = pfx(data_content(seq(*[seq(oid("1.2.840.113549.1.12.10.1.5"), context(0, seq()))] * 10_001)))
    result = parse_file_metadata("many.p12", data)
    assert result.metadata == {"type": "pkcs12", "parse_error": "too many PKCS#12 bags"}
