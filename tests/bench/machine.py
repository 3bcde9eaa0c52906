"""What the figures were measured on: machine, Python, code version, and a speed calibration.

The calibration (a fixed pure-Python loop) shows how fast this VM happens to be right now:
absolute figures move with it, ratios much less.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def _run(*argv: str) -> str:
    try:
        return subprocess.run(argv, cwd=REPO_ROOT, capture_output=True, text=True, timeout=10,
                              check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "?"


def calibrate(iterations: int = 2_000_000) -> float:
    """Nanoseconds per iteration of a trivial Python loop (best of 3)."""
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        total = 0
        for i in range(iterations):
            total += i
        best = min(best, time.perf_counter() - started)
    return best / iterations * 1e9


def _busy_seconds() -> float:
    """CPU time the whole machine has spent busy since boot (all cores, steal excluded)."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq = (int(v) for v in fields[:7])
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


def cpu_seconds(pids: list[int]) -> float:
    """CPU time used so far by the live processes among `pids`."""
    table = _process_table()
    return sum(table[pid][1] for pid in pids if pid in table)


def _process_table() -> dict[int, tuple[int, float]]:
    """pid → (parent pid, CPU seconds) of every live process."""
    tck = os.sysconf("SC_CLK_TCK")
    table: dict[int, tuple[int, float]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # exited meanwhile
        table[int(entry.name)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / tck)
    return table


def _own_seconds() -> float:
    """CPU time of this process, of the children it has reaped, and of its live descendants."""
    t = os.times()
    table = _process_table()
    children: dict[int, list[int]] = {}
    for pid, (ppid, _cpu) in table.items():
        children.setdefault(ppid, []).append(pid)
    live, stack = 0.0, list(children.get(os.getpid(), []))
    while stack:
        pid = stack.pop()
        live += table[pid][1]
        stack.extend(children.get(pid, []))
    return t.user + t.system + t.children_user + t.children_system + live


class ForeignLoad:
    """How much CPU other processes on the machine used while the benchmark ran.

    Take `share()` while the services are still running: a descendant that exits unreaped
    by us (a service reparented to init) would otherwise count as foreign."""

    def __init__(self, also_own: Callable[[], float] | None = None) -> None:
        """`also_own`: CPU seconds of processes that work for us without being our descendants
        (a PostgreSQL server's backends serving the bench's databases)."""
        self._also_own = also_own or (lambda: 0.0)
        self._wall = time.monotonic()
        self._busy = _busy_seconds()
        self._own = _own_seconds() + self._also_own()

    def share(self) -> float:
        """Foreign CPU time as a share of the machine's capacity over the interval (0..1)."""
        own = _own_seconds() + self._also_own()
        wall = time.monotonic() - self._wall
        foreign = (_busy_seconds() - self._busy) - (own - self._own)
        return max(0.0, foreign) / (wall * (os.cpu_count() or 1))


def wait_until_quiet(max_wait: float, threshold: float = 0.15, window: float = 1.0) -> float:
    """Wait (at most `max_wait` s) for a `window` in which the machine is below `threshold` busy.

    Returns the last busy share seen; other test runs on a shared machine skew every figure."""
    deadline = time.monotonic() + max_wait
    cores = os.cpu_count() or 1
    while True:
        before = _busy_seconds()
        time.sleep(window)
        share = (_busy_seconds() - before) / (window * cores)
        if share < threshold or time.monotonic() >= deadline:
            return share


def describe() -> dict[str, str]:
    head = _run("git", "rev-parse", "--short", "HEAD")
    dirty = head != "?" and _run("git", "status", "--porcelain", "--untracked-files=no", "--", "services", "protos")
    return {
        "cores": str(os.cpu_count()),
        "uname": _run("uname", "-a"),
        "python": sys.version.split()[0],
        "git": head + (" + uncommitted services/protos" if dirty else ""),
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
    }
