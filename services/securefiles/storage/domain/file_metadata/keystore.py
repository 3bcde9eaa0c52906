"""Java keystores as used for Android signing: JKS, JCEKS, and PKCS#12 files named like keystores.

JKS/JCEKS layout (all integers big-endian):
    magic u4 (FEEDFEED JKS, CECECECE JCEKS) | version u4 (1 or 2) | entry count u4 | entries | SHA-1 (20)
    entry = tag u4 | alias (u2 length + modified UTF-8) | created u8 (ms since 1970) | body
      tag 1 private key:  u4 length + encrypted key | u4 chain length | certificates
      tag 2 trusted cert: one certificate
      tag 3 secret key (JCEKS only): a Java-serialized SealedObject; its length is not stored, so
                          the stream is walked to its end (java_serialization.py)
    certificate = (version 2: type as u2-length UTF) | u4 length + DER bytes

Certificates are stored in the clear, so no password is needed; the keyed SHA-1 at the end is not checked.
The keystore expires when its first entry does (`entry_expiry`, the rule every keystore kind shares).
"""

from __future__ import annotations

import struct
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography import x509

from .java_serialization import end_of_object
from .model import MAX_CERTIFICATES, FileMetadata, ParseError, clean_text, rfc3339
from .pkcs12_info import keystore_expiry, looks_like_pfx, parse_pkcs12
from .x509_info import certificate_fields, load_certificate

JKS_MAGIC = b"\xfe\xed\xfe\xed"
JCEKS_MAGIC = b"\xce\xce\xce\xce"
MAX_ENTRIES = 10_000
MAX_CHAIN_LENGTH = 100
MAX_ALIAS_CHARS = 256
DIGEST_BYTES = 20
_ENTRY_TYPES = {1: "private_key", 2: "trusted_certificate", 3: "secret_key"}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def remaining(self) -> int:
        return len(self.data) - self.pos

    def skip(self, size: int) -> None:
        if size > self.remaining():
            raise ParseError("truncated keystore")
        self.pos += size

    def take(self, size: int) -> bytes:
        start = self.pos
        self.skip(size)
        return self.data[start:self.pos]

    def u2(self) -> int:
        return int(struct.unpack(">H", self.take(2))[0])

    def u4(self) -> int:
        return int(struct.unpack(">I", self.take(4))[0])

    def i8(self) -> int:
        return int(struct.unpack(">q", self.take(8))[0])

    def utf(self) -> str:
        raw = self.take(self.u2())
        return clean_text(java_utf(raw), MAX_ALIAS_CHARS)


def java_utf(raw: bytes) -> str:
    """Java's modified UTF-8: NUL as C0 80, characters beyond the BMP as two encoded surrogates."""
    raw = raw.replace(b"\xc0\x80", b"\x00")
    try:
        text = raw.decode("utf-8", "surrogatepass")
    except UnicodeDecodeError:
        return raw.decode("utf-8", "replace")
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")


def _created(milliseconds: int) -> str | None:
    try:
        return rfc3339(_EPOCH + timedelta(milliseconds=milliseconds))
    except (OverflowError, ValueError):
        return None


class _Keystore:
    def __init__(self, data: bytes, version: int) -> None:
        self.reader = _Reader(data)
        self.version = version
        self.entries: list[dict[str, Any]] = []
        self.certificates: list[dict[str, Any]] = []
        self.entry_certificates: list[x509.Certificate] = []  # each entry's own certificate
        self.unreadable = 0
        self.too_many_certs = False

    def certificate(self, alias: str, chain_index: int | None) -> None:
        reader = self.reader
        kind = reader.utf() if self.version == 2 else "X.509"
        body = reader.take(reader.u4())
        if kind != "X.509":
            return
        if len(self.certificates) + self.unreadable >= MAX_CERTIFICATES:
            self.too_many_certs = True
            return
        try:
            cert = load_certificate(body)
        except ParseError:
            self.unreadable += 1
            return
        entry: dict[str, Any] = {"alias": alias}
        if chain_index is not None:
            entry["chain_index"] = chain_index
        entry.update(certificate_fields(cert))
        self.certificates.append(entry)
        if chain_index in (None, 0):  # the entry's own certificate, not a CA above it
            self.entry_certificates.append(cert)

    def entry(self, jceks: bool) -> None:
        reader = self.reader
        tag = reader.u4()
        if tag not in _ENTRY_TYPES or (tag == 3 and not jceks):
            raise ParseError("unknown keystore entry type")
        alias = reader.utf()
        created = _created(reader.i8())
        record: dict[str, Any] = {"alias": alias, "entry_type": _ENTRY_TYPES[tag], "created": created}
        self.entries.append(record)
        if tag == 3:
            reader.pos = end_of_object(reader.data, reader.pos)
            return
        if tag == 1:
            reader.skip(reader.u4())
            chain = reader.u4()
            if chain > MAX_CHAIN_LENGTH:
                raise ParseError("certificate chain too long")
            record["certificate_chain_length"] = chain
            for index in range(chain):
                self.certificate(alias, index)
        else:
            self.certificate(alias, None)


def parse_java_keystore(data: bytes) -> FileMetadata:
    """JKS or JCEKS (by magic); never raises."""
    jceks = data[:4] == JCEKS_MAGIC
    metadata: dict[str, Any] = {"type": "android_keystore", "format": "JCEKS" if jceks else "JKS"}
    reader = _Reader(data)
    try:
        reader.skip(4)
        version = reader.u4()
        metadata["version"] = version
        if version not in (1, 2):
            raise ParseError("unsupported keystore version")
        count = reader.u4()
        if count > MAX_ENTRIES:
            raise ParseError("keystore declares too many entries")
        metadata["entry_count"] = count
    except ParseError as exc:
        return FileMetadata({**metadata, "parse_error": str(exc)}, None)
    store = _Keystore(data, version)
    store.reader.pos = reader.pos
    problem = None
    try:
        for _ in range(count):
            store.entry(jceks)
        if store.reader.remaining() < DIGEST_BYTES:
            problem = "truncated keystore"
    except ParseError as exc:
        problem = str(exc)
    metadata["aliases"] = [entry["alias"] for entry in store.entries]
    metadata["entries"] = store.entries
    metadata["certificates"] = store.certificates
    if problem is None and store.too_many_certs:
        problem = f"more than {MAX_CERTIFICATES} certificates; only the first were read"
    if problem is None and store.unreadable:
        problem = f"{store.unreadable} certificate(s) could not be parsed"
    if problem is not None:
        metadata["parse_error"] = problem
    return FileMetadata(metadata, keystore_expiry(store.entry_certificates))


def parse_keystore(data: bytes, password: bytes | None) -> FileMetadata:
    if data[:4] in (JKS_MAGIC, JCEKS_MAGIC):
        return parse_java_keystore(data)
    if looks_like_pfx(data):
        return parse_pkcs12(data, password, "android_keystore", {"format": "PKCS12"})
    return FileMetadata({"type": "android_keystore", "parse_error": "not a JKS, JCEKS or PKCS#12 keystore"}, None)
