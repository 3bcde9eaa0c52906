"""Hostile and broken input: never an exception, always a typed, JSON-safe, secret-free answer, quickly.

`parse_file_metadata` has a last-resort `except Exception` so an upload never fails; these tests also
insist that it is never *needed* (its message, "could not parse file", must not appear), so every
parser handles bad input itself.
"""

from __future__ import annotations

import functools
import json
import random
import re
import struct
import time
from datetime import timedelta

import pytest
from cryptography.hazmat.primitives.serialization import PrivateFormat
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from securefiles.storage.domain.file_metadata import MAX_PARSE_BYTES, FileMetadata, parse_file_metadata
from tests.unit.test_file_metadata_samples import (
    JCEKS_MAGIC,
    JKS_MAGIC,
    PASSWORD,
    SIGNED_DATA,
    ctx,
    der,
    ec_key,
    ed25519_key,
    fixed_cert,
    integer,
    jceks_sample,
    jks_sample,
    leaf_cert,
    octets,
    oid,
    openssh,
    openssh_ed25519_with_comment,
    p12,
    p12_main,
    pem,
    pem_key,
    pfx,
    profile,
    rsa_key,
    secret_forms,
    seq,
    tlv,
    to_ber,
)

TYPES = {"x509", "pkcs12", "provisioning_profile", "android_keystore", "ssh_private_key", "ssh_public_key",
         "unknown"}
NAMES = ["a.cer", "a.crt", "a.pem", "a.der", "a.p12", "a.pfx", "a.mobileprovision", "a.provisionprofile", "a.jks",
         "a.keystore", "a.jceks", "a.key", "id_ed25519", "a.pub", "a.bin", "no-extension", ".p12", ""]
NAME_TYPES = {"a.cer": "x509", "a.crt": "x509", "a.pem": "x509", "a.der": "x509", "a.p12": "pkcs12",
              "a.pfx": "pkcs12", "a.mobileprovision": "provisioning_profile",
              "a.provisionprofile": "provisioning_profile", "a.jks": "android_keystore",
              "a.keystore": "android_keystore", "a.jceks": "android_keystore", "a.key": "ssh_private_key",
              "id_ed25519": "ssh_private_key", "a.pub": "ssh_public_key"}
MESSAGE = re.compile(r"[A-Za-z0-9 #;,.()'/-]{1,100}")
FALLBACK = "could not parse file"


def check(result: FileMetadata, secrets: tuple[str, ...] = ()) -> dict:
    """What every answer must be, whatever the input."""
    assert isinstance(result, FileMetadata)
    metadata = result.metadata
    assert isinstance(metadata, dict) and metadata["type"] in TYPES
    text = json.dumps(metadata, allow_nan=False, ensure_ascii=False)
    text.encode("utf-8")  # no lone surrogates
    assert "\\u0000" not in text  # PostgreSQL cannot store NUL in JSON
    if "parse_error" in metadata:
        assert MESSAGE.fullmatch(metadata["parse_error"]), metadata["parse_error"]
        assert metadata["parse_error"] != FALLBACK
    if result.expires_at is not None:
        assert result.expires_at.utcoffset() == timedelta(0)
    for secret in secrets:
        assert secret not in text
    return metadata


@functools.cache
def samples() -> dict[str, tuple[str, bytes, bytes | None, tuple[str, ...], bool]]:
    """name -> (file name, data, password, secret strings, every truncation must be noticed)."""
    main, intermediate = p12_main()
    bundle = pem(leaf_cert(400, "later")) + pem(leaf_cert(9, "soonest")) + pem(leaf_cert(60, "middle"))
    rsa_secrets = (*secret_forms(rsa_key()), PASSWORD.decode())
    ed = ed25519_key("robust")
    ec = ec_key("robust")
    return {
        "cert-pem": ("c.pem", pem(fixed_cert()), None, (), True),
        "cert-der": ("c.der", der(fixed_cert()), None, (), True),
        "bundle": ("b.pem", bundle, None, (), False),
        "p12-plain": ("a.p12", p12(rsa_key(), main, [intermediate]), None, rsa_secrets, True),
        "p12-password": ("a.pfx", p12(rsa_key(), main, [intermediate], PASSWORD), PASSWORD, rsa_secrets, True),
        "p12-legacy": ("a.p12", p12(rsa_key(), main, [intermediate], PASSWORD, legacy=True), PASSWORD,
                       rsa_secrets, True),
        "profile": ("p.mobileprovision", profile(), None, (), True),
        "profile-ber": ("p.mobileprovision", to_ber(profile()), None, (), True),
        "jks": ("a.jks", jks_sample(), None, (), True),
        "jceks": ("a.jceks", jceks_sample(), None, (), True),
        "openssh": ("id_ed25519", openssh_ed25519_with_comment(ed, "me@host"), None, tuple(secret_forms(ed)),
                    True),
        "openssh-rsa": ("id_rsa", openssh(rsa_key()), None, rsa_secrets, True),
        "pem-encrypted": ("k.key", pem_key(ec, PrivateFormat.TraditionalOpenSSL, PASSWORD), PASSWORD,
                          (*secret_forms(ec), PASSWORD.decode()), True),
        "pkcs8-encrypted": ("k.key", pem_key(ec, PrivateFormat.PKCS8, PASSWORD), PASSWORD,
                            (*secret_forms(ec), PASSWORD.decode()), True),
    }


@pytest.mark.parametrize("sample", ["cert-pem", "cert-der", "bundle", "p12-plain", "p12-password", "p12-legacy",
                                    "profile", "profile-ber", "jks", "jceks", "openssh", "openssh-rsa",
                                    "pem-encrypted", "pkcs8-encrypted"])
def test_truncated_at_many_offsets_keeps_the_type_and_never_passes_silently(sample):
    file_name, data, password, secrets, exact = samples()[sample]
    full = check(parse_file_metadata(file_name, data, password), secrets)
    assert "parse_error" not in full
    offsets = sorted(set(range(0, min(len(data), 48))) | {len(data) * i // 40 for i in range(40)})
    for offset in offsets:
        metadata = check(parse_file_metadata(file_name, data[:offset], password), secrets)
        assert metadata["type"] == full["type"], offset
        if exact:
            assert "parse_error" in metadata or metadata == full, offset


PREFIXES = [b"", JKS_MAGIC, JCEKS_MAGIC, b"\x30\x82\xff\xff", b"\x30\x80", b"\x30\x03\x02\x01\x03",
            b"-----BEGIN CERTIFICATE-----\n", b"-----BEGIN OPENSSH PRIVATE KEY-----\n",
            b"-----BEGIN ENCRYPTED PRIVATE KEY-----\n", b"bplist00", b"<?xml version='1.0'?>", b"\xef\xbb\xbf",
            b"ssh-ed25519 ", b"ssh-rsa AAAAB3NzaC1yc2E "]


@pytest.mark.parametrize("prefix", PREFIXES, ids=lambda prefix: prefix[:12].hex() or "none")
def test_random_bytes_with_each_magic_and_extension(prefix):
    rng = random.Random(prefix)
    for file_name in NAMES:
        for size in (0, 1, 7, 100, 4096):
            data = prefix + rng.randbytes(size)
            metadata = check(parse_file_metadata(file_name, data, rng.choice([None, b"", b"pw"])))
            if prefix in (JKS_MAGIC, JCEKS_MAGIC):
                assert metadata["type"] == "android_keystore"
            elif file_name in NAME_TYPES and not prefix.startswith((b"-----", b"ssh-")):
                assert metadata["type"] == NAME_TYPES[file_name], (file_name, prefix)
            if metadata["type"] != "unknown":
                assert "parse_error" in metadata


@pytest.mark.parametrize("file_name", ["a.der", "a.cer", "a.p12", "a.mobileprovision", "a.jks", "a.bin"])
@pytest.mark.parametrize("data", [
    b"\x30\x84\xff\xff\xff\xff" + bytes(64),  # a length field claiming 4 GB
    b"\x30\x88\x00\x00\x00\x01\x00\x00\x00\x00" + bytes(64),  # 8-byte length field
    seq(oid(SIGNED_DATA), b"\xa0\x84\xff\xff\xff\xf0" + bytes(64)),  # 4 GB claim one level down
    b"\x30\x80" * 200_000,  # deep indefinite-length nesting, never closed
    b"\x30\x80" * 50_000 + b"\x00\x00" * 50_000,  # deep indefinite-length nesting, well formed
], ids=["4GB", "8-byte-length", "inner-4GB", "deep-open", "deep-closed"])
def test_hostile_der_fails_fast(file_name, data):
    started = time.monotonic()
    metadata = check(parse_file_metadata(file_name, data))
    assert time.monotonic() - started < 2
    cms = oid(SIGNED_DATA) in data[:16]
    assert metadata["type"] == NAME_TYPES.get(file_name, "provisioning_profile" if cms else "unknown")


def test_deep_definite_length_nesting_fails_fast():
    nested = b""
    for _ in range(20_000):
        nested = b"\x30\x84" + struct.pack(">I", len(nested)) + nested
    for file_name in ("a.der", "a.p12", "a.mobileprovision", "a.bin"):
        started = time.monotonic()
        check(parse_file_metadata(file_name, nested))
        assert time.monotonic() - started < 2


def test_too_large_input_is_not_parsed():
    result = parse_file_metadata("big.p12", bytes(MAX_PARSE_BYTES + 1))
    assert result.metadata == {"type": "unknown", "parse_error": "too large to parse"}
    assert result.expires_at is None
    assert parse_file_metadata("big.p12", bytes(MAX_PARSE_BYTES)).metadata["type"] == "pkcs12"


TEN_MIB = 10 * 1024 * 1024
JKS_EMPTY_CERT_ENTRY = struct.pack(">I", 2) + b"\x00\x01a" + bytes(8) + b"\x00\x05X.509" + bytes(4)


def repeat(chunk: bytes) -> bytes:
    return (chunk * (TEN_MIB // len(chunk) + 1))[:TEN_MIB]


@pytest.mark.parametrize(("file_name", "make"), [
    ("a.pem", lambda: repeat(b"-----BEGIN CERTIFICATE-----\n")),
    ("a.pem", lambda: repeat(b"-----BEGIN ")),
    ("a.pem", lambda: repeat(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")),
    ("a.pem", lambda: repeat(pem(fixed_cert()))),
    ("a.key", lambda: b"-----BEGIN OPENSSH PRIVATE KEY-----\n" + repeat(b"QUFB")),
    ("a.mobileprovision", lambda: repeat(b"\x30\x80")),
    ("a.p12", lambda: random.Random(1).randbytes(TEN_MIB)),
    ("a.jks", lambda: JKS_MAGIC + struct.pack(">II", 2, 10_000) + repeat(JKS_EMPTY_CERT_ENTRY)),
    ("a.crt", lambda: b"\x30\x84\x00\xa0\x00\x00" + repeat(b"\x30\x00")),
], ids=["begins", "bare-begins", "bad-certs", "1000-certs", "openssh-unclosed", "ber", "random-p12", "jks-10k",
        "der"])
def test_ten_mib_adversarial_inputs_are_parsed_quickly(file_name, make):
    data = make()
    started = time.monotonic()
    check(parse_file_metadata(file_name, data))
    assert time.monotonic() - started < 5


def test_bytes_like_input_and_odd_arguments():
    data = pem(fixed_cert())
    reference = parse_file_metadata("a.pem", data)
    assert parse_file_metadata("a.pem", bytearray(data)) == reference
    assert parse_file_metadata("a.pem", memoryview(data)) == reference
    assert check(parse_file_metadata("a.pem", data, password="not bytes")) == reference.metadata  # type: ignore[arg-type]
    assert parse_file_metadata("a.pem", None).metadata == {"type": "x509", "parse_error": FALLBACK}  # type: ignore[arg-type]


# --- fuzzing (bounded: about 200 examples in all) ---

def fuzz(examples: int) -> settings:
    return settings(max_examples=examples, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@fuzz(60)
@given(name=st.sampled_from(NAMES), prefix=st.sampled_from(PREFIXES), data=st.binary(max_size=1024),
       password=st.one_of(st.none(), st.binary(max_size=12)))
def test_fuzz_random_input(name, prefix, data, password):
    check(parse_file_metadata(name, prefix + data, password))


@st.composite
def mutated(draw):
    sample = draw(st.sampled_from(sorted(samples())))
    file_name, data, password, secrets, _ = samples()[sample]
    buffer = bytearray(data)
    for _ in range(draw(st.integers(1, 4))):
        position = draw(st.integers(0, max(len(buffer) - 1, 0)))
        operation = draw(st.sampled_from(["flip", "set", "cut", "insert", "delete", "duplicate"]))
        if operation == "flip" and buffer:
            buffer[position] ^= 1 << draw(st.integers(0, 7))
        elif operation == "set" and buffer:
            buffer[position] = draw(st.sampled_from([0x00, 0x80, 0x84, 0xFF, 0x30, 0xA0, 0x24]))
        elif operation == "cut":
            del buffer[position:]
        elif operation == "insert":
            buffer[position:position] = draw(st.binary(min_size=1, max_size=8))
        elif operation == "delete":
            del buffer[position:position + draw(st.integers(1, 16))]
        else:
            buffer[position:position] = buffer[position:position + draw(st.integers(1, 64))]
    return file_name, bytes(buffer), password, secrets


@fuzz(100)
@given(case=mutated())
def test_fuzz_mutated_samples(case):
    file_name, data, password, secrets = case
    check(parse_file_metadata(file_name, data, password), secrets)


def tlv_trees(depth: int = 3):
    leaf = st.tuples(st.integers(0, 255).filter(lambda tag: not tag & 0x20), st.binary(max_size=16)).map(
        lambda item: bytes([item[0]]) + bytes([len(item[1])]) + item[1])

    def constructed(children):
        return st.tuples(st.sampled_from([0x30, 0x31, 0xA0, 0xA1, 0x24]), st.lists(children, max_size=4),
                         st.booleans()).map(
            lambda item: bytes([item[0], 0x80]) + b"".join(item[1]) + b"\x00\x00" if item[2] else
            bytes([item[0]]) + _length(len(b"".join(item[1]))) + b"".join(item[1]))

    return st.recursive(leaf, constructed, max_leaves=12)


def _length(size: int) -> bytes:
    return bytes([size]) if size < 0x80 else bytes([0x82]) + size.to_bytes(2, "big")


@fuzz(40)
@given(tree=tlv_trees(), name=st.sampled_from(["a.p12", "a.mobileprovision", "a.der", "a.jks", "a.bin"]),
       wrap=st.sampled_from(["none", "pfx", "cms"]))
def test_fuzz_der_trees(tree, name, wrap):
    if wrap == "pfx":
        tree = seq(b"\x02\x01\x03", seq(oid("1.2.840.113549.1.7.1"), b"\xa0" + _length(len(tree)) + tree))
    elif wrap == "cms":
        tree = seq(oid(SIGNED_DATA), b"\xa0" + _length(len(tree)) + tree)
    check(parse_file_metadata(name, tree))


def _rc2_40_part(ciphertext: bytes) -> bytes:
    """An EncryptedData content info under pbeWithSHAAnd40BitRC2-CBC (RC2 runs in Python here)."""
    algorithm = seq(oid("1.2.840.113549.1.12.1.6"), seq(octets(b"saltsalt"), integer(1)))
    return seq(oid("1.2.840.113549.1.7.6"),
               ctx(0, seq(integer(0), seq(oid("1.2.840.113549.1.7.1"), algorithm, tlv(0x80, ciphertext)))))


@pytest.mark.parametrize(("parts", "part_bytes"), [(10, 256 * 1024), (3, 96 * 1024)],
                         ids=["ten-parts-of-256k", "parts-that-fit-alone"])
def test_every_decryption_counts_against_the_work_budget(parts: int, part_bytes: int) -> None:
    """Ten RC2-40 parts of 256 KiB took seconds of Python per upload (each part, each candidate
    password); parts that each fit the budget add up too. Refused before the work, as a parse error."""
    data = pfx(*[_rc2_40_part(random.Random(part).randbytes(part_bytes)) for part in range(parts)])
    metadata = check(parse_file_metadata("crafted.p12", data))
    assert metadata == {"type": "pkcs12", "parse_error": "decryption too expensive"}
