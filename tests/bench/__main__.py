"""`make bench`: secure paths of a real `securefiles up` against a raw gRPC baseline.

Both run in this process tree over the same mutual TLS, with the same blocking client and
the same messages; raw and secure runs are interleaved and every throughput figure is the
median of `--runs` complete streams. Then key rotation: 4 KB download latency right before
and after `keys rotate`, and `keys rewrap` throughput over 10,000 seeded data keys; and, if a
PostgreSQL server is reachable, 10 MB throughput with blobs in PostgreSQL against the blob
directory. Writes tests/bench/results.json and prints a table. `--skip` leaves sections out;
`--profile SECONDS` also samples storage, authz and kms with py-spy under each workload.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from securefiles.client.config import load_config
from securefiles.storage.v1 import storage_pb2_grpc
from tests.bench import (
    audit_commit,
    cpu,
    listing,
    load,
    lock,
    machine,
    pipeline,
    postgres,
    rotation,
    scale,
    scenarios,
    service_logs,
)
from tests.bench.cpu import service_pids
from tests.bench.raw_baseline import RawBaselineServer
from tests.bench.report import Figure, Target, latency, paired_ratio, table, throughput, write_json
from tests.bench.secure_path import BIG_BYTES, SecureFixture, client_channel, running_system

HERE = Path(__file__).resolve().parent

# Issue 17's targets (ratios against the raw baseline run in the same invocation).
DOWNLOAD_TARGET, UPLOAD_TARGET = Target(">=", 0.75), Target(">=", 0.60)
P50_MULTIPLE, P99_MULTIPLE = Target("<=", 4), Target("<=", 6)
SECTIONS = ("throughput", "jobs", "lock", "audit", "memory", "listing", "rotation", "rewrap", "postgres", "scale")


def sections(value: str) -> set[str]:
    chosen = {part.strip() for part in value.split(",") if part.strip()}
    unknown = chosen - set(SECTIONS)
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown section(s) {', '.join(sorted(unknown))}; "
                                         f"choose from {', '.join(SECTIONS)}")
    return chosen


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tests.bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=31, help="timed runs per throughput figure (>= 5)")
    parser.add_argument("--latency-samples", type=int, default=300, help="sequential 4 KB downloads (>= 200)")
    parser.add_argument("--profile", type=float, default=0.0, metavar="SECONDS",
                        help="also sample the services with py-spy for this long per workload")
    parser.add_argument("--profile-dir", type=Path, default=HERE / "profile")
    parser.add_argument("--output", type=Path, default=HERE / "results.json")
    parser.add_argument("--wait-quiet", type=float, default=60.0, metavar="SECONDS",
                        help="first wait up to this long for the machine to be idle (0: do not wait)")
    parser.add_argument("--skip", type=sections, action="extend", default=[], metavar="SECTION[,SECTION]",
                        help="leave out: throughput (raw vs secure 10 MB and 4 KB), jobs (pipeline-shaped "
                             "bursts of 64 and 256 jobs), lock (storage's health while its database is locked "
                             "10 s), audit (64 concurrent audit appends, SQLite and PostgreSQL), memory (storage "
                             "RSS under 64 concurrent 10 MB downloads), listing (100,000 files), rotation (4 KB "
                             "latency around keys rotate), rewrap "
                             "(10,000 data keys), postgres, scale (an empty system against one seeded with an "
                             "organization: 1,000 projects, 200,000 files, 1,000,000 runs, 5,000,000 audit entries)")
    parser.add_argument("--scale-factor", type=float, default=1.0, help="multiplies the scale section's seeded counts")
    parser.add_argument("--job-rounds", type=int, default=3, help="paired raw/secure bursts of 64 jobs")
    parser.add_argument("--memory-rounds", type=int, default=2, help="bursts of 64 concurrent 10 MB downloads")
    parser.add_argument("--list-files", type=int, default=100_000, help="file rows seeded for the listing")
    parser.add_argument("--list-samples", type=int, default=15, help="first and deep page calls each")
    parser.add_argument("--rewrap-keys", type=int, default=10_000, help="data keys seeded for the rewrap")
    parser.add_argument("--rotation-samples", type=int, default=100,
                        help="sequential 4 KB downloads before and after each rotation")
    parser.add_argument("--rotation-rounds", type=int, default=3, help="rotations for the latency figure")
    parser.add_argument("--postgres-runs", type=int, default=15,
                        help="timed runs per PostgreSQL/directory throughput figure (>= 5)")
    args = parser.parse_args(argv)
    if args.runs < 5 or args.latency_samples < 200 or args.postgres_runs < 5:
        parser.error("need --runs >= 5, --postgres-runs >= 5 and --latency-samples >= 200")
    if args.rewrap_keys < 1 or args.rotation_samples < 10 or args.rotation_rounds < 1:
        parser.error("need --rewrap-keys >= 1, --rotation-samples >= 10 and --rotation-rounds >= 1")
    if args.job_rounds < 1 or args.memory_rounds < 1:
        parser.error("need --job-rounds >= 1 and --memory-rounds >= 1")
    if args.list_files < 1100 or args.list_samples < 5:
        parser.error("need --list-files >= 1100 and --list-samples >= 5")
    return args


STARTED = time.perf_counter()


def step(what: str) -> None:
    print(f"bench: [{time.perf_counter() - STARTED:5.1f}s, load {cpu.load_average()}] {what}", flush=True)


def measure(fixture: SecureFixture, args: argparse.Namespace) -> list[Figure]:
    """Every section but postgres, on the default system."""
    figures = [] if "throughput" in args.skip else measure_throughput(fixture, args)
    storage_target = load_config(fixture.system.env()).storage
    if "jobs" not in args.skip:
        step(f"pipeline-shaped jobs (token exchange, glob download of 3 x 1 MB to disk, complete): "
             f"{args.job_rounds} paired bursts of 64, then 256")
        with RawBaselineServer(fixture.system.tls("storage"), public=True) as raw_server:
            figures += pipeline.figures(fixture.system, raw_server.target, raw_server.pid, args.job_rounds, step)
    if "lock" not in args.skip:
        step("storage's health check every 20 ms while its database is locked for 10 s and changes wait")
        figures += lock.figures(lock.measure(fixture))
    if "audit" not in args.skip:
        step("audit appends from 64 callers: one transaction per entry, then group commit (SQLite, PostgreSQL)")
        figures += audit_commit.figures(audit_commit.run(postgres_url=postgres.server_url()[0]), 64)
    if "memory" not in args.skip:
        step(f"storage RSS during {load.LOAD_AGENTS} concurrent 10 MB downloads, {args.memory_rounds} rounds")
        figures += load.memory_figures(fixture, storage_target, fixture.system.pid("storage"), args.memory_rounds,
                                       step)
    if "listing" not in args.skip:
        step(f"listing: seeding {args.list_files:,} files in a project of their own")
        with client_channel(fixture.system, storage_target) as channel:
            result = listing.measure(fixture.system, storage_pb2_grpc.SecureFileServiceStub(channel),
                                     args.list_files, args.list_samples, step)
        figures += listing.figures(result)
    if "rotation" not in args.skip:
        step(f"4 KB downloads around keys rotate: {args.rotation_rounds} rounds of {args.rotation_samples} "
             "before and after")
        with client_channel(fixture.system, load_config(fixture.system.env()).storage) as channel:
            stub = storage_pb2_grpc.SecureFileServiceStub(channel)
            latency_around = rotation.rotation_latency(stub, fixture, args.rotation_samples, args.rotation_rounds)
        figures += rotation.rotation_figures(latency_around, args.rotation_samples)
    if "rewrap" not in args.skip:
        step(f"rewrap: seeding {args.rewrap_keys:,} data keys (kms GenerateDataKey as storage, rows in storage's "
             "database)")
        rewrap = rotation.rewrap_throughput(fixture.system, fixture.admin, args.rewrap_keys, step)
        step(f"rewrapped {rewrap.rewrapped:,} data keys in {rewrap.seconds:.1f}s, {rewrap.failed} failed; "
             f"per version before {rewrap.before}, after {rewrap.after}; seeded project "
             f"{rewrap.project_before} -> {rewrap.project_after}")
        figures += rotation.rewrap_figures(rewrap)
    return figures


def measure_postgres(directory: SecureFixture, args: argparse.Namespace) -> tuple[list[Figure], str]:
    """10 MB throughput, PostgreSQL blobs against the blob directory; (figures, why skipped)."""
    url, why_not = postgres.server_url()
    if not url:
        return [], why_not
    step("starting a second securefiles up on PostgreSQL with --blob-store db")
    with running_system(database_url=url, blob_store="db") as pg_system:
        foreign = machine.ForeignLoad(also_own=postgres.backend_cpu(pg_system))
        fixture = SecureFixture.create(pg_system)
        try:
            step(f"10 MB downloads then uploads, directory and PostgreSQL interleaved, {args.postgres_runs} runs each")
            comparison = postgres.compare(directory, fixture, args.postgres_runs)
        finally:
            fixture.close()
        share = foreign.share()
        step("stopping the PostgreSQL system, dropping its databases")
    return [*postgres.figures(comparison),
            Figure("machine: CPU used by other processes, postgres section", share * 100, "%",
                   spread="the PostgreSQL backends serving the bench count as its own")], ""


def measure_throughput(fixture: SecureFixture, args: argparse.Namespace) -> list[Figure]:
    system = fixture.system
    storage_target = load_config(system.env()).storage
    with RawBaselineServer(system.tls("storage"), public=True) as raw_server, \
            client_channel(system, raw_server.target) as raw_channel, \
            client_channel(system, storage_target) as storage_channel, \
            tempfile.TemporaryDirectory(prefix="securefiles-bench-agent-") as dest:
        stub = storage_pb2_grpc.SecureFileServiceStub(storage_channel)
        pids = scenarios.Pids(raw={"raw server": raw_server.pid}, secure=service_pids(system.pid))

        step(f"10 MB downloads, raw and secure interleaved, {args.runs} runs each")
        logs = service_logs.offsets(system)
        downloads = scenarios.download_pair(raw_channel, stub, fixture, args.runs, pids)
        download_hops = service_logs.hop_figures("10 MB download", system, logs, args.runs)

        step(f"10 MB agent downloads to disk, raw and agent interleaved, {args.runs} runs each")
        agent = scenarios.agent_pair(raw_channel, fixture, Path(dest), args.runs, pids)

        step(f"10 MB uploads, raw and secure interleaved, {args.runs} runs each")
        logs = service_logs.offsets(system)
        uploads = scenarios.upload_pair(raw_channel, stub, fixture, args.runs, pids)
        upload_hops = service_logs.hop_figures("10 MB upload", system, logs, args.runs)

        step(f"{args.latency_samples} sequential 4 KB downloads, secure then raw")
        logs = service_logs.offsets(system)
        small = scenarios.small_latency(raw_channel, stub, fixture, args.latency_samples, pids)
        small_hops = service_logs.hop_figures("4 KB download", system, logs, args.latency_samples)

        if args.profile:
            from tests.bench import profiling

            step(f"profiling storage, authz and kms, {args.profile:g}s per workload")
            profiling.profile_workloads(system, stub, fixture, args.profile, args.profile_dir)

    p50 = [latency(f"{side} 4 KB download p50", samples, 50) for side, samples in (("secure", small.secure),
                                                                                    ("raw", small.raw))]
    p99 = [latency(f"{side} 4 KB download p99", samples, 99) for side, samples in (("secure", small.secure),
                                                                                    ("raw", small.raw))]
    return [
        throughput("raw download 10 MB", BIG_BYTES, downloads.raw),
        throughput("secure download 10 MB", BIG_BYTES, downloads.secure),
        paired_ratio("download ratio secure/raw", downloads.raw, downloads.secure, DOWNLOAD_TARGET),
        *download_hops,
        downloads.secure_cpu.figure("10 MB download: CPU per secure download"),
        downloads.raw_cpu.figure("10 MB download: CPU per raw download"),
        throughput("agent download to disk 10 MB", BIG_BYTES, agent.secure),
        paired_ratio("agent download ratio agent/raw", agent.raw, agent.secure),
        agent.secure_cpu.figure("10 MB agent download: CPU per download"),
        throughput("raw upload 10 MB", BIG_BYTES, uploads.raw),
        throughput("secure upload 10 MB", BIG_BYTES, uploads.secure),
        paired_ratio("upload ratio secure/raw", uploads.raw, uploads.secure, UPLOAD_TARGET),
        *upload_hops,
        uploads.secure_cpu.figure("10 MB upload: CPU per secure upload"),
        uploads.raw_cpu.figure("10 MB upload: CPU per raw upload"),
        Figure("4 KB download p50, secure / raw", p50[0].value / p50[1].value, "x", target=P50_MULTIPLE,
               spread=f"secure {p50[0].value:.2f} ms, raw {p50[1].value:.2f} ms"),
        Figure("4 KB download p99, secure / raw", p99[0].value / p99[1].value, "x", target=P99_MULTIPLE,
               spread=f"secure {p99[0].value:.2f} ms, raw {p99[1].value:.2f} ms"),
        *(Figure(f.figure, f.value, f.unit, f.spread, detail=True) for f in (*p50, *p99)),
        *small_hops,
        small.secure_cpu.figure("4 KB download: CPU per secure download"),
        small.raw_cpu.figure("4 KB download: CPU per raw download"),
    ]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    about = machine.describe()
    if args.wait_quiet > 0:
        busy = machine.wait_until_quiet(args.wait_quiet)
        step(f"machine {busy:.0%} busy before starting" + (" (did not quieten down)" if busy >= 0.15 else ""))
    speed_before = machine.calibrate()
    load_before = cpu.load_average()
    step("starting securefiles up")
    postgres_figures: list[Figure] = []
    scale_figures: list[Figure] = []
    skipped = "--skip postgres" if "postgres" in args.skip else ""
    with running_system() as system:
        step("uploading fixtures, authorizing a pipeline, starting a run")
        foreign = machine.ForeignLoad()
        fixture = SecureFixture.create(system)
        try:
            figures = measure(fixture, args)
            foreign_share = foreign.share()
            if not skipped:
                postgres_figures, skipped = measure_postgres(fixture, args)
        finally:
            fixture.close()
        step("stopping securefiles up")
    if "scale" not in args.skip:
        step("scale: a system of its own, measured empty, seeded with an organization's rows, measured again")
        with running_system() as scaled:
            scale_figures = scale.run(scaled, scale.Counts().scaled(args.scale_factor), 20, step)
    if skipped:
        step(f"PostgreSQL figures skipped: {skipped}")
    speed_after = machine.calibrate()
    figures += [
        *postgres_figures,
        *scale_figures,
        Figure("machine: CPU used by other processes meanwhile", foreign_share * 100, "%",
               spread=(">10% means disturbed figures" if foreign_share > 0.1 else "quiet")
               + ("; before the postgres section" if postgres_figures else "")),
        Figure("machine: calibration loop", (speed_before + speed_after) / 2, "ns/loop",
               spread=f"{speed_before:.1f} before, {speed_after:.1f} after; lower = faster VM"),
        Figure("machine: load average (1 min) at the end", float(cpu.load_average().split()[0]), "",
               spread=f"1/5/15 min: {load_before} at the start, {cpu.load_average()} at the end (2 cores)"),
    ]
    write_json(figures, args.output)
    print()
    print(table(figures))
    print()
    if skipped:
        print(f"PostgreSQL figures skipped: {skipped}\n")
    for key, value in about.items():
        print(f"{key:>6}: {value}")
    print(f"\nbench: {time.perf_counter() - started:.1f}s in total; wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
