"""Crafted files against everyone else: download latency of a 4 KB file while six uploads of a
costly PKCS#12 parse at once, and the CPU storage (and its parser processes) spend, during and after.

    .venv/bin/python -m tests.bench.parse_isolation [--seconds 20] [--file issue|budget]

`issue`: the review's file, ten RC2-40 parts of 256 KiB that decrypt with no password (seconds of
Python each before the work budget counted decryption); `budget`: the costliest kind the budget
still allows (one RC2 part just under it). Not part of `make bench`: it measures an attack.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import threading
import time
from pathlib import Path

from securefiles.client.config import load_config
from securefiles.storage.domain.file_metadata import pbe
from securefiles.storage.v1 import storage_pb2_grpc
from tests.bench.secure_path import SecureFixture, client_channel, download, running_system, upload
from tests.conftest import LocalSystem, unique
from tests.unit.test_file_metadata_samples import cert_bag, ctx, integer, octets, oid, pfx, seq, tlv

CONCURRENT_UPLOADS = 6


def _rc2_encrypt_block(k: list[int], block: bytes) -> bytes:
    r = [block[0] | block[1] << 8, block[2] | block[3] << 8, block[4] | block[5] << 8, block[6] | block[7] << 8]
    j = 0
    for round_ in range(16):
        for i in range(4):
            r[i] = (r[i] + k[j] + (r[i - 1] & r[i - 2]) + (~r[i - 1] & r[i - 3])) & 0xFFFF
            s = (1, 2, 3, 5)[i]
            r[i] = ((r[i] << s) | (r[i] >> (16 - s))) & 0xFFFF
            j += 1
        if round_ in (4, 10):
            for i in range(4):
                r[i] = (r[i] + k[r[i - 1] & 63]) & 0xFFFF
    return b"".join(value.to_bytes(2, "little") for value in r)


def rc2_40_part(safe_contents: bytes) -> bytes:
    """An EncryptedData content info that decrypts (with no password) to `safe_contents`."""
    salt, iterations = b"saltsalt", 1
    budget = pbe.WorkBudget(10**9)
    secret = pbe.bmp_password(None)
    key = pbe.pkcs12_kdf("sha1", secret, salt, 1, iterations, 5, budget)
    iv = pbe.pkcs12_kdf("sha1", secret, salt, 2, iterations, 8, budget)
    schedule = pbe._rc2_key_schedule(key, 40)
    pad = 8 - len(safe_contents) % 8
    plain = safe_contents + bytes([pad]) * pad
    out, previous = bytearray(), iv
    for pos in range(0, len(plain), 8):
        block = bytes(a ^ b for a, b in zip(plain[pos:pos + 8], previous, strict=True))
        previous = _rc2_encrypt_block(schedule, block)
        out += previous
    assert pbe.rc2_cbc_decrypt(key, 40, iv, bytes(out))[:len(safe_contents)] == safe_contents
    algorithm = seq(oid("1.2.840.113549.1.12.1.6"), seq(octets(salt), integer(iterations)))
    return seq(oid("1.2.840.113549.1.7.6"),
               ctx(0, seq(integer(0), seq(oid("1.2.840.113549.1.7.1"), algorithm, tlv(0x80, bytes(out))))))


def crafted(kind: str) -> bytes:
    if kind == "issue":
        return pfx(*[rc2_40_part(seq(cert_bag(os.urandom(256 * 1024 - 64)))) for _ in range(10)])
    # About 1.4 M units of the 1.5 M budget in one part; no second candidate password is tried.
    return pfx(rc2_40_part(seq(cert_bag(os.urandom(170 * 1024)))))


def _cpu_seconds(pid: int) -> float:
    """utime + stime of a process (and of its reaped children)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = sum(int(value) for value in fields[11:15])
    return ticks / os.sysconf("SC_CLK_TCK")


def _parser_cpu(storage: int) -> float:
    total = 0.0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
                if int(stat.rsplit(")", 1)[1].split()[1]) == storage:
                    total += _cpu_seconds(int(entry.name))
            except (OSError, ValueError):
                continue
    return total


def _latencies(fixture: SecureFixture, stop: threading.Event | None, count: int = 0) -> list[float]:
    resource = fixture.resource(fixture.small_name)
    with client_channel(fixture.system, _storage(fixture.system)) as channel:
        stub = storage_pb2_grpc.SecureFileServiceStub(channel)
        times: list[float] = []
        while (stop is not None and not stop.is_set()) or len(times) < count:
            started = time.perf_counter()
            download(stub, resource, fixture.job_token)
            times.append(time.perf_counter() - started)
    return times


def _storage(system: LocalSystem) -> str:
    return load_config(system.env()).storage


def _summary(times: list[float]) -> str:
    ordered = sorted(times)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return (f"n={len(times)} p50={statistics.median(ordered) * 1000:.1f} ms p99={p99 * 1000:.1f} ms "
            f"max={ordered[-1] * 1000:.1f} ms")


def run(seconds: float, kind: str) -> None:
    content = crafted(kind)
    print(f"crafted file: {kind}, {len(content)} bytes, sha256 {hashlib.sha256(content).hexdigest()[:12]}")
    with running_system() as system:
        fixture = SecureFixture.create(system)
        storage = system.pid("storage")
        print("idle:         ", _summary(_latencies(fixture, None, 300)))
        stop = threading.Event()
        outcomes: list[tuple[float, str]] = []

        def uploader() -> None:
            with client_channel(system, _storage(system)) as channel:
                stub = storage_pb2_grpc.SecureFileServiceStub(channel)
                while not stop.is_set():
                    started = time.perf_counter()
                    created = upload(stub, unique("crafted") + ".p12", content, system.admin_token)
                    note = created.metadata.fields.get("parse_error") or created.metadata.fields.get("parse_skipped")
                    outcomes.append((time.perf_counter() - started, note.string_value if note else "parsed"))

        cpu_before, parsers_before = _cpu_seconds(storage), _parser_cpu(storage)
        threads = [threading.Thread(target=uploader) for _ in range(CONCURRENT_UPLOADS)]
        for thread in threads:
            thread.start()
        timer = threading.Timer(seconds, stop.set)
        timer.start()
        under_load = _latencies(fixture, stop)
        for thread in threads:
            thread.join()
        returned = time.monotonic()
        cpu_during, parsers_during = _cpu_seconds(storage), _parser_cpu(storage)
        print("under attack: ", _summary(under_load))
        walls = [wall for wall, _ in outcomes]
        notes = sorted({note for _, note in outcomes})
        print(f"uploads: {len(outcomes)} in {seconds:.0f} s, wall p50 {statistics.median(walls):.2f} s "
              f"max {max(walls):.2f} s; outcomes {notes}")
        print(f"CPU during: storage {cpu_during - cpu_before:.1f} s, parser processes "
              f"{parsers_during - parsers_before:.1f} s")
        time.sleep(10)
        storage_after, parsers_after = _cpu_seconds(storage) - cpu_during, _parser_cpu(storage) - parsers_during
        print(f"CPU in the 10 s after the last upload returned: storage {storage_after:.1f} s, parser processes "
              f"{parsers_after:.1f} s ({time.monotonic() - returned:.0f} s measured)")
        print("afterwards:   ", _summary(_latencies(fixture, None, 300)))
        fixture.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--file", choices=("issue", "budget"), default="issue")
    args = parser.parse_args()
    run(args.seconds, args.file)


if __name__ == "__main__":
    main()
