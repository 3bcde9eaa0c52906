"""Listing runs and deleting pipelines in the authorization domain, on real SQLite."""

from __future__ import annotations

import base64
import datetime as dt

import pytest
from sqlalchemy import Engine

from securefiles.authz.adapters.sql_checks import SqlChecksRepository
from securefiles.authz.adapters.sql_repository import SqlAuthzRepository, metadata
from securefiles.authz.domain.model import Role, RoleAssignment, Run, RunState
from securefiles.authz.domain.service import Authorization
from securefiles.common.db import make_engine
from securefiles.common.errors import FailedPrecondition, InvalidArgument, NotFound
from securefiles.common.principal import Principal
from securefiles.common.tokens import TokenIssuer, generate_signing_key_pem, load_signing_key
from securefiles.common.unit_of_work import UnitsOfWork
from tests.unit.test_checks import Clock

ADMIN = Principal("user", "user:admin")
ANY = "projects/default/pipelines/-"


@pytest.fixture
def clock() -> Clock:
    return Clock(dt.datetime(2026, 11, 23, 10, 0, tzinfo=dt.UTC))


@pytest.fixture
def engine(tmp_path) -> Engine:
    return make_engine(f"sqlite:///{tmp_path / 'authz.db'}", metadata)


@pytest.fixture
def repo(engine) -> SqlAuthzRepository:
    return SqlAuthzRepository(engine)


@pytest.fixture
def authz(engine, clock) -> Authorization:
    issuer = TokenIssuer(load_signing_key(generate_signing_key_pem()))
    authorization = Authorization(SqlAuthzRepository(engine), SqlChecksRepository(engine), issuer, ["eu"], clock)
    authorization.bootstrap("user:admin")
    # Runs here are started by hand: the orchestrator role (dev mode gives it to the bootstrap admin).
    authorization.library.set_role(ADMIN, RoleAssignment("organization", "user:admin", Role.ORCHESTRATOR))
    return authorization


def _start(authz: Authorization, pipeline: str, ttl: int | None = None) -> int:
    run, _ = authz.pipelines.start_run(ADMIN, f"projects/default/pipelines/{pipeline}", "refs/heads/main", "", ttl)
    return run.run_id


def test_runs_are_listed_newest_first_page_by_page(authz: Authorization) -> None:
    authz.pipelines.create_pipeline(ADMIN, "projects/default", "release")
    started = [_start(authz, "release") for _ in range(5)]
    seen, token = [], ""
    while True:
        page, token = authz.pipelines.list_runs(ADMIN, ANY, 2, token, False)
        seen += [r.run_id for r in page]
        if not token:
            break
    assert seen == list(reversed(started))


def test_a_page_token_works_only_for_its_own_listing(authz: Authorization) -> None:
    authz.pipelines.create_pipeline(ADMIN, "projects/default", "release")
    for _ in range(3):
        _start(authz, "release")
    _page, token = authz.pipelines.list_runs(ADMIN, ANY, 1, "", False)
    with pytest.raises(InvalidArgument) as other_listing:
        authz.pipelines.list_runs(ADMIN, ANY, 1, token, True)
    assert other_listing.value.reason == "INVALID_PAGE_TOKEN"
    forged = base64.urlsafe_b64encode(b"default/-/0|99999999999999").decode()  # beyond any id
    for bad in (forged, "not base64 at all", "\x00"):
        with pytest.raises(InvalidArgument):
            authz.pipelines.list_runs(ADMIN, ANY, 1, bad, False)


def test_running_only_leaves_out_completed_and_expired_runs(authz: Authorization, clock: Clock) -> None:
    authz.pipelines.create_pipeline(ADMIN, "projects/default", "release")
    done, short, long = _start(authz, "release"), _start(authz, "release", 60), _start(authz, "release")
    authz.pipelines.complete_run(ADMIN, f"projects/default/pipelines/-/runs/{done}")
    clock.advance(minutes=2)
    page, _ = authz.pipelines.list_runs(ADMIN, ANY, 0, "", True)
    assert [r.run_id for r in page] == [long]
    assert short not in [r.run_id for r in page]


def test_a_deleted_pipeline_waits_for_its_runs_and_leaves_its_id_unused(authz: Authorization, clock: Clock) -> None:
    first = authz.pipelines.create_pipeline(ADMIN, "projects/default", "release")
    run = _start(authz, "release", 60)
    with pytest.raises(FailedPrecondition) as busy:
        authz.pipelines.delete_pipeline(ADMIN, "projects/default/pipelines/release")
    assert busy.value.reason == "PIPELINE_HAS_RUNNING_RUNS" and f"id {run}" in busy.value.message
    clock.advance(minutes=2)  # an expired run's token works no more: it does not hold the pipeline
    authz.pipelines.delete_pipeline(ADMIN, "projects/default/pipelines/release")
    with pytest.raises(NotFound):
        authz.pipelines.delete_pipeline(ADMIN, "projects/default/pipelines/release")
    again = authz.pipelines.create_pipeline(ADMIN, "projects/default", "release")
    assert again.pipeline_id > first.pipeline_id
    page, _ = authz.pipelines.list_runs(ADMIN, ANY, 0, "", False)
    assert [(r.run_id, r.pipeline_id) for r in page] == [(run, first.pipeline_id)]  # history stays


def test_a_run_cannot_start_for_a_pipeline_deleted_meanwhile(authz: Authorization, repo: SqlAuthzRepository
                                                             ) -> None:
    """The repository's step that start_run takes after it found the pipeline checks again."""
    pipeline = authz.pipelines.create_pipeline(ADMIN, "projects/default", "release")
    authz.pipelines.delete_pipeline(ADMIN, "projects/default/pipelines/release")
    now = dt.datetime.now(dt.UTC)
    with pytest.raises(NotFound) as gone:
        repo.create_run(Run(project="default", run_id=0, pipeline_id=pipeline.pipeline_id, branch="refs/heads/main",
                            requested_by="user:admin", state=RunState.RUNNING, created_at=now, expire_at=now,
                            completed_at=None, token_id="t"))
    assert gone.value.reason == "PIPELINE_NOT_FOUND"


def test_completing_a_run_and_releasing_its_locks_are_one_unit_of_work(engine, clock) -> None:
    """Issue #18 item 11: a failure between the run's completion and the release of its exclusive
    locks leaves neither (the run stays running, its token keeps working, and it can be completed
    again); before, the completion had already committed."""
    issuer = TokenIssuer(load_signing_key(generate_signing_key_pem()))
    authz = Authorization(SqlAuthzRepository(engine), SqlChecksRepository(engine), issuer, ["eu"], clock,
                          unit_of_work=UnitsOfWork(engine, audit=None))
    authz.bootstrap("user:admin")
    authz.library.set_role(ADMIN, RoleAssignment("organization", "user:admin", Role.ORCHESTRATOR))
    authz.pipelines.create_pipeline(ADMIN, "projects/default", "release")
    run_id = _start(authz, "release")
    name = f"projects/default/pipelines/1/runs/{run_id}"

    def release_fails(_run: Run) -> None:
        raise RuntimeError("the database went away between the two writes")

    authz.pipelines._checks.release_run = release_fails  # type: ignore[method-assign]
    with pytest.raises(RuntimeError):
        authz.pipelines.complete_run(ADMIN, name)
    assert authz.pipelines.get_run("default", run_id).state is RunState.RUNNING
    del authz.pipelines._checks.release_run
    assert authz.pipelines.complete_run(ADMIN, name).state is RunState.COMPLETED
