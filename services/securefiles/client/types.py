"""What the Python client returns: frozen dataclasses, not generated messages.

Field names are the proto's field names, so `securefiles … --output json` prints the proto's
JSON names (`display_name` -> `displayName`). Times are aware UTC datetimes, None when unset;
enum values are their names (`"RUNNING"`). Conversion from the messages: `client.convert`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class SecureFile:
    """A secure file's metadata (people never get its content)."""

    name: str
    secure_file_id: str
    display_name: str
    size_bytes: int
    sha256: str
    properties: Mapping[str, str]
    create_time: dt.datetime | None
    update_time: dt.datetime | None
    created_by: str
    version: int
    key_version: str
    metadata: Mapping[str, Any]
    expire_time: dt.datetime | None


@dataclass(frozen=True)
class SecureFileVersion:
    """One kept version of a file."""

    version: int
    size_bytes: int
    sha256: str
    create_time: dt.datetime | None
    created_by: str
    key_version: str
    current: bool
    metadata: Mapping[str, Any]
    expire_time: dt.datetime | None


@dataclass(frozen=True)
class Library:
    """A project's library settings."""

    name: str
    allow_replace: bool
    keep_versions: int


@dataclass(frozen=True)
class Pipeline:
    """A pipeline of a project; its runs may use the files it is authorized on."""

    name: str
    pipeline_id: int
    display_name: str
    create_time: dt.datetime | None


@dataclass(frozen=True)
class PipelinePermissions:
    """Which pipelines may use a file (`all_pipelines`: open access)."""

    resource: str
    all_pipelines: bool
    pipelines: tuple[Pipeline, ...]


@dataclass(frozen=True)
class Run:
    """A pipeline run; its job token works while it runs."""

    name: str
    run_id: int
    pipeline: str
    branch: str
    requested_by: str
    state: str
    create_time: dt.datetime | None
    expire_time: dt.datetime | None
    complete_time: dt.datetime | None
    trust: str
    asserted_by: str
    claims: Mapping[str, str]


@dataclass(frozen=True)
class StartedRun:
    """A run started by hand, and its job token."""

    run: Run
    job_token: str
