"""Typed, non-secret metadata of an uploaded file's plaintext, parsed in memory.

    parse_file_metadata(name, data, password=None) -> FileMetadata(metadata, expires_at)

Types: "x509", "pkcs12", "provisioning_profile", "android_keystore", "ssh_private_key", "ssh_public_key",
"unknown".
The content decides where it can (keystore magic, PKCS#12 / CMS / certificate DER shapes, PEM labels);
the file name's extension decides otherwise, and names the type reported when parsing fails.
The function never raises: a malformed file gives the best type guess with a short "parse_error".
Parsing is bounded in time and memory (see the caps in each module); inputs over `MAX_PARSE_BYTES`
are not parsed. The password is used only to open the file and is never part of the result.
"""

from __future__ import annotations

from .keystore import JCEKS_MAGIC, JKS_MAGIC, parse_java_keystore, parse_keystore
from .model import MAX_CERTIFICATES, FileMetadata, ParseError
from .pem import looks_like_pem, pem_blocks
from .pkcs12_info import looks_like_pfx, parse_pkcs12
from .provisioning_profile import looks_like_signed_data, parse_provisioning_profile
from .ssh_key import KEY_LABELS, parse_key_block
from .ssh_public_key import looks_like_ssh_public_key, parse_ssh_public_keys
from .x509_info import CERTIFICATE_LABELS, parse_der_certificate, parse_pem_certificates

__all__ = ["MAX_PARSE_BYTES", "FileMetadata", "parse_file_metadata"]

MAX_PARSE_BYTES = 16 * 1024 * 1024
MAX_PEM_BLOCKS = 2 * MAX_CERTIFICATES

_EXTENSION_TYPES = {
    "cer": "x509",
    "crt": "x509",
    "pem": "x509",
    "der": "x509",
    "p12": "pkcs12",
    "pfx": "pkcs12",
    "mobileprovision": "provisioning_profile",
    "provisionprofile": "provisioning_profile",
    "jks": "android_keystore",
    "keystore": "android_keystore",
    "jceks": "android_keystore",
    "key": "ssh_private_key",
    "pub": "ssh_public_key",
}
_SSH_KEY_NAMES = frozenset({"id_rsa", "id_dsa", "id_ecdsa", "id_ed25519", "id_ecdsa_sk", "id_ed25519_sk"})
_SSH_PUBLIC_KEY_NAMES = frozenset({"authorized_keys", "authorized_keys2"})


def type_from_name(name: str) -> str:
    """The type a file name suggests: its extension, or a conventional SSH key name."""
    lower = name.lower() if isinstance(name, str) else ""
    if lower in _SSH_KEY_NAMES:
        return "ssh_private_key"
    if lower in _SSH_PUBLIC_KEY_NAMES:
        return "ssh_public_key"
    base, dot, extension = lower.rpartition(".")
    return _EXTENSION_TYPES.get(extension, "unknown") if dot and base else "unknown"


def _failed(type_name: str, message: str) -> FileMetadata:
    if type_name == "unknown":
        return FileMetadata({"type": "unknown"}, None)
    return FileMetadata({"type": type_name, "parse_error": message}, None)


def parse_file_metadata(name: str, data: bytes, password: bytes | None = None) -> FileMetadata:
    """Describe a file (see the module docstring); never raises."""
    try:
        return _parse(name, bytes(data), password if isinstance(password, bytes) else None)
    except Exception:  # the last line of defence: a bug must not fail an upload
        return _failed(type_from_name(name), "could not parse file")
    except BaseException as exc:  # a panic in a native (Rust) parser is a BaseException
        if type(exc).__name__ != "PanicException":
            raise
        return _failed(type_from_name(name), "could not parse file")


def _parse(name: str, data: bytes, password: bytes | None) -> FileMetadata:
    guess = type_from_name(name)
    if len(data) > MAX_PARSE_BYTES:
        return FileMetadata({"type": "unknown", "parse_error": "too large to parse"}, None)
    if data[:4] in (JKS_MAGIC, JCEKS_MAGIC):
        return parse_java_keystore(data)
    if data[:1] == b"\x30":
        if looks_like_pfx(data):
            if guess == "android_keystore":
                return parse_keystore(data, password)
            return parse_pkcs12(data, password)
        if looks_like_signed_data(data) and guess in ("provisioning_profile", "unknown"):
            return parse_provisioning_profile(data)
        try:
            return parse_der_certificate(data)
        except ParseError:
            pass
    if looks_like_ssh_public_key(data):
        return parse_ssh_public_keys(data)
    if looks_like_pem(data):
        blocks, more = pem_blocks(data, MAX_PEM_BLOCKS)
        if any(block.label in CERTIFICATE_LABELS for block in blocks):
            return parse_pem_certificates(blocks, more)
        keys = [block for block in blocks if block.label in KEY_LABELS]
        if keys:
            return parse_key_block(keys[0], password)
        if guess in ("x509", "ssh_private_key"):
            return _failed(guess, "no certificate found" if guess == "x509" else "no private key found")
    return _by_guess(guess, data, password)


def _by_guess(guess: str, data: bytes, password: bytes | None) -> FileMetadata:
    if guess == "x509":
        return _failed(guess, "invalid certificate")
    if guess == "pkcs12":
        return parse_pkcs12(data, password)
    if guess == "provisioning_profile":
        return parse_provisioning_profile(data)
    if guess == "android_keystore":
        return parse_keystore(data, password)
    if guess == "ssh_private_key":
        return _failed(guess, "no private key found")
    if guess == "ssh_public_key":
        return _failed(guess, "no public key found")
    return FileMetadata({"type": "unknown"}, None)
