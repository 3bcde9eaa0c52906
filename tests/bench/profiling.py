"""`--profile SECONDS`: py-spy on the services while each workload runs in a loop.

Needs `py-spy` in the virtualenv (`.venv/bin/pip install py-spy`) and ptrace rights (root,
or `kernel.yama.ptrace_scope=0`). Samples with `--idle --threads --nonblocking`, so the
services are not paused and the event-loop thread's wall-clock time is covered, waiting
included (`EpollSelector.select` = idle or awaiting another service). Writes collapsed
stacks (`<workload>-<service>.txt`, readable by speedscope or inferno) and prints, per
service, where the event loop's time goes, also in milliseconds per request.
"""

from __future__ import annotations

import collections
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from securefiles.storage.v1 import storage_pb2_grpc
from tests.bench import secure_path
from tests.bench.secure_path import SecureFixture, unique
from tests.conftest import LocalSystem

RATE = 250
TOP = 14
MAIN_THREAD = "MainThread"
# Frames worth naming in the inclusive view: ours and the libraries on the request path.
INTERESTING = ("securefiles/", "sqlalchemy/", "jwt/", "cryptography/", "hashlib", "selectors.py")


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found.extend(int(child) for child in (task / "children").read_text().split())
    return found


def service_pid(system: LocalSystem, service: str) -> int:
    """The pid of `python -m securefiles serve <service>` under the system's `securefiles up`."""
    assert system.process is not None
    for pid in _children(system.process.pid):
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        if b"serve" in argv and service.encode() in argv:
            return pid
    raise LookupError(f"no {service} process under pid {system.process.pid}")


def py_spy() -> str:
    found = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(found).exists():
        raise FileNotFoundError("py-spy is not installed: .venv/bin/pip install py-spy")
    return found


@dataclass(frozen=True)
class Recording:
    label: str
    seconds: float
    runs: int
    files: dict[str, Path]


def record(pids: dict[str, int], seconds: float, out_dir: Path, label: str,
           workload: Callable[[], object]) -> Recording:
    """Run `workload` in a loop while py-spy samples every pid."""
    out_dir.mkdir(parents=True, exist_ok=True)
    files = {name: out_dir / f"{label}-{name}.txt" for name in pids}
    duration = max(1, round(seconds))
    recorders = [
        subprocess.Popen([py_spy(), "record", "--pid", str(pid), "--duration", str(duration), "--rate", str(RATE),
                          "--format", "raw", "--idle", "--threads", "--nonblocking", "--output", str(files[name])],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        for name, pid in pids.items()
    ]
    done = threading.Event()
    runs = 0
    failures: list[BaseException] = []

    def loop() -> None:
        nonlocal runs
        try:
            while not done.is_set():
                workload()
                runs += 1
        except BaseException as error:  # reported after py-spy has finished
            failures.append(error)

    time.sleep(0.5)  # let py-spy attach
    worker = threading.Thread(target=loop, daemon=True)
    worker.start()
    try:
        for recorder in recorders:
            _, err = recorder.communicate(timeout=duration + 60)
            if recorder.returncode != 0:
                print(f"bench: py-spy failed: {err.strip()[-500:]}")
    finally:
        done.set()
        worker.join()
    if failures:
        raise RuntimeError(f"workload {label} failed while profiling") from failures[0]
    return Recording(label, duration, runs, files)


def summarise(path: Path, seconds: float, runs: int, top: int = TOP) -> str:
    """Where the main (event-loop) thread's wall-clock time went, by leaf and by frame."""
    leaf: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        frames = stack.split(";")
        if not count_text.isdigit() or MAIN_THREAD not in frames[0]:
            continue
        count = int(count_text)
        total += count
        leaf[frames[-1]] += count
        for frame in set(frames[1:]):
            if any(marker in frame for marker in INTERESTING):
                inclusive[frame] += count
    if not total:
        return f"  {path.name}: no samples"
    per_run = seconds * 1000 / max(runs, 1)

    def row(frame: str, n: int) -> str:
        share = n / total
        return f"    {share:6.1%} {share * per_run:7.2f} ms/req  {frame}"

    lines = [f"  {path.name}: {total} samples of the event-loop thread, {per_run:.1f} ms of wall time per request"]
    lines.append("   leaf frames (EpollSelector.select = idle or awaiting a reply):")
    lines.extend(row(frame, n) for frame, n in leaf.most_common(top))
    lines.append("   inclusive, our code and libraries:")
    lines.extend(row(frame, n) for frame, n in inclusive.most_common(top * 2)
                 if not frame.startswith(("main ", "serve ", "<module>")))
    return "\n".join(lines)


def profile_workloads(system: LocalSystem, stub: storage_pb2_grpc.SecureFileServiceStub,
                      fixture: SecureFixture, seconds: float, out_dir: Path) -> None:
    """Profile storage, authz and kms under 10 MB downloads, 10 MB uploads and 4 KB downloads."""
    pids = {service: service_pid(system, service) for service in ("storage", "authz", "kms")}
    big, small = fixture.resource(fixture.big_name), fixture.resource(fixture.small_name)
    token = system.admin_token

    def upload_once() -> None:
        name = unique("bench-profile")
        secure_path.upload(stub, name, fixture.big_content, token)
        fixture.admin.delete_file(name)

    workloads: dict[str, Callable[[], object]] = {
        "download-10mb": lambda: secure_path.download(stub, big, fixture.job_token),
        "upload-10mb": upload_once,
        "download-4kb": lambda: secure_path.download(stub, small, fixture.job_token),
    }
    for label, workload in workloads.items():
        recording = record(pids, seconds, out_dir, label, workload)
        print(f"bench: profile {label}: {recording.runs} requests in {recording.seconds:g}s while sampling")
        for path in recording.files.values():
            if path.exists():
                print(summarise(path, recording.seconds, recording.runs))
    print(f"bench: collapsed stacks in {out_dir}")
