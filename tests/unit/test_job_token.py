"""A job token is read one way: what authz signs into it is what the services and the agent read."""

from __future__ import annotations

import datetime as dt

import jwt
import pytest

from securefiles.authz.domain.job_identity import issue_job_token
from securefiles.authz.domain.model import Pipeline, Run, RunState
from securefiles.client.job_identity import job_claims
from securefiles.common.errors import InvalidArgument, Unauthenticated
from securefiles.common.job_token import JobToken
from securefiles.common.tokens import TokenIssuer, generate_signing_key_pem, load_signing_key, principal_from_claims

NOW = dt.datetime(2026, 11, 23, 10, 0, tzinfo=dt.UTC)


def test_the_services_and_the_agent_read_the_same_job_from_its_token() -> None:
    issuer = TokenIssuer(load_signing_key(generate_signing_key_pem()))
    run = Run("demo", 42, 7, "refs/heads/main", "user:alice", RunState.RUNNING, NOW, NOW, None, "rtk-1")
    token, expire = issue_job_token(issuer, run, Pipeline("demo", 7, "release", NOW), 600,
                                    issued_by="projects/demo/trusts/1", trust="projects/demo/trusts/1")
    expected = JobToken(project="demo", pipeline="7", run="42", branch="refs/heads/main", pipeline_name="release",
                        requested_by="user:alice", trust="projects/demo/trusts/1",
                        issued_by="projects/demo/trusts/1", run_token_id="rtk-1", expire_time=expire)
    principal = principal_from_claims(jwt.decode(token, options={"verify_signature": False}), token)
    assert principal.job == expected
    assert principal.name == f"job:{expected.run_name}" == "job:projects/demo/pipelines/7/runs/42"
    assert principal.is_job_of("demo", 42) and not principal.is_job_of("demo", 41)
    assert not principal.is_job_of("other")
    assert job_claims(token) == expected


def test_a_job_token_without_its_run_is_no_job_token() -> None:
    claims = {"kind": "job", "sub": "job:x", "project": "demo", "pipeline": "7"}
    with pytest.raises(Unauthenticated) as refused:
        principal_from_claims(claims, "")
    assert refused.value.reason == "INVALID_TOKEN"
    with pytest.raises(InvalidArgument) as unread:
        job_claims(jwt.encode(claims, "k" * 32))
    assert unread.value.reason == "INVALID_JOB_TOKEN"
