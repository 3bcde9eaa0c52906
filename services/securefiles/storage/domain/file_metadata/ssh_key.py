"""Private keys: OpenSSH (`openssh-key-v1`) and PEM (PKCS#1, SEC1, DSA, PKCS#8, encrypted or not).

The OpenSSH container keeps the public key in the clear, so type, size and fingerprint are known even
for an encrypted key; the comment is read only from unencrypted keys (it sits in the private part).
OpenSSH keys are never decrypted (bcrypt rounds are chosen by the file). An encrypted PEM key is
decrypted only when a password is given, PKCS#8 through `pbe` (capped key derivation).
The fingerprint is what `ssh-keygen -l` prints: "SHA256:" + unpadded base64 of SHA-256(public key blob).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import struct
from typing import Any

from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    load_der_private_key,
    load_pem_private_key,
)

from . import der, pbe
from .model import FileMetadata, ParseError, clean_text
from .pem import PemBlock
from .x509_info import describe_key

OPENSSH_LABEL = "OPENSSH PRIVATE KEY"
OPENSSH_MAGIC = b"openssh-key-v1\x00"
PEM_KEY_FORMATS = {
    "RSA PRIVATE KEY": "PKCS#1",
    "EC PRIVATE KEY": "SEC1",
    "DSA PRIVATE KEY": "DSA",
    "PRIVATE KEY": "PKCS#8",
    "ENCRYPTED PRIVATE KEY": "PKCS#8",
}
KEY_LABELS = frozenset({OPENSSH_LABEL, *PEM_KEY_FORMATS})
_LABEL_KEY_TYPES = {"RSA PRIVATE KEY": "ssh-rsa", "DSA PRIVATE KEY": "ssh-dss", "EC PRIVATE KEY": "ecdsa"}
_ECDSA_BITS = {"ecdsa-sha2-nistp256": 256, "ecdsa-sha2-nistp384": 384, "ecdsa-sha2-nistp521": 521}
MAX_KEYS = 16
MAX_NAME_BYTES = 256
_PRIVATE_FIELDS = {  # fields after the key type in the private section: s = string/mpint, b = byte
    "ssh-rsa": "ssssss",
    "ssh-dss": "sssss",
    "ecdsa-sha2-nistp256": "sss",
    "ecdsa-sha2-nistp384": "sss",
    "ecdsa-sha2-nistp521": "sss",
    "ssh-ed25519": "ss",
    "ssh-ed448": "ss",
    "sk-ssh-ed25519@openssh.com": "ssbss",
    "sk-ecdsa-sha2-nistp256@openssh.com": "sssbss",
}


class _SshReader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, size: int) -> bytes:
        if size > len(self.data) - self.pos:
            raise ParseError("truncated SSH key")
        start = self.pos
        self.pos += size
        return self.data[start:self.pos]

    def u32(self) -> int:
        return int(struct.unpack(">I", self.take(4))[0])

    def string(self) -> bytes:
        return self.take(self.u32())

    def name(self) -> str:
        raw = self.string()
        if len(raw) > MAX_NAME_BYTES:
            raise ParseError("invalid SSH key")
        return raw.decode("ascii", "replace")


def fingerprint(blob: bytes) -> str:
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode("ascii").rstrip("=")


def public_blob_info(blob: bytes) -> dict[str, Any]:
    """key_type, key_size and fingerprint of an SSH public key blob."""
    reader = _SshReader(blob)
    key_type = reader.name()
    info: dict[str, Any] = {"key_type": clean_text(key_type, MAX_NAME_BYTES)}
    if key_type == "ssh-rsa":
        reader.string()
        info["key_size"] = int.from_bytes(reader.string(), "big").bit_length()
    elif key_type == "ssh-dss":
        info["key_size"] = int.from_bytes(reader.string(), "big").bit_length()
    elif key_type in _ECDSA_BITS:
        info["key_size"] = _ECDSA_BITS[key_type]
    elif key_type in ("ssh-ed25519", "sk-ssh-ed25519@openssh.com", "sk-ecdsa-sha2-nistp256@openssh.com"):
        info["key_size"] = 256
    elif key_type == "ssh-ed448":
        info["key_size"] = 448
    info["fingerprint"] = fingerprint(blob)
    return info


def _comment(private: bytes, public_type: str) -> str | None:
    """The comment of the first key of an unencrypted private section, if its layout checks out."""
    reader = _SshReader(private)
    if reader.u32() != reader.u32():
        raise ParseError("corrupt SSH private section")
    key_type = reader.name()
    fields = _PRIVATE_FIELDS.get(key_type)
    if fields is None or key_type != public_type:
        return None
    for field in fields:
        if field == "b":
            reader.take(1)
        else:
            reader.string()
    comment = reader.string()
    padding = private[reader.pos:]
    if padding != bytes(range(1, len(padding) + 1)):
        raise ParseError("corrupt SSH private section")
    return clean_text(comment.decode("utf-8", "replace"))


def parse_openssh(block: PemBlock) -> FileMetadata:
    metadata: dict[str, Any] = {"type": "ssh_private_key", "format": "OpenSSH"}
    try:
        if not block.complete:
            raise ParseError("truncated PEM block")
        try:
            data = block.decode()
        except ValueError as exc:
            raise ParseError("invalid base64") from exc
        if not data.startswith(OPENSSH_MAGIC):
            raise ParseError("not an openssh-key-v1 key")
        reader = _SshReader(data)
        reader.take(len(OPENSSH_MAGIC))
        cipher = reader.name()
        kdf = reader.name()
        kdf_options = reader.string()
        encrypted = cipher != "none"
        metadata["encrypted"] = encrypted
        if encrypted:
            metadata["cipher"] = clean_text(cipher, 64)
            metadata["kdf"] = clean_text(kdf, 64)
            if kdf == "bcrypt":
                options = _SshReader(kdf_options)
                options.string()
                metadata["kdf_rounds"] = options.u32()
        count = reader.u32()
        if not 1 <= count <= MAX_KEYS:
            raise ParseError("invalid number of keys")
        blob = reader.string()
        for _ in range(count - 1):
            reader.string()
        if count > 1:
            metadata["key_count"] = count
        metadata.update(public_blob_info(blob))
        private = reader.string()
        if not encrypted and count == 1:
            comment = _comment(private, metadata["key_type"])
            if comment is not None:
                metadata["comment"] = comment
    except ParseError as exc:
        metadata["parse_error"] = str(exc)
    return FileMetadata(metadata, None)


def _describe_private_key(key: object) -> dict[str, Any]:
    try:
        line = key.public_key().public_bytes(Encoding.OpenSSH, PublicFormat.OpenSSH)  # type: ignore[attr-defined]
        return public_blob_info(binascii.a2b_base64(line.split()[1]))
    except Exception:
        kind, size, curve = describe_key(key)
        info: dict[str, Any] = {"key_type": kind if curve is None else f"{kind}-{curve}"}
        if size is not None:
            info["key_size"] = size
        return info


_DEK_IV_HEX_DIGITS = {"AES-128-CBC": 32, "AES-192-CBC": 32, "AES-256-CBC": 32, "DES-EDE3-CBC": 16, "DES-CBC": 16}


def _valid_dek_info(cipher: str, iv: str) -> bool:
    """Checked before OpenSSL-compatible decryption sees it (a short IV once made it panic)."""
    digits = _DEK_IV_HEX_DIGITS.get(cipher.strip().upper())
    iv = iv.strip()
    return digits is not None and len(iv) == digits and all(char in "0123456789abcdefABCDEF" for char in iv)


def _pem_text(block: PemBlock) -> bytes:
    label = block.label.encode("ascii")
    return b"-----BEGIN " + label + b"-----" + block.body + b"-----END " + label + b"-----\n"


def parse_pem_key(block: PemBlock, password: bytes | None) -> FileMetadata:
    metadata: dict[str, Any] = {"type": "ssh_private_key", "format": PEM_KEY_FORMATS[block.label]}
    try:
        if not block.complete:
            raise ParseError("truncated PEM block")
        if block.label == "ENCRYPTED PRIVATE KEY":
            metadata["encrypted"] = True
            metadata.update(_encrypted_pkcs8(block, password))
        elif "ENCRYPTED" in block.headers.get("Proc-Type", ""):
            metadata["encrypted"] = True
            cipher, _, iv = block.headers.get("DEK-Info", "").partition(",")
            metadata["cipher"] = clean_text(cipher, 64)
            metadata["key_type"] = _LABEL_KEY_TYPES.get(block.label, "unknown")
            if not _valid_dek_info(cipher, iv):
                raise ParseError("invalid encryption header")
            if password:
                try:
                    key = load_pem_private_key(_pem_text(block), password, unsafe_skip_rsa_key_validation=True)
                except Exception:
                    key = None
                if key is None:
                    raise ParseError("wrong password")
                metadata.update(_describe_private_key(key))
        else:
            metadata["encrypted"] = False
            try:
                key = load_der_private_key(block.decode(), None, unsafe_skip_rsa_key_validation=True)
            except Exception as exc:
                raise ParseError("invalid private key") from exc
            metadata.update(_describe_private_key(key))
    except ParseError as exc:
        metadata["parse_error"] = str(exc)
    return FileMetadata(metadata, None)


def _encrypted_pkcs8(block: PemBlock, password: bytes | None) -> dict[str, Any]:
    try:
        data = block.decode()
        top = der.expect_sequence(der.read_tlv(data))
        parts = der.child_list(data, top, max_count=2)
        if len(parts) != 2:
            raise der.DerError("unexpected structure")
        alg = pbe.algorithm(data, parts[0])
        ciphertext = der.read_octets(data, parts[1], len(data))
    except (der.DerError, ValueError) as exc:
        raise ParseError("invalid encrypted private key") from exc
    info: dict[str, Any] = {"cipher": clean_text(pbe.describe(data, alg), 128)}
    if not password:
        return info
    try:
        pbe.check_cost(data, alg)
        plain = pbe.decrypt(data, alg, ciphertext, password, pbe.WorkBudget())
        key = load_der_private_key(plain, None, unsafe_skip_rsa_key_validation=True)
    except ParseError as exc:
        return {**info, "parse_error": str(exc)}
    except (pbe.WrongPassword, der.DerError, ValueError, TypeError):
        return {**info, "parse_error": "wrong password"}
    info.update(_describe_private_key(key))
    return info


def parse_key_block(block: PemBlock, password: bytes | None) -> FileMetadata:
    if block.label == OPENSSH_LABEL:
        return parse_openssh(block)
    return parse_pem_key(block, password)
