"""Issue #18 items 1 and 5 for the kms contract: a request names the key ring it acts on as `name`,
one that lists or creates versions names it as their `parent` (AIP-131/132/136), the old
`key_ring` field stays reserved, and enum values carry their enum's prefix (kms and audit)."""

from __future__ import annotations

import pytest
from google.api import resource_pb2
from google.protobuf.descriptor import EnumDescriptor, FieldDescriptor

from securefiles.audit.v1 import audit_pb2
from securefiles.kms.v1 import kms_pb2

ACTS_ON_RING = ["GenerateDataKeyRequest", "DecryptDataKeyRequest", "ReEncryptDataKeyRequest",
                "BatchDecryptDataKeysRequest", "BatchReEncryptDataKeysRequest"]
CREATES_OR_LISTS = ["RotateKeyRequest", "ListKeyVersionsRequest"]


def reference(field: FieldDescriptor) -> resource_pb2.ResourceReference:
    return field.GetOptions().Extensions[resource_pb2.resource_reference]


@pytest.mark.parametrize("message", ACTS_ON_RING)
def test_methods_acting_on_the_ring_take_its_name(message: str) -> None:
    descriptor = kms_pb2.DESCRIPTOR.message_types_by_name[message]
    assert reference(descriptor.fields_by_name["name"]).type == "securefiles.dev/KeyRing"
    assert "key_ring" not in descriptor.fields_by_name and "parent" not in descriptor.fields_by_name


@pytest.mark.parametrize("message", CREATES_OR_LISTS)
def test_methods_listing_or_creating_versions_take_their_parent(message: str) -> None:
    descriptor = kms_pb2.DESCRIPTOR.message_types_by_name[message]
    assert reference(descriptor.fields_by_name["parent"]).child_type == "securefiles.dev/KeyVersion"
    assert "key_ring" not in descriptor.fields_by_name and "name" not in descriptor.fields_by_name


@pytest.mark.parametrize("message", ACTS_ON_RING + CREATES_OR_LISTS)
def test_the_old_key_ring_field_stays_reserved(message: str) -> None:
    """A number reused for another meaning would be read by an old client as a key ring."""
    descriptor = kms_pb2.DESCRIPTOR.message_types_by_name[message]
    field = descriptor.fields_by_name.get("name") or descriptor.fields_by_name["parent"]
    assert field.number != 1
    assert 1 not in {f.number for f in descriptor.fields}


def test_the_key_ring_is_a_declared_resource() -> None:
    definitions = kms_pb2.DESCRIPTOR.GetOptions().Extensions[resource_pb2.resource_definition]
    assert {d.type: list(d.pattern) for d in definitions}["securefiles.dev/KeyRing"] == ["regions/{region}"]


def enums() -> list[EnumDescriptor]:
    found = []
    for file in (kms_pb2.DESCRIPTOR, audit_pb2.DESCRIPTOR):
        found += file.enum_types_by_name.values()
        stack = list(file.message_types_by_name.values())
        while stack:
            message = stack.pop()
            found += message.enum_types
            stack += message.nested_types
    return found


def test_enum_values_carry_their_enums_prefix() -> None:
    """buf's ENUM_VALUE_PREFIX: `KeyVersion.State` values are STATE_PRIMARY, …"""
    def prefix(name: str) -> str:
        return "".join(f"_{c}" if c.isupper() and i else c for i, c in enumerate(name)).upper() + "_"

    unprefixed = [f"{e.full_name}.{v.name}" for e in enums() for v in e.values if not v.name.startswith(prefix(e.name))]
    assert enums() and not unprefixed
    assert kms_pb2.KeyVersion.State.Name(1) == "STATE_PRIMARY"
