"""Issue #18 item 4: the protos say, in google.api annotations a generator or linter reads, which
messages are resources, which fields name them, and how each field behaves. Checked over the
descriptors of every package we publish, so a new field or message cannot forget them."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from pathlib import Path

from google.api import field_behavior_pb2, resource_pb2
from google.protobuf.descriptor import Descriptor, FieldDescriptor, FileDescriptor

import securefiles

TYPE_PREFIX = "securefiles.dev/"
NAME_FIELDS = ("name", "parent", "names")
Behavior = field_behavior_pb2.FieldBehavior


def our_files() -> list[FileDescriptor]:
    """Every generated `securefiles/*/v1/*_pb2.py`: a new package is checked without a change here."""
    root = Path(securefiles.__file__).parent
    modules = sorted(path.relative_to(root.parent).with_suffix("") for path in root.glob("*/v1/*_pb2.py"))
    assert len(modules) >= 5
    return [importlib.import_module(".".join(module.parts)).DESCRIPTOR for module in modules]


def messages(message: Descriptor) -> Iterator[Descriptor]:
    if not message.GetOptions().map_entry:
        yield message
        for nested in message.nested_types:
            yield from messages(nested)


def all_messages() -> list[Descriptor]:
    return [m for file in our_files() for top in file.message_types_by_name.values() for m in messages(top)]


def behaviors(field: FieldDescriptor) -> list[int]:
    return list(field.GetOptions().Extensions[field_behavior_pb2.field_behavior])


def resource(message: Descriptor) -> resource_pb2.ResourceDescriptor | None:
    options = message.GetOptions()
    return options.Extensions[resource_pb2.resource] if options.HasExtension(resource_pb2.resource) else None


def identifies(message: Descriptor) -> bool:
    """Its `name` is its own name (IDENTIFIER), not a reference to another resource."""
    name = message.fields_by_name.get("name")
    return name is not None and Behavior.IDENTIFIER in behaviors(name)


def defined_types() -> dict[str, list[str]]:
    defined = {}
    for file in our_files():
        for definition in file.GetOptions().Extensions[resource_pb2.resource_definition]:
            defined[definition.type] = list(definition.pattern)
    for message in all_messages():
        if (descriptor := resource(message)) is not None:
            defined[descriptor.type] = list(descriptor.pattern)
    return defined


def test_every_field_of_every_message_has_a_field_behavior() -> None:
    missing = [f"{m.full_name}.{f.name}" for m in all_messages() for f in m.fields if not behaviors(f)]
    assert not missing, f"fields without (google.api.field_behavior): {missing}"
    assert len([f for m in all_messages() for f in m.fields]) > 400


def test_no_field_is_both_required_and_output_only() -> None:
    contradictions = [f"{m.full_name}.{f.name}" for m in all_messages() for f in m.fields
                      if {Behavior.REQUIRED, Behavior.OUTPUT_ONLY} <= set(behaviors(f))]
    assert not contradictions


def test_every_resource_message_has_a_resource_annotation_and_an_identifier() -> None:
    """A message's `name` either identifies it (then it is a resource, annotated) or references
    another resource (then the next test wants its resource_reference)."""
    resources = [m for m in all_messages() if identifies(m)]
    assert {"SecureFile", "Library", "KeyVersion", "Project", "Pipeline", "Run", "Check", "Approval", "Group",
            "AccessRequest", "Trust", "IssuedToken"} <= {m.name for m in resources}
    for message in resources:
        descriptor = resource(message)
        assert descriptor is not None, f"{message.full_name} has an IDENTIFIER but no (google.api.resource)"
        assert message.containing_type is None, message.full_name
        assert descriptor.type == TYPE_PREFIX + message.name and descriptor.pattern, message.full_name
        assert descriptor.plural and descriptor.singular, message.full_name
        assert message.fields_by_name["name"].type == FieldDescriptor.TYPE_STRING
        assert behaviors(message.fields_by_name["name"]) == [Behavior.IDENTIFIER], message.full_name
    not_identified = [m.full_name for m in all_messages() if resource(m) is not None and not identifies(m)]
    assert not not_identified


def test_every_name_and_parent_field_references_a_defined_resource() -> None:
    defined = defined_types()
    assert defined["securefiles.dev/SecureFile"] == ["projects/{project}/secureFiles/{secure_file}"]
    assert defined["securefiles.dev/KeyRing"] == ["regions/{region}"]
    unreferenced, undefined = [], []
    for message in all_messages():
        for field in message.fields:
            options = field.GetOptions()
            if field.name in NAME_FIELDS and not identifies(message) and not options.HasExtension(
                    resource_pb2.resource_reference):
                unreferenced.append(f"{message.full_name}.{field.name}")
            if options.HasExtension(resource_pb2.resource_reference):
                reference = options.Extensions[resource_pb2.resource_reference]
                target = reference.type or reference.child_type
                if target != "*" and target not in defined:
                    undefined.append(f"{message.full_name}.{field.name} -> {target}")
    assert not unreferenced, f"name/parent fields without (google.api.resource_reference): {unreferenced}"
    assert not undefined, f"references to resource types nobody defines: {undefined}"
