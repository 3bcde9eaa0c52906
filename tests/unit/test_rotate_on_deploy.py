"""Rotation on deploy writes its RotateKeyOnDeploy entry in the transaction that adds the version:
a kms whose entry cannot be written makes no version (and does not start). On SQLite, and on
PostgreSQL when SECUREFILES_TEST_DATABASE_URL names one."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, select, text

from securefiles.common.audit import AuditLog, audit_events
from securefiles.common.audit import metadata as audit_metadata
from securefiles.common.errors import Unavailable
from securefiles.common.unit_of_work import UnitsOfWork
from securefiles.kms.adapters.sql_key_store import SqlKeyVersionStore
from securefiles.kms.adapters.sql_key_store import metadata as kms_metadata
from securefiles.kms.app import rotate_on_deploy
from securefiles.kms.domain.key_ring import KeyRing
from tests.engines import database_engine


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    with database_engine(request.param, tmp_path, "kms", audit_metadata, kms_metadata) as made:
        yield made


def _refuse_audit_inserts(engine: Engine) -> None:
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("CREATE FUNCTION deploy_audit_off() RETURNS trigger LANGUAGE plpgsql AS "
                              "$$ BEGIN RAISE EXCEPTION 'audit disabled'; END $$"))
            conn.execute(text("CREATE TRIGGER deploy_audit_off BEFORE INSERT ON audit_events "
                              "FOR EACH ROW EXECUTE FUNCTION deploy_audit_off()"))
        else:
            conn.execute(text("CREATE TRIGGER deploy_audit_off BEFORE INSERT ON audit_events "
                              "BEGIN SELECT RAISE(ABORT, 'audit disabled'); END"))


def _allow_audit_inserts(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(text("DROP TRIGGER deploy_audit_off" + (" ON audit_events" if engine.dialect.name ==
                                                             "postgresql" else "")))


def _entries(engine: Engine) -> list[tuple[str, str, str, dict[str, str]]]:
    with engine.connect() as conn:
        return [(e.principal, e.action, e.resource, json.loads(e.details))
                for e in conn.execute(select(audit_events).order_by(audit_events.c.sequence))]


def _ring_and_units(engine: Engine) -> tuple[KeyRing, UnitsOfWork]:
    return KeyRing("eu", os.urandom(32), SqlKeyVersionStore(engine)), UnitsOfWork(
        engine, AuditLog(engine, "kms-eu", key=b"k" * 32))


def test_a_new_deployment_version_commits_with_its_entry_once(engine: Engine) -> None:
    ring, units = _ring_and_units(engine)
    record, created = rotate_on_deploy(ring, units, "release-1")
    assert created and record.name == "regions/eu/keyVersions/1"
    assert rotate_on_deploy(ring, units, "release-1") == (record, False)  # a restart: no version, no entry
    assert _entries(engine) == [("deployment:release-1", "RotateKeyOnDeploy", "regions/eu/keyVersions/1",
                                 {"deployment_id": "release-1"})]


def test_a_deployment_whose_entry_cannot_be_written_makes_no_version(engine: Engine) -> None:
    ring, units = _ring_and_units(engine)
    rotate_on_deploy(ring, units, "release-1")
    _refuse_audit_inserts(engine)
    with pytest.raises(Unavailable) as refused:
        rotate_on_deploy(ring, units, "release-2")
    assert refused.value.reason == "AUDIT_UNAVAILABLE"
    assert [(v.version, v.state.value) for v in ring.list_versions()] == [(1, "PRIMARY")]  # release-1 stays primary
    assert len(_entries(engine)) == 1
    _allow_audit_inserts(engine)
    record, created = rotate_on_deploy(ring, units, "release-2")  # the next start makes it, with its entry
    assert created and record.version == 2
    assert [e[2] for e in _entries(engine)] == ["regions/eu/keyVersions/1", "regions/eu/keyVersions/2"]
