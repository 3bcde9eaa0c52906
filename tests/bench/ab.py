"""A/B: two versions of the code side by side, the same workloads alternated between them.

On a shared VM whose speed wanders, one version measured now and another measured ten minutes
later differ by more than most changes do. Here both systems run at once (`securefiles up`
each, with the services of version A and of version B), and each workload alternates between
them sample by sample: 4 KB downloads, then bursts of pipeline-shaped jobs (each version's agent
code in its own worker processes). Reported per version: latency, jobs/s and the CPU each
process spent per operation, and B/A.

    git archive <commit> | tar -x -C /tmp/a      # the version to compare against
    python -m tests.bench.ab --a /tmp/a/services [--b /tmp/b/services] [--samples 300] [--rounds 3]

`--b` defaults to this checkout.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from securefiles.client.config import load_config
from securefiles.storage.v1 import storage_pb2_grpc
from tests.bench import pipeline, secure_path
from tests.bench.cpu import CpuTally, load_average, service_pids
from tests.bench.report import Figure, percentile, table
from tests.bench.scenarios import timed
from tests.bench.secure_path import SMALL_BYTES, SecureFixture, client_channel, running_system


@dataclass
class Side:
    label: str
    code: str
    small: list[float] = field(default_factory=list)
    small_cpu: CpuTally = field(default_factory=lambda: CpuTally({}))
    bursts: list[pipeline.Burst] = field(default_factory=list)


def _small_figures(a: Side, b: Side) -> list[Figure]:
    out = []
    for pct in (50, 99):
        values = {s.label: (statistics.median(s.small) if pct == 50 else percentile(s.small, pct)) * 1000
                  for s in (a, b)}
        out.append(Figure(f"4 KB download p{pct}, B/A", values[b.label] / values[a.label], "x",
                          spread=f"A {values[a.label]:.2f} ms, B {values[b.label]:.2f} ms"))
    cpu_a, cpu_b = sum(a.small_cpu.per_op_ms().values()), sum(b.small_cpu.per_op_ms().values())
    out += [Figure("4 KB download CPU, B/A", cpu_b / cpu_a, "x", spread=f"A {cpu_a:.2f} ms, B {cpu_b:.2f} ms"),
            a.small_cpu.figure("A: CPU per 4 KB download"), b.small_cpu.figure("B: CPU per 4 KB download")]
    return out


def _job_figures(a: Side, b: Side) -> list[Figure]:
    def cpu(side: Side) -> dict[str, float]:
        jobs = sum(len(burst.ok) for burst in side.bursts)
        totals: dict[str, float] = {}
        for burst in side.bursts:
            for name, seconds in {**burst.server_cpu, "client": burst.client_cpu}.items():
                totals[name] = totals.get(name, 0.0) + seconds
        return {name: seconds * 1000 / max(jobs, 1) for name, seconds in totals.items()}

    rate_a = statistics.median(burst.jobs_per_s for burst in a.bursts)
    rate_b = statistics.median(burst.jobs_per_s for burst in b.bursts)
    cpu_a, cpu_b = cpu(a), cpu(b)
    jobs = a.bursts[0].jobs
    ttf = {s.label: statistics.median(burst.time_to_files(99) for burst in s.bursts) for s in (a, b)}
    errors = {s.label: sum(sum(burst.errors.values()) for burst in s.bursts) for s in (a, b)}
    return [
        Figure(f"{jobs}-job bursts: jobs/s, B/A", rate_b / rate_a, "x",
               spread=f"medians of {len(a.bursts)}: A {rate_a:.1f}, B {rate_b:.1f} jobs/s; p99 time to files A "
                      f"{ttf[a.label]:.2f} s, B {ttf[b.label]:.2f} s; errors A {errors[a.label]}, B {errors[b.label]}"),
        Figure(f"{jobs}-job bursts: CPU per job, B/A", sum(cpu_b.values()) / sum(cpu_a.values()), "x",
               spread=f"A {sum(cpu_a.values()):.1f} ms, B {sum(cpu_b.values()):.1f} ms"),
        Figure("A: CPU per job", sum(cpu_a.values()), "ms CPU", detail=True,
               spread=", ".join(f"{k} {v:.2f}" for k, v in cpu_a.items())),
        Figure("B: CPU per job", sum(cpu_b.values()), "ms CPU", detail=True,
               spread=", ".join(f"{k} {v:.2f}" for k, v in cpu_b.items())),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.ab", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--a", required=True, help="directory holding version A's `securefiles` package")
    parser.add_argument("--b", default="", help="version B's (default: this checkout)")
    parser.add_argument("--samples", type=int, default=300, help="4 KB downloads per version")
    parser.add_argument("--rounds", type=int, default=3, help="job bursts per version")
    parser.add_argument("--jobs", type=int, default=64, help="jobs per burst")
    parser.add_argument("--skip-jobs", action="store_true")
    parser.add_argument("--postgres", action="store_true", help="both systems on PostgreSQL, blobs in the database")
    args = parser.parse_args(argv)
    a, b = Side("A", args.a), Side("B", args.b)
    database_url = ""
    if args.postgres:
        from tests.bench.postgres import server_url

        database_url, why_not = server_url()
        if not database_url:
            parser.error(f"no PostgreSQL: {why_not}")
    print(f"A/B: load {load_average()} at the start", flush=True)
    with ExitStack() as stack, tempfile.TemporaryDirectory(prefix="securefiles-bench-ab-") as dest:
        systems = {side.label: stack.enter_context(running_system(
            database_url, "db" if database_url else "directory", code=side.code)) for side in (a, b)}
        fixtures = {label: SecureFixture.create(system) for label, system in systems.items()}
        for fixture in fixtures.values():
            stack.callback(fixture.close)
        stubs = {}
        for side in (a, b):
            system = systems[side.label]
            channel = stack.enter_context(client_channel(system, load_config(system.env()).storage))
            stubs[side.label] = storage_pb2_grpc.SecureFileServiceStub(channel)
            side.small_cpu = CpuTally(service_pids(system.pid))
        print(f"4 KB downloads: {args.samples} per version, alternating", flush=True)
        for index in range(args.samples + 20):
            for side in (a, b):
                fixture = fixtures[side.label]

                def once(stub: storage_pb2_grpc.SecureFileServiceStub = stubs[side.label],
                         fixture: SecureFixture = fixture) -> float:
                    return timed(secure_path.download, stub, fixture.resource(fixture.small_name), fixture.job_token,
                                 expected=SMALL_BYTES, what="4 KB")

                if index < 20:
                    once()
                    continue
                with side.small_cpu.measure():
                    side.small.append(once())
        figures = _small_figures(a, b)
        if not args.skip_jobs:
            jobs = {side.label: pipeline.PipelineFixture.create(systems[side.label]) for side in (a, b)}
            workers = {side.label: stack.enter_context(pipeline.Workers(code=side.code)) for side in (a, b)}
            for side in (a, b):  # warm-up
                pipeline.run_burst(workers[side.label], "secure", 8, Path(dest), service_pids(systems[side.label].pid),
                                   fixture=jobs[side.label])
            for index in range(args.rounds):
                for side in ((a, b) if index % 2 == 0 else (b, a)):
                    burst = pipeline.run_burst(workers[side.label], "secure", args.jobs, Path(dest),
                                               service_pids(systems[side.label].pid), fixture=jobs[side.label])
                    print(f"round {index + 1}, {side.label}: {burst.summary()}", flush=True)
                    side.bursts.append(burst)
            figures += _job_figures(a, b)
    print(table(figures))
    print(f"A/B: load {load_average()} at the end")
    return 0


if __name__ == "__main__":
    sys.exit(main())
