"""The lists that grow with every run (a project's approvals, a region's key versions) are read from
SQL a page at a time: every item once, in order, and never the whole list for one page. On SQLite,
and on PostgreSQL when SECUREFILES_TEST_DATABASE_URL names one."""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, event

from securefiles.authz.adapters.sql_checks import SqlChecksRepository, approval_decisions, approvals
from securefiles.authz.adapters.sql_repository import SqlAuthzRepository
from securefiles.authz.adapters.sql_repository import metadata as authz_metadata
from securefiles.authz.domain.model import Role, RoleAssignment
from securefiles.authz.domain.service import Authorization
from securefiles.common.audit import metadata as audit_metadata
from securefiles.common.errors import InvalidArgument
from securefiles.common.paging import int_key, next_page_token, page_request, repository_page
from securefiles.common.principal import Principal
from securefiles.common.tokens import TokenIssuer, generate_signing_key_pem, load_signing_key
from securefiles.kms.adapters.metrics import key_version_gauge
from securefiles.kms.adapters.sql_key_store import SqlKeyVersionStore, key_versions
from securefiles.kms.adapters.sql_key_store import metadata as kms_metadata
from securefiles.kms.domain.key_ring import KeyRing
from tests.engines import database_engine

NOW = dt.datetime(2026, 11, 23, 10, 0, tzinfo=dt.UTC)
ADMIN = Principal("user", "user:admin")
OUTSIDER = Principal("user", "user:zed")  # may not view the library: sees only approvals naming them
PARENT = "projects/default"


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    tables = (audit_metadata, authz_metadata, kms_metadata)
    with database_engine(request.param, tmp_path, "pages", *tables) as made:
        yield made


class CountingRepository:
    """The checks repository, counting the approval rows each listing read returns."""

    def __init__(self, repo: SqlChecksRepository) -> None:
        self._repo = repo
        self.rows_read: list[int] = []

    def list_approvals(self, *args: Any, **kwargs: Any) -> Any:
        found = self._repo.list_approvals(*args, **kwargs)
        self.rows_read.append(len(found))
        return found

    def __getattr__(self, name: str) -> Any:
        return getattr(self._repo, name)


def _statements(engine: Engine) -> list[str]:
    seen: list[str] = []
    event.listen(engine, "before_cursor_execute", lambda _c, _cur, statement, *_: seen.append(statement))
    return seen


def _authz_with_approvals(engine: Engine, count: int) -> tuple[Authorization, CountingRepository]:
    """`count` approvals of the default project; every third names user:zed (every ninth through a
    group), and approval 5 has two decisions."""
    issuer = TokenIssuer(load_signing_key(generate_signing_key_pem()))
    repo = CountingRepository(SqlChecksRepository(engine))
    authz = Authorization(SqlAuthzRepository(engine), repo, issuer, ["eu"], lambda: NOW)  # type: ignore[arg-type]
    authz.bootstrap("user:admin")
    authz.library.set_role(ADMIN, RoleAssignment(PARENT, "user:bob", Role.USER))
    authz.checks.set_group_member(ADMIN, "group:night-shift", "user:zed", True)
    rows = []
    for i in range(1, count + 1):
        approvers = ["user:bob"] + (["group:night-shift"] if i % 9 == 0 else ["user:zed"] if i % 3 == 0 else [])
        rows.append(dict(project="default", approval_id=i, run_id=i, resource="projects/default/secureFiles/f",
                         check_id=1, approvers=json.dumps(approvers), min_approvals=3, allow_requester=False,
                         instructions="", requested_by="user:alice", state="PENDING", created_at=NOW,
                         expire_at=NOW + dt.timedelta(days=30)))
    with engine.begin() as conn:
        conn.execute(approvals.insert(), rows)
        conn.execute(approval_decisions.insert(), [
            dict(project="default", approval_id=5, approver=who, approved=True, comment=who, decided_at=NOW)
            for who in ("user:bob", "user:carol")])
    return authz, repo


def _approval_pages(authz: Authorization, caller: Principal, page_size: int, pending_only: bool = False
                    ) -> list[list[Any]]:
    """Every page as ListApprovals reads them."""
    query = f"pending={int(pending_only)}"
    pages, token = [], ""
    while True:
        wanted = page_request(PARENT, query, page_size, token, int_key)
        page, resume_after = authz.checks.list_approvals(caller, "default", pending_only, wanted.after, wanted.limit)
        pages.append(page)
        token = next_page_token(wanted, resume_after)
        if not token:
            return pages


@pytest.mark.parametrize("pending_only", [False, True])
def test_250_approvals_come_in_pages_of_100_each_once_in_order(engine: Engine, pending_only: bool) -> None:
    authz, repo = _authz_with_approvals(engine, 250)
    statements = _statements(engine)
    pages = _approval_pages(authz, ADMIN, 100, pending_only)
    assert [len(p) for p in pages] == [100, 100, 50]
    assert [a.approval_id for p in pages for a in p] == list(range(1, 251))
    assert [(d.approver, d.comment) for d in pages[0][4].decisions] == [("user:bob", "user:bob"),
                                                                       ("user:carol", "user:carol")]
    # One page is one read of 101 rows and ONE query for their decisions, not one per approval.
    assert repo.rows_read == [101, 101, 50]
    assert sum("approval_decisions" in s for s in statements) == 3


def test_an_outsiders_pages_hold_only_their_approvals_and_end(engine: Engine) -> None:
    authz, repo = _authz_with_approvals(engine, 250)
    pages = _approval_pages(authz, OUTSIDER, 20)
    assert [a.approval_id for p in pages for a in p] == list(range(3, 251, 3))  # directly or through the group
    assert all(len(p) == 20 for p in pages[:-1]) and len(pages) == 5
    assert max(repo.rows_read) <= 21  # read a page and a row at a time, never the whole list


def test_a_token_of_another_project_or_filter_is_refused(engine: Engine) -> None:
    authz, _ = _authz_with_approvals(engine, 3)
    wanted = page_request(PARENT, "pending=0", 1, "", int_key)
    _, resume_after = authz.checks.list_approvals(ADMIN, "default", False, wanted.after, wanted.limit)
    token = next_page_token(wanted, resume_after)
    for parent, query in (("projects/other", "pending=0"), (PARENT, "pending=1")):
        with pytest.raises(InvalidArgument) as refused:
            page_request(parent, query, 1, token, int_key)
        assert refused.value.reason == "INVALID_PAGE_TOKEN"


class CountingKeyStore(SqlKeyVersionStore):
    """The key store, counting the version rows each page read returns."""

    rows_read: list[int]

    def versions_page(self, region: str, before: int | None, limit: int) -> Any:
        found = super().versions_page(region, before, limit)
        self.rows_read.append(len(found))
        return found


def test_250_key_versions_come_in_pages_of_100_newest_first_each_once(engine: Engine) -> None:
    store = CountingKeyStore(engine)
    store.rows_read = []
    with engine.begin() as conn:
        conn.execute(key_versions.insert(), [
            dict(region=region, version=v, state="PRIMARY" if v == 250 else "ENABLED", sealed_material=b"sealed",
                 created_at=NOW, created_by="deploy", reason="", deployment_id=f"release-{v}")
            for region in ("eu", "us") for v in range(1, 251)])
    ring = KeyRing("eu", os.urandom(32), store)
    pages, token = [], ""
    while True:  # as ListKeyVersions reads them
        wanted = page_request("regions/eu", "", 100, token, int_key)
        page, token = repository_page(ring.versions_page, lambda r: r.version, wanted)
        pages.append(page)
        if not token:
            break
    assert [len(p) for p in pages] == [100, 100, 50]
    assert [(r.region, r.version) for p in pages for r in p] == [("eu", v) for v in range(250, 0, -1)]
    assert store.rows_read == [101, 101, 50]
    first = page_request("regions/eu", "", 100, "", int_key)
    with pytest.raises(InvalidArgument) as refused:
        page_request("regions/us", "", 100, repository_page(ring.versions_page, lambda r: r.version, first)[1],
                     int_key)
    assert refused.value.reason == "INVALID_PAGE_TOKEN"



class UnreadableVersions(SqlKeyVersionStore):
    """The key store, refusing to hand out its versions (sealed material included)."""

    def list_versions(self, region: str) -> Any:
        raise AssertionError("the versions were read")

    def versions_page(self, region: str, before: int | None, limit: int) -> Any:
        raise AssertionError("the versions were read")


def test_the_key_version_gauge_counts_in_the_database_without_reading_the_versions(engine: Engine) -> None:
    states = ["PRIMARY"] + ["ENABLED"] * 5 + ["DISABLED"] * 3 + ["DESTROYED"] * 2
    with engine.begin() as conn:
        conn.execute(key_versions.insert(), [
            dict(region=region, version=v, state=state, sealed_material=b"sealed", created_at=NOW,
                 created_by="deploy", reason="", deployment_id=f"release-{v}")
            for region in ("eu", "us") for v, state in enumerate(states[: 11 if region == "eu" else 1], 1)])
    store = UnreadableVersions(engine)
    gauge = {s.labels["state"]: s.value for s in key_version_gauge(store, "eu").samples}
    assert gauge == {"PRIMARY": 1, "ENABLED": 5, "DISABLED": 3, "DESTROYED": 2}
    assert {s.labels["state"]: s.value for s in key_version_gauge(store, "us").samples} == {
        "PRIMARY": 1, "ENABLED": 0, "DISABLED": 0, "DESTROYED": 0}
