"""The parsers' metadata (a JSON dict, stored with each version) as the typed proto messages.

The oneof field set is the one named after the dict's `type`; each field takes the dict value of
the same name (`profile_name` takes `name`) when its kind fits (strings, integers, booleans,
RFC 3339 times as Timestamps, lists and nested dicts). Anything else is left out rather than
failing a read, since rows stored by older versions may lack or differ in a field.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

Field = Any  # a FieldDescriptor (python or upb: the stubs name two classes)

_ONEOF = "file_metadata"
_TIMESTAMP = "google.protobuf.Timestamp"
_RENAMED = {"profile_name": "name"}  # proto field -> parser key, where `name` would read as a resource name
_INTEGERS = {
    FieldDescriptor.TYPE_INT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_INT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_UINT32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_UINT64: (0, 2**64 - 1),
}


def set_typed_metadata(message: Message, metadata: dict[str, Any]) -> None:
    """Fill `message`'s `file_metadata` oneof (SecureFile, SecureFileVersion) from `metadata`."""
    kind = metadata.get("type")
    oneof = message.DESCRIPTOR.oneofs_by_name[_ONEOF]
    field = message.DESCRIPTOR.fields_by_name.get(kind) if isinstance(kind, str) else None
    if field is None or field.containing_oneof is not oneof:
        return
    target = getattr(message, field.name)
    target.SetInParent()
    _fill(target, metadata)
    if kind == "android_keystore" and metadata.get("format") == "PKCS12":
        _fill(target.pkcs12, metadata)  # a PKCS12 keystore is described as a .p12 file is


def _fill(message: Message, values: dict[str, Any]) -> None:
    for field in message.DESCRIPTOR.fields:
        value = values.get(_RENAMED.get(field.name, field.name))
        if value is None:
            continue
        if field.is_repeated:
            if isinstance(value, list):
                for item in value:
                    _append(message, field, item)
        elif field.message_type is not None:
            _set_message(getattr(message, field.name), field, value)
        else:
            scalar = _scalar(field, value)
            if scalar is not None:
                setattr(message, field.name, scalar)


def _append(message: Message, field: Field, item: Any) -> None:
    container = getattr(message, field.name)
    if field.message_type is None:
        scalar = _scalar(field, item)
        if scalar is not None:
            container.append(scalar)
    elif isinstance(item, dict):
        _fill(container.add(), item)


def _set_message(target: Message, field: Field, value: Any) -> None:
    if field.message_type.full_name == _TIMESTAMP:
        moment = _time(value)
        if moment is not None:
            target.FromDatetime(moment)  # type: ignore[attr-defined]  # a Timestamp
    elif isinstance(value, dict):
        _fill(target, value)


def _scalar(field: Field, value: Any) -> Any:
    if field.type == FieldDescriptor.TYPE_STRING:
        return value if isinstance(value, str) else None
    if field.type == FieldDescriptor.TYPE_BOOL:
        return value if isinstance(value, bool) else None
    if field.type in _INTEGERS:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            return None
        low, high = _INTEGERS[field.type]
        return value if low <= value <= high else None
    return None


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None
