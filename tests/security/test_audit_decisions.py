"""One audit entry per decision, and the decision is the truth (issue #15, items 6 and 7)."""

from __future__ import annotations

import json

import pytest

from securefiles.common.errors import PermissionDenied
from tests.conftest import LocalSystem, unique, user_token


def _entries(system: LocalSystem, service: str, where: str, **params: object) -> list[dict]:
    rows = system.query(
        service, f"SELECT action, resource, decision, reason, request_id, details, principal FROM audit_events "
                 f"WHERE {where} ORDER BY sequence", **params)
    return [{"action": a, "resource": r, "decision": d, "reason": why, "request_id": rid,
             "details": json.loads(details), "principal": p} for a, r, d, why, rid, details, p in rows]


def test_a_denied_library_update_writes_one_deny_and_no_allow(system: LocalSystem) -> None:
    outsider = f"user:{unique('outsider')}"
    with system.client(token=user_token(system, outsider)) as client, pytest.raises(PermissionDenied):
        client.update_library(allow_replace=True)
    entries = _entries(system, "storage", "principal = :p AND action = 'UpdateLibrary'", p=outsider)
    assert [e["decision"] for e in entries] == ["DENY"], entries


def test_a_denied_break_glass_approval_writes_one_deny_and_no_allow(system: LocalSystem) -> None:
    outsider = f"user:{unique('outsider')}"
    with system.client(token=user_token(system, outsider)) as client, pytest.raises(PermissionDenied):
        client.approve_access(1)
    entries = _entries(system, "authz", "principal = :p AND action = 'ApproveAccess'", p=outsider)
    assert [e["decision"] for e in entries] == ["DENY"], entries


def test_one_upload_writes_one_data_key_entry_in_kms(system: LocalSystem) -> None:
    with system.client() as admin:
        uploaded = admin.upload_file(b"one key", name=unique())
    file_id = uploaded.name.rsplit("/", 1)[1]
    entries = [e for e in _entries(system, "kms-eu", "action = 'GenerateDataKey'")
               if e["details"].get("context.secure_file_id") == file_id]
    assert len(entries) == 1, entries
    assert entries[0]["decision"] == "ALLOW"


def test_issue_token_records_for_whom(system: LocalSystem) -> None:
    subject = f"user:{unique('subject')}"
    user_token(system, subject)
    (entry,) = _entries(system, "authz", "action = 'IssueToken' AND details LIKE :d", d=f"%{subject}%")
    assert entry["decision"] == "ALLOW"
    assert entry["details"]["subject"] == subject
    assert entry["details"]["expire_time"]


def test_start_run_records_pipeline_branch_and_requester(system: LocalSystem) -> None:
    pipeline = unique("pipeline")
    branch = f"refs/heads/{unique('topic')}"
    with system.client() as admin:
        admin.create_pipeline(pipeline)
        admin.start_run(pipeline, branch)
    (entry,) = _entries(system, "authz", "action = 'StartRun' AND details LIKE :d", d=f"%{branch}%")
    assert entry["resource"] == f"projects/default/pipelines/{pipeline}"
    assert entry["details"]["branch"] == branch
    assert entry["details"]["requested_by"] == entry["principal"]


def test_approve_and_revoke_access_record_project_and_requester(system: LocalSystem) -> None:
    first, second = f"user:{unique('op')}", f"user:{unique('op')}"
    with system.client() as admin:
        for operator in (first, second):
            admin.assign_role(operator, "operator")
    with system.client(token=user_token(system, first)) as requester:
        requested = requester.request_access("default", "INC-15: audit details", 600)
    number = int(requested.name.rsplit("/", 1)[1])
    with system.client(token=user_token(system, second)) as approver:
        approver.approve_access(number)
        approver.revoke_access(number)
    for action in ("ApproveAccess", "RevokeAccess"):
        (entry,) = _entries(system, "authz", "action = :a AND resource = :r AND principal = :p", a=action,
                            r=requested.name, p=second)
        assert entry["details"]["project"] == "default", entry
        assert entry["details"]["requester"] == first, entry
