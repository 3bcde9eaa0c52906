"""`make bench`: secure paths of a real `securefiles up` against a raw gRPC baseline.

Both run in this process tree over the same mutual TLS, with the same blocking client and
the same messages; raw and secure runs are interleaved and every throughput figure is the
median of `--runs` complete streams. Writes tests/bench/results.json and prints a table.
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
from tests.bench import machine, scenarios, service_logs
from tests.bench.raw_baseline import RawBaselineServer
from tests.bench.report import Figure, Target, latency, paired_ratio, table, throughput, write_json
from tests.bench.secure_path import BIG_BYTES, SecureFixture, client_channel, running_system

HERE = Path(__file__).resolve().parent

DOWNLOAD_TARGET, DOWNLOAD_LATER = Target(">=", 0.6), Target(">=", 0.85)
UPLOAD_TARGET, UPLOAD_LATER = Target(">=", 0.5), Target(">=", 0.70)
P50_LATER, P99_LATER = Target("<=", 3), Target("<=", 10)


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
    args = parser.parse_args(argv)
    if args.runs < 5 or args.latency_samples < 200:
        parser.error("need --runs >= 5 and --latency-samples >= 200")
    return args


def step(what: str) -> None:
    print(f"bench: {what}", flush=True)


def measure(fixture: SecureFixture, args: argparse.Namespace) -> list[Figure]:
    system = fixture.system
    storage_target = load_config(system.env()).storage
    with RawBaselineServer(system.tls("storage")) as raw_server, \
            client_channel(system, raw_server.target) as raw_channel, \
            client_channel(system, storage_target) as storage_channel, \
            tempfile.TemporaryDirectory(prefix="securefiles-bench-agent-") as dest:
        stub = storage_pb2_grpc.SecureFileServiceStub(storage_channel)

        step(f"10 MB downloads, raw and secure interleaved, {args.runs} runs each")
        logs = service_logs.offsets(system)
        downloads = scenarios.download_pair(raw_channel, stub, fixture, args.runs)
        download_hops = service_logs.hop_figures("10 MB download", system, logs, args.runs)

        step(f"10 MB agent downloads to disk, raw and agent interleaved, {args.runs} runs each")
        agent = scenarios.agent_pair(raw_channel, fixture, Path(dest), args.runs)

        step(f"10 MB uploads, raw and secure interleaved, {args.runs} runs each")
        logs = service_logs.offsets(system)
        uploads = scenarios.upload_pair(raw_channel, stub, fixture, args.runs)
        upload_hops = service_logs.hop_figures("10 MB upload", system, logs, args.runs)

        step(f"{args.latency_samples} sequential 4 KB downloads, secure then raw")
        logs = service_logs.offsets(system)
        small = scenarios.small_latency(raw_channel, stub, fixture, args.latency_samples)
        small_hops = service_logs.hop_figures("4 KB download", system, logs, args.latency_samples)

        if args.profile:
            from tests.bench import profiling

            step(f"profiling storage, authz and kms, {args.profile:g}s per workload")
            profiling.profile_workloads(system, stub, fixture, args.profile, args.profile_dir)

    return [
        throughput("raw download 10 MB", BIG_BYTES, downloads.raw),
        throughput("secure download 10 MB", BIG_BYTES, downloads.secure),
        paired_ratio("download ratio secure/raw", downloads.raw, downloads.secure, DOWNLOAD_TARGET, DOWNLOAD_LATER),
        *download_hops,
        throughput("agent download to disk 10 MB", BIG_BYTES, agent.secure),
        paired_ratio("agent download ratio agent/raw", agent.raw, agent.secure),
        throughput("raw upload 10 MB", BIG_BYTES, uploads.raw),
        throughput("secure upload 10 MB", BIG_BYTES, uploads.secure),
        paired_ratio("upload ratio secure/raw", uploads.raw, uploads.secure, UPLOAD_TARGET, UPLOAD_LATER),
        *upload_hops,
        latency("secure 4 KB download p50", small.secure, 50, P50_LATER),
        latency("secure 4 KB download p99", small.secure, 99, P99_LATER),
        *small_hops,
        latency("raw 4 KB download p50", small.raw, 50),
        latency("raw 4 KB download p99", small.raw, 99),
    ]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    about = machine.describe()
    if args.wait_quiet > 0:
        busy = machine.wait_until_quiet(args.wait_quiet)
        step(f"machine {busy:.0%} busy before starting" + (" (did not quieten down)" if busy >= 0.15 else ""))
    speed_before = machine.calibrate()
    step("starting securefiles up")
    with running_system() as system:
        step("uploading fixtures, authorizing a pipeline, starting a run")
        foreign = machine.ForeignLoad()
        fixture = SecureFixture.create(system)
        try:
            figures = measure(fixture, args)
        finally:
            fixture.close()
        foreign_share = foreign.share()
        step("stopping securefiles up")
    speed_after = machine.calibrate()
    figures += [
        Figure("machine: CPU used by other processes meanwhile", foreign_share * 100, "%",
               spread=">10% means disturbed figures" if foreign_share > 0.1 else "quiet"),
        Figure("machine: calibration loop", (speed_before + speed_after) / 2, "ns/loop",
               spread=f"{speed_before:.1f} before, {speed_after:.1f} after; lower = faster VM"),
    ]
    write_json(figures, args.output)
    print()
    print(table(figures))
    print()
    for key, value in about.items():
        print(f"{key:>6}: {value}")
    print(f"\nbench: {time.perf_counter() - started:.1f}s in total; wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
