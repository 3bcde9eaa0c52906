"""The Python client's area clients return its own frozen dataclasses (`securefiles.client.types`),
never generated messages, against a real system."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib

import pytest

from securefiles.client import types
from securefiles.common.errors import NotFound
from tests.conftest import LocalSystem, unique


def _aware(moment: dt.datetime | None) -> bool:
    return moment is not None and moment.utcoffset() == dt.timedelta(0)


def test_files_pipelines_and_runs_come_back_as_the_clients_own_types(system: LocalSystem) -> None:
    name, pipeline = unique("typed") + ".bin", unique("typed-pipe")
    with system.client() as admin:
        uploaded = admin.files.upload(b"typed content", name=name, properties={"team": "ios"})
        assert type(uploaded) is types.SecureFile
        assert (uploaded.display_name, uploaded.size_bytes, uploaded.properties) == (name, 13, {"team": "ios"})
        assert uploaded.sha256 == hashlib.sha256(b"typed content").hexdigest()
        assert _aware(uploaded.create_time) and uploaded.expire_time is None
        assert admin.files.get(uploaded.name) == admin.files.get(name) == uploaded
        assert [f.name for f in admin.files.list(name)] == [uploaded.name]
        with pytest.raises(dataclasses.FrozenInstanceError):
            uploaded.display_name = "renamed"  # type: ignore[misc]

        created = admin.pipelines.create(pipeline)
        permissions = admin.pipelines.set_permission(name, pipeline, True)
        assert type(permissions) is types.PipelinePermissions and permissions.pipelines == (created,)
        started = admin.pipelines.start_run(pipeline, "refs/heads/main")
        assert type(started.run) is types.Run and started.run.state == "STATE_RUNNING" and started.job_token
        completed = admin.pipelines.complete_run(started.run.name)
        assert completed.state == "STATE_COMPLETED" and _aware(completed.complete_time)

        versions = admin.files.versions(name)
        assert [(type(v), v.version, v.current) for v in versions] == [(types.SecureFileVersion, 1, True)]
        admin.files.delete(name)
        with pytest.raises(NotFound) as missing:
            admin.files.get(name)
        assert missing.value.reason == "FILE_NOT_FOUND"


def test_keys_audit_and_roles_come_back_as_the_clients_own_types(system: LocalSystem) -> None:
    reader = f"user:{unique('typed-reader')}"
    with system.client() as admin:
        region, versions = admin.keys.versions()
        assert region == "eu" and versions and all(type(v) is types.KeyVersion for v in versions)
        assert [v.state for v in versions].count("STATE_PRIMARY") == 1
        assignment = admin.roles.assign(reader, "reader")
        assert assignment == types.RoleAssignment(name=f"projects/default/roleAssignments/{reader}",
                                                  scope="projects/default", principal=reader, role="reader")
        assert assignment in admin.roles.list().role_assignments
        events = [e for e in admin.audit.events("authz") if e.action == "SetRoleAssignment"]
        assert events and type(events[-1]) is types.AuditEvent and _aware(events[-1].time)
        assert admin.audit.verify("authz").intact


def test_an_audit_log_comes_a_page_at_a_time_as_the_clients_own_types(system: LocalSystem) -> None:
    with system.client() as admin:
        for _ in range(3):
            admin.roles.assign(f"user:{unique('paged')}", "reader")
        first = admin.audit.page("authz", page_size=2)
        assert type(first) is types.AuditPage and len(first.events) == 2 and first.next_page_token
        assert all(type(e) is types.AuditEvent and _aware(e.time) for e in first.events)
        second = admin.audit.page("authz", first.next_page_token, page_size=2)
        assert second.events[0].sequence == first.events[-1].sequence + 1  # oldest first, nothing skipped
        mine = admin.audit.page("authz", principal="user:nobody-at-all")
        assert mine == types.AuditPage(events=(), next_page_token="")
