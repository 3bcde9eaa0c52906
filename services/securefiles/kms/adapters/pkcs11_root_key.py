"""A region root key inside a PKCS#11 token (an HSM; SoftHSM2 in tests), via python-pkcs11.

The key is an AES-256 secret key object, sensitive and not extractable: it never leaves the
token, and sealing or unsealing a key version is an AES-GCM operation the token performs. A key
that could be extracted is refused. One session is kept open and used by one thread at a time.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import pkcs11
from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass
from pkcs11.exceptions import (
    DeviceError,
    DeviceMemory,
    DeviceRemoved,
    NoSuchKey,
    NoSuchToken,
    PinIncorrect,
    PKCS11Error,
    SessionClosed,
    SessionHandleInvalid,
    TokenNotPresent,
    TokenNotRecognised,
    UserAlreadyLoggedIn,
)
from pkcs11.mechanisms import GCMParams

from securefiles.kms.domain.root_key import RootKeyMismatch, RootKeyUnavailable

_TAG_BITS = 128
# Failures of the token itself, not of the data: the key is there, the device is not.
_UNAVAILABLE = (DeviceError, DeviceMemory, DeviceRemoved, SessionClosed, SessionHandleInvalid, TokenNotPresent,
                TokenNotRecognised)


class Pkcs11ConfigError(ValueError):
    """The token, the key or the PIN is not as configured."""


@dataclass(frozen=True)
class Pkcs11Settings:
    module: str  # path of the PKCS#11 library (e.g. /usr/lib/softhsm/libsofthsm2.so)
    token_label: str
    key_label: str
    pin: str
    generate: bool = False  # create the key in the token if missing (development)


class Pkcs11RootKey:
    """`RootKey` held by a PKCS#11 token."""

    def __init__(self, settings: Pkcs11Settings) -> None:
        try:
            token = pkcs11.lib(settings.module).get_token(token_label=settings.token_label)
            try:
                self._session = token.open(user_pin=settings.pin, rw=settings.generate)
            except UserAlreadyLoggedIn:  # a login holds for the whole process, not one session
                self._session = token.open(rw=settings.generate)
        except NoSuchToken:
            raise Pkcs11ConfigError(f"no PKCS#11 token labelled {settings.token_label!r}") from None
        except PinIncorrect:
            raise Pkcs11ConfigError("the PKCS#11 PIN was refused") from None
        except (PKCS11Error, RuntimeError) as error:
            raise Pkcs11ConfigError(f"the PKCS#11 module cannot be used: {type(error).__name__}") from None
        self._key = self._find_or_generate(settings)
        if self._key[Attribute.EXTRACTABLE] or not self._key[Attribute.SENSITIVE]:
            self.close()
            raise Pkcs11ConfigError(f"root key {settings.key_label!r} must be sensitive and not extractable")
        self._lock = threading.Lock()

    def _find_or_generate(self, settings: Pkcs11Settings) -> Any:
        # Any: python-pkcs11 declares no encrypt/decrypt on SecretKey (they come from a mixin).
        try:
            return self._session.get_key(object_class=ObjectClass.SECRET_KEY, key_type=KeyType.AES,
                                         label=settings.key_label)
        except NoSuchKey:
            if not settings.generate:
                self.close()
                raise Pkcs11ConfigError(f"no AES key labelled {settings.key_label!r} in the token") from None
        return self._session.generate_key(KeyType.AES, 256, label=settings.key_label, store=True, template={
            Attribute.SENSITIVE: True, Attribute.EXTRACTABLE: False, Attribute.ENCRYPT: True,
            Attribute.DECRYPT: True, Attribute.TOKEN: True})

    def seal(self, nonce: bytes, material: bytes, aad: bytes) -> bytes:
        with self._lock:
            try:
                return bytes(self._key.encrypt(material, mechanism=Mechanism.AES_GCM,
                                               mechanism_param=GCMParams(nonce, aad, _TAG_BITS)))
            except _UNAVAILABLE:
                raise RootKeyUnavailable() from None

    def unseal(self, nonce: bytes, sealed: bytes, aad: bytes) -> bytes:
        with self._lock:
            try:
                return bytes(self._key.decrypt(sealed, mechanism=Mechanism.AES_GCM,
                                               mechanism_param=GCMParams(nonce, aad, _TAG_BITS)))
            except _UNAVAILABLE:
                raise RootKeyUnavailable() from None
            except PKCS11Error:
                # Tokens report a failed tag as CKR_ENCRYPTED_DATA_INVALID or a general error.
                raise RootKeyMismatch() from None

    def close(self) -> None:
        try:
            self._session.close()
        except PKCS11Error:
            pass
