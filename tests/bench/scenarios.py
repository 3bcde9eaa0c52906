"""The measured scenarios. Each returns raw samples (seconds); report.py turns them into figures.

Throughput pairs (raw, secure) are interleaved run by run, so that the machine's drift
(a 2-core VM whose speed wanders by 2x over tens of seconds) hits both sides alike and
each secure run has a raw run next to it to be compared with. Every sample is one
complete stream on an already-warm channel; warm-up runs are discarded.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from securefiles.client import SecureFilesClient
from securefiles.storage.v1 import storage_pb2_grpc
from tests.bench import raw_baseline, secure_path
from tests.bench.cpu import CpuTally
from tests.bench.secure_path import BIG_BYTES, SMALL_BYTES, SecureFixture, unique

Action = Callable[[], float]


@dataclass(frozen=True)
class Pids:
    """The processes each side runs in (besides this one): the raw server; storage, authz, kms."""

    raw: Mapping[str, int] = field(default_factory=dict)
    secure: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Pair:
    """Seconds per run of the raw baseline and of the secure path, index i taken back to back,
    and the CPU each side's processes spent on the timed runs."""

    raw: list[float]
    secure: list[float]
    raw_cpu: CpuTally = field(default_factory=lambda: CpuTally({}))
    secure_cpu: CpuTally = field(default_factory=lambda: CpuTally({}))


def timed(action: Callable[..., int], *args: object, expected: int, what: str) -> float:
    """Seconds `action(*args)` took; it must return `expected` (a byte count)."""
    started = time.perf_counter()
    actual = action(*args)
    seconds = time.perf_counter() - started
    if actual != expected:
        raise RuntimeError(f"{what}: got {actual} bytes, expected {expected}")
    return seconds


def interleave(raw: Action, secure: Action, runs: int, warmup: int, pids: Pids) -> Pair:
    pair = Pair([], [], CpuTally(pids.raw), CpuTally(pids.secure))
    for _ in range(warmup):
        raw(), secure()
    for _ in range(runs):
        with pair.raw_cpu.measure():
            pair.raw.append(raw())
        with pair.secure_cpu.measure():
            pair.secure.append(secure())
    return pair


def verify_secure_download(stub: storage_pb2_grpc.SecureFileServiceStub, fixture: SecureFixture) -> None:
    """Once, untimed: the secure stream really carries the uploaded plaintext."""
    digest = hashlib.sha256()
    size = secure_path.download(stub, fixture.resource(fixture.big_name), fixture.job_token, on_chunk=digest.update)
    if size != BIG_BYTES or digest.digest() != hashlib.sha256(fixture.big_content).digest():
        raise RuntimeError("secure download: content differs from what was uploaded")


def _raw_download(channel: grpc.Channel, size: int) -> Action:
    return lambda: timed(raw_baseline.download, channel, size, expected=size, what="raw download")


def download_pair(raw_channel: grpc.Channel, stub: storage_pb2_grpc.SecureFileServiceStub,
                  fixture: SecureFixture, runs: int, pids: Pids, warmup: int = 2) -> Pair:
    """10 MB server-streaming: raw baseline vs DownloadSecureFile (token, authz, kms, decrypt)."""
    verify_secure_download(stub, fixture)
    resource = fixture.resource(fixture.big_name)

    def secure() -> float:
        return timed(secure_path.download, stub, resource, fixture.job_token, expected=BIG_BYTES,
                     what="secure download")

    return interleave(_raw_download(raw_channel, BIG_BYTES), secure, runs, warmup, pids)


def agent_pair(raw_channel: grpc.Channel, fixture: SecureFixture, dest: Path, runs: int, pids: Pids,
               warmup: int = 2) -> Pair:
    """`SecureFilesClient.download_secure_file` (stream + write + fsync + sha256 + rename) vs raw."""
    with fixture.job_client() as job:

        def agent() -> float:
            seconds = timed(_agent_download, job, fixture.big_name, dest, expected=BIG_BYTES, what="agent download")
            (dest / fixture.big_name).unlink()
            return seconds

        return interleave(_raw_download(raw_channel, BIG_BYTES), agent, runs, warmup, pids)


def _agent_download(job: SecureFilesClient, name: str, dest: Path) -> int:
    return job.download_secure_file(name, dest).size


def upload_pair(raw_channel: grpc.Channel, stub: storage_pb2_grpc.SecureFileServiceStub,
                fixture: SecureFixture, runs: int, pids: Pids, warmup: int = 2) -> Pair:
    """10 MB client-streaming: raw sink vs UploadSecureFile (authz, kms data key, encrypt, fsync).

    Every secure run uploads a new name; they are deleted afterwards (untimed, CPU not counted)."""
    content, token = fixture.big_content, fixture.system.admin_token
    uploaded: list[str] = []

    def raw() -> float:
        return timed(raw_baseline.upload, raw_channel, content, expected=BIG_BYTES, what="raw upload")

    def secure() -> float:
        uploaded.append(unique("bench-upload"))
        return timed(_secure_upload, stub, uploaded[-1], content, token, expected=BIG_BYTES, what="secure upload")

    try:
        return interleave(raw, secure, runs, warmup, pids)
    finally:
        for name in uploaded:
            fixture.admin.delete_file(name)


def _secure_upload(stub: storage_pb2_grpc.SecureFileServiceStub, name: str, content: bytes, token: str) -> int:
    return secure_path.upload(stub, name, content, token).size_bytes


def small_latency(raw_channel: grpc.Channel, stub: storage_pb2_grpc.SecureFileServiceStub,
                  fixture: SecureFixture, samples: int, pids: Pids, warmup: int = 20) -> Pair:
    """Sequential 4 KB downloads on a warm channel, end to end; then the same on raw, for reference."""
    resource = fixture.resource(fixture.small_name)

    def secure_action() -> float:
        return timed(secure_path.download, stub, resource, fixture.job_token, expected=SMALL_BYTES,
                     what="secure 4 KB")

    raw_action = _raw_download(raw_channel, SMALL_BYTES)
    pair = Pair([], [], CpuTally(pids.raw), CpuTally(pids.secure))
    for action, into, tally in ((secure_action, pair.secure, pair.secure_cpu), (raw_action, pair.raw, pair.raw_cpu)):
        for _ in range(warmup):
            action()
        for _ in range(samples):
            with tally.measure():
                into.append(action())
    return pair
