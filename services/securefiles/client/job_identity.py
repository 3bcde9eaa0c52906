"""Where a pipeline job's identity comes from, for the agent.

In order: a job token given as `SECUREFILES_JOB_TOKEN` (a run started by an orchestrator);
else the CI provider's OIDC token, exchanged for a job token at authz: under GitHub Actions
requested from `ACTIONS_ID_TOKEN_REQUEST_URL` with `ACTIONS_ID_TOKEN_REQUEST_TOKEN` (the job
needs `permissions: id-token: write`), otherwise `SECUREFILES_OIDC_TOKEN` or the file named by
`SECUREFILES_OIDC_TOKEN_FILE` (GitLab's `id_tokens:`, Jenkins, Azure, Buildkite). The audience
asked for is `SECUREFILES_AUDIENCE` (default `securefiles`). The project is the job's own.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from urllib.parse import quote

import httpx
import jwt

from securefiles.common.errors import InvalidArgument, Unauthenticated, Unavailable
from securefiles.common.job_token import JobToken

DEFAULT_AUDIENCE = "securefiles"
_TIMEOUT = 10.0
_MAX_TOKEN_BYTES = 16 * 1024


def job_claims(token: str) -> JobToken:
    """What a job token says (read without verifying: the services verify it)."""
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        raise InvalidArgument("the job token is not a JWT", reason="INVALID_JOB_TOKEN") from None
    job = JobToken.from_claims(claims) if claims.get("kind") == "job" else None
    if job is None:
        raise InvalidArgument("the token is not a job token", reason="INVALID_JOB_TOKEN")
    return job


def oidc_token_from_ci(env: Mapping[str, str]) -> str | None:
    """The CI provider's OIDC token for this job, if the environment offers one."""
    audience = env.get("SECUREFILES_AUDIENCE") or DEFAULT_AUDIENCE
    url, request_token = env.get("ACTIONS_ID_TOKEN_REQUEST_URL"), env.get("ACTIONS_ID_TOKEN_REQUEST_TOKEN")
    if url and request_token:
        return _github_token(url, request_token, audience)
    if env.get("SECUREFILES_OIDC_TOKEN"):
        return env["SECUREFILES_OIDC_TOKEN"].strip()
    if env.get("SECUREFILES_OIDC_TOKEN_FILE"):
        path = Path(env["SECUREFILES_OIDC_TOKEN_FILE"])
        try:
            return path.read_text()[:_MAX_TOKEN_BYTES].strip()
        except OSError as error:
            raise InvalidArgument(f"cannot read SECUREFILES_OIDC_TOKEN_FILE {path}: {error.strerror}",
                                  reason="INVALID_OIDC_TOKEN_FILE") from None
    return None


def _github_token(url: str, request_token: str, audience: str) -> str:
    """GitHub's protocol: GET the URL with `audience`, bearer the request token; the JWT is `value`."""
    target = f"{url}{'&' if '?' in url else '?'}audience={quote(audience, safe='')}"
    try:
        response = httpx.get(target, headers={"Authorization": f"bearer {request_token}",
                                              "Accept": "application/json"}, timeout=_TIMEOUT)
    except httpx.HTTPError as error:
        raise Unavailable(f"GitHub's OIDC token endpoint cannot be reached ({type(error).__name__})",
                          reason="OIDC_TOKEN_UNAVAILABLE") from None
    if response.status_code in (401, 403):
        raise Unauthenticated("GitHub refused the OIDC token request: does the job have `permissions: id-token: "
                              "write`?", reason="OIDC_TOKEN_REFUSED")
    try:
        value = response.json().get("value") if response.status_code == 200 else None
    except ValueError:
        value = None
    if not isinstance(value, str) or not value:
        raise Unavailable(f"GitHub's OIDC token endpoint answered HTTP {response.status_code} without a token",
                          reason="OIDC_TOKEN_UNAVAILABLE")
    return value
