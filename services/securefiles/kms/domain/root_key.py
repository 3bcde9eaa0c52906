"""The region root key: what seals each key version's material (AES-256-GCM).

Two holders behind one small interface: a key read from a secret file (`FileRootKey`, the
development default), or a non-extractable key inside an HSM (`kms/adapters/pkcs11_root_key.py`),
where the key never enters this process and every seal/unseal is an operation of the token.
A cloud KMS or Vault Transit would be a third holder of the same shape (see the README).
"""

from __future__ import annotations

from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

ROOT_KEY_BYTES = 32


class RootKeyMismatch(Exception):
    """The sealed material does not open under this root key (wrong key, or tampered)."""


class RootKeyUnavailable(Exception):
    """The holder of the root key cannot be reached (an HSM session lost)."""


class RootKey(Protocol):
    """AES-256-GCM under the root key: `seal` returns ciphertext ‖ tag; `unseal` raises
    `RootKeyMismatch` when the tag does not verify."""

    def seal(self, nonce: bytes, material: bytes, aad: bytes) -> bytes: ...

    def unseal(self, nonce: bytes, sealed: bytes, aad: bytes) -> bytes: ...


class FileRootKey:
    """A root key held in memory, read from a secret file."""

    def __init__(self, key: bytes) -> None:
        if len(key) != ROOT_KEY_BYTES:
            raise ValueError("root key must be 32 bytes")
        self._aead = AESGCM(key)

    def seal(self, nonce: bytes, material: bytes, aad: bytes) -> bytes:
        return self._aead.encrypt(nonce, material, aad)

    def unseal(self, nonce: bytes, sealed: bytes, aad: bytes) -> bytes:
        try:
            return self._aead.decrypt(nonce, sealed, aad)
        except InvalidTag:
            raise RootKeyMismatch() from None
