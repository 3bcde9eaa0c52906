"""Concurrent agents downloading at once, for storage's memory figure.

Each agent is a job of its own (one run of a bench pipeline, its own job token) on a channel
of its own (its own TLS connection), and downloads one file with `DownloadSecureFile`; storage's
resident set is sampled meanwhile. (The load figures are pipeline-shaped now: see pipeline.py.)
"""

from __future__ import annotations

import asyncio
import collections
import os
import statistics
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from securefiles.common.tls import TlsFiles, channel_options, client_channel_credentials
from securefiles.storage.v1 import storage_pb2
from tests.bench.cpu import CpuTally, cpu_figure, per_op_ms, service_pids
from tests.bench.report import Figure, Target, percentile
from tests.bench.secure_path import SecureFixture, bearer, unique

Download = Callable[[], Awaitable[int]]
SECURE_DOWNLOAD_METHOD = "/securefiles.storage.v1.SecureFileService/DownloadSecureFile"


@dataclass
class LoadResult:
    """What N agents achieved in one bounded window."""

    agents: int
    size: int
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)  # seconds per completed download
    errors: collections.Counter[str] = field(default_factory=collections.Counter)

    @property
    def downloads(self) -> int:
        return len(self.latencies)

    @property
    def mb_per_s(self) -> float:
        return self.downloads * self.size / self.seconds / 1e6 if self.seconds else 0.0

    def latency_ms(self, pct: int) -> float:
        if len(self.latencies) < 2:
            return self.latencies[0] * 1000 if self.latencies else float("nan")
        millis = [s * 1000 for s in self.latencies]
        return statistics.median(millis) if pct == 50 else percentile(millis, pct)

    def summary(self, label: str) -> str:
        errors = sum(self.errors.values())
        detail = f" ({', '.join(f'{k} {n}' for k, n in self.errors.most_common())})" if errors else ""
        return (f"{label}: {self.agents} agents x {self.size / 1e6:g} MB for {self.seconds:.1f}s: "
                f"{self.downloads} downloads, {self.mb_per_s:.1f} MB/s, {errors} errors{detail}; "
                f"latency p50 {self.latency_ms(50):.1f} ms, p90 {self.latency_ms(90):.1f} ms, "
                f"p99 {self.latency_ms(99):.1f} ms")


def _channel(tls: TlsFiles, target: str) -> grpc.aio.Channel:
    # A subchannel pool of its own: one TLS connection per agent, not one shared by all.
    options = [*channel_options(target), ("grpc.use_local_subchannel_pool", 1)]
    return grpc.aio.secure_channel(target, client_channel_credentials(tls.ca), options=options)


def _downloads(channel: grpc.aio.Channel, method: str, request: storage_pb2.DownloadSecureFileRequest,
               metadata: tuple[tuple[str, str], ...], timeout: float) -> Download:
    """One agent's download: a full server stream of `method`, counting content bytes."""
    call = channel.unary_stream(
        method, request_serializer=storage_pb2.DownloadSecureFileRequest.SerializeToString,
        response_deserializer=storage_pb2.DownloadSecureFileResponse.FromString,
    )

    async def download() -> int:
        received = 0
        async for message in call(request, metadata=metadata, timeout=timeout):
            received += len(message.chunk)
        return received

    return download


async def _agent(download: Download, size: int, stop_at: float, result: LoadResult,
                 once: bool) -> None:
    while True:
        started = time.perf_counter()
        try:
            received = await download()
        except grpc.aio.AioRpcError as error:
            result.errors[error.code().name] += 1
            await asyncio.sleep(0.05)  # an agent's retry would back off too
        else:
            if received == size:
                result.latencies.append(time.perf_counter() - started)
            else:
                result.errors["SHORT_DOWNLOAD"] += 1
        if once or time.perf_counter() >= stop_at:
            return


async def _drive(tls: TlsFiles, target: str, make: Callable[[grpc.aio.Channel, int], Download], agents: int,
                 size: int, seconds: float, once: bool) -> LoadResult:
    channels = [_channel(tls, target) for _ in range(agents)]
    try:
        # Connect every agent first (TLS handshakes are not part of the measured window).
        await asyncio.gather(*(asyncio.wait_for(c.channel_ready(), 30) for c in channels))
        downloads = [make(channel, index) for index, channel in enumerate(channels)]
        result = LoadResult(agents, size)
        started = time.perf_counter()
        stop_at = started + seconds
        await asyncio.gather(*(_agent(d, size, stop_at, result, once) for d in downloads))
        result.seconds = time.perf_counter() - started
        return result
    finally:
        await asyncio.gather(*(c.close() for c in channels))


def run_secure(tls: TlsFiles, target: str, resource: str, job_tokens: Sequence[str], size: int, seconds: float,
               once: bool = False, timeout: float = 120.0) -> LoadResult:
    """`len(job_tokens)` agents, agent i with job token i, downloading `resource` (of `size` bytes)."""
    def make(channel: grpc.aio.Channel, index: int) -> Download:
        return _downloads(channel, SECURE_DOWNLOAD_METHOD, storage_pb2.DownloadSecureFileRequest(name=resource),
                          bearer(job_tokens[index]), timeout)

    return asyncio.run(_drive(tls, target, make, len(job_tokens), size, seconds, once))


@dataclass(frozen=True)
class Agents:
    """A file of `size` bytes and `count` running jobs whose pipeline may download it."""

    resource: str
    size: int
    job_tokens: list[str]


def prepare_agents(fixture: SecureFixture, size: int, count: int) -> Agents:
    admin = fixture.admin
    name, pipeline = unique(f"bench-load-{size}"), unique("bench-load-pipeline")
    admin.upload_file(os.urandom(size), name=name)
    admin.create_pipeline(pipeline)
    admin.set_pipeline_permission(name, pipeline, True)
    tokens = [admin.start_run(pipeline, "refs/heads/main").job_token for _ in range(count)]
    return Agents(fixture.resource(name), size, tokens)


# -- storage memory during concurrent downloads -------------------------------------------


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


class RssSampler:
    """Samples a process's resident set size every `interval` seconds in a thread; keeps the peak."""

    def __init__(self, pid: int, interval: float = 0.01) -> None:
        self._pid = pid
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self.before = rss_bytes(pid)
        self.peak = self.before
        self.samples = 0

    def _sample(self) -> None:
        while not self._stop.wait(self._interval):
            self.peak = max(self.peak, rss_bytes(self._pid))
            self.samples += 1

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.after = rss_bytes(self._pid)

    @property
    def growth(self) -> int:
        return self.peak - self.before


# -- the `make bench` figures ---------------------------------------------------------------

LOAD_AGENTS, MEMORY_BYTES = 64, 10_000_000
NO_ERRORS, RSS_TARGET = Target("<=", 0), Target("<=", 150)


def memory_figures(fixture: SecureFixture, storage_target: str, storage_pid: int, rounds: int,
                   progress: Callable[[str], None]) -> list[Figure]:
    """Storage's resident memory while 64 agents each download a 10 MB file at once, `rounds` times."""
    tls = fixture.system.tls("storage")  # its CA: agents present no certificate
    agents = prepare_agents(fixture, MEMORY_BYTES, LOAD_AGENTS)
    growth: list[int] = []
    levels: list[str] = []
    errors = 0
    tally = CpuTally(service_pids(fixture.system.pid))
    for _ in range(rounds):
        with RssSampler(storage_pid) as sampler, tally.measure():
            result = run_secure(tls, storage_target, agents.resource, agents.job_tokens, MEMORY_BYTES, 0,
                                once=True)
        errors += sum(result.errors.values()) + (LOAD_AGENTS - result.downloads)
        growth.append(sampler.growth)
        levels.append(f"{sampler.before / 1e6:.0f}->{sampler.peak / 1e6:.0f}")
        progress(f"storage RSS {sampler.before / 2**20:.0f} MiB before, peak {sampler.peak / 2**20:.0f} MiB, "
                 f"{sampler.after / 2**20:.0f} MiB after; {result.summary('secure')}")
    mb = [g / 1e6 for g in growth]
    return [
        Figure(f"storage RSS growth, {LOAD_AGENTS} concurrent 10 MB downloads", max(mb), "MB", target=RSS_TARGET,
               spread=f"worst of {rounds} rounds ({', '.join(f'{g:.0f}' for g in mb)} MB over the RSS before "
               f"each round; before->peak MB {', '.join(levels)}; sampled every 10 ms)"),
        Figure(f"memory: failed or short downloads in {rounds} rounds", errors, "errors", detail=True,
               target=NO_ERRORS),
        cpu_figure("memory: CPU per concurrent 10 MB download", per_op_ms(tally.seconds, rounds * LOAD_AGENTS),
                   rounds * LOAD_AGENTS),
    ]
