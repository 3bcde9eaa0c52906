"""A region's key ring: envelope encryption of data keys, key version life cycle, wrapped key format."""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import os
import struct

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from securefiles.common.errors import DataLoss, FailedPrecondition, InvalidArgument, NotFound
from securefiles.kms.domain.key_ring import KeyRing, KeyState, KeyVersionRecord, Sealer, load_root_key
from securefiles.kms.domain.wrapped_key import MAGIC, WrappedKey


class InMemoryKeyVersionStore:
    """KeyVersionStore kept in a dict; add_primary is atomic and idempotent per deployment id."""

    def __init__(self) -> None:
        self.rows: dict[tuple[str, int], KeyVersionRecord] = {}

    def list_versions(self, region: str) -> list[KeyVersionRecord]:
        return sorted((r for r in self.rows.values() if r.region == region), key=lambda r: -r.version)

    def get_version(self, region: str, version: int) -> KeyVersionRecord | None:
        return self.rows.get((region, version))

    def primary(self, region: str) -> KeyVersionRecord | None:
        return next((r for r in self.list_versions(region) if r.state is KeyState.PRIMARY), None)

    def add_primary(self, region: str, seal: Sealer, created_by: str, reason: str, deployment_id: str | None,
                    now: dt.datetime) -> tuple[KeyVersionRecord, bool]:
        existing = self.list_versions(region)
        if deployment_id is not None:
            for record in existing:
                if record.deployment_id == deployment_id:
                    return record, False
        version = max((r.version for r in existing), default=0) + 1
        sealed = seal(version)  # before any change, so a failing sealer leaves the store untouched
        old = self.primary(region)
        if old is not None:
            self.rows[(region, old.version)] = dataclasses.replace(old, state=KeyState.ENABLED)
        record = KeyVersionRecord(region, version, KeyState.PRIMARY, sealed, now, created_by, reason, deployment_id)
        self.rows[(region, version)] = record
        return record, True

    def set_state(self, region: str, version: int, state: KeyState, erase_material: bool) -> KeyVersionRecord:
        record = self.rows[(region, version)]
        record = dataclasses.replace(
            record, state=state, sealed_material=None if erase_material else record.sealed_material
        )
        self.rows[(region, version)] = record
        return record


CONTEXT = {"project": "demo", "secure_file_id": "f-1", "version": "1"}


def new_ring(region: str = "eu", root: bytes | None = None, store=None) -> KeyRing:
    return KeyRing(region, root or os.urandom(32), store if store is not None else InMemoryKeyVersionStore())


@pytest.fixture
def store():
    return InMemoryKeyVersionStore()


@pytest.fixture
def root():
    return os.urandom(32)


@pytest.fixture
def ring(store, root):
    ring = KeyRing("eu", root, store)
    ring.ensure_deployment_version("deploy-1")
    return ring


def reason_of(excinfo) -> str:
    return excinfo.value.reason


# -- data keys --------------------------------------------------------------------------


def test_generate_then_decrypt_returns_the_same_data_key(ring):
    data_key, wrapped, record = ring.generate_data_key(CONTEXT)
    assert len(data_key) == 32
    assert data_key not in wrapped
    got, used = ring.decrypt_data_key(wrapped, dict(CONTEXT))
    assert got == data_key
    assert used.version == record.version == 1


def test_every_data_key_is_fresh(ring):
    first, wrapped_1, _ = ring.generate_data_key(CONTEXT)
    second, wrapped_2, _ = ring.generate_data_key(CONTEXT)
    assert first != second
    assert wrapped_1 != wrapped_2


def test_no_primary_version_means_no_data_keys():
    with pytest.raises(FailedPrecondition) as err:
        new_ring().generate_data_key(CONTEXT)
    assert reason_of(err) == "NO_PRIMARY_KEY_VERSION"


@pytest.mark.parametrize("other", [
    {**CONTEXT, "secure_file_id": "f-2"},
    {**CONTEXT, "version": "2"},
    {**CONTEXT, "project": "other"},
    {**CONTEXT, "extra": "x"},
    {k: v for k, v in CONTEXT.items() if k != "version"},
    {},
])
def test_decrypt_with_another_encryption_context_fails(ring, other):
    _, wrapped, _ = ring.generate_data_key(CONTEXT)
    with pytest.raises(InvalidArgument) as err:
        ring.decrypt_data_key(wrapped, other)
    assert reason_of(err) == "INVALID_CIPHERTEXT"


def test_context_key_order_does_not_matter(ring):
    data_key, wrapped, _ = ring.generate_data_key({"a": "1", "b": "2"})
    assert ring.decrypt_data_key(wrapped, {"b": "2", "a": "1"})[0] == data_key


# -- regions ----------------------------------------------------------------------------


def test_wrapped_key_of_another_region_is_refused(ring):
    us = new_ring("us")
    us.ensure_deployment_version("deploy-1")
    _, eu_wrapped, _ = ring.generate_data_key(CONTEXT)
    _, us_wrapped, _ = us.generate_data_key(CONTEXT)
    with pytest.raises(InvalidArgument) as err:
        us.decrypt_data_key(eu_wrapped, CONTEXT)
    assert reason_of(err) == "WRONG_REGION"
    with pytest.raises(InvalidArgument) as err:
        ring.decrypt_data_key(us_wrapped, CONTEXT)
    assert reason_of(err) == "WRONG_REGION"


def relabel(wrapped: bytes, region: str) -> bytes:
    key = WrappedKey.decode(wrapped)
    return WrappedKey(region, key.version, key.nonce, key.sealed).encode()


@pytest.mark.parametrize("same_root", [False, True])
def test_regions_never_produce_interchangeable_keys(same_root):
    root = os.urandom(32)
    store = InMemoryKeyVersionStore()  # even sharing one store (and root) must not mix regions
    eu = KeyRing("eu", root, store)
    us = KeyRing("us", root if same_root else os.urandom(32), store)
    eu.ensure_deployment_version("d")
    us.ensure_deployment_version("d")
    eu_key, eu_wrapped, _ = eu.generate_data_key(CONTEXT)
    us_key, us_wrapped, _ = us.generate_data_key(CONTEXT)
    assert eu_key != us_key
    assert [r.version for r in us.list_versions()] == [1]
    # Rewriting the region label does not let the other region unwrap it.
    with pytest.raises(InvalidArgument) as err:
        us.decrypt_data_key(relabel(eu_wrapped, "us"), CONTEXT)
    assert reason_of(err) == "INVALID_CIPHERTEXT"
    with pytest.raises(InvalidArgument) as err:
        eu.decrypt_data_key(relabel(us_wrapped, "eu"), CONTEXT)
    assert reason_of(err) == "INVALID_CIPHERTEXT"


def test_a_key_version_copied_into_another_region_does_not_unseal(store, root, ring):
    eu_record = store.get_version("eu", 1)
    store.rows[("us", 1)] = dataclasses.replace(eu_record, region="us")
    us = KeyRing("us", root, store)  # same root key: only the region binding protects it
    with pytest.raises(DataLoss) as err:
        us.generate_data_key(CONTEXT)
    assert reason_of(err) == "ROOT_KEY_MISMATCH"


# -- versions -----------------------------------------------------------------------------


def test_ensure_deployment_version_is_idempotent_per_deployment(store, root):
    ring = KeyRing("eu", root, store)
    first, created = ring.ensure_deployment_version("deploy-1")
    assert created and first.version == 1 and first.state is KeyState.PRIMARY
    again, created_again = ring.ensure_deployment_version("deploy-1")
    assert not created_again
    assert again.version == 1
    assert len(ring.list_versions()) == 1

    second, created = ring.ensure_deployment_version("deploy-2")
    assert created and second.version == 2
    states = {r.version: r.state for r in ring.list_versions()}
    assert states == {1: KeyState.ENABLED, 2: KeyState.PRIMARY}
    # Re-running an old deployment does not bring its version back as primary.
    ring.ensure_deployment_version("deploy-1")
    assert store.primary("eu").version == 2
    assert len(ring.list_versions()) == 2


def test_rotate_makes_a_new_primary_and_old_keys_still_decrypt(ring):
    old_key, old_wrapped, _ = ring.generate_data_key(CONTEXT)
    record = ring.rotate("user:op", "scheduled")
    assert record.version == 2
    assert record.state is KeyState.PRIMARY
    assert record.created_by == "user:op"
    _, new_wrapped, used = ring.generate_data_key(CONTEXT)
    assert used.version == 2
    assert WrappedKey.decode(new_wrapped).version == 2
    assert ring.decrypt_data_key(old_wrapped, CONTEXT)[0] == old_key
    assert {r.version: r.state for r in ring.list_versions()} == {1: KeyState.ENABLED, 2: KeyState.PRIMARY}


def test_reencrypt_moves_a_data_key_to_the_primary(ring):
    data_key, wrapped, _ = ring.generate_data_key(CONTEXT)
    ring.rotate("user:op", "")
    rewrapped, primary, previous = ring.reencrypt_data_key(wrapped, CONTEXT)
    assert (primary.version, previous.version) == (2, 1)
    assert WrappedKey.decode(rewrapped).version == 2
    assert ring.decrypt_data_key(rewrapped, CONTEXT)[0] == data_key
    # The re-wrapped key no longer depends on the old version.
    ring.disable(1)
    assert ring.decrypt_data_key(rewrapped, CONTEXT)[0] == data_key
    # ...and stays bound to its context.
    with pytest.raises(InvalidArgument) as err:
        ring.decrypt_data_key(rewrapped, {**CONTEXT, "version": "9"})
    assert reason_of(err) == "INVALID_CIPHERTEXT"


def test_reencrypt_under_the_primary_keeps_a_working_key(ring):
    data_key, wrapped, _ = ring.generate_data_key(CONTEXT)
    rewrapped, primary, previous = ring.reencrypt_data_key(wrapped, CONTEXT)
    assert primary.version == previous.version == 1
    assert ring.decrypt_data_key(rewrapped, CONTEXT)[0] == data_key


def test_reencrypt_with_the_wrong_context_fails(ring):
    _, wrapped, _ = ring.generate_data_key(CONTEXT)
    ring.rotate("user:op", "")
    with pytest.raises(InvalidArgument) as err:
        ring.reencrypt_data_key(wrapped, {**CONTEXT, "secure_file_id": "f-2"})
    assert reason_of(err) == "INVALID_CIPHERTEXT"


def test_disable_blocks_decryption_and_enable_restores_it(ring):
    data_key, wrapped, _ = ring.generate_data_key(CONTEXT)
    assert ring.decrypt_data_key(wrapped, CONTEXT)[0] == data_key  # warm any cache
    ring.rotate("user:op", "")
    assert ring.disable(1).state is KeyState.DISABLED
    with pytest.raises(FailedPrecondition) as err:
        ring.decrypt_data_key(wrapped, CONTEXT)
    assert reason_of(err) == "KEY_VERSION_DISABLED"
    assert err.value.metadata["key_version"] == "regions/eu/keyVersions/1"
    with pytest.raises(FailedPrecondition):
        ring.reencrypt_data_key(wrapped, CONTEXT)
    assert ring.enable(1).state is KeyState.ENABLED
    assert ring.decrypt_data_key(wrapped, CONTEXT)[0] == data_key


def test_disable_seen_through_the_store_by_another_ring(store, root, ring):
    data_key, wrapped, _ = ring.generate_data_key(CONTEXT)
    ring.rotate("user:op", "")
    replica = KeyRing("eu", root, store)
    assert replica.decrypt_data_key(wrapped, CONTEXT)[0] == data_key
    ring.disable(1)
    with pytest.raises(FailedPrecondition) as err:
        replica.decrypt_data_key(wrapped, CONTEXT)
    assert reason_of(err) == "KEY_VERSION_DISABLED"


def test_destroy_erases_material_and_data_keys_are_lost(store, ring):
    _, wrapped, _ = ring.generate_data_key(CONTEXT)
    ring.decrypt_data_key(wrapped, CONTEXT)  # warm any cache
    ring.rotate("user:op", "")
    destroyed = ring.destroy(1)
    assert destroyed.state is KeyState.DESTROYED
    assert store.get_version("eu", 1).sealed_material is None
    assert store.get_version("eu", 1).state is KeyState.DESTROYED
    with pytest.raises(DataLoss) as err:
        ring.decrypt_data_key(wrapped, CONTEXT)
    assert reason_of(err) == "KEY_DESTROYED"
    assert err.value.metadata["key_version"] == "regions/eu/keyVersions/1"
    # Destroyed is final.
    for action in (ring.enable, ring.disable):
        with pytest.raises(FailedPrecondition) as err:
            action(1)
        assert reason_of(err) == "KEY_DESTROYED"
    assert ring.destroy(1).state is KeyState.DESTROYED
    assert store.get_version("eu", 1).sealed_material is None


def test_a_disabled_version_can_be_destroyed(store, ring):
    _, wrapped, _ = ring.generate_data_key(CONTEXT)
    ring.rotate("user:op", "")
    ring.disable(1)
    ring.destroy(1)
    with pytest.raises(DataLoss) as err:
        ring.decrypt_data_key(wrapped, CONTEXT)
    assert reason_of(err) == "KEY_DESTROYED"


@pytest.mark.parametrize("action", ["disable", "destroy"])
def test_the_primary_cannot_be_disabled_or_destroyed(store, ring, action):
    data_key, wrapped, _ = ring.generate_data_key(CONTEXT)
    with pytest.raises(FailedPrecondition) as err:
        getattr(ring, action)(1)
    assert reason_of(err) == "KEY_VERSION_IS_PRIMARY"
    assert store.get_version("eu", 1).state is KeyState.PRIMARY
    assert ring.decrypt_data_key(wrapped, CONTEXT)[0] == data_key


def test_enabling_the_primary_keeps_it_primary(ring):
    assert ring.enable(1).state is KeyState.PRIMARY


@pytest.mark.parametrize("action", ["disable", "enable", "destroy"])
def test_unknown_versions_are_not_found(ring, action):
    with pytest.raises(NotFound) as err:
        getattr(ring, action)(7)
    assert reason_of(err) == "KEY_VERSION_NOT_FOUND"


def test_wrapped_key_naming_an_unknown_version_is_refused(ring):
    _, wrapped, _ = ring.generate_data_key(CONTEXT)
    key = WrappedKey.decode(wrapped)
    forged = WrappedKey("eu", 5, key.nonce, key.sealed).encode()
    with pytest.raises(InvalidArgument) as err:
        ring.decrypt_data_key(forged, CONTEXT)
    assert reason_of(err) == "UNKNOWN_KEY_VERSION"


def test_wrapped_key_relabelled_to_another_version_does_not_unwrap(ring):
    _, wrapped, _ = ring.generate_data_key(CONTEXT)
    ring.rotate("user:op", "")
    key = WrappedKey.decode(wrapped)
    with pytest.raises(InvalidArgument) as err:
        ring.decrypt_data_key(WrappedKey("eu", 2, key.nonce, key.sealed).encode(), CONTEXT)
    assert reason_of(err) == "INVALID_CIPHERTEXT"


# -- root key -------------------------------------------------------------------------------


def test_another_root_key_cannot_unseal_the_versions(store, ring):
    _, wrapped, _ = ring.generate_data_key(CONTEXT)
    impostor = KeyRing("eu", os.urandom(32), store)
    with pytest.raises(DataLoss) as err:
        impostor.decrypt_data_key(wrapped, CONTEXT)
    assert reason_of(err) == "ROOT_KEY_MISMATCH"
    with pytest.raises(DataLoss) as err:
        impostor.generate_data_key(CONTEXT)
    assert reason_of(err) == "ROOT_KEY_MISMATCH"


def test_material_swapped_between_versions_does_not_unseal(store, root, ring):
    ring.rotate("user:op", "")
    _, wrapped, _ = ring.generate_data_key(CONTEXT)  # under version 2
    v1, v2 = store.get_version("eu", 1), store.get_version("eu", 2)
    store.rows[("eu", 2)] = dataclasses.replace(v2, sealed_material=v1.sealed_material)
    fresh = KeyRing("eu", root, store)
    with pytest.raises(DataLoss) as err:
        fresh.decrypt_data_key(wrapped, CONTEXT)
    assert reason_of(err) == "ROOT_KEY_MISMATCH"


@pytest.mark.parametrize("size", [0, 16, 31, 33, 64])
def test_key_ring_needs_a_32_byte_root_key(size):
    with pytest.raises(ValueError):
        KeyRing("eu", os.urandom(size), InMemoryKeyVersionStore())


def test_load_root_key_accepts_raw_bytes_and_base64_text():
    key = os.urandom(32)
    assert load_root_key(key) == key
    encoded = base64.b64encode(key)
    assert load_root_key(encoded) == key
    assert load_root_key(encoded + b"\n") == key
    assert load_root_key(b"  " + encoded + b"\r\n") == key


@pytest.mark.parametrize("raw", [
    b"",
    os.urandom(16),
    os.urandom(31),
    os.urandom(33),
    base64.b64encode(os.urandom(16)),
    base64.b64encode(os.urandom(33)),
    b"this is not base64 at all!!!!!!!!!!!!!!!!!!!!",
    base64.b64encode(os.urandom(32))[:-4] + b"!!!!",
])
def test_load_root_key_rejects_anything_else(raw):
    with pytest.raises(ValueError):
        load_root_key(raw)


# -- malformed wrapped keys ------------------------------------------------------------------------


def good_wrapped(ring) -> bytes:
    return ring.generate_data_key(CONTEXT)[1]


def with_region(wrapped: bytes, region: bytes) -> bytes:
    rest = wrapped[5 + wrapped[4]:]
    return MAGIC + bytes([len(region)]) + region + rest


def with_version(wrapped: bytes, version: int) -> bytes:
    offset = 5 + wrapped[4]
    return wrapped[:offset] + struct.pack(">I", version) + wrapped[offset + 4:]


MALFORMED = {
    "empty": lambda w: b"",
    "magic only": lambda w: MAGIC,
    "truncated by one": lambda w: w[:-1],
    "truncated to half": lambda w: w[: len(w) // 2],
    "one extra byte": lambda w: w + b"\x00",
    "wrong magic": lambda w: b"SFW2" + w[4:],
    "lowercase magic": lambda w: b"sfw1" + w[4:],
    "empty region": lambda w: with_region(w, b""),
    "uppercase region": lambda w: with_region(w, b"EU"),
    "region starting with a digit": lambda w: with_region(w, b"1eu"),
    "non-ascii region": lambda w: with_region(w, b"\xff\xfe"),
    "region with a space": lambda w: with_region(w, b"e u"),
    "region with NUL": lambda w: with_region(w, b"eu\x00"),
    "region too long": lambda w: with_region(w, b"e" * 33),
    "region length past the end": lambda w: w[:4] + b"\xff" + w[5:],
    "version zero": lambda w: with_version(w, 0),
}


@pytest.mark.parametrize("mangle", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_wrapped_keys_are_invalid_arguments(ring, mangle):
    with pytest.raises(InvalidArgument) as err:
        ring.decrypt_data_key(mangle(good_wrapped(ring)), CONTEXT)
    assert reason_of(err) == "MALFORMED_WRAPPED_KEY"


def test_region_with_a_trailing_newline_is_malformed(ring):
    with pytest.raises(InvalidArgument) as err:
        ring.decrypt_data_key(with_region(good_wrapped(ring), b"eu\n"), CONTEXT)
    assert reason_of(err) == "MALFORMED_WRAPPED_KEY"


@pytest.fixture(scope="module")
def shared_ring():
    ring = new_ring()
    ring.ensure_deployment_version("d")
    return ring


@settings(max_examples=100, deadline=None)
@given(raw=st.binary(max_size=200))
def test_garbage_is_always_a_malformed_wrapped_key(shared_ring, raw):
    assume(not raw.startswith(MAGIC))
    with pytest.raises(InvalidArgument) as err:
        shared_ring.decrypt_data_key(raw, CONTEXT)
    assert reason_of(err) == "MALFORMED_WRAPPED_KEY"


REFUSALS = {"MALFORMED_WRAPPED_KEY", "WRONG_REGION", "UNKNOWN_KEY_VERSION", "INVALID_CIPHERTEXT"}


@settings(max_examples=100, deadline=None)
@given(region_len=st.integers(min_value=0, max_value=40), rest=st.binary(max_size=120))
def test_garbage_behind_the_magic_is_refused_as_invalid_argument(shared_ring, region_len, rest):
    with pytest.raises(InvalidArgument) as err:
        shared_ring.decrypt_data_key(MAGIC + bytes([region_len]) + rest, CONTEXT)
    assert reason_of(err) in REFUSALS


@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_any_corruption_of_a_real_wrapped_key_is_refused(shared_ring, data):
    wrapped = bytearray(good_wrapped(shared_ring))
    position = data.draw(st.integers(min_value=0, max_value=len(wrapped) - 1))
    wrapped[position] ^= data.draw(st.integers(min_value=1, max_value=255))
    with pytest.raises(InvalidArgument) as err:
        shared_ring.decrypt_data_key(bytes(wrapped), CONTEXT)
    assert reason_of(err) in REFUSALS
