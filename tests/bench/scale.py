"""Costs that stay flat as an organization grows: a system measured empty, then seeded with an
organization's worth of rows, then measured again.

Seeded directly into the databases while the system is stopped (through the API this would take
days): 1,000 projects, 200,000 files (registered in authz with their administrator and a
pipeline permission each; 20,000 of them in the measured project), 20,000 pipelines, 1,000,000
completed runs (within the retention window; 20,000 of the measured project's with a decided
approval and a check suite on the file with 50 checks) and 5,000,000 audit entries appended to
storage's chain (hashed and sealed as the writer does). `--scale-factor` shrinks every count.

Measured in both states (medians), seeded / empty within 1.5x: a 4 KB download, `files list`'s
first page and (seeded) a page deep in the project, `approvals list --pending`, a decision on a
file with 50 checks (AuthorizeUse as storage asks it, each for a new run); and `audit verify` of
storage's chain, entries per second (>= 200,000) and storage's memory while it walks.

Standalone: `python -m tests.bench.scale [--scale-factor 0.1]`. SQLite only.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, func, select

from securefiles.authz.adapters.sql_checks import approval_decisions, approvals, check_suites, checks
from securefiles.authz.adapters.sql_repository import (
    pipeline_permissions,
    pipelines,
    projects,
    registered_files,
    role_assignments,
    runs,
)
from securefiles.authz.v1 import authz_pb2, authz_pb2_grpc
from securefiles.client.config import load_config
from securefiles.common.audit import audit_events, audit_head, seal_complete_blocks
from securefiles.common.audit_records import canonical_body, compact_details, digest
from securefiles.common.db import make_engine, write_transaction
from securefiles.storage.v1 import storage_pb2, storage_pb2_grpc
from tests.bench import secure_path
from tests.bench.cpu import CpuTally, ServerCpu, service_pids
from tests.bench.load import RssSampler
from tests.bench.report import Figure, Target
from tests.bench.scenarios import timed
from tests.bench.secure_path import SMALL_BYTES, bearer, client_channel
from tests.conftest import LocalSystem
from tests.file_rows import FileRow, insert_file_rows

PROJECT = "scale"  # the measured project
FLAT = Target("<=", 1.5)
VERIFY_TARGET = Target(">=", 200_000)
CHUNK = 20_000


@dataclass(frozen=True)
class Counts:
    projects: int = 1_000
    files: int = 200_000
    project_files: int = 20_000  # of them in the measured project
    pipelines: int = 20_000
    runs: int = 1_000_000
    project_runs: int = 20_000  # of them the measured project's, with an approval and a check suite
    audit_entries: int = 5_000_000

    def scaled(self, factor: float) -> Counts:
        return Counts(*(max(1, int(getattr(self, f) * factor)) for f in self.__dataclass_fields__))


# -- the measured project -------------------------------------------------------------------


@dataclass
class Measured:
    """The measured project's real files, pipeline, run and checks, made through the API."""

    small: str  # a 4 KB file the run may download
    decided: str  # resource of the file with 50 checks
    job_token: str


def prepare(system: LocalSystem) -> Measured:
    with system.client() as admin:
        admin.create_project(PROJECT, "eu")
    with system.client(project=PROJECT) as admin:
        admin.create_pipeline("release")
        for index in range(100):  # the first page; seeded names ("seed-…") sort after these
            admin.upload_file(os.urandom(64), name=f"a-{index:03d}.pem")
        small = admin.upload_file(os.urandom(SMALL_BYTES), name="a-small.p12")
        decided = admin.upload_file(os.urandom(64), name="a-checked.p12")
        admin.upload_file(os.urandom(64), name="a-gated.p12")
        for name in ("a-small.p12", "a-checked.p12", "a-gated.p12"):
            admin.set_pipeline_permission(name, "release", True)
        admin.add_check("a-checked.p12", authz_pb2.Check(branch_control=authz_pb2.BranchControl(
            allowed_refs=["refs/heads/*"])))
        admin.add_check("a-checked.p12", authz_pb2.Check(business_hours=authz_pb2.BusinessHours(
            time_zone="UTC", days=["mon", "tue", "wed", "thu", "fri", "sat", "sun"], start_time="00:00",
            end_time="23:59")))
        admin.add_check("a-gated.p12", authz_pb2.Check(approval=authz_pb2.ApprovalSettings(
            approvers=["user:admin"], min_approvals=1, allow_requester=True)))
        for _ in range(3):  # three approvals pending in both states
            run = admin.start_run("release", "refs/heads/main")
            admin.request_checks(run.run.name, ["a-gated.p12"])
        token = admin.start_run("release", "refs/heads/main").job_token
    _fifty_checks(system, decided.name)
    return Measured(small.name, decided.name, token)


def _fifty_checks(system: LocalSystem, resource: str) -> None:
    """The API allows 16 checks per file; the other 48 go straight in, copies of the two made."""
    engine = system.engine("authz")
    try:
        with engine.begin() as conn:
            made = [dict(r._mapping) for r in conn.execute(select(checks).where(checks.c.resource == resource))]
            top = conn.execute(select(func.max(checks.c.check_id)).where(checks.c.project == PROJECT)).scalar()
            conn.execute(checks.insert(), [{**made[i % 2], "check_id": top + 1 + i} for i in range(48)])
    finally:
        engine.dispose()


# -- measuring ------------------------------------------------------------------------------


@dataclass
class State:
    """Medians (ms) of one state of the system."""

    download: list[float] = field(default_factory=list)
    first_page: list[float] = field(default_factory=list)
    deep_page: list[float] = field(default_factory=list)
    pending: list[float] = field(default_factory=list)
    decision: list[float] = field(default_factory=list)
    verify_entries: int = 0
    verify_seconds: float = 0.0
    verify_rss_growth: int = 0
    verify_cpu: float = 0.0  # storage's CPU seconds while it walked its chain
    cpu: dict[str, CpuTally] = field(default_factory=dict)  # per measured operation

    def ms(self, name: str) -> float:
        return statistics.median(getattr(self, name)) * 1000


def _median_of(samples: int, action: Callable[[], float], warmup: int = 3, tally: CpuTally | None = None
               ) -> list[float]:
    for _ in range(warmup):
        action()
    if tally is None:
        return [action() for _ in range(samples)]
    taken = []
    for _ in range(samples):
        with tally.measure():
            taken.append(action())
    return taken


def _timed(call: Callable[[], object]) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def measure(system: LocalSystem, measured: Measured, samples: int, deep_token: str = "") -> State:
    state = State()
    config = load_config(system.env())
    token = system.admin_token
    with client_channel(system, config.storage) as storage_channel, client_channel(system, config.authz) as authz_ch, \
            system.channel("authz", identity="storage") as internal, system.client(project=PROJECT) as admin:
        files = storage_pb2_grpc.SecureFileServiceStub(storage_channel)
        people = authz_pb2_grpc.AuthorizationServiceStub(authz_ch)
        as_storage = authz_pb2_grpc.AuthorizationServiceStub(internal)
        state.cpu = {name: CpuTally(service_pids(system.pid)) for name in ("download", "decision")}
        state.download = _median_of(samples * 5, lambda: timed(
            secure_path.download, files, measured.small, measured.job_token, expected=SMALL_BYTES, what="4 KB"),
            tally=state.cpu["download"])

        def page(page_token: str) -> float:
            return _timed(lambda: files.ListSecureFiles(storage_pb2.ListSecureFilesRequest(
                parent=f"projects/{PROJECT}", page_size=100, page_token=page_token), metadata=bearer(token),
                timeout=60))

        state.first_page = _median_of(samples, lambda: page(""))
        if deep_token:
            state.deep_page = _median_of(samples, lambda: page(deep_token))
        state.pending = _median_of(samples, lambda: _timed(lambda: people.ListApprovals(
            authz_pb2.ListApprovalsRequest(parent=f"projects/{PROJECT}", pending_only=True), metadata=bearer(token),
            timeout=60)))
        fresh = [admin.start_run("release", "refs/heads/main").job_token for _ in range(samples + 3)]
        state.decision = _median_of(samples, lambda: _timed(lambda: as_storage.AuthorizeUse(
            authz_pb2.AuthorizeUseRequest(job_token=fresh.pop(), resource=measured.decided), timeout=60)),
            tally=state.cpu["decision"])
        with RssSampler(system.pid("storage")) as rss, ServerCpu({"storage": system.pid("storage")}) as cpu:
            started = time.perf_counter()
            verified = admin.verify_audit_log("storage")
            state.verify_seconds = time.perf_counter() - started
        state.verify_cpu = cpu.used["storage"]
        if not verified.intact:
            raise RuntimeError(f"storage's audit chain is not intact: {verified.problem}")
        state.verify_entries = verified.events_checked
        state.verify_rss_growth = rss.growth
    return state


def deep_page_token(system: LocalSystem) -> tuple[str, int]:
    """The token of the last full page of the measured project (walked to as a person paging
    through would: tokens carry the position) and how many files it holds."""
    token, previous, listed = "", "", 0
    with system.client(project=PROJECT) as admin, client_channel(system, load_config(system.env()).storage) as ch:
        files = storage_pb2_grpc.SecureFileServiceStub(ch)
        while True:
            response = files.ListSecureFiles(storage_pb2.ListSecureFilesRequest(
                parent=f"projects/{PROJECT}", page_size=100, page_token=token), metadata=bearer(admin.token),
                timeout=60)
            listed += len(response.secure_files)
            if not response.next_page_token:
                return (token if len(response.secure_files) == 100 else previous), listed
            token, previous = response.next_page_token, token


# -- seeding --------------------------------------------------------------------------------


def _chunks(rows: Iterator[dict[str, Any]], size: int = CHUNK) -> Iterator[list[dict[str, Any]]]:
    chunk: list[dict[str, Any]] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _insert(engine: Engine, table: Any, rows: Iterator[dict[str, Any]]) -> int:
    count = 0
    for chunk in _chunks(rows):
        with write_transaction(engine) as conn:
            conn.execute(table.insert(), chunk)
        count += len(chunk)
    return count


def seed_authz(system: LocalSystem, counts: Counts, file_ids: Sequence[tuple[str, str]],
               progress: Callable[[str], None]) -> None:
    engine = make_engine(system.engine("authz").url.render_as_string(hide_password=False))
    now = dt.datetime.now(dt.UTC)
    others = [f"org-{i:04d}" for i in range(counts.projects - 1)]
    try:
        _insert(engine, projects, ({"project_id": p, "region": "eu", "created_at": now} for p in others))
        per_project = max(1, counts.pipelines // counts.projects)
        _insert(engine, pipelines, ({"project": p, "pipeline_id": i + 1, "display_name": f"pipeline-{i}",
                                     "created_at": now} for p in others for i in range(per_project)))
        progress(f"authz: {len(others):,} projects, {len(others) * per_project:,} pipelines")
        _insert(engine, registered_files, ({"resource": f"projects/{p}/secureFiles/{f}", "project": p,
                                            "registered_at": now} for p, f in file_ids))
        _insert(engine, role_assignments, ({"scope": f"projects/{p}/secureFiles/{f}", "principal": "user:admin",
                                            "role": "ADMINISTRATOR"} for p, f in file_ids))
        _insert(engine, pipeline_permissions, ({"resource": f"projects/{p}/secureFiles/{f}", "pipeline_id": 1}
                                               for p, f in file_ids))
        progress(f"authz: {len(file_ids):,} files registered, with an administrator and a pipeline permission")
        completed = now - dt.timedelta(days=1)  # inside the retention window: what an organization keeps
        per_other = max(1, (counts.runs - counts.project_runs) // max(len(others), 1))
        run_rows = ({"project": p, "run_id": i + 1, "pipeline_id": 1, "branch": "refs/heads/main",
                     "requested_by": "user:admin", "state": "COMPLETED", "created_at": completed,
                     "expire_at": completed, "completed_at": completed, "token_id": uuid.uuid4().hex,
                     "trust_id": None, "external_key": None, "asserted_by": "user:admin", "claims": "{}"}
                    for p in others for i in range(per_other))
        seeded_runs = _insert(engine, runs, run_rows)
        progress(f"authz: {seeded_runs:,} completed runs in the other projects")
        _seed_measured_runs(engine, counts.project_runs, completed, progress)
    finally:
        engine.dispose()


def _seed_measured_runs(engine: Engine, count: int, completed: dt.datetime, progress: Callable[[str], None]) -> None:
    """The measured project's past: completed runs (numbered before the real ones cannot be: after
    them), each with a decided approval and a decided check suite on the file with 50 checks."""
    with engine.connect() as conn:
        first_run = (conn.execute(select(runs.c.run_id).where(runs.c.project == PROJECT).order_by(
            runs.c.run_id.desc()).limit(1)).scalar() or 0) + 1000
        first_approval = (conn.execute(select(approvals.c.approval_id).where(approvals.c.project == PROJECT).order_by(
            approvals.c.approval_id.desc()).limit(1)).scalar() or 0) + 1
        checked = conn.execute(select(checks.c.resource).where(checks.c.project == PROJECT,
                                                               checks.c.type == "branch-control")).scalar()
    ids = range(first_run, first_run + count)
    _insert(engine, runs, ({"project": PROJECT, "run_id": r, "pipeline_id": 1, "branch": "refs/heads/main",
                            "requested_by": "user:admin", "state": "COMPLETED", "created_at": completed,
                            "expire_at": completed, "completed_at": completed, "token_id": uuid.uuid4().hex,
                            "trust_id": None, "external_key": None, "asserted_by": "user:admin", "claims": "{}"}
                           for r in ids))
    _insert(engine, approvals, ({"project": PROJECT, "approval_id": first_approval + i, "run_id": r,
                                 "resource": checked, "check_id": 1, "approvers": '["user:admin"]',
                                 "min_approvals": 1, "allow_requester": True, "instructions": "",
                                 "requested_by": "user:admin", "state": "APPROVED", "created_at": completed,
                                 "expire_at": completed + dt.timedelta(days=30)} for i, r in enumerate(ids)))
    _insert(engine, approval_decisions, ({"project": PROJECT, "approval_id": first_approval + i,
                                          "approver": "user:admin", "approved": True, "comment": "",
                                          "decided_at": completed} for i in range(count)))
    _insert(engine, check_suites, ({"project": PROJECT, "run_id": r, "resource": checked, "state": "APPROVED",
                                    "created_at": completed, "checks": "[]", "results": "[]"} for r in ids))
    progress(f"authz: {count:,} completed runs of {PROJECT} with a decided approval and check suite each")


def seed_storage(system: LocalSystem, counts: Counts, progress: Callable[[str], None]) -> list[tuple[str, str]]:
    """File rows (no content: listing and decisions never read it); (project, file id) of each."""
    engine = make_engine(system.engine("storage").url.render_as_string(hide_password=False))
    ids: list[tuple[str, str]] = []
    others = [f"org-{i:04d}" for i in range(counts.projects - 1)]
    try:
        plan = [(PROJECT, counts.project_files)]
        rest = counts.files - counts.project_files
        plan += [(p, rest // len(others) + (1 if i < rest % len(others) else 0)) for i, p in enumerate(others)]
        batch: list[tuple[str, FileRow]] = []
        for project, number in plan:
            for index in range(number):
                file_id = str(uuid.uuid4())
                batch.append((project, FileRow(file_id, f"seed-{index:06d}.p12")))
                ids.append((project, file_id))
            if len(batch) >= CHUNK:
                _flush(engine, batch)
                batch = []
        _flush(engine, batch)
    finally:
        engine.dispose()
    progress(f"storage: {len(ids):,} file rows ({counts.project_files:,} in {PROJECT})")
    return ids


def _flush(engine: Engine, batch: list[tuple[str, FileRow]]) -> None:
    by_project: dict[str, list[FileRow]] = {}
    for project, row in batch:
        by_project.setdefault(project, []).append(row)
    with write_transaction(engine) as conn:
        for project, rows in by_project.items():
            insert_file_rows(conn, project, rows)


def seed_audit(system: LocalSystem, count: int, progress: Callable[[str], None]) -> float:
    """`count` entries appended to storage's chain, hashed and sealed as its writer would; seconds."""
    key = (system.state_dir / "secrets" / "storage-audit-key").read_text().strip().encode()
    engine = make_engine(system.engine("storage").url.render_as_string(hide_password=False))
    started = time.perf_counter()
    try:
        with engine.connect() as conn:
            head = conn.execute(select(audit_head.c.sequence, audit_head.c.hash)).first()
        sequence, previous = head if head else (0, "")
        base = dt.datetime.now(dt.UTC) - dt.timedelta(days=10)  # inside the retention window
        written = 0
        while written < count:
            rows = []
            for _ in range(min(CHUNK, count - written)):
                sequence += 1
                at = base + dt.timedelta(microseconds=sequence * 100)
                details = {"display_name": "signing.p12", "version": "1", "key_version": "regions/eu/keyVersions/1",
                           "run": str(sequence % 1000)}
                resource = f"projects/org-{sequence % 997:04d}/secureFiles/{uuid.UUID(int=sequence)}"
                principal, request_id = f"job:projects/org/pipelines/1/runs/{sequence}", f"{sequence:032x}"
                hashed = digest(key, canonical_body(sequence, at.isoformat(), "storage", principal,
                                                    "DownloadSecureFile", resource, "ALLOW", "", request_id,
                                                    compact_details(details), previous))
                rows.append({"sequence": sequence, "time": at, "service": "storage", "principal": principal,
                             "action": "DownloadSecureFile", "resource": resource, "decision": "ALLOW", "reason": "",
                             "request_id": request_id, "details": json.dumps(details, sort_keys=True),
                             "previous_hash": previous, "hash": hashed})
                previous = hashed
            with write_transaction(engine) as conn:
                conn.execute(audit_events.insert(), rows)
                seal_complete_blocks(conn, key, rows[0]["sequence"] - 1, sequence)
                conn.execute(audit_head.update().values(sequence=sequence, hash=previous))
            written += len(rows)
            if written % (CHUNK * 25) == 0:
                progress(f"storage audit: {written:,} of {count:,} entries")
    finally:
        engine.dispose()
    return time.perf_counter() - started


# -- the section ----------------------------------------------------------------------------


def figures(empty: State, seeded: State, counts: Counts, seconds: dict[str, float], deep_listed: int) -> list[Figure]:
    def flat(name: str, what: str, seeded_attr: str = "") -> Figure:
        before, after = empty.ms(name), seeded.ms(seeded_attr or name)
        cpu = ""
        if name in seeded.cpu:
            cpu_before, cpu_after = (sum(state.cpu[name].per_op_ms().values()) for state in (empty, seeded))
            cpu = f"; CPU per op {cpu_after:.2f} ms seeded, {cpu_before:.2f} ms empty ({cpu_after / cpu_before:.2f}x)"
        return Figure(f"scale: {what}, seeded / empty", after / before, "x", target=FLAT,
                      spread=f"{after:.2f} ms seeded, {before:.2f} ms empty (medians){cpu}")

    rate = seeded.verify_entries / seeded.verify_seconds
    return [
        Figure("scale: seeded", counts.audit_entries, "audit entries", detail=True,
               spread=f"{counts.projects:,} projects, {counts.files:,} files, {counts.pipelines:,} pipelines, "
                      f"{counts.runs:,} completed runs; seeding took " + ", ".join(
                          f"{k} {v:.0f}s" for k, v in seconds.items())),
        flat("download", "4 KB download p50"),
        flat("first_page", "files list first page"),
        flat("first_page", f"files list deep page (of {deep_listed:,} files)", "deep_page"),
        flat("pending", "approvals list --pending"),
        flat("decision", "decision with 50 checks on the file"),
        Figure("scale: audit verify, storage's chain", rate, "entries/s", target=VERIFY_TARGET,
               spread=f"{seeded.verify_entries:,} entries in {seeded.verify_seconds:.1f}s, storage CPU "
                      f"{seeded.verify_cpu * 1e6 / seeded.verify_entries:.2f} us per entry; storage RSS grew "
                      f"{seeded.verify_rss_growth / 1e6:.0f} MB meanwhile ({empty.verify_rss_growth / 1e6:.0f} MB "
                      f"verifying the empty system's {empty.verify_entries:,})"),
    ]


def run(system: LocalSystem, counts: Counts, samples: int, progress: Callable[[str], None]) -> list[Figure]:
    measured = prepare(system)
    progress("measuring the empty system")
    empty = measure(system, measured, samples)
    progress("stopping the system; seeding its databases")
    system.stop()
    seconds: dict[str, float] = {}
    started = time.perf_counter()
    file_ids = seed_storage(system, counts, progress)
    seconds["storage"] = time.perf_counter() - started
    started = time.perf_counter()
    seed_authz(system, counts, file_ids, progress)
    seconds["authz"] = time.perf_counter() - started
    seconds["audit"] = seed_audit(system, counts.audit_entries, progress)
    progress("starting the seeded system")
    system.start()
    deep_token, listed = deep_page_token(system)
    progress(f"measuring the seeded system ({listed:,} files in {PROJECT})")
    seeded = measure(system, measured, samples, deep_token)
    return figures(empty, seeded, counts, seconds, listed)


def main(argv: list[str] | None = None) -> int:
    from tests.bench.report import table
    from tests.bench.secure_path import running_system

    parser = argparse.ArgumentParser(prog="python -m tests.bench.scale", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale-factor", type=float, default=1.0, help="multiplies every seeded count")
    parser.add_argument("--samples", type=int, default=20)
    args = parser.parse_args(argv)
    with running_system() as system:
        result = run(system, Counts().scaled(args.scale_factor), args.samples, lambda line: print(line, flush=True))
    print(table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
