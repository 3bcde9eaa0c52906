"""X.509 certificates: what a user sees for a .crt/.cer/.pem/.der upload."""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC, timedelta

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from securefiles.storage.domain.file_metadata import parse_file_metadata
from tests.unit.test_file_metadata_samples import (
    FIXED_NOT_AFTER,
    NOW,
    ca_pair,
    der,
    ec_key,
    fixed_cert,
    leaf_cert,
    make_cert,
    oid,
    pem,
    pem_key,
    rsa_key,
    secret_forms,
    seq,
)


def fingerprint(cert) -> str:
    return ":".join(f"{byte:02X}" for byte in hashlib.sha256(der(cert)).digest())


def test_single_pem_certificate_shows_its_fields_at_top_level():
    result = parse_file_metadata("server.crt", pem(fixed_cert()))
    assert result.metadata == {
        "type": "x509",
        "subject": "CN=fixed.example.com",
        "issuer": "CN=Test Root CA",
        "serial": "0123456789ABCDEF",
        "not_before": "2024-11-25T21:46:13Z",
        "not_after": "2026-11-25T21:46:13Z",
        "sha256_fingerprint": fingerprint(fixed_cert()),
        "public_key_type": "RSA",
        "public_key_size": 2048,
    }
    assert result.expires_at == FIXED_NOT_AFTER
    assert result.expires_at.tzinfo is not None and result.expires_at.utcoffset() == timedelta(0)


@pytest.mark.parametrize("file_name", ["server.der", "server.cer", "server.crt", "server.pem", "SERVER.CER",
                                       "no-extension", "odd.p12"])
def test_der_certificate_is_read_whatever_the_name(file_name):
    result = parse_file_metadata(file_name, der(fixed_cert()))
    assert result.metadata["type"] == "x509"
    assert result.metadata["subject"] == "CN=fixed.example.com"
    assert result.metadata["not_after"] == "2026-11-25T21:46:13Z"
    assert result.expires_at == FIXED_NOT_AFTER


def test_self_signed_certificate_has_subject_equal_to_issuer():
    root, _ = ca_pair()
    metadata = parse_file_metadata("root.pem", pem(root)).metadata
    assert metadata["subject"] == metadata["issuer"] == "CN=Test Root CA"
    assert metadata["public_key_type"] == "EC" and metadata["public_key_size"] == 256


def test_bundle_lists_every_certificate_and_promotes_the_first_to_expire():
    later, soonest, middle = leaf_cert(400, "later"), leaf_cert(9, "soonest"), leaf_cert(60, "middle")
    result = parse_file_metadata("chain.pem", pem(later) + pem(soonest) + pem(middle))
    metadata = result.metadata
    assert metadata["count"] == 3
    assert [entry["subject"] for entry in metadata["certificates"]] == ["CN=later 400d", "CN=soonest 9d",
                                                                        "CN=middle 60d"]
    assert metadata["subject"] == "CN=soonest 9d"
    assert metadata["not_after"] == metadata["certificates"][1]["not_after"]
    assert result.expires_at == soonest.not_valid_after_utc
    assert [entry["sha256_fingerprint"] for entry in metadata["certificates"]] == [
        fingerprint(later), fingerprint(soonest), fingerprint(middle)]


@pytest.mark.parametrize(("days_left", "state"), [(-30, "expired"), (-1, "expired"), (3, "soon"), (29, "soon"),
                                                  (31, "valid"), (3000, "valid")])
def test_expiry_is_exact_so_expired_and_expiring_certificates_can_be_flagged(days_left, state):
    cert = leaf_cert(days_left, "expiry")
    result = parse_file_metadata("cert.pem", pem(cert))
    assert result.expires_at == NOW + timedelta(days=days_left)
    remaining = result.expires_at - NOW
    assert {"expired": remaining < timedelta(0), "soon": timedelta(0) < remaining <= timedelta(days=30),
            "valid": remaining > timedelta(days=30)}[state]


def test_key_types_and_sizes():
    ed = ed25519.Ed25519PrivateKey.generate()
    p384 = ec_key("p384", "secp384r1")
    for key, kind, size in [(ed, "Ed25519", 256), (p384, "EC", 384), (rsa_key(), "RSA", 2048)]:
        cert = make_cert("keys", NOW, NOW + timedelta(days=1), key)
        metadata = parse_file_metadata("k.pem", pem(cert)).metadata
        assert (metadata["public_key_type"], metadata["public_key_size"]) == (kind, size)


def test_pem_with_text_around_and_crlf_line_endings():
    text = pem(fixed_cert()).replace(b"\n", b"\r\n")
    data = b"subject=CN = fixed.example.com\r\nissuer=CN = Test Root CA\r\n" + text + b"\r\ntrailing notes\r\n"
    metadata = parse_file_metadata("server.pem", data).metadata
    assert metadata["subject"] == "CN=fixed.example.com"
    assert "parse_error" not in metadata


def test_openssl_trusted_certificate_form():
    aux = seq(seq(oid("1.3.6.1.5.5.7.3.1")))
    body = der(fixed_cert()) + aux
    text = base64.encodebytes(body).decode()
    data = f"-----BEGIN TRUSTED CERTIFICATE-----\n{text}-----END TRUSTED CERTIFICATE-----\n".encode()
    assert parse_file_metadata("trusted.pem", data).metadata["subject"] == "CN=fixed.example.com"


def test_certificate_with_its_private_key_is_a_certificate_and_the_key_stays_out():
    key = rsa_key()
    data = pem_key(key, serialization.PrivateFormat.PKCS8) + pem(fixed_cert())
    metadata = parse_file_metadata("bundle.pem", data).metadata
    assert metadata["type"] == "x509"
    assert metadata["contains_private_key"] is True
    text = json.dumps(metadata)
    assert not any(form in text for form in secret_forms(key))


def test_pem_content_wins_over_a_misleading_extension():
    assert parse_file_metadata("actually-a-cert.p12", pem(fixed_cert())).metadata["type"] == "x509"
    assert parse_file_metadata("actually-a-cert.mobileprovision", der(fixed_cert())).metadata["type"] == "x509"


def test_more_than_1000_certificates_reads_the_first_1000():
    result = parse_file_metadata("huge.pem", pem(fixed_cert()) * 1001)
    assert result.metadata["count"] == 1000
    assert "only the first" in result.metadata["parse_error"]
    assert result.expires_at == FIXED_NOT_AFTER


def test_one_bad_certificate_in_a_bundle_is_reported_and_the_others_kept():
    broken = b"-----BEGIN CERTIFICATE-----\nTUlJQm9ndXM=\n-----END CERTIFICATE-----\n"
    metadata = parse_file_metadata("chain.pem", pem(fixed_cert()) + broken).metadata
    assert metadata["subject"] == "CN=fixed.example.com"
    assert metadata["parse_error"] == "1 certificate(s) could not be parsed"


@pytest.mark.parametrize(("data", "error"), [
    (b"", "invalid certificate"),
    (b"hello world, not a certificate", "invalid certificate"),
    (b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", "no certificate found"),
    (pem(fixed_cert())[:300], "truncated PEM block"),
    (der(fixed_cert())[:-1], "invalid certificate"),
])
def test_broken_certificate_files_keep_the_type_and_say_why(data, error):
    result = parse_file_metadata("broken.crt", data)
    assert result.metadata == {"type": "x509", "parse_error": error}
    assert result.expires_at is None


def test_expires_at_is_utc_even_for_far_future_dates():
    cert = make_cert("far", NOW, NOW.replace(year=9999, tzinfo=UTC), ec_key("far"))
    result = parse_file_metadata("far.pem", pem(cert))
    assert result.metadata["not_after"].startswith("9999-")
    assert result.expires_at.year == 9999
