"""Android/Java keystores: JKS and JCEKS byte by byte, keytool's own files, and PKCS#12 keystores."""

from __future__ import annotations

import struct
import subprocess
import time
from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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


def test_jceks_reads_past_a_secret_key_entry():
    """A secret key is a serialized Java object whose length is not stored: its stream is walked to
    its end, so the entries after it are read too (reading once stopped there)."""
    result = parse_file_metadata("legacy.jceks", jceks_sample())
    metadata = result.metadata
    upload, root = upload_chain()
    assert metadata["format"] == "JCEKS" and metadata["entry_count"] == 3
    assert metadata["aliases"] == ["upload", "api-secret", "after-secret"]
    assert [entry["entry_type"] for entry in metadata["entries"]] == ["private_key", "secret_key",
                                                                      "trusted_certificate"]
    assert "partial" not in metadata and "parse_error" not in metadata
    assert [(cert["alias"], cert["subject"]) for cert in metadata["certificates"]] == [
        ("upload", "CN=Android Upload Key"), ("upload", "CN=Test Root CA"), ("after-secret", "CN=Test Root CA")]
    assert result.expires_at == min(upload.not_valid_after_utc, root.not_valid_after_utc)


@pytest.mark.parametrize("cut", [4, 10, 60, 200, 400])
def test_a_truncated_secret_key_entry_is_reported(cut):
    data = jceks_sample()
    start = data.index(b"\xac\xed\x00\x05")
    metadata = parse_file_metadata("legacy.jceks", data[:start + cut]).metadata
    assert metadata["aliases"] == ["upload", "api-secret"]
    assert metadata["parse_error"] == "truncated keystore"


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
    # keytool writes entries in hash order; the secret key's serialized object is walked past.
    assert types == {"upload": "private_key", "api-secret": "secret_key"}
    assert metadata["certificates"][0]["subject"] == "CN=Keytool Upload,O=Example"
    assert result.expires_at is not None and NOW < result.expires_at <= NOW + timedelta(days=21)


def _with_secret_entry(body: bytes) -> bytes:
    """A JCEKS whose only entry is a secret key with `body` as its serialized object."""
    return (b"\xce\xce\xce\xce" + struct.pack(">II", 2, 1) + struct.pack(">I", 3) + java_utf("s")
            + struct.pack(">q", 0) + body + bytes(20))


@pytest.mark.parametrize(("body", "problem"), [
    (b"\xac\xed\x00\x05" + b"t\xff\xff" + b"runs past the end", "truncated keystore"),
    (b"\xac\xed\x00\x05" + b"ur\x00\x04[[Lx" + bytes(8) + b"\x02\x00\x00xp" + struct.pack(">i", 1)
     + (b"uq\x00\x7e\x00\x00" + struct.pack(">i", 1)) * 100, "serialized object nested too deeply"),
    (b"\xac\xed\x00\x05" + b"q" + struct.pack(">i", 0x7E0005), "invalid serialized object"),
    (b"\xac\xed\x00\x05" + b"ur\x00\x02[B" + bytes(8) + b"\x02\x00\x00xp" + struct.pack(">i", 2**31 - 1),
     "truncated keystore"),
    (b"\xac\xed\x00\x05" + b"{", "invalid serialized object"),
    (b"not a stream", "invalid serialized object"),
])
def test_hostile_serialized_secret_keys_are_refused_quickly(body: bytes, problem: str) -> None:
    metadata = parse_file_metadata("x.jceks", _with_secret_entry(body)).metadata
    assert metadata["aliases"] == ["s"] and metadata["parse_error"] == problem


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.data())
def test_mutated_secret_key_entries_never_break_the_parser(data) -> None:
    blob = bytearray(jceks_sample())
    start = blob.index(b"\xac\xed\x00\x05")
    for _ in range(data.draw(st.integers(1, 4))):
        blob[data.draw(st.integers(start, start + 470))] = data.draw(st.integers(0, 255))
    metadata = parse_file_metadata("x.jceks", bytes(blob)).metadata
    assert metadata["type"] == "android_keystore" and metadata["aliases"][:2] == ["upload", "api-secret"]
    assert metadata.get("parse_error") != "could not parse file"
