"""Pipeline-shaped load: N jobs released at once, each doing what a CI job does with its files.

A secure job: its CI provider's OIDC token (minted by the bench's test issuer, RS256 as GitHub
signs) exchanged for a job token at authz, which starts a run of its own through a trust of
that issuer; then one glob download of 3 distinct 1 MB files through the agent's own code
(`securefiles.cli.agent.fetch`: list what the job may use, download each to a private partial
file, fsync, sha256 against the server's header, rename, record for cleanup); the files'
digests checked against what was uploaded; then the run completed. Every job opens its own
connections, as agents on separate machines do.

A raw job: its own connection to the raw baseline server (server TLS, like a public port) and
three 1 MB downloads to disk done the same way (partial file, fsync, sha256 against the
header, rename). No token, no authz, no kms, no encryption at rest.

Jobs are threads in a few spawned worker processes (agents are processes of their own; one
client process would measure its own interpreter lock). Each burst releases all its jobs at
one moment; a job's *time to files* runs from then until its 3 files are verified on disk.

Standalone (starts its own `securefiles up`):

    python -m tests.bench.pipeline [--jobs 64 --jobs 256] [--rounds 3]
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import io
import json
import multiprocessing
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.bench.cpu import ServerCpu, cpu_figure, per_op_ms, service_pids
from tests.bench.report import Figure, Target, percentile

FILES_PER_JOB = 3
FILE_BYTES = 1_000_000
WORKERS = 4
ISSUER = "https://ci.bench.invalid"
REPOSITORY = "bench/app"
PATTERN = "job-*.bin"
RELEASE_MARGIN = 1.5  # seconds between handing out a burst and releasing it (threads ready by then)

AGGREGATE_TARGET, P99_TARGET, NO_ERRORS = Target(">=", 0.45), Target("<=", 1.5), Target("<=", 0)


# -- what the workers run ----------------------------------------------------------------------


@dataclass(frozen=True)
class JobBatch:
    """The jobs one worker process runs in one burst (one thread each)."""

    mode: str  # "secure" or "raw"
    start_at: float  # time.monotonic() (system-wide) at which every job starts
    dest: str
    tokens: tuple[str, ...] = ()  # secure: each job's OIDC token
    client_env: tuple[tuple[str, str], ...] = ()
    expected: tuple[tuple[str, str], ...] = ()  # secure: file name -> sha256 of what was uploaded
    raw_target: str = ""
    raw_ca: str = ""
    raw_jobs: int = 0

    @property
    def jobs(self) -> int:
        return len(self.tokens) if self.mode == "secure" else self.raw_jobs


@dataclass(frozen=True)
class JobOutcome:
    time_to_files: float  # seconds from the release until the files were verified on disk
    total: float  # until the job was done (run completed)
    error: str = ""  # "" if the job succeeded, else CODE/REASON or the exception's type


@dataclass(frozen=True)
class WorkerResult:
    outcomes: list[JobOutcome]
    cpu_seconds: float  # the worker process's CPU while its jobs ran
    late: float  # seconds the worker was ready after the release (0: in time)


def _one_connection_per_job() -> None:
    """Agents on separate machines never share a connection: neither do the bench's jobs."""
    import securefiles.client.transport as transport

    base = transport.channel_options

    def options(target: str, server_name: str = "") -> list[tuple[str, object]]:
        return [*base(target, server_name), ("grpc.use_local_subchannel_pool", 1)]

    transport.channel_options = options  # type: ignore[assignment]


def _error_key(error: BaseException) -> str:
    from securefiles.common.errors import SecureFilesError

    if isinstance(error, SecureFilesError):
        return f"{error.code}/{error.reason}"
    return type(error).__name__


def _secure_job(batch: JobBatch, index: int, dest: Path, released: float) -> JobOutcome:
    from securefiles.cli.agent import fetch
    from securefiles.client import SecureFilesClient
    from securefiles.client.job_identity import job_claims

    client = None
    try:
        env = {**dict(batch.client_env), "SECUREFILES_OIDC_TOKEN": batch.tokens[index]}
        client = SecureFilesClient.from_environment(env, job=True)  # the token exchange
        done = fetch(client, [PATTERN], dest)
        files_at = time.monotonic()
        expected = dict(batch.expected)
        if sorted(d.name for d in done) != sorted(expected) or any(d.sha256 != expected[d.name] for d in done):
            return JobOutcome(files_at - released, files_at - released, "WRONG_FILES")
        claims = job_claims(client.token)
        client.complete_run(f"projects/{claims.project}/pipelines/{claims.pipeline}/runs/{claims.run}")
        return JobOutcome(files_at - released, time.monotonic() - released)
    except Exception as error:  # counted, not raised: the burst goes on
        now = time.monotonic()
        return JobOutcome(now - released, now - released, _error_key(error))
    finally:
        if client is not None:
            client.close()


def raw_download_to_disk(channel: Any, size: int, dest: Path) -> str:
    """One raw download written as the agent writes (0600 partial, fsync, sha256, rename); its sha256."""
    from securefiles.common.files import fsync_directory
    from securefiles.common.writeback import start_writeback
    from securefiles.storage.v1 import storage_pb2
    from tests.bench.raw_baseline import DOWNLOAD_METHOD

    call = channel.unary_stream(
        DOWNLOAD_METHOD, request_serializer=storage_pb2.DownloadSecureFileRequest.SerializeToString,
        response_deserializer=storage_pb2.DownloadSecureFileResponse.FromString)
    stream = call(storage_pb2.DownloadSecureFileRequest(name=str(size)), timeout=120)
    header = next(stream).header
    partial = dest / f".partial-{uuid.uuid4().hex}"
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        digest, received = hashlib.sha256(), 0
        for message in stream:
            chunk = message.chunk
            digest.update(chunk)
            view = memoryview(chunk)
            while view:
                view = view[os.write(fd, view):]
            start_writeback(fd, received, len(chunk))
            received += len(chunk)
        if received != header.size_bytes or digest.hexdigest() != header.sha256:
            raise RuntimeError("raw download: content does not match its header")
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(partial, dest / f"raw-{size}.bin")
    fsync_directory(dest)
    return header.sha256


def _raw_job(batch: JobBatch, index: int, dest: Path, released: float) -> JobOutcome:
    import grpc

    from securefiles.common.tls import channel_options, client_channel_credentials

    options = [*channel_options(batch.raw_target), ("grpc.use_local_subchannel_pool", 1)]
    channel = grpc.secure_channel(batch.raw_target, client_channel_credentials(Path(batch.raw_ca)), options=options)
    try:
        dest.mkdir(mode=0o700, parents=True, exist_ok=True)
        for offset in range(FILES_PER_JOB):  # three distinct "files": different lengths of the buffer
            raw_download_to_disk(channel, FILE_BYTES + offset, dest)
        done = time.monotonic() - released
        return JobOutcome(done, done)
    except Exception as error:
        now = time.monotonic()
        return JobOutcome(now - released, now - released, _error_key(error))
    finally:
        channel.close()


def run_batch(batch: JobBatch) -> WorkerResult:
    """Run a worker's jobs, one thread each, all released at `batch.start_at`."""
    job = _secure_job if batch.mode == "secure" else _raw_job
    outcomes: list[JobOutcome | None] = [None] * batch.jobs
    go = threading.Event()

    def one(index: int) -> None:
        go.wait()
        dest = Path(batch.dest) / f"{batch.mode}-{os.getpid()}-{index}"
        outcomes[index] = job(batch, index, dest, batch.start_at)
        shutil.rmtree(dest, ignore_errors=True)  # after the job: not part of it

    threads = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(batch.jobs)]
    for thread in threads:
        thread.start()
    late = max(0.0, time.monotonic() - batch.start_at)
    if not late:
        time.sleep(batch.start_at - time.monotonic())  # the release moment, shared by every worker
    cpu = time.process_time()
    go.set()
    for thread in threads:
        thread.join()
    return WorkerResult([o for o in outcomes if o is not None], time.process_time() - cpu, late)


def _serve(conn: Any) -> None:
    """A worker process: run the batches it is sent until told to stop."""
    _one_connection_per_job()
    sys.stderr = io.StringIO()  # the agent's progress lines are for terminals, not for the bench
    # Imported before the first release, not during it.
    import securefiles.cli.agent
    import securefiles.client  # noqa: F401

    conn.send("ready")
    while True:
        batch = conn.recv()
        if batch is None:
            return
        conn.send(run_batch(batch))


class Workers:
    """`count` spawned worker processes (spawned: no gRPC state inherited through fork)."""

    def __init__(self, count: int = WORKERS, timeout: float = 60.0, code: str = "") -> None:
        """`code`: a directory whose `securefiles` package (the agent's code) the workers import."""
        context = multiprocessing.get_context("spawn")
        self._conns = []
        self._processes = []
        saved = list(sys.path)
        if code:
            sys.path.insert(0, code)  # a spawned child starts with its parent's sys.path
        try:
            for _ in range(count):
                parent, child = context.Pipe()
                process = context.Process(target=_serve, args=(child,), daemon=True)
                process.start()
                self._conns.append(parent)
                self._processes.append(process)
        finally:
            sys.path[:] = saved
        for conn in self._conns:
            if not conn.poll(timeout) or conn.recv() != "ready":
                self.close()
                raise RuntimeError("a bench worker process did not start")

    @property
    def count(self) -> int:
        return len(self._conns)

    def run(self, batches: Sequence[JobBatch], timeout: float = 600.0) -> list[WorkerResult]:
        for conn, batch in zip(self._conns, batches, strict=True):
            conn.send(batch)
        results = []
        for conn in self._conns:
            if not conn.poll(timeout):
                raise RuntimeError("a bench worker did not finish its jobs")
            results.append(conn.recv())
        return results

    def close(self) -> None:
        for conn in self._conns:
            try:
                conn.send(None)
            except OSError:
                pass
        for process in self._processes:
            process.join(10)
            if process.is_alive():
                process.kill()

    def __enter__(self) -> Workers:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


# -- the system side: a project, its files, a trust of the bench's issuer ----------------------


@dataclass
class PipelineFixture:
    """A project with 3 files a pipeline may use and a trust that maps the bench issuer's tokens
    to that pipeline, one run per token."""

    project: str
    expected: dict[str, str]  # file name -> sha256
    client_env: dict[str, str]
    private_key: Any
    kid: str
    minted: int = 0

    @classmethod
    def create(cls, system: Any) -> PipelineFixture:
        import jwt
        from cryptography.hazmat.primitives.asymmetric import rsa

        from securefiles.client.identity_api import TrustSpec

        project = f"bench-jobs-{uuid.uuid4().hex[:6]}"
        with system.client() as admin:
            admin.create_project(project, "eu")
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        kid = f"bench-{uuid.uuid4().hex[:8]}"
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
        jwk.update({"kid": kid, "alg": "RS256", "use": "sig"})
        expected = {}
        with system.client(project=project) as admin:
            admin.create_pipeline("bench-release")
            for index in range(FILES_PER_JOB):
                name, content = f"job-{index}.bin", os.urandom(FILE_BYTES)
                admin.upload_file(content, name=name)
                admin.set_pipeline_permission(name, "bench-release", True)
                expected[name] = hashlib.sha256(content).hexdigest()
            # As `trusts add --github bench/app` would, with the bench issuer and its keys given inline.
            admin.create_trust("bench-ci", "bench-release", TrustSpec(
                issuer=ISSUER, audience="securefiles", bound_claims={"repository": REPOSITORY}, branch_claim="ref",
                run_claims=("run_id", "run_attempt"), requester_claim="actor", max_ttl_seconds=3600,
                jwks=json.dumps({"keys": [jwk]})))
        env = {k: v for k, v in system.env().items()
               if k.startswith("SECUREFILES_") or k in ("HOME", "XDG_CONFIG_HOME")}
        return cls(project, expected, env, key, kid)

    def mint(self, count: int) -> list[str]:
        """OIDC tokens of `count` new jobs (a run each), as GitHub Actions would sign them."""
        import jwt

        now = int(time.time())
        tokens = []
        for _ in range(count):
            self.minted += 1
            claims = {"iss": ISSUER, "aud": "securefiles", "iat": now, "nbf": now, "exp": now + 1800,
                      "jti": uuid.uuid4().hex, "sub": f"repo:{REPOSITORY}:ref:refs/heads/main",
                      "repository": REPOSITORY, "ref": "refs/heads/main", "run_id": str(self.minted),
                      "run_attempt": "1", "actor": "bench"}
            tokens.append(jwt.encode(claims, self.private_key, algorithm="RS256", headers={"kid": self.kid}))
        return tokens


# -- bursts ------------------------------------------------------------------------------------


@dataclass
class Burst:
    """What one burst of jobs did."""

    mode: str
    jobs: int
    seconds: float = 0.0  # from the release until the last job was done
    outcomes: list[JobOutcome] = field(default_factory=list)
    server_cpu: dict[str, float] = field(default_factory=dict)  # process -> CPU seconds over the burst
    client_cpu: float = 0.0
    late: float = 0.0

    @property
    def ok(self) -> list[JobOutcome]:
        return [o for o in self.outcomes if not o.error]

    @property
    def errors(self) -> collections.Counter[str]:
        return collections.Counter(o.error for o in self.outcomes if o.error) + collections.Counter(
            {"LOST": self.jobs - len(self.outcomes)} if len(self.outcomes) < self.jobs else {})

    @property
    def jobs_per_s(self) -> float:
        return len(self.ok) / self.seconds if self.seconds else 0.0

    def time_to_files(self, pct: int) -> float:
        values = sorted(o.time_to_files for o in self.ok)
        if len(values) < 2:
            return values[0] if values else float("nan")
        return statistics.median(values) if pct == 50 else percentile(values, pct)

    def cpu_per_job_ms(self) -> dict[str, float]:
        return per_op_ms({**self.server_cpu, "client": self.client_cpu}, max(len(self.ok), 1))

    def summary(self) -> str:
        errors = sum(self.errors.values())
        detail = f" ({', '.join(f'{k} {n}' for k, n in self.errors.most_common())})" if errors else ""
        return (f"{self.mode} burst of {self.jobs}: {len(self.ok)} done in {self.seconds:.2f}s "
                f"({self.jobs_per_s:.1f} jobs/s), {errors} errors{detail}; time to files p50 "
                f"{self.time_to_files(50) * 1000:.0f} ms, p99 {self.time_to_files(99) * 1000:.0f} ms"
                + (f"; a worker was ready {self.late * 1000:.0f} ms late" if self.late else ""))


def _split(count: int, parts: int) -> list[int]:
    return [count // parts + (1 if i < count % parts else 0) for i in range(parts)]


def run_burst(workers: Workers, mode: str, jobs: int, dest: Path, pids: dict[str, int], *,
              fixture: PipelineFixture | None = None, raw_target: str = "", raw_ca: str = "") -> Burst:
    """Release `jobs` jobs at one moment across the workers; wait for all of them."""
    shares = _split(jobs, workers.count)
    tokens = fixture.mint(jobs) if fixture is not None else []
    start_at = time.monotonic() + RELEASE_MARGIN
    batches, taken = [], 0
    for share in shares:
        if mode == "secure":
            assert fixture is not None
            batches.append(JobBatch("secure", start_at, str(dest), tokens=tuple(tokens[taken:taken + share]),
                                    client_env=tuple(fixture.client_env.items()),
                                    expected=tuple(fixture.expected.items())))
        else:
            batches.append(JobBatch("raw", start_at, str(dest), raw_target=raw_target, raw_ca=raw_ca, raw_jobs=share))
        taken += share
    with ServerCpu(pids) as servers:
        results = workers.run(batches)
    burst = Burst(mode, jobs, server_cpu=servers.used)
    for result in results:
        burst.outcomes += result.outcomes
        burst.client_cpu += result.cpu_seconds
        burst.late = max(burst.late, result.late)
    burst.seconds = max((o.total for o in burst.outcomes), default=0.0)
    return burst


# -- the `make bench` section --------------------------------------------------------------------


def _errors(burst: Burst) -> str:
    return ", ".join(f"{k} {n}" for k, n in burst.errors.most_common()) or "none"


def _job_line(burst: Burst) -> str:
    return (f"{burst.jobs_per_s:.1f} jobs/s; time to files p50 {burst.time_to_files(50) * 1000:.0f} ms, "
            f"p99 {burst.time_to_files(99) * 1000:.0f} ms; errors: {_errors(burst)}")


def figures(system: Any, raw_target: str, raw_pid: int, rounds: int, progress: Callable[[str], None],
            counts: tuple[int, int] = (64, 256)) -> list[Figure]:
    """`rounds` paired bursts of `counts[0]` jobs (raw, then secure), then one burst of `counts[1]` each."""
    few, many = counts
    secure_pids = service_pids(system.pid)
    raw_pids = {"raw server": raw_pid}
    fixture = PipelineFixture.create(system)
    ca = str(system.tls("storage").ca)
    ratios: list[float] = []
    secure_few: list[Burst] = []
    raw_few: list[Burst] = []
    with Workers() as workers, tempfile.TemporaryDirectory(prefix="securefiles-bench-jobs-") as dest:
        run_burst(workers, "secure", 8, Path(dest), secure_pids, fixture=fixture)  # warm-up, not counted
        for index in range(rounds):
            raw = run_burst(workers, "raw", few, Path(dest), raw_pids, raw_target=raw_target, raw_ca=ca)
            secure = run_burst(workers, "secure", few, Path(dest), secure_pids, fixture=fixture)
            progress(f"round {index + 1}: {secure.summary()}; raw {raw.jobs_per_s:.1f} jobs/s")
            ratios.append(secure.jobs_per_s / raw.jobs_per_s if raw.jobs_per_s else 0.0)
            secure_few.append(secure)
            raw_few.append(raw)
        progress(f"burst of {many} jobs, secure then raw")
        secure_many = run_burst(workers, "secure", many, Path(dest), secure_pids, fixture=fixture)
        raw_many = run_burst(workers, "raw", many, Path(dest), raw_pids, raw_target=raw_target, raw_ca=ca)
        progress(secure_many.summary() + f"; raw {raw_many.summary()}")
    median_secure = sorted(secure_few, key=lambda b: b.jobs_per_s)[len(secure_few) // 2]
    median_raw = sorted(raw_few, key=lambda b: b.jobs_per_s)[len(raw_few) // 2]
    few_errors = sum(sum(b.errors.values()) for b in secure_few)
    job = f"{FILES_PER_JOB} x {FILE_BYTES / 1e6:g} MB"
    return [
        Figure(f"{few} concurrent jobs ({job}, token exchange, glob download to disk), aggregate secure/raw",
               statistics.median(ratios), "x", target=AGGREGATE_TARGET,
               spread=f"median of {rounds} paired bursts: {', '.join(f'{r:.2f}' for r in ratios)}"),
        Figure(f"{few} jobs: secure", median_secure.jobs_per_s, "jobs/s", detail=True, spread=_job_line(median_secure)),
        Figure(f"{few} jobs: raw", median_raw.jobs_per_s, "jobs/s", detail=True, spread=_job_line(median_raw)),
        Figure(f"{few} jobs: errors (all rounds)", few_errors, "errors", target=NO_ERRORS,
               spread="; ".join(_errors(b) for b in secure_few)),
        cpu_figure(f"{few} jobs: CPU per secure job", median_secure.cpu_per_job_ms(), len(median_secure.ok)),
        cpu_figure(f"{few} jobs: CPU per raw job", median_raw.cpu_per_job_ms(), len(median_raw.ok)),
        Figure(f"{many}-job burst: p99 time to files", secure_many.time_to_files(99), "s", target=P99_TARGET,
               spread=f"p50 {secure_many.time_to_files(50):.2f} s; {secure_many.jobs_per_s:.1f} jobs/s; raw p50 "
                      f"{raw_many.time_to_files(50):.2f} / p99 {raw_many.time_to_files(99):.2f} s, "
                      f"{raw_many.jobs_per_s:.1f} jobs/s"),
        Figure(f"{many}-job burst: errors", sum(secure_many.errors.values()), "errors", target=NO_ERRORS,
               detail=True, spread=_errors(secure_many)),
        Figure(f"{many}-job burst: aggregate secure/raw", secure_many.jobs_per_s / max(raw_many.jobs_per_s, 1e-9),
               "x", detail=True, spread=f"one burst each; raw errors: {_errors(raw_many)}"),
        cpu_figure(f"{many}-job burst: CPU per secure job", secure_many.cpu_per_job_ms(), len(secure_many.ok)),
        cpu_figure(f"{many}-job burst: CPU per raw job", raw_many.cpu_per_job_ms(), len(raw_many.ok)),
    ]


def main(argv: list[str] | None = None) -> int:
    from tests.bench.raw_baseline import RawBaselineServer
    from tests.bench.report import table
    from tests.bench.secure_path import running_system

    parser = argparse.ArgumentParser(prog="python -m tests.bench.pipeline", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, action="append", help="burst sizes: two (default 64 and 256)")
    parser.add_argument("--rounds", type=int, default=3, help="paired bursts of the first size")
    parser.add_argument("--postgres", action="store_true",
                        help="the system on PostgreSQL with blobs in the database (see postgres.py for the server)")
    args = parser.parse_args(argv)
    counts = tuple(args.jobs or (64, 256))
    if len(counts) != 2 or min(counts) < 1 or args.rounds < 1:
        parser.error("give --jobs twice (e.g. --jobs 64 --jobs 256) and --rounds >= 1")
    database_url = ""
    if args.postgres:
        from tests.bench.postgres import server_url

        database_url, why_not = server_url()
        if not database_url:
            parser.error(f"no PostgreSQL: {why_not}")
    with running_system(database_url, "db" if database_url else "directory") as system, \
            RawBaselineServer(system.tls("storage"), public=True) as raw:
        result = figures(system, raw.target, raw.pid, args.rounds, lambda line: print(line, flush=True),
                         counts)  # type: ignore[arg-type]
    print(table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
