"""A region's key ring: versioned keys sealed by the region root key, wrapping data keys.

Hierarchy: root key (a secret file, or an HSM: `root_key.RootKey`) seals each key version's
material; key versions wrap data keys; data keys (per file version) encrypt content in
storage. Two regions never share material: each ring has its own root key and its own database.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from securefiles.common.clock import Clock, utcnow
from securefiles.common.errors import (
    DataLoss,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    SecureFilesError,
    Unavailable,
)
from securefiles.common.resource_names import key_version_name
from securefiles.kms.domain.root_key import ROOT_KEY_BYTES, FileRootKey, RootKey, RootKeyMismatch, RootKeyUnavailable
from securefiles.kms.domain.wrapped_key import (
    DATA_KEY_BYTES,
    NONCE_BYTES,
    WrappedKey,
    data_key_aad,
    version_material_aad,
)

PRIMARY_TTL = 1.0


def deployment_principal(deployment_id: str) -> str:
    """Who made a version rotated on deploy."""
    return f"deployment:{deployment_id}"


class KeyState(StrEnum):
    PRIMARY = "PRIMARY"
    ENABLED = "ENABLED"
    DISABLED = "DISABLED"
    DESTROYED = "DESTROYED"


@dataclass(frozen=True)
class Rewrapped:
    """A data key re-wrapped under the primary version."""

    wrapped: bytes
    primary: KeyVersionRecord
    previous: KeyVersionRecord


@dataclass(frozen=True)
class KeyVersionRecord:
    """A key version as stored: its material sealed under the root key (None once destroyed)."""

    region: str
    version: int
    state: KeyState
    sealed_material: bytes | None
    created_at: dt.datetime
    created_by: str
    reason: str
    deployment_id: str | None

    @property
    def name(self) -> str:
        return key_version_name(self.region, self.version)


Sealer = Callable[[int], bytes]


class KeyVersionStore(Protocol):
    """Persistence of key versions (one row per version, one PRIMARY per region)."""

    def list_versions(self, region: str) -> list[KeyVersionRecord]: ...

    def versions_page(self, region: str, before: int | None, limit: int) -> list[KeyVersionRecord]:
        """At most `limit` versions below `before` (all, when None), newest first."""
        ...

    def get_version(self, region: str, version: int) -> KeyVersionRecord | None: ...

    def count_by_state(self, region: str) -> dict[KeyState, int]:
        """How many versions the region has in each state (states with none left out)."""
        ...

    def primary(self, region: str) -> KeyVersionRecord | None: ...

    def add_primary(
        self, region: str, seal: Sealer, created_by: str, reason: str, deployment_id: str | None,
        now: dt.datetime,
    ) -> tuple[KeyVersionRecord, bool]:
        """Atomically add version max+1 as PRIMARY and demote the old one to ENABLED.

        With a deployment id that already made a version, return that one unchanged
        (created = False): rotation on deploy happens once per deployment.
        """
        ...

    def set_state(self, region: str, version: int, state: KeyState, erase_material: bool) -> KeyVersionRecord:
        ...


def load_root_key(raw: bytes) -> bytes:
    """Accept the 32 raw bytes or their base64 text (as `securefiles up` writes it)."""
    if len(raw) == ROOT_KEY_BYTES:
        return raw
    try:
        key = base64.b64decode(raw.strip(), validate=True)
    except (binascii.Error, ValueError):
        key = b""
    if len(key) != ROOT_KEY_BYTES:
        raise ValueError("root key must be 32 bytes, raw or base64")
    return key


class KeyRing:
    """Envelope encryption for one region."""

    def __init__(
        self,
        region: str,
        root_key: RootKey | bytes,
        store: KeyVersionStore,
        clock: Clock = utcnow,
    ) -> None:
        self.region = region
        self._root: RootKey = FileRootKey(root_key) if isinstance(root_key, bytes) else root_key
        self._store = store
        self._clock = clock
        self._ciphers: dict[int, AESGCM] = {}
        # Which version is primary is re-read at most every `PRIMARY_TTL` seconds (a data key
        # wrapped by the previous primary meanwhile is still valid and gets rewrapped). A
        # version's state is read on every unwrap: disable and destroy apply at once.
        self._primary_cache: tuple[float, KeyVersionRecord] | None = None

    # -- versions ---------------------------------------------------------------------

    def _seal_new_material(self, version: int) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        material = AESGCM.generate_key(bit_length=256)
        return nonce + self._root.seal(nonce, material, version_material_aad(self.region, version))

    def _cipher(self, record: KeyVersionRecord) -> AESGCM:
        cipher = self._ciphers.get(record.version)
        if cipher is None:
            if record.sealed_material is None:
                raise DataLoss("key version material was destroyed", reason="KEY_DESTROYED")
            sealed = record.sealed_material
            try:
                material = self._root.unseal(
                    sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], version_material_aad(self.region, record.version)
                )
            except RootKeyMismatch:
                raise DataLoss("key version cannot be unsealed by this region's root key",
                               reason="ROOT_KEY_MISMATCH") from None
            except RootKeyUnavailable:
                raise Unavailable("the region's root key cannot be reached; retry",
                                  reason="ROOT_KEY_UNAVAILABLE") from None
            cipher = AESGCM(material)
            self._ciphers[record.version] = cipher
        return cipher

    def ensure_deployment_version(self, deployment_id: str) -> tuple[KeyVersionRecord, bool]:
        """Rotation on deploy: one new primary per deployment id, idempotent."""
        return self._store.add_primary(
            self.region, self._seal_new_material, deployment_principal(deployment_id),
            "rotation on deploy", deployment_id, self._clock(),
        )

    def rotate(self, created_by: str, reason: str) -> KeyVersionRecord:
        """Operator rotation: a new primary version."""
        record, _ = self._store.add_primary(
            self.region, self._seal_new_material, created_by, reason or "operator rotation", None, self._clock()
        )
        self._forget()
        return record

    def list_versions(self) -> list[KeyVersionRecord]:
        return self._store.list_versions(self.region)

    def versions_page(self, before: int | None, limit: int) -> list[KeyVersionRecord]:
        """A page of the ring's versions, newest first: a ring grows by one version per deploy."""
        return self._store.versions_page(self.region, before, limit)

    def _forget(self) -> None:
        self._primary_cache = None

    def _existing(self, version: int) -> KeyVersionRecord:
        record = self._store.get_version(self.region, version)
        if record is None:
            raise NotFound(f"key version {version} does not exist in region {self.region}",
                           reason="KEY_VERSION_NOT_FOUND")
        return record

    def disable(self, version: int) -> KeyVersionRecord:
        record = self._existing(version)
        if record.state is KeyState.PRIMARY:
            raise FailedPrecondition("the primary version cannot be disabled; rotate first",
                                     reason="KEY_VERSION_IS_PRIMARY")
        if record.state is KeyState.DESTROYED:
            raise FailedPrecondition("key version is destroyed", reason="KEY_DESTROYED")
        self._forget()
        return self._store.set_state(self.region, version, KeyState.DISABLED, erase_material=False)

    def enable(self, version: int) -> KeyVersionRecord:
        record = self._existing(version)
        if record.state is KeyState.DESTROYED:
            raise FailedPrecondition("key version is destroyed", reason="KEY_DESTROYED")
        if record.state is KeyState.PRIMARY:
            return record
        self._forget()
        return self._store.set_state(self.region, version, KeyState.ENABLED, erase_material=False)

    def destroy(self, version: int) -> KeyVersionRecord:
        record = self._existing(version)
        if record.state is KeyState.PRIMARY:
            raise FailedPrecondition("the primary version cannot be destroyed; rotate first",
                                     reason="KEY_VERSION_IS_PRIMARY")
        self._ciphers.pop(version, None)
        self._forget()
        if record.state is KeyState.DESTROYED:
            return record
        return self._store.set_state(self.region, version, KeyState.DESTROYED, erase_material=True)

    # -- data keys --------------------------------------------------------------------

    def _primary(self) -> KeyVersionRecord:
        now = time.monotonic()
        if self._primary_cache is not None and now - self._primary_cache[0] < PRIMARY_TTL:
            return self._primary_cache[1]
        record = self._store.primary(self.region)
        if record is not None:
            self._primary_cache = (now, record)
        if record is None:
            raise FailedPrecondition(f"region {self.region} has no primary key version",
                                     reason="NO_PRIMARY_KEY_VERSION")
        return record

    def require_usable_primary(self) -> KeyVersionRecord:
        """Readiness: the region has a primary version (read now, not cached) that the root key
        unseals; FAILED_PRECONDITION or DATA_LOSS otherwise."""
        record = self._store.primary(self.region)
        if record is None:
            raise FailedPrecondition(f"region {self.region} has no primary key version",
                                     reason="NO_PRIMARY_KEY_VERSION")
        self._cipher(record)
        return record

    def _wrap(self, record: KeyVersionRecord, data_key: bytes, context: Mapping[str, str]) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._cipher(record).encrypt(nonce, data_key, data_key_aad(self.region, record.version, context))
        return WrappedKey(self.region, record.version, nonce, sealed).encode()

    def generate_data_key(self, context: Mapping[str, str]) -> tuple[bytes, bytes, KeyVersionRecord]:
        """A fresh data key: (plaintext, wrapped, the primary version that wrapped it)."""
        record = self._primary()
        data_key = os.urandom(DATA_KEY_BYTES)
        return data_key, self._wrap(record, data_key, context), record

    def decrypt_data_key(self, wrapped: bytes, context: Mapping[str, str]) -> tuple[bytes, KeyVersionRecord]:
        """Unwrap a data key; fails unless region, version state and context all match."""
        return self._unwrap(wrapped, context, {})

    def decrypt_data_keys(self, keys: Sequence[tuple[bytes, Mapping[str, str]]]
                          ) -> list[tuple[bytes, KeyVersionRecord]]:
        """Unwrap each key, in order, as `decrypt_data_key` would; the first that fails fails them all.
        Each key version's state is read once for the batch."""
        versions: dict[int, KeyVersionRecord | None] = {}
        return [self._unwrap(wrapped, context, versions) for wrapped, context in keys]

    def reencrypt_data_keys(self, keys: Sequence[tuple[bytes, Mapping[str, str]]]
                            ) -> list[Rewrapped | SecureFilesError]:
        """Re-wrap each key under the primary, each on its own: a key that cannot be unwrapped is
        its own error, the others go on."""
        versions: dict[int, KeyVersionRecord | None] = {}
        primary = self._primary()
        results: list[Rewrapped | SecureFilesError] = []
        for wrapped, context in keys:
            try:
                data_key, previous = self._unwrap(wrapped, context, versions)
            except SecureFilesError as error:
                results.append(error)
                continue
            rewrapped = wrapped if primary.version == previous.version else self._wrap(primary, data_key, context)
            results.append(Rewrapped(rewrapped, primary, previous))
        return results

    def _unwrap(self, wrapped: bytes, context: Mapping[str, str], versions: dict[int, KeyVersionRecord | None]
                ) -> tuple[bytes, KeyVersionRecord]:
        key = WrappedKey.decode(wrapped)
        if key.region != self.region:
            raise InvalidArgument(
                f"wrapped key belongs to region {key.region}, not {self.region}", reason="WRONG_REGION"
            )
        if key.version not in versions:
            versions[key.version] = self._store.get_version(self.region, key.version)
        record = versions[key.version]
        if record is None:
            raise InvalidArgument("wrapped key names an unknown key version", reason="UNKNOWN_KEY_VERSION")
        if record.state is KeyState.DISABLED:
            self._ciphers.pop(record.version, None)
            raise FailedPrecondition(f"key version {record.name} is disabled", reason="KEY_VERSION_DISABLED",
                                     metadata={"key_version": record.name})
        if record.state is KeyState.DESTROYED:
            self._ciphers.pop(record.version, None)
            raise DataLoss(f"key version {record.name} was destroyed", reason="KEY_DESTROYED",
                           metadata={"key_version": record.name})
        try:
            data_key = self._cipher(record).decrypt(
                key.nonce, key.sealed, data_key_aad(self.region, key.version, context)
            )
        except InvalidTag:
            raise InvalidArgument(
                "wrapped key does not match this encryption context", reason="INVALID_CIPHERTEXT"
            ) from None
        return data_key, record

    def reencrypt_data_key(
        self, wrapped: bytes, context: Mapping[str, str]
    ) -> tuple[bytes, KeyVersionRecord, KeyVersionRecord]:
        """Re-wrap under the primary: (new wrapped, primary, previous version)."""
        data_key, previous = self.decrypt_data_key(wrapped, context)
        primary = self._primary()
        if primary.version == previous.version:
            return wrapped, primary, previous
        return self._wrap(primary, data_key, context), primary, previous
