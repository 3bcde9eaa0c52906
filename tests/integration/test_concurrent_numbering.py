"""Runs and approvals started at the same moment each get their own number: authz serves requests
from several database threads (and replicas), so numbering cannot rely on one request at a time.
On PostgreSQL, concurrent runs of a project failed with INTERNAL ("could not allocate a run id")."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from securefiles.authz.v1 import authz_pb2
from tests.conftest import LocalSystem, unique

CONCURRENT = 64


def test_runs_and_approvals_started_at_once_all_get_numbers(system: LocalSystem) -> None:
    project = unique("numbered")
    with system.client() as admin:
        admin.create_project(project)
    name = unique("gated") + ".pem"
    with system.client(project=project) as admin:
        admin.upload_file(b"gated", name=name)
        admin.create_pipeline("release")
        admin.set_pipeline_permission(name, "release", True)
        admin.add_check(name, authz_pb2.Check(approval=authz_pb2.ApprovalSettings(
            approvers=["user:admin"], min_approvals=1, allow_requester=True)))

    def run_and_request(_index: int) -> tuple[int, int]:
        with system.client(project=project) as admin:
            run = admin.start_run("release", "refs/heads/main").run
            (suite,) = admin.request_checks(run.name, [name])
            return run.run_id, next(r.approval_id for r in suite.results if r.approval_id)

    with ThreadPoolExecutor(CONCURRENT) as pool:
        numbered = list(pool.map(run_and_request, range(CONCURRENT)))
    assert len({run for run, _ in numbered}) == CONCURRENT
    assert len({approval for _, approval in numbered}) == CONCURRENT
