"""What a job token says about its job, typed: one reading of the claims authz signs into it,
for the services (after verifying) and for the agent (reading its own token)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from securefiles.common.resource_names import run_name


@dataclass(frozen=True)
class JobToken:
    """A pipeline job's identity: its project, pipeline and run, and who vouched for it."""

    project: str
    pipeline: str  # the pipeline's id
    run: str  # the run's number in its project
    branch: str = ""
    pipeline_name: str = ""  # the pipeline's display name
    requested_by: str = ""
    trust: str = ""  # the trust whose OIDC token it was exchanged for, if any
    issued_by: str = ""  # who vouched for the job: a trust, or the orchestrator who started the run
    run_token_id: str = ""  # ties the token to its run: a completed run's tokens stop working
    expire_time: int = 0  # seconds since the epoch

    @property
    def run_id(self) -> int:
        return int(self.run)

    @property
    def run_name(self) -> str:
        return run_name(self.project, self.pipeline, self.run)

    def is_of(self, project: str, run_id: int | None = None) -> bool:
        """A job of `project` (and of run `run_id`, if given)."""
        return self.project == project and (run_id is None or self.run == str(run_id))

    def claims(self) -> dict[str, str]:
        """The claims a job token carries (beside `sub`, `kind` and `exp`)."""
        return {"project": self.project, "pipeline": self.pipeline, "pipeline_name": self.pipeline_name,
                "run": self.run, "rtk": self.run_token_id, "branch": self.branch,
                "requested_by": self.requested_by, "issued_by": self.issued_by, "trust": self.trust}

    @classmethod
    def from_claims(cls, claims: Mapping[str, Any]) -> JobToken | None:
        """The job a token's claims describe, or None if they lack a job's project, pipeline and run."""
        if not all(isinstance(claims.get(k), str) for k in ("project", "pipeline", "run")):
            return None
        text = {k: str(claims.get(k) or "") for k in ("project", "pipeline", "pipeline_name", "run", "branch",
                                                    "requested_by", "trust", "issued_by")}
        exp = claims.get("exp", 0)
        return cls(**text, run_token_id=str(claims.get("rtk") or claims.get("jti") or ""),
                   expire_time=int(exp) if isinstance(exp, int | float) else 0)
