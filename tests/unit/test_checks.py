"""Checks and approvals in the authorization domain, on real SQLite, with an injected clock."""

from __future__ import annotations

import datetime as dt
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from securefiles.authz.adapters.sql_checks import SqlChecksRepository
from securefiles.authz.adapters.sql_repository import SqlAuthzRepository, metadata
from securefiles.authz.domain.checks import CheckType
from securefiles.authz.domain.model import Role, RoleAssignment
from securefiles.authz.domain.service import Authorization
from securefiles.common.db import make_engine
from securefiles.common.errors import FailedPrecondition, PermissionDenied
from securefiles.common.principal import Principal
from securefiles.common.tokens import TokenIssuer, generate_signing_key_pem, load_signing_key

FILE = "projects/default/secureFiles/0b6b7a5e-3f7a-4c4e-9a51-2f3b1f0e9d10"
ADMIN = Principal("user", "user:admin")
STORAGE = Principal("service", "service:storage")
UTC = dt.UTC


class Clock:
    def __init__(self, now: dt.datetime) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += dt.timedelta(**delta)


@pytest.fixture
def clock() -> Clock:
    return Clock(dt.datetime(2026, 11, 23, 10, 0, tzinfo=UTC))  # a Monday


@pytest.fixture
def authz(tmp_path, clock) -> Authorization:
    engine = make_engine(f"sqlite:///{tmp_path / 'authz.db'}", metadata)
    issuer = TokenIssuer(load_signing_key(generate_signing_key_pem()))
    authorization = Authorization(SqlAuthzRepository(engine), SqlChecksRepository(engine), issuer, ["eu"], clock)
    authorization.bootstrap("user:admin")
    # The CI orchestrator of these tests: starts runs by hand, asserting branch and requester.
    authorization.library.set_role(ADMIN, RoleAssignment("organization", "user:admin", Role.ORCHESTRATOR))
    # the upload committed
    authorization.library.set_role(STORAGE, RoleAssignment(FILE, "user:admin", Role.ADMINISTRATOR))
    pipeline = authorization.pipelines.create_pipeline(ADMIN, "projects/default", "release")
    authorization.pipelines.set_pipeline_permission(ADMIN, FILE, "release", False, True)
    assert pipeline.pipeline_id == 1
    for user in ("user:alice", "user:bob", "user:carol", "user:dave"):
        authorization.library.set_role(ADMIN, RoleAssignment("projects/default", user, Role.USER))
    return authorization


def start(authz: Authorization, branch: str = "refs/heads/main", requester: str = "user:alice",
          ttl: int = 31 * 24 * 3600) -> Principal:
    run, _token = authz.pipelines.start_run(ADMIN, "projects/default/pipelines/release", branch, requester, ttl)
    return Principal("job", f"job:{run.name}", {"project": "default", "pipeline": "1", "run": str(run.run_id),
                                                 "jti": run.token_id})


def decision(authz: Authorization, job: Principal) -> str:
    """ALLOW, PENDING or REJECTED: what a download would get now."""
    try:
        authz.authorize_use(STORAGE, job, FILE)
    except FailedPrecondition as pending:
        assert pending.reason == "CHECKS_PENDING"
        return "PENDING"
    except PermissionDenied as denied:
        assert denied.reason == "CHECK_REJECTED", denied.reason
        return "REJECTED"
    return "ALLOW"


def add(authz: Authorization, check_type: CheckType, timeout: int = 0, **settings) -> None:
    authz.checks.create_check(ADMIN, FILE, check_type, settings, timeout)


def approval_id(authz: Authorization, job: Principal) -> int:
    suite = authz.checks.evaluate(authz.active_run_of(job), FILE)
    return next(r.approval_id for r in suite.results if r.type is CheckType.APPROVAL)


def decide(authz: Authorization, user: str, job: Principal, approve: bool = True):
    name = f"projects/default/approvals/{approval_id(authz, job)}"
    return authz.checks.decide(Principal("user", user), name, approve, "")


# -- each check alone -----------------------------------------------------------------


def test_no_checks_allows(authz):
    assert decision(authz, start(authz)) == "ALLOW"


def test_branch_control_passes_and_fails(authz):
    add(authz, CheckType.BRANCH_CONTROL, allowed_refs=["refs/heads/main", "refs/heads/release/*"])
    assert decision(authz, start(authz, "refs/heads/main")) == "ALLOW"
    assert decision(authz, start(authz, "refs/heads/release/2.1")) == "ALLOW"
    assert decision(authz, start(authz, "refs/heads/feature/x")) == "REJECTED"
    with pytest.raises(PermissionDenied) as denied:
        authz.authorize_use(STORAGE, start(authz, "refs/tags/v1"), FILE)
    assert denied.value.metadata["check"] == "branch-control"
    assert "refs/tags/v1" in denied.value.message


def test_approval_pending_then_approved(authz):
    add(authz, CheckType.APPROVAL, approvers=["user:bob"])
    job = start(authz)
    with pytest.raises(FailedPrecondition) as pending:
        authz.authorize_use(STORAGE, job, FILE)
    assert pending.value.metadata["approval_ids"] == str(approval_id(authz, job))
    assert decide(authz, "user:bob", job).state.value == "APPROVED"
    assert decision(authz, job) == "ALLOW"


def test_approval_times_out(authz, clock):
    add(authz, CheckType.APPROVAL, timeout=3600, approvers=["user:bob"])
    job = start(authz)
    assert decision(authz, job) == "PENDING"
    clock.advance(hours=1)
    assert decision(authz, job) == "REJECTED"
    with pytest.raises(FailedPrecondition) as late:
        decide(authz, "user:bob", job)
    assert late.value.reason == "APPROVAL_ALREADY_DECIDED"


def test_default_approval_timeout_is_30_days(authz, clock):
    add(authz, CheckType.APPROVAL, approvers=["user:bob"])
    job = start(authz)
    assert decision(authz, job) == "PENDING"
    clock.advance(days=29, hours=23)
    assert decision(authz, job) == "PENDING"
    clock.advance(hours=1)
    assert decision(authz, job) == "REJECTED"


BERLIN_OFFICE = {"time_zone": "Europe/Berlin", "days": ["mon", "tue", "wed", "thu", "fri"],
                 "start_time": "09:00", "end_time": "17:00"}


def test_business_hours_pending_then_open(authz, clock):
    add(authz, CheckType.BUSINESS_HOURS, **BERLIN_OFFICE)
    clock.now = dt.datetime(2026, 11, 23, 7, 30, tzinfo=UTC)  # Monday 08:30 in Berlin (UTC+1)
    job = start(authz)
    assert decision(authz, job) == "PENDING"
    clock.now = dt.datetime(2026, 11, 23, 8, 0, tzinfo=UTC)  # 09:00 in Berlin
    assert decision(authz, job) == "ALLOW"


def test_business_hours_across_time_zone_and_weekend(authz, clock):
    add(authz, CheckType.BUSINESS_HOURS, **BERLIN_OFFICE)
    clock.now = dt.datetime(2026, 11, 27, 15, 59, tzinfo=UTC)  # Friday 16:59 in Berlin: open
    assert decision(authz, start(authz)) == "ALLOW"
    clock.now = dt.datetime(2026, 11, 27, 16, 0, tzinfo=UTC)  # Friday 17:00 in Berlin: closed
    job = start(authz)
    assert decision(authz, job) == "PENDING"
    clock.now = dt.datetime(2026, 11, 28, 12, 0, tzinfo=UTC)  # Saturday noon
    assert decision(authz, job) == "PENDING"
    clock.now = dt.datetime(2026, 11, 30, 7, 59, tzinfo=UTC)  # Monday 08:59 in Berlin
    assert decision(authz, job) == "PENDING"
    clock.now = dt.datetime(2026, 11, 30, 8, 0, tzinfo=UTC)  # Monday 09:00 in Berlin
    assert decision(authz, job) == "ALLOW"


def test_business_hours_on_the_other_side_of_the_date_line(authz, clock):
    add(authz, CheckType.BUSINESS_HOURS, time_zone="Pacific/Auckland", days=["mon"], start_time="08:00",
        end_time="12:00")
    # Sunday 20:00 UTC is already Monday 09:00 in Auckland (UTC+13 in November).
    clock.now = dt.datetime(2026, 11, 29, 20, 0, tzinfo=UTC)
    assert decision(authz, start(authz)) == "ALLOW"
    clock.now = dt.datetime(2026, 11, 30, 20, 0, tzinfo=UTC)  # Tuesday 09:00 there
    assert decision(authz, start(authz)) == "PENDING"


def test_business_hours_time_out(authz, clock):
    add(authz, CheckType.BUSINESS_HOURS, timeout=6 * 3600, **BERLIN_OFFICE)
    clock.now = dt.datetime(2026, 11, 28, 10, 0, tzinfo=UTC)  # Saturday
    job = start(authz)
    assert decision(authz, job) == "PENDING"
    clock.advance(hours=6)
    assert decision(authz, job) == "REJECTED"
    clock.now = dt.datetime(2026, 11, 30, 10, 0, tzinfo=UTC)  # Monday: too late, it stays rejected
    assert decision(authz, job) == "REJECTED"


def test_exclusive_lock_pending_then_free(authz):
    add(authz, CheckType.EXCLUSIVE_LOCK)
    first, second = start(authz), start(authz)
    assert decision(authz, first) == "ALLOW"
    assert decision(authz, first) == "ALLOW"  # the holder keeps using it
    assert decision(authz, second) == "PENDING"
    authz.pipelines.complete_run(ADMIN, first.name.removeprefix("job:"))
    assert decision(authz, second) == "ALLOW"


def test_exclusive_lock_wait_times_out(authz, clock):
    add(authz, CheckType.EXCLUSIVE_LOCK, timeout=600)
    first, second = start(authz), start(authz)
    assert decision(authz, first) == "ALLOW"
    assert decision(authz, second) == "PENDING"
    clock.advance(minutes=10)
    assert decision(authz, second) == "REJECTED"


def test_exclusive_lock_newest_waiter_proceeds_older_superseded(authz):
    add(authz, CheckType.EXCLUSIVE_LOCK)
    a, b, c = start(authz), start(authz), start(authz)
    assert decision(authz, a) == "ALLOW"
    assert decision(authz, b) == "PENDING"
    assert decision(authz, c) == "PENDING"
    authz.pipelines.complete_run(ADMIN, a.name.removeprefix("job:"))
    assert decision(authz, b) == "REJECTED"
    assert decision(authz, c) == "ALLOW"
    with pytest.raises(PermissionDenied) as superseded:
        authz.authorize_use(STORAGE, b, FILE)
    assert "superseded" in superseded.value.message


def test_lock_of_an_expired_run_is_released(authz, clock):
    add(authz, CheckType.EXCLUSIVE_LOCK, timeout=10 * 24 * 3600)
    holder = start(authz, ttl=6 * 3600)
    assert decision(authz, holder) == "ALLOW"
    clock.advance(hours=7)  # past the holder's job token
    assert decision(authz, start(authz)) == "ALLOW"


# -- approvals ------------------------------------------------------------------------


def test_two_approvals_need_two_distinct_approvers(authz):
    add(authz, CheckType.APPROVAL, approvers=["user:bob", "user:carol"], min_approvals=2)
    job = start(authz)
    decide(authz, "user:bob", job)
    decide(authz, "user:bob", job)  # twice by one person counts once
    assert decision(authz, job) == "PENDING"
    decide(authz, "user:carol", job)
    assert decision(authz, job) == "ALLOW"


def test_two_evaluations_at_once_ask_for_one_approval(authz, monkeypatch):
    """The agent polling and someone asking for approval read the run's suite at the same time:
    both must name the same approval, or approvers are shown one that gates nothing."""
    job = start(authz)
    assert decision(authz, job) == "ALLOW"  # the run's suite exists: both evaluations read it
    add(authz, CheckType.APPROVAL, approvers=["user:bob"])
    run = authz.active_run_of(job)
    repo = authz.checks._repo
    both_read = threading.Barrier(2, timeout=30)
    read_suite = repo.get_suite

    waited = threading.local()

    def get_suite(*args):
        suite = read_suite(*args)
        if not getattr(waited, "once", False):  # each evaluation's first read
            waited.once = True
            both_read.wait()  # neither goes on before the other has read the suite as it was
        return suite

    monkeypatch.setattr(repo, "get_suite", get_suite)
    with ThreadPoolExecutor(2) as pool:
        suites = list(pool.map(lambda _: authz.checks.evaluate(run, FILE), range(2)))
    monkeypatch.undo()
    ids = {r.approval_id for suite in suites for r in suite.results if r.type is CheckType.APPROVAL}
    pending, _ = authz.checks.list_approvals(ADMIN, "default", pending_only=True)
    assert len(ids) == 1 and [a.approval_id for a in pending] == list(ids)
    authz.checks.decide(Principal("user", "user:bob"), f"projects/default/approvals/{ids.pop()}", True, "")
    assert decision(authz, job) == "ALLOW"


def test_group_members_may_approve(authz):
    authz.checks.set_group_member(ADMIN, "group:release-managers", "user:dave", True)
    add(authz, CheckType.APPROVAL, approvers=["group:release-managers"])
    job = start(authz)
    with pytest.raises(PermissionDenied) as refused:
        decide(authz, "user:bob", job)
    assert refused.value.reason == "NOT_AN_APPROVER"
    decide(authz, "user:dave", job)
    assert decision(authz, job) == "ALLOW"


def test_requester_cannot_approve_own_run_unless_allowed(authz):
    add(authz, CheckType.APPROVAL, approvers=["user:alice", "user:bob"])
    job = start(authz, requester="user:alice")
    with pytest.raises(PermissionDenied) as refused:
        decide(authz, "user:alice", job)
    assert refused.value.reason == "REQUESTER_CANNOT_APPROVE"
    assert decision(authz, job) == "PENDING"


def test_requester_may_approve_when_allowed(authz):
    add(authz, CheckType.APPROVAL, approvers=["user:alice"], allow_requester=True)
    job = start(authz, requester="user:alice")
    decide(authz, "user:alice", job)
    assert decision(authz, job) == "ALLOW"


def test_non_approver_is_refused(authz):
    add(authz, CheckType.APPROVAL, approvers=["user:bob"])
    job = start(authz)
    with pytest.raises(PermissionDenied) as refused:
        decide(authz, "user:carol", job)
    assert refused.value.reason == "NOT_AN_APPROVER"


def test_a_rejection_wins_over_approvals(authz):
    add(authz, CheckType.APPROVAL, approvers=["user:bob", "user:carol", "user:dave"], min_approvals=2)
    job = start(authz)
    decide(authz, "user:bob", job)
    decide(authz, "user:carol", job, approve=False)
    assert decision(authz, job) == "REJECTED"
    with pytest.raises(FailedPrecondition):
        decide(authz, "user:dave", job)
    assert decision(authz, job) == "REJECTED"


# -- all together ---------------------------------------------------------------------


def test_all_four_checks_allow_only_when_all_pass(authz, clock):
    add(authz, CheckType.BRANCH_CONTROL, allowed_refs=["refs/heads/main"])
    add(authz, CheckType.APPROVAL, approvers=["user:bob"])
    add(authz, CheckType.BUSINESS_HOURS, **BERLIN_OFFICE)
    add(authz, CheckType.EXCLUSIVE_LOCK)
    clock.now = dt.datetime(2026, 11, 28, 10, 0, tzinfo=UTC)  # Saturday
    holder, job = start(authz), start(authz)
    assert decision(authz, job) == "PENDING"  # waits for approval
    decide(authz, "user:bob", job)
    assert decision(authz, job) == "PENDING"  # waits for business hours
    clock.now = dt.datetime(2026, 11, 30, 9, 0, tzinfo=UTC)  # Monday 10:00 in Berlin
    decide(authz, "user:bob", holder)
    assert decision(authz, holder) == "ALLOW"  # the holder takes the lock
    assert decision(authz, job) == "PENDING"  # waits for the lock
    authz.pipelines.complete_run(ADMIN, holder.name.removeprefix("job:"))
    assert decision(authz, job) == "ALLOW"
    suite = authz.checks.evaluate(authz.active_run_of(job), FILE)
    assert [r.type.value for r in suite.results] == ["branch-control", "approval", "business-hours",
                                                      "exclusive-lock"]
    assert all(r.state.value == "APPROVED" for r in suite.results)


def test_changing_checks_does_not_loosen_a_rejected_suite(authz):
    add(authz, CheckType.BRANCH_CONTROL, allowed_refs=["refs/heads/main"])
    job = start(authz, "refs/heads/feature")
    assert decision(authz, job) == "REJECTED"
    for check in authz.checks.list_checks(ADMIN, FILE):
        authz.checks.delete_check(ADMIN, check.name)
    assert decision(authz, job) == "REJECTED"
    assert decision(authz, start(authz, "refs/heads/feature")) == "ALLOW"  # a new run sees the new checks


def test_a_check_added_mid_run_applies_to_its_later_downloads(authz):
    job = start(authz, "refs/heads/feature/x")
    assert decision(authz, job) == "ALLOW"  # no checks yet
    add(authz, CheckType.BRANCH_CONTROL, allowed_refs=["refs/heads/main"])
    assert decision(authz, job) == "REJECTED"
    for check in authz.checks.list_checks(ADMIN, FILE):
        authz.checks.delete_check(ADMIN, check.name)
    assert decision(authz, job) == "REJECTED"  # a rejection stays final


def test_a_check_tightened_mid_run_applies_and_a_satisfied_approval_stays_satisfied(authz, clock):
    add(authz, CheckType.APPROVAL, approvers=["user:bob"])
    job = start(authz, "refs/heads/feature/x")
    decide(authz, "user:bob", job)
    assert decision(authz, job) == "ALLOW"
    clock.advance(days=2)
    # A second approval (timeout 1 day, counted from when it was added) and business hours.
    add(authz, CheckType.APPROVAL, timeout=86400, approvers=["user:carol"])
    assert decision(authz, job) == "PENDING"
    suite = authz.checks.evaluate(authz.active_run_of(job), FILE)
    assert [r.state.value for r in suite.results] == ["APPROVED", "PENDING"]  # bob is not asked again
    second = suite.results[1].approval_id
    authz.checks.decide(Principal("user", "user:carol"), f"projects/default/approvals/{second}", True, "")
    assert decision(authz, job) == "ALLOW"


def test_a_deleted_check_no_longer_holds_a_run_back(authz):
    add(authz, CheckType.APPROVAL, approvers=["user:bob"])
    job = start(authz)
    assert decision(authz, job) == "PENDING"
    for check in authz.checks.list_checks(ADMIN, FILE):
        authz.checks.delete_check(ADMIN, check.name)
    assert decision(authz, job) == "ALLOW"


def test_only_file_administrators_configure_checks(authz):
    with pytest.raises(PermissionDenied):
        authz.checks.create_check(Principal("user", "user:alice"), FILE, CheckType.EXCLUSIVE_LOCK, {}, 0)
