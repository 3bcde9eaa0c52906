"""`--output json` prints the proto's JSON names (`displayName`, `createTime`), as
`google.protobuf.json_format` would: for every resource the CLI prints, its keys are exactly the
`json_name`s of the message's fields, and the values are the message's own."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from google.protobuf import json_format
from google.protobuf.message import Message

from securefiles.authz.v1 import authz_pb2
from securefiles.cli.output import file_object, json_object
from securefiles.client import convert
from securefiles.storage.v1 import storage_pb2

TIME = "2026-05-01T14:03:00Z"

# (a message as the server sends it, how the CLI prints it)
PRINTED: list[tuple[Message, Callable[[Message], Any]]] = [
    (storage_pb2.SecureFile(
        name="projects/p/secureFiles/0b5c", secure_file_id="0b5c", display_name="signing.p12", size_bytes=12,
        sha256="ab" * 32, properties={"team_name": "ios"}, created_by="user:ann", version=2,
        key_version="regions/eu/keyVersions/3"),
     lambda m: file_object(convert.secure_file(m))),
    (storage_pb2.SecureFileVersion(version=2, size_bytes=12, sha256="ab" * 32, created_by="user:ann",
                                   key_version="regions/eu/keyVersions/3", current=True),
     lambda m: json_object(convert.secure_file_version(m))),
    (storage_pb2.Library(name="projects/p/library", allow_replace=True, keep_versions=3),
     lambda m: json_object(convert.library(m))),
    (authz_pb2.Pipeline(name="projects/p/pipelines/4", pipeline_id=4, display_name="ios-release"),
     lambda m: json_object(convert.pipeline(m))),
    (authz_pb2.PipelinePermissions(resource="projects/p/secureFiles/0b5c", all_pipelines=False, pipelines=[
        authz_pb2.Pipeline(name="projects/p/pipelines/4", pipeline_id=4, display_name="ios-release")]),
     lambda m: json_object(convert.pipeline_permissions(m))),
    (authz_pb2.Run(name="projects/p/pipelines/4/runs/7", run_id=7, pipeline="projects/p/pipelines/4",
                   branch="refs/heads/main", requested_by="user:ann", state=authz_pb2.Run.RUNNING,
                   trust="projects/p/trusts/gh", asserted_by="service:ci", claims={"repository": "org/app"}),
     lambda m: json_object(convert.run(m))),
    (authz_pb2.StartRunResponse(run=authz_pb2.Run(name="projects/p/pipelines/4/runs/7", run_id=7,
                                                  state=authz_pb2.Run.COMPLETED), job_token="eyJ.x.y"),
     lambda m: json_object(convert.started_run(m))),
]


def _with_times(message: Message) -> Message:
    for field in message.DESCRIPTOR.fields:
        if field.message_type is not None and field.message_type.full_name == "google.protobuf.Timestamp":
            getattr(message, field.name).FromJsonString(TIME)
        if field.message_type is not None and field.message_type.full_name == "google.protobuf.Struct":
            getattr(message, field.name).update({"type": "x509", "entry_count": 3})
    return message


@pytest.mark.parametrize(("message", "printed"), PRINTED, ids=[m.DESCRIPTOR.name for m, _ in PRINTED])
def test_json_output_uses_the_protos_json_names_and_values(message: Message, printed: Callable[[Message], Any]
                                                           ) -> None:
    message = _with_times(message)
    shown = printed(message)
    assert set(shown) == {field.json_name for field in message.DESCRIPTOR.fields}
    expected = json_format.MessageToDict(message, always_print_fields_with_no_presence=True)
    for key, value in expected.items():
        assert _comparable(shown[key]) == _comparable(value), key


def _comparable(value: Any) -> Any:
    """json_format prints int64 as strings and leaves unset nested fields out; the CLI prints numbers
    and nulls."""
    if isinstance(value, dict):
        return {k: _comparable(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_comparable(v) for v in value]
    return int(value) if isinstance(value, str) and value.isdigit() else value


def test_map_keys_and_parsed_metadata_are_data_and_keep_their_spelling() -> None:
    shown = file_object(convert.secure_file(_with_times(storage_pb2.SecureFile(properties={"team_name": "ios"}))))
    assert shown["properties"] == {"team_name": "ios"}
    assert shown["metadata"] == {"type": "x509", "entry_count": 3}
    assert shown["expireTime"] == TIME


def test_unset_times_are_null_and_unread_metadata_says_unknown() -> None:
    shown = file_object(convert.secure_file(storage_pb2.SecureFile(display_name="blob.bin")))
    assert shown["expireTime"] is None and shown["createTime"] is None
    assert shown["metadata"] == {"type": "unknown"}
