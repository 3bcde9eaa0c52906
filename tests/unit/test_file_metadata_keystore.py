"""Android/Java keystores: JKS and JCEKS byte by byte, keytool's own files, and PKCS#12 keystores."""

from __future__ import annotations

import struct
import subprocess
import time
from datetime import timedelta

import pytest

from securefiles.storage.domain.file_metadata import parse_file_metadata
from tests.unit.test_file_metadata_samples import (
    FAST_JVM,
    JKS_MAGIC,
    NOW,
    PASSWORD,
    Entry,
    der,
    java_keystore,
    java_utf,
    jceks_sample,
    jks_sample,
    leaf_cert,
    needs_keytool,
    p12,
    p12_main,
    rsa_key,
    upload_chain,
)


def rfc3339(moment) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_jks_lists_aliases_entry_types_and_certificates():
    result = parse_file_metadata("upload-keystore.jks", jks_sample())
    metadata = result.metadata
    upload, root = upload_chain()
    partner = leaf_cert(12, "partner")
    assert (metadata["type"], metadata["format"], metadata["version"]) == ("android_keystore", "JKS", 2)
    assert metadata["entry_count"] == 2
    assert metadata["aliases"] == ["upload", "partner-ca"]
    assert [(entry["alias"], entry["entry_type"]) for entry in metadata["entries"]] == [
        ("upload", "private_key"), ("partner-ca", "trusted_certificate")]
    assert metadata["entries"][0]["certificate_chain_length"] == 2
    assert metadata["entries"][0]["created"] == "2023-11-14T22:13:20Z"
    assert [(cert["alias"], cert["subject"], cert["not_after"]) for cert in metadata["certificates"]] == [
        ("upload", "CN=Android Upload Key", rfc3339(upload.not_valid_after_utc)),
        ("upload", "CN=Test Root CA", rfc3339(root.not_valid_after_utc)),
        ("partner-ca", "CN=partner 12d", rfc3339(partner.not_valid_after_utc)),
    ]
    assert "parse_error" not in metadata and "partial" not in metadata
    # The trusted partner certificate runs out in 12 days: the keystore is flagged by it.
    assert result.expires_at == partner.not_valid_after_utc
    assert NOW < result.expires_at <= NOW + timedelta(days=30)


def test_jceks_stops_at_a_secret_key_entry_and_reports_what_it_read():
    result = parse_file_metadata("legacy.jceks", jceks_sample())
    metadata = result.metadata
    assert metadata["format"] == "JCEKS" and metadata["entry_count"] == 3
    assert metadata["aliases"] == ["upload", "api-secret"]
    assert metadata["entries"][1]["entry_type"] == "secret_key"
    assert metadata["partial"] is True
    assert [cert["subject"] for cert in metadata["certificates"]] == ["CN=Android Upload Key", "CN=Test Root CA"]
    assert result.expires_at == upload_chain()[1].not_valid_after_utc


def test_magic_decides_whatever_the_name():
    for file_name in ("release.p12", "keystore", "x.mobileprovision", "id_rsa"):
        assert parse_file_metadata(file_name, jks_sample()).metadata["format"] == "JKS"
        assert parse_file_metadata(file_name, jceks_sample()).metadata["format"] == "JCEKS"


def test_version_1_jks_has_no_certificate_type_strings():
    data = java_keystore([Entry("old", "cert", (der(leaf_cert(90, "v1")),))], version=1)
    metadata = parse_file_metadata("old.keystore", data).metadata
    assert metadata["version"] == 1
    assert metadata["certificates"][0]["subject"] == "CN=v1 90d"


def test_aliases_in_java_modified_utf8_and_long_aliases_are_capped():
    cert = (der(leaf_cert(90, "alias")),)
    data = java_keystore([Entry("clé\x00🔑", "cert", cert), Entry("a" * 5000, "cert", cert)])
    aliases = parse_file_metadata("a.jks", data).metadata["aliases"]
    assert aliases == ["clé\ufffd🔑", "a" * 256]  # NUL is replaced: PostgreSQL JSON cannot store it
    assert java_utf("\x00").endswith(b"\xc0\x80")


def test_keystore_claiming_two_billion_entries_is_refused_at_once():
    data = JKS_MAGIC + struct.pack(">II", 2, 2**31) + b"\x00" * 64
    started = time.monotonic()
    result = parse_file_metadata("huge.jks", data)
    assert time.monotonic() - started < 0.5
    assert result.metadata == {"type": "android_keystore", "format": "JKS", "version": 2,
                               "parse_error": "keystore declares too many entries"}


@pytest.mark.parametrize(("data", "error"), [
    (JKS_MAGIC + struct.pack(">II", 2, 10_000), "truncated keystore"),
    (JKS_MAGIC + struct.pack(">II", 7, 1), "unsupported keystore version"),
    (JKS_MAGIC + struct.pack(">III", 2, 1, 9) + java_utf("x") + bytes(8), "unknown keystore entry type"),
    (JKS_MAGIC + struct.pack(">III", 2, 1, 3) + java_utf("x") + bytes(8), "unknown keystore entry type"),
    (JKS_MAGIC + struct.pack(">III", 2, 1, 2) + java_utf("x") + bytes(8) + java_utf("X.509")
     + struct.pack(">I", 0xFFFFFFFF), "truncated keystore"),
    (JKS_MAGIC + struct.pack(">III", 2, 1, 1) + java_utf("x") + bytes(8) + struct.pack(">II", 0, 0xFFFFFFFF),
     "certificate chain too long"),
    (JKS_MAGIC + struct.pack(">III", 2, 1, 1) + java_utf("x") + bytes(8) + struct.pack(">I", 0xFFFFFFF0),
     "truncated keystore"),
    (JKS_MAGIC, "truncated keystore"),
    (jks_sample()[:-5], "truncated keystore"),
])
def test_broken_keystores_say_why(data, error):
    metadata = parse_file_metadata("broken.jks", data).metadata
    assert metadata["type"] == "android_keystore"
    assert metadata["parse_error"] == error


def test_unreadable_certificate_in_a_keystore_is_counted():
    data = java_keystore([Entry("bad", "cert", (b"\x30\x03\x02\x01\x01",)),
                          Entry("good", "cert", (der(leaf_cert(90, "good")),))])
    metadata = parse_file_metadata("a.jks", data).metadata
    assert metadata["aliases"] == ["bad", "good"]
    assert metadata["parse_error"] == "1 certificate(s) could not be parsed"


def test_pkcs12_keystore_is_an_android_keystore_in_pkcs12_format():
    main, intermediate = p12_main()
    data = p12(rsa_key(), main, [intermediate], password=PASSWORD)
    result = parse_file_metadata("upload.keystore", data, password=PASSWORD)
    assert result.metadata["type"] == "android_keystore"
    assert result.metadata["format"] == "PKCS12"
    assert result.metadata["subject"] == "CN=iPhone Distribution: Example"
    assert result.metadata["key_type"] == "RSA"
    assert result.expires_at == main.not_valid_after_utc
    assert parse_file_metadata("upload.jks", data).metadata == {"type": "android_keystore", "format": "PKCS12",
                                                                "encrypted": True}


def test_random_bytes_named_like_a_keystore():
    assert parse_file_metadata("x.jks", bytes(range(256))).metadata == {
        "type": "android_keystore", "parse_error": "not a JKS, JCEKS or PKCS#12 keystore"}


@needs_keytool
def test_keystores_written_by_keytool(tmp_path):
    jceks = tmp_path / "store.jceks"
    common = ["-keystore", str(jceks), "-storetype", "JCEKS", "-storepass", "changeit", "-keypass", "changeit"]
    for command in (["-genkeypair", "-alias", "upload", "-keyalg", "EC", "-groupname", "secp256r1",
                     "-dname", "CN=Keytool Upload, O=Example", "-validity", "20", "-noprompt"],
                    ["-genseckey", "-alias", "api-secret", "-keyalg", "AES", "-keysize", "128"]):
        subprocess.run(["keytool", *FAST_JVM, *command, *common], check=True, capture_output=True, timeout=120,
                       stdin=subprocess.DEVNULL)
    result = parse_file_metadata("store.jceks", jceks.read_bytes())
    metadata = result.metadata
    assert metadata["format"] == "JCEKS" and metadata["entry_count"] == 2
    assert "parse_error" not in metadata
    types = {entry["alias"]: entry["entry_type"] for entry in metadata["entries"]}
    # keytool writes entries in hash order; reading stops at the secret key, so the key pair may be unread.
    assert set(types) <= {"upload", "api-secret"} and "api-secret" in types
    assert types["api-secret"] == "secret_key"
    if "upload" in types:
        assert types["upload"] == "private_key"
        assert metadata["certificates"][0]["subject"] == "CN=Keytool Upload,O=Example"
        assert result.expires_at is not None and NOW < result.expires_at <= NOW + timedelta(days=21)
    else:
        assert metadata["partial"] is True
