"""Repeated identical failures: one audit entry with a count per interval (issue #15, item 9)."""

from __future__ import annotations

from securefiles.common.repeated_failures import RepeatedFailures


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_first_failure_is_written_and_repeats_are_counted_into_the_next_interval() -> None:
    clock = Clock()
    failures = RepeatedFailures(interval=10, clock=clock)
    kind = ("GetSecureFile", "INVALID_TOKEN", "10.0.0.1")
    assert failures.count(kind) == 1
    assert [failures.count(kind) for _ in range(500)] == [0] * 500
    clock.now += 10
    assert failures.count(kind) == 501  # the 500 repeats and this one, in one entry
    assert failures.count(kind) == 0


def test_different_kinds_are_counted_apart() -> None:
    clock = Clock()
    failures = RepeatedFailures(interval=10, clock=clock)
    assert failures.count(("A", "INVALID_TOKEN", "10.0.0.1")) == 1
    assert failures.count(("A", "INVALID_TOKEN", "10.0.0.2")) == 1
    assert failures.count(("A", "TOKEN_EXPIRED", "10.0.0.1")) == 1
