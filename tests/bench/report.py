"""Figures from samples, targets, the printed table and results.json."""

from __future__ import annotations

import json
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Target:
    """`>= 0.6` or `<= 3`: a bound a figure must meet."""

    op: str
    bound: float

    def __post_init__(self) -> None:
        if self.op not in (">=", "<="):
            raise ValueError(f"unknown comparison {self.op!r}")

    def met(self, value: float) -> bool:
        return value >= self.bound if self.op == ">=" else value <= self.bound

    def __str__(self) -> str:
        return f"{self.op} {self.bound:g}"


@dataclass(frozen=True)
class Figure:
    """One reported number, with its spread over runs and its targets (now and later)."""

    figure: str
    value: float
    unit: str
    spread: str = ""
    target: Target | None = None
    later_target: Target | None = None
    detail: bool = False  # a breakdown of the figure above it; indented in the table

    @property
    def passed(self) -> bool | None:
        return None if self.target is None else self.target.met(self.value)

    @property
    def later_passed(self) -> bool | None:
        return None if self.later_target is None else self.later_target.met(self.value)

    def as_json(self) -> dict[str, object]:
        return {
            "figure": self.figure, "value": round(self.value, 4), "unit": self.unit,
            "target": str(self.target) if self.target else None, "pass": self.passed,
            "later_target": str(self.later_target) if self.later_target else None, "later_pass": self.later_passed,
            "spread": self.spread,
        }


# -- from samples -----------------------------------------------------------------------


def mb_per_s(size: int, seconds: Sequence[float]) -> list[float]:
    """Decimal megabytes (10^6 B) per second of each run."""
    return [size / s / 1e6 for s in seconds]


def percentile(samples: Sequence[float], pct: int) -> float:
    """Inclusive percentile (pct in 1..99) of at least two samples."""
    return statistics.quantiles(samples, n=100, method="inclusive")[pct - 1]


def throughput(name: str, size: int, seconds: Sequence[float]) -> Figure:
    rates = mb_per_s(size, seconds)
    return Figure(name, statistics.median(rates), "MB/s",
                  spread=f"{min(rates):.1f}-{max(rates):.1f} over {len(rates)} runs")


def paired_ratio(name: str, raw_seconds: Sequence[float], secure_seconds: Sequence[float],
                 target: Target | None = None, later_target: Target | None = None) -> Figure:
    """Median over runs of (secure MB/s / raw MB/s), each secure run against the raw run beside it.

    Robust to the machine's drift, unlike a ratio of two medians taken over the whole series."""
    ratios = [raw / secure for raw, secure in zip(raw_seconds, secure_seconds, strict=True)]
    return Figure(name, statistics.median(ratios), "x",
                  spread=f"median of {len(ratios)} paired runs, range {min(ratios):.2f}-{max(ratios):.2f}",
                  target=target, later_target=later_target)


def latency(name: str, seconds: Sequence[float], pct: int, later_target: Target | None = None) -> Figure:
    millis = [s * 1000 for s in seconds]
    value = statistics.median(millis) if pct == 50 else percentile(millis, pct)
    return Figure(name, value, "ms", spread=f"{len(millis)} downloads, min {min(millis):.2f} max {max(millis):.2f}",
                  later_target=later_target)


# -- output -----------------------------------------------------------------------------


def _verdict(passed: bool | None) -> str:
    return "" if passed is None else ("PASS" if passed else "FAIL")


def _row(f: Figure) -> tuple[str, ...]:
    name = ("  " if f.detail else "") + f.figure
    decimals = {"x": 3, "ms": 3, "s": 2, "keys": 0, "keys/s": 0, "ms CPU": 2}.get(f.unit, 1)
    value = f"{f.value:.{decimals}f}"
    return (name, value, f.unit, str(f.target or ""), _verdict(f.passed), str(f.later_target or ""),
            _verdict(f.later_passed), f.spread)


def table(figures: Sequence[Figure]) -> str:
    """A fixed-width table: figure, value, target and verdict (and later target and verdict, if any)."""
    header = ("figure", "value", "unit", "target", "", "later target", "", "spread")
    rows = [header, *(_row(f) for f in figures)]
    if not any(f.later_target for f in figures):
        rows = [row[:5] + row[7:] for row in rows]
        header = rows[0]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows]
    lines.insert(1, "-" * max(len(line) for line in lines))
    return "\n".join(lines)


def write_json(figures: Sequence[Figure], path: Path) -> None:
    path.write_text(json.dumps([f.as_json() for f in figures], indent=2) + "\n")
