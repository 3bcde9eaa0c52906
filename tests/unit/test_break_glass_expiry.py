"""A break-glass grant's lifetime, on real SQLite with an injected clock: it starts at the second
operator's approval and ends exactly ttl later, by itself."""

from __future__ import annotations

import datetime as dt

import pytest

from securefiles.authz.adapters.sql_break_glass import SqlAccessRequestRepository
from securefiles.authz.adapters.sql_checks import SqlChecksRepository
from securefiles.authz.adapters.sql_repository import SqlAuthzRepository, metadata
from securefiles.authz.domain.break_glass import GrantState
from securefiles.authz.domain.model import Role, RoleAssignment
from securefiles.authz.domain.service import Authorization
from securefiles.common.db import make_engine
from securefiles.common.errors import FailedPrecondition, PermissionDenied
from securefiles.common.principal import Principal
from securefiles.common.tokens import TokenIssuer, generate_signing_key_pem, load_signing_key
from tests.unit.test_checks import Clock

ADMIN, FIRST, SECOND = (Principal("user", f"user:{n}") for n in ("admin", "first-op", "second-op"))
FILE = "projects/default/secureFiles/0b6b7a5e-3f7a-4c4e-9a51-2f3b1f0e9d10"
OTHER_PROJECT_FILE = "projects/other/secureFiles/0b6b7a5e-3f7a-4c4e-9a51-2f3b1f0e9d11"


@pytest.fixture
def clock() -> Clock:
    return Clock(dt.datetime(2026, 11, 23, 10, 0, tzinfo=dt.UTC))


@pytest.fixture
def authz(tmp_path, clock) -> Authorization:
    engine = make_engine(f"sqlite:///{tmp_path / 'authz.db'}", metadata)
    issuer = TokenIssuer(load_signing_key(generate_signing_key_pem()))
    authorization = Authorization(SqlAuthzRepository(engine), SqlChecksRepository(engine), issuer, ["eu"], clock,
                                  access_requests=SqlAccessRequestRepository(engine))
    authorization.bootstrap("user:admin")
    for operator in (FIRST, SECOND):
        authorization.library.set_role(ADMIN, RoleAssignment("organization", operator.name, Role.OPERATOR))
    return authorization


def test_a_grant_lasts_exactly_its_ttl_from_the_approval(authz: Authorization, clock: Clock) -> None:
    glass = authz.break_glass
    assert glass is not None
    request = glass.request(FIRST, "projects/default", "INC-42", 3600)
    clock.advance(minutes=10)  # waiting for a second operator does not use up the lifetime
    granted = glass.approve(SECOND, request.name)
    assert granted.expire_at == clock.now + dt.timedelta(hours=1)

    clock.advance(minutes=59, seconds=59)
    assert glass.authorize(FIRST.name, FILE).name == request.name
    with pytest.raises(PermissionDenied):  # one project only
        glass.authorize(FIRST.name, OTHER_PROJECT_FILE)
    with pytest.raises(PermissionDenied):  # and one operator only
        glass.authorize(SECOND.name, FILE)

    clock.advance(seconds=1)
    with pytest.raises(PermissionDenied) as expired:
        glass.authorize(FIRST.name, FILE)
    assert expired.value.reason == "JOB_TOKEN_REQUIRED"
    assert [r.state for r in glass.list(SECOND)] == [GrantState.EXPIRED]


def test_a_request_nobody_approves_expires_too(authz: Authorization, clock: Clock) -> None:
    glass = authz.break_glass
    assert glass is not None
    request = glass.request(FIRST, "projects/default", "INC-43", 600)
    clock.advance(hours=24)
    assert [r.state for r in glass.list(FIRST)] == [GrantState.EXPIRED]
    with pytest.raises(FailedPrecondition) as late:
        glass.approve(SECOND, request.name)
    assert late.value.reason == "NOT_PENDING"
