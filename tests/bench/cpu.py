"""CPU time per operation, per process: the figure that does not swing with the VM's speed.

Wall-clock ratios on a shared 2-core VM move by half from one minute to the next for the same
code; the CPU each process spends per operation moves much less, so a change can be judged
from one run. Server processes are read from `/proc/PID/stat` (utime + stime of every thread,
in clock ticks) over a whole phase and divided by the phase's operations; the benchmark's own
client side is read with `time.process_time()` (nanosecond resolution) around each operation,
so raw and secure runs interleaved in one phase are told apart.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tests.bench.report import Figure

_TICK = os.sysconf("SC_CLK_TCK")


def process_seconds(pid: int) -> float:
    """CPU seconds (user + system, all threads) a live process has used; 0 if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICK


def load_average() -> str:
    """The machine's 1/5/15-minute load averages, as `uptime` prints them (2 cores here)."""
    try:
        one, five, fifteen = Path("/proc/loadavg").read_text().split()[:3]
    except (OSError, ValueError):
        return "?"
    return f"{one} {five} {fifteen}"


@dataclass
class ServerCpu:
    """CPU seconds of named server processes over a phase: `with meter: ...`, then `used`."""

    pids: Mapping[str, int]
    used: dict[str, float] = field(default_factory=dict)
    _before: dict[str, float] = field(default_factory=dict)

    def __enter__(self) -> ServerCpu:
        self._before = {name: process_seconds(pid) for name, pid in self.pids.items()}
        return self

    def __exit__(self, *_exc: object) -> None:
        self.used = {name: process_seconds(pid) - self._before[name] for name, pid in self.pids.items()}


@dataclass
class CpuTally:
    """CPU per operation of the processes an operation runs in: `with tally.measure(): op()` around
    each one (server processes from /proc, this process by `process_time`); warm-ups left out."""

    pids: Mapping[str, int]
    seconds: dict[str, float] = field(default_factory=dict)
    operations: int = 0

    @contextmanager
    def measure(self) -> Iterator[None]:
        servers = {name: process_seconds(pid) for name, pid in self.pids.items()}
        client = time.process_time()
        try:
            yield
        finally:
            used = {"client": time.process_time() - client}
            used.update({name: process_seconds(pid) - servers[name] for name, pid in self.pids.items()})
            for name, seconds in used.items():
                self.seconds[name] = self.seconds.get(name, 0.0) + seconds
            self.operations += 1

    def per_op_ms(self) -> dict[str, float]:
        ordered = {name: self.seconds.get(name, 0.0) for name in (*self.pids, "client")}
        return per_op_ms(ordered, self.operations)

    def figure(self, name: str) -> Figure:
        return cpu_figure(name, self.per_op_ms(), self.operations)


def per_op_ms(used: Mapping[str, float], operations: int) -> dict[str, float]:
    return {name: seconds * 1000 / max(operations, 1) for name, seconds in used.items()}


def cpu_figure(name: str, per_process_ms: Mapping[str, float], operations: int, detail: bool = True) -> Figure:
    """One figure: the CPU all processes spent per operation, each process's share in the spread."""
    shares = ", ".join(f"{process} {ms:.2f}" for process, ms in per_process_ms.items())
    return Figure(name, sum(per_process_ms.values()), "ms CPU", detail=detail,
                  spread=f"{shares} (per op over {operations} ops)")


def service_pids(pid_of: Callable[[str], int], services: tuple[str, ...] = ("storage", "authz", "kms-eu")
                 ) -> dict[str, int]:
    """Pids of the services `securefiles up` started (those it wrote a pid file for)."""
    found = {}
    for service in services:
        try:
            found[service] = pid_of(service)
        except (OSError, ValueError):
            continue
    return found
