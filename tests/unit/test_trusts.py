"""Trusts in the domain: validation, claim matching with globs (the glob itself: test_glob.py), and
what a job's claims say."""

from __future__ import annotations

import pytest

from securefiles.authz.domain.trusts import Trust, first_mismatch, job_claims, validate_trust
from securefiles.common.errors import InvalidArgument, PermissionDenied

GITHUB = Trust(
    project="default", trust_id=7, display_name="app-release", pipeline_id=1,
    issuer="https://token.actions.githubusercontent.com", audience="securefiles",
    bound_claims=(("repository", "org/app"), ("ref", "refs/heads/release/*")),
    branch_claim="ref", run_claims=("run_id", "run_attempt"), requester_claim="actor",
)
CLAIMS = {"repository": "org/app", "ref": "refs/heads/release/2.0", "run_id": "100", "run_attempt": "1",
          "actor": "alice", "sub": "repo:org/app:ref:refs/heads/release/2.0"}


def test_a_matching_token_gives_branch_requester_and_run_key() -> None:
    assert first_mismatch(GITHUB, CLAIMS) is None
    job = job_claims(GITHUB, CLAIMS)
    assert (job.branch, job.requester) == ("refs/heads/release/2.0", "user:alice")
    assert job.run_key == "7\x1f100\x1f1"
    assert job.recorded["repository"] == "org/app" and job.recorded["sub"].startswith("repo:org/app")


@pytest.mark.parametrize(("claims", "says"), [
    ({**CLAIMS, "repository": "org/other"}, 'claim repository "org/other" does not match "org/app"'),
    ({**CLAIMS, "ref": "refs/heads/main"}, 'claim ref "refs/heads/main" does not match "refs/heads/release/*"'),
    ({k: v for k, v in CLAIMS.items() if k != "repository"}, "claim repository is missing"),
    ({**CLAIMS, "repository": ["org/app"]}, "claim repository is missing"),  # not a string: matches nothing
])
def test_a_mismatch_names_the_claim(claims: dict, says: str) -> None:
    assert first_mismatch(GITHUB, claims) == says


def test_a_re_run_attempt_is_another_run_and_a_step_of_the_same_job_the_same() -> None:
    first = job_claims(GITHUB, CLAIMS).run_key
    assert job_claims(GITHUB, dict(CLAIMS)).run_key == first
    assert job_claims(GITHUB, {**CLAIMS, "run_attempt": "2"}).run_key != first
    # Values cannot run into each other: ("1", "23") is not ("12", "3").
    assert job_claims(GITHUB, {**CLAIMS, "run_id": "1", "run_attempt": "23"}).run_key != \
        job_claims(GITHUB, {**CLAIMS, "run_id": "12", "run_attempt": "3"}).run_key


def test_gitlab_short_refs_become_full_refs() -> None:
    gitlab = Trust(project="p", trust_id=1, display_name="g", pipeline_id=1, issuer="https://gitlab.com",
                   audience="securefiles", bound_claims=(("project_path", "group/app"),), branch_claim="ref",
                   ref_type_claim="ref_type", run_claims=("pipeline_id",), requester_claim="user_login")
    base = {"project_path": "group/app", "pipeline_id": 555, "user_login": "bob"}
    assert job_claims(gitlab, {**base, "ref": "main", "ref_type": "branch"}).branch == "refs/heads/main"
    assert job_claims(gitlab, {**base, "ref": "v1.0", "ref_type": "tag"}).branch == "refs/tags/v1.0"
    assert job_claims(gitlab, {**base, "ref": "main", "ref_type": "branch"}).run_key == "1\x1f555"


def test_a_token_without_run_claims_or_with_a_bad_branch_is_refused() -> None:
    with pytest.raises(PermissionDenied) as error:
        job_claims(GITHUB, {k: v for k, v in CLAIMS.items() if k != "run_id"})
    assert error.value.reason == "RUN_CLAIM_MISSING"
    with pytest.raises(PermissionDenied) as error:
        job_claims(GITHUB, {**CLAIMS, "ref": "refs/heads/x\nevil"})
    assert error.value.reason == "INVALID_BRANCH_CLAIM"


def test_a_requester_that_names_nobody_we_can_map_is_left_out() -> None:
    assert job_claims(GITHUB, {**CLAIMS, "actor": "dependabot[bot]"}).requester == ""


@pytest.mark.parametrize(("change", "reason"), [
    ({"issuer": "http://token.actions.githubusercontent.com"}, "INVALID_ISSUER"),
    ({"issuer": "https://user:pw@issuer.example"}, "INVALID_ISSUER"),
    ({"audience": ""}, "INVALID_AUDIENCE"),
    ({"bound_claims": ()}, "INVALID_BOUND_CLAIMS"),
    ({"bound_claims": (("repository", "*"),)}, "INVALID_BOUND_CLAIMS"),  # would admit every repository
    ({"bound_claims": (("bad claim", "x"),)}, "INVALID_TRUST"),
    ({"run_claims": ()}, "INVALID_RUN_CLAIMS"),
    ({"max_ttl_seconds": 10}, "INVALID_TTL"),
    ({"static_jwks": '{"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}'}, "INVALID_JWKS"),  # no symmetric keys
    ({"display_name": "Has Spaces"}, "INVALID_NAME"),
])
def test_a_trust_that_could_never_work_or_admits_everyone_is_refused(change: dict, reason: str) -> None:
    from dataclasses import replace

    with pytest.raises(InvalidArgument) as error:
        validate_trust(replace(GITHUB, **change))
    assert error.value.reason == reason
