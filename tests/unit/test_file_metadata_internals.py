"""The pieces the parsers stand on: the bounded DER reader, PEM scanning and the password-based ciphers."""

from __future__ import annotations

import os

import pytest
from cryptography.hazmat.decrepit.ciphers.algorithms import RC2
from cryptography.hazmat.primitives.ciphers import Cipher, modes

from securefiles.storage.domain.file_metadata import der, pbe
from securefiles.storage.domain.file_metadata.model import ParseError, clean_text
from securefiles.storage.domain.file_metadata.pem import pem_blocks
from tests.unit.test_file_metadata_samples import octets, oid, seq


def test_der_reader_definite_and_indefinite_lengths():
    data = seq(oid("1.2.840.113549.1.7.1"), octets(b"x" * 300))
    top = der.read_tlv(data)
    assert (top.tag_class, top.constructed, top.number, top.end) == (der.UNIVERSAL, True, der.SEQUENCE, len(data))
    first, second = der.child_list(data, top)
    assert der.read_oid(data, first) == "1.2.840.113549.1.7.1"
    assert der.read_octets(data, second, 300) == b"x" * 300
    ber = b"\x30\x80" + b"\x24\x80" + octets(b"ab") + b"\x24\x80" + octets(b"cd") + b"\x00\x00" + b"\x00\x00\x00\x00"
    top = der.read_tlv(ber)
    assert top.end == len(ber)
    (chunked,) = der.child_list(ber, top)
    assert der.read_octets(ber, chunked, 10) == b"abcd"
    with pytest.raises(der.ValueTooLarge):
        der.read_octets(ber, chunked, 3)


def test_der_reader_high_tag_numbers():
    value = der.read_tlv(b"\xbf\x81\x00\x00")
    assert (value.tag_class, value.number) == (der.CONTEXT, 128)
    with pytest.raises(der.DerError, match="tag number too large"):
        der.read_tlv(b"\x1f\xff\xff\xff\xff\x01\x00")


@pytest.mark.parametrize(("data", "message"), [
    (b"", "truncated"),
    (b"\x30", "truncated"),
    (b"\x30\x84\xff\xff\xff\xff", "length exceeds the data"),
    (b"\x30\x85\x00\x00\x00\x00\x01", "length field too long"),
    (b"\x04\x80\x00\x00", "indefinite length on a primitive value"),
    (b"\x30\x80" * (der.MAX_DEPTH + 1), "nesting too deep"),
    (b"\x30\x80\x04\x01", "length exceeds the data"),
    (b"\x30\x80\x04\x00", "truncated"),
])
def test_der_reader_refuses_bad_encodings(data, message):
    with pytest.raises(der.DerError, match=message):
        der.read_tlv(data)


def test_der_children_are_counted_and_bounded_by_their_parent():
    data = seq(*[b"\x05\x00"] * 5)
    top = der.read_tlv(data)
    with pytest.raises(der.DerError, match="too many elements"):
        der.child_list(data, top, max_count=4)
    lying = b"\x30\x04\x04\x05abcdef"
    with pytest.raises(der.DerError):
        der.child_list(lying, der.read_tlv(lying))


def test_pem_scanner_finds_blocks_and_notices_a_missing_end():
    text = (b"junk\n-----BEGIN A-----\nQUJD\n-----END A-----\n"
            b"-----BEGIN B-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: X,00\n\nREVG\n-----END B-----\n"
            b"-----BEGIN C-----\nR0hJ")
    blocks, more = pem_blocks(text, 10)
    assert [(block.label, block.complete) for block in blocks] == [("A", True), ("B", True), ("C", False)]
    assert blocks[0].decode() == b"ABC" and blocks[1].decode() == b"DEF"
    assert blocks[1].headers == {"Proc-Type": "4,ENCRYPTED", "DEK-Info": "X,00"}
    assert not more
    assert pem_blocks(text, 1) == ([blocks[0]], True)


@pytest.mark.parametrize(("key", "bits", "plaintext", "ciphertext"), [
    ("0000000000000000", 63, "0000000000000000", "ebb773f993278eff"),
    ("ffffffffffffffff", 64, "ffffffffffffffff", "278b27e42e2f0d49"),
    ("3000000000000000", 64, "1000000000000001", "30649edf9be7d2c2"),
    ("88", 64, "0000000000000000", "61a8a244adacccf0"),
    ("88bca90e90875a7f0f79c384627bafb2", 128, "0000000000000000", "2269552ab0f85ca6"),
])
def test_rc2_matches_the_rfc_2268_vectors(key, bits, plaintext, ciphertext):
    schedule = pbe._rc2_key_schedule(bytes.fromhex(key), bits)
    assert pbe._rc2_decrypt_block(schedule, bytes.fromhex(ciphertext)).hex() == plaintext


def test_rc2_cbc_agrees_with_cryptography_for_128_bit_keys():
    for _ in range(5):
        key, iv, plaintext = os.urandom(16), os.urandom(8), os.urandom(64)
        encryptor = Cipher(RC2(key), modes.CBC(iv)).encryptor()
        assert pbe.rc2_cbc_decrypt(key, 128, iv, encryptor.update(plaintext) + encryptor.finalize()) == plaintext


def test_pkcs12_kdf_matches_known_vectors():
    budget = pbe.WorkBudget()
    smeg, salt = pbe.bmp_password(b"smeg"), bytes.fromhex("0A58CF64530D823F")
    assert pbe.pkcs12_kdf("sha1", smeg, salt, 1, 1, 24, budget).hex().upper() == (
        "8AAAE6297B6CB04642AB5B077851284EB7128F1A2A7FBCA3")
    assert pbe.pkcs12_kdf("sha1", smeg, salt, 2, 1, 8, budget).hex().upper() == "79993DFE048D3B76"
    assert pbe.pkcs12_kdf("sha1", pbe.bmp_password(b"queeg"), bytes.fromhex("05DEC959ACFF72F7"), 1, 1000, 24,
                          budget).hex().upper() == "ED2034E36328830FF09DF1E1A07DD357185DAC0D4F9EB3D4"


def test_work_budget_refuses_before_working():
    budget = pbe.WorkBudget(10_000)
    budget.spend(4000, 2)
    with pytest.raises(ParseError, match="too expensive"):
        budget.spend(2001)
    with pytest.raises(ParseError, match="out of range"):
        budget.spend(pbe.MAX_KDF_ITERATIONS + 1)
    with pytest.raises(ParseError, match="out of range"):
        budget.spend(0)


def test_passwords_for_the_pkcs12_kdf():
    assert pbe.bmp_password(None) == b""
    assert pbe.bmp_password(b"") == b"\x00\x00"
    assert pbe.bmp_password("é".encode()) == b"\x00\xe9\x00\x00"
    assert pbe.bmp_password(b"\xff") == b"\x00\xff\x00\x00"


def test_clean_text_makes_any_string_storable():
    assert clean_text("a\x00b\nc\ud800") == "a\ufffdb\ufffdc\ufffd\ufffd\ufffd"
    assert clean_text("x" * 5000) == "x" * 1024
