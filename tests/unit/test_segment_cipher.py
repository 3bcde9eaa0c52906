"""Segmented AES-256-GCM for file content: round trips, the documented format, tamper detection."""

from __future__ import annotations

import os

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from hypothesis import given, settings
from hypothesis import strategies as st

from securefiles.storage.domain.segment_cipher import (
    HEADER_BYTES,
    SegmentDecryptor,
    SegmentEncryptor,
    SegmentIntegrityError,
    ciphertext_size,
    segment_spans,
)

SEG = 64  # small segments keep the tests fast while still crossing many boundaries
TAG = 16
KEY = bytes(range(32))
AD = b"projects/demo/secureFiles/f-1#v1"


def encrypt(plaintext: bytes, chunk_sizes=(1 << 30,), key: bytes = KEY, ad: bytes = AD, seg: int = SEG) -> bytes:
    """Feed `plaintext` to the encryptor in chunks (cycling through `chunk_sizes`) and return the blob."""
    enc = SegmentEncryptor(key, ad, segment_bytes=seg)
    parts = [enc.header.encode()]
    offset = 0
    i = 0
    while offset < len(plaintext):
        size = chunk_sizes[i % len(chunk_sizes)]
        parts.extend(enc.update(plaintext[offset : offset + size]))
        offset += size
        i += 1
    parts.append(enc.finalize())
    return b"".join(parts)


def decrypt(blob: bytes, key: bytes = KEY, ad: bytes = AD, seg: int = SEG) -> bytes:
    """Decrypt the way storage does: header, then the segments laid out by `segment_spans`."""
    dec = SegmentDecryptor(key, ad, blob[:HEADER_BYTES], segment_bytes=seg)
    out = []
    for offset, length, last in segment_spans(len(blob), dec.header.segment_bytes):
        out.append(dec.decrypt(blob[offset : offset + length], last))
    return b"".join(out)


def reference_decrypt(blob: bytes, key: bytes, ad: bytes) -> bytes:
    """An independent reading of the documented format, using only `cryptography` primitives."""
    assert blob[:4] == b"SFS1"
    segment_size = int.from_bytes(blob[4:8], "big")
    salt = blob[8:40]
    prefix = blob[40:47]
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=salt,
                   info=b"securefiles.segment.v1\x00" + ad).derive(key)
    aead = AESGCM(derived)
    body = blob[47:]
    stride = segment_size + 16
    segments = [body[i : i + stride] for i in range(0, len(body), stride)]
    plaintext = b""
    for index, segment in enumerate(segments):
        last = index == len(segments) - 1
        nonce = prefix + index.to_bytes(4, "big") + (b"\x01" if last else b"\x00")
        plaintext += aead.decrypt(nonce, segment, None)
    return plaintext


def segments_of(blob: bytes) -> tuple[bytes, list[bytes]]:
    """(header, [ciphertext segment, ...]) split with the real layout function."""
    return blob[:HEADER_BYTES], [blob[o : o + n] for o, n, _ in segment_spans(len(blob), SEG)]


SIZES = [0, 1, SEG - 1, SEG, SEG + 1, 2 * SEG, 3 * SEG + 17, 7 * SEG]
CHUNKINGS = [(1 << 30,), (1,), (SEG - 1,), (SEG,), (SEG + 1,), (3 * SEG,), (5, 200, 1, SEG)]


# -- round trips ----------------------------------------------------------------------


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("chunks", CHUNKINGS, ids=str)
def test_round_trip_at_segment_boundaries(size, chunks):
    plaintext = os.urandom(size)
    blob = encrypt(plaintext, chunks)
    assert decrypt(blob) == plaintext
    assert len(blob) == ciphertext_size(size, SEG)


@settings(max_examples=75, deadline=None)
@given(
    plaintext=st.binary(max_size=6 * SEG + 5),
    chunks=st.lists(st.integers(min_value=0, max_value=3 * SEG), min_size=1, max_size=6).filter(any),
    seg=st.sampled_from([1, 7, SEG]),
)
def test_round_trip_any_chunking(plaintext, chunks, seg):
    blob = encrypt(plaintext, tuple(chunks), seg=seg)
    dec = SegmentDecryptor(KEY, AD, blob[:HEADER_BYTES], segment_bytes=seg)
    got = b"".join(dec.decrypt(blob[o : o + n], last) for o, n, last in segment_spans(len(blob), seg))
    assert got == plaintext
    assert len(blob) == ciphertext_size(len(plaintext), seg)


def test_empty_update_calls_do_not_change_the_result():
    plaintext = os.urandom(2 * SEG + 3)
    enc = SegmentEncryptor(KEY, AD, segment_bytes=SEG)
    parts = [enc.header.encode(), *enc.update(b"")]
    parts += enc.update(plaintext[:SEG])
    parts += enc.update(b"")
    parts += enc.update(plaintext[SEG:])
    parts.append(enc.finalize())
    assert decrypt(b"".join(parts)) == plaintext


def test_ciphertext_size_of_default_segments():
    mib = 1024 * 1024
    assert ciphertext_size(0) == HEADER_BYTES + TAG
    assert ciphertext_size(mib) == HEADER_BYTES + mib + TAG
    assert ciphertext_size(mib + 1) == HEADER_BYTES + mib + 1 + 2 * TAG


def test_encryptor_refuses_use_after_finalize():
    enc = SegmentEncryptor(KEY, AD, segment_bytes=SEG)
    enc.finalize()
    with pytest.raises(ValueError):
        enc.update(b"more")
    with pytest.raises(ValueError):
        enc.finalize()


def test_same_plaintext_encrypts_differently_each_time():
    plaintext = os.urandom(3 * SEG)
    first, second = encrypt(plaintext), encrypt(plaintext)
    assert first[8:HEADER_BYTES] != second[8:HEADER_BYTES]  # fresh salt and nonce prefix
    assert first[HEADER_BYTES:] != second[HEADER_BYTES:]
    assert decrypt(first) == decrypt(second) == plaintext


# -- the documented format ------------------------------------------------------------


@pytest.mark.parametrize("size", SIZES)
def test_reference_decryptor_reads_what_the_encryptor_wrote(size):
    plaintext = os.urandom(size)
    blob = encrypt(plaintext, (SEG - 3,))
    assert blob[:4] == b"SFS1"
    assert int.from_bytes(blob[4:8], "big") == SEG
    assert HEADER_BYTES == 4 + 4 + 32 + 7
    assert reference_decrypt(blob, KEY, AD) == plaintext


def test_reference_decryptor_needs_the_same_associated_data():
    blob = encrypt(b"secret")
    with pytest.raises(InvalidTag):
        reference_decrypt(blob, KEY, b"projects/demo/secureFiles/f-1#v2")


# -- tampering --------------------------------------------------------------------------


def multi_segment_blob() -> tuple[bytes, bytes]:
    plaintext = os.urandom(3 * SEG + 10)  # three full segments and a partial last one
    return plaintext, encrypt(plaintext)


def test_flipping_any_single_byte_is_detected():
    _, blob = multi_segment_blob()
    for position in range(len(blob)):
        for mask in (0x01, 0x80):
            tampered = bytearray(blob)
            tampered[position] ^= mask
            with pytest.raises(SegmentIntegrityError):
                decrypt(bytes(tampered))


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_any_xor_of_any_byte_is_detected(data):
    plaintext = data.draw(st.binary(min_size=0, max_size=4 * SEG))
    blob = encrypt(plaintext)
    position = data.draw(st.integers(min_value=0, max_value=len(blob) - 1))
    mask = data.draw(st.integers(min_value=1, max_value=255))
    tampered = bytearray(blob)
    tampered[position] ^= mask
    with pytest.raises(SegmentIntegrityError):
        decrypt(bytes(tampered))


def test_changing_the_segment_size_in_the_header_of_a_small_file_is_detected():
    blob = bytearray(encrypt(b"a small secret"))
    blob[7] ^= 0x01  # segment size 64 -> 65
    with pytest.raises(SegmentIntegrityError):
        decrypt(bytes(blob))


@pytest.mark.parametrize("cut", [1, TAG - 1, TAG, SEG // 2])
def test_truncating_the_last_segment_is_detected(cut):
    _, blob = multi_segment_blob()
    with pytest.raises(SegmentIntegrityError):
        decrypt(blob[:-cut])


def test_truncating_a_whole_last_segment_is_detected():
    plaintext = os.urandom(3 * SEG)
    blob = encrypt(plaintext)
    header, segments = segments_of(blob)
    assert len(segments) == 3
    with pytest.raises(SegmentIntegrityError):
        decrypt(header + b"".join(segments[:-1]))


@pytest.mark.parametrize("size", [0, 5, SEG])
@pytest.mark.parametrize("keep", [0, HEADER_BYTES - 1, HEADER_BYTES, HEADER_BYTES + TAG - 1])
def test_truncating_to_the_header_or_less_is_detected(size, keep):
    blob = encrypt(os.urandom(size))
    with pytest.raises(SegmentIntegrityError):
        decrypt(blob[:keep])


@pytest.mark.parametrize("dropped", [0, 1, 2])
def test_dropping_a_segment_is_detected(dropped):
    _, blob = multi_segment_blob()
    header, segments = segments_of(blob)
    del segments[dropped]
    with pytest.raises(SegmentIntegrityError):
        decrypt(header + b"".join(segments))


@pytest.mark.parametrize("extra", [b"\x00", os.urandom(TAG), os.urandom(SEG + TAG), os.urandom(100)])
def test_appending_bytes_is_detected(extra):
    _, blob = multi_segment_blob()
    with pytest.raises(SegmentIntegrityError):
        decrypt(blob + extra)


def test_appending_a_copy_of_a_segment_is_detected():
    _, blob = multi_segment_blob()
    header, segments = segments_of(blob)
    for copied in (segments[0], segments[-1]):
        with pytest.raises(SegmentIntegrityError):
            decrypt(blob + copied)
        with pytest.raises(SegmentIntegrityError):
            decrypt(header + b"".join(segments[:-1]) + copied + segments[-1])


def test_swapping_two_segments_is_detected():
    _, blob = multi_segment_blob()
    header, segments = segments_of(blob)
    segments[0], segments[1] = segments[1], segments[0]
    with pytest.raises(SegmentIntegrityError):
        decrypt(header + b"".join(segments))


def test_segments_of_another_encryption_of_the_same_file_do_not_splice():
    plaintext = os.urandom(2 * SEG + 10)
    first, second = encrypt(plaintext), encrypt(plaintext)
    h1, s1 = segments_of(first)
    h2, s2 = segments_of(second)
    with pytest.raises(SegmentIntegrityError):
        decrypt(h1 + s1[0] + s2[1] + s1[2])
    with pytest.raises(SegmentIntegrityError):
        decrypt(h2 + b"".join(s1))


@pytest.mark.parametrize("other_ad", [
    b"projects/demo/secureFiles/f-2#v1",  # another file
    b"projects/demo/secureFiles/f-1#v2",  # another version of the same file
    b"projects/other/secureFiles/f-1#v1",  # same id in another project
    b"",
])
def test_blob_does_not_decrypt_for_another_file(other_ad):
    _, blob = multi_segment_blob()
    with pytest.raises(SegmentIntegrityError):
        decrypt(blob, ad=other_ad)


def test_blob_does_not_decrypt_with_another_data_key():
    _, blob = multi_segment_blob()
    with pytest.raises(SegmentIntegrityError):
        decrypt(blob, key=os.urandom(32))


def test_empty_file_is_authenticated_too():
    blob = encrypt(b"")
    assert decrypt(blob) == b""
    with pytest.raises(SegmentIntegrityError):
        decrypt(blob, key=os.urandom(32))
    with pytest.raises(SegmentIntegrityError):
        decrypt(blob, ad=b"projects/demo/secureFiles/other#v1")
