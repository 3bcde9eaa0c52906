"""Generated messages -> the client's own types (`client.types`): one function per resource."""

from __future__ import annotations

import datetime as dt
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import Message
from google.protobuf.struct_pb2 import Struct

from securefiles.authz.v1 import authz_pb2
from securefiles.client import types
from securefiles.storage.v1 import storage_pb2


def time(message: Message, field: str) -> dt.datetime | None:
    """A Timestamp field as an aware UTC datetime; None when unset."""
    if not message.HasField(field):
        return None
    stamp = getattr(message, field)
    if not stamp.seconds and not stamp.nanos:
        return None
    value: dt.datetime = stamp.ToDatetime(dt.UTC)
    return value


def struct(value: Struct) -> dict[str, Any]:
    """A Struct as a dict; whole numbers (which arrive as doubles) become integers again."""
    return dict(_whole_numbers(json_format.MessageToDict(value)))


def _whole_numbers(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _whole_numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_whole_numbers(v) for v in value]
    return value


def enum_name(message: Message, field: str) -> str:
    """An enum field's value by name (`"RUNNING"`)."""
    descriptor = message.DESCRIPTOR.fields_by_name[field].enum_type
    number = getattr(message, field)
    value = descriptor.values_by_number.get(number) if descriptor is not None else None
    return value.name if value is not None else str(number)


def secure_file(f: storage_pb2.SecureFile) -> types.SecureFile:
    return types.SecureFile(
        name=f.name, secure_file_id=f.secure_file_id, display_name=f.display_name, size_bytes=f.size_bytes,
        sha256=f.sha256, properties=dict(f.properties), create_time=time(f, "create_time"),
        update_time=time(f, "update_time"), created_by=f.created_by, version=f.version, key_version=f.key_version,
        metadata=struct(f.metadata), expire_time=time(f, "expire_time"))


def secure_file_version(v: storage_pb2.SecureFileVersion) -> types.SecureFileVersion:
    return types.SecureFileVersion(
        version=v.version, size_bytes=v.size_bytes, sha256=v.sha256, create_time=time(v, "create_time"),
        created_by=v.created_by, key_version=v.key_version, current=v.current, metadata=struct(v.metadata),
        expire_time=time(v, "expire_time"))


def library(lib: storage_pb2.Library) -> types.Library:
    return types.Library(name=lib.name, allow_replace=lib.allow_replace, keep_versions=lib.keep_versions)


def pipeline(p: authz_pb2.Pipeline) -> types.Pipeline:
    return types.Pipeline(name=p.name, pipeline_id=p.pipeline_id, display_name=p.display_name,
                          create_time=time(p, "create_time"))


def pipeline_permissions(p: authz_pb2.PipelinePermissions) -> types.PipelinePermissions:
    return types.PipelinePermissions(resource=p.resource, all_pipelines=p.all_pipelines,
                                     pipelines=tuple(map(pipeline, p.pipelines)))


def run(r: authz_pb2.Run) -> types.Run:
    return types.Run(
        name=r.name, run_id=r.run_id, pipeline=r.pipeline, branch=r.branch, requested_by=r.requested_by,
        state=enum_name(r, "state"), create_time=time(r, "create_time"), expire_time=time(r, "expire_time"),
        complete_time=time(r, "complete_time"), trust=r.trust, asserted_by=r.asserted_by, claims=dict(r.claims))


def started_run(started: authz_pb2.StartRunResponse) -> types.StartedRun:
    return types.StartedRun(run=run(started.run), job_token=started.job_token)
