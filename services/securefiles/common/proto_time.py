"""Conversions between datetimes and protobuf Timestamps/Durations."""

from __future__ import annotations

import datetime as dt

from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp

from securefiles.common.errors import InvalidArgument

# Timestamp's valid range: 0001-01-01T00:00:00Z to 9999-12-31T23:59:59.999999999Z.
_MIN_SECONDS, _MAX_SECONDS = -62_135_596_800, 253_402_300_799
_MAX_DURATION_SECONDS = 315_576_000_000


def to_timestamp(value: dt.datetime | None) -> Timestamp | None:
    if value is None:
        return None
    ts = Timestamp()
    ts.FromDatetime(value if value.tzinfo else value.replace(tzinfo=dt.UTC))
    return ts


def from_timestamp(ts: Timestamp) -> dt.datetime:
    """A request's timestamp; INVALID_ARGUMENT when it is out of protobuf's valid range."""
    if not (_MIN_SECONDS <= ts.seconds <= _MAX_SECONDS and 0 <= ts.nanos <= 999_999_999):
        raise InvalidArgument("timestamp out of range", reason="INVALID_TIMESTAMP")
    return ts.ToDatetime(tzinfo=dt.UTC)


def duration_seconds(duration: Duration, default: int) -> int:
    """Whole seconds of a request's duration (`default` when unset); INVALID_ARGUMENT when malformed."""
    if abs(duration.seconds) > _MAX_DURATION_SECONDS or abs(duration.nanos) > 999_999_999:
        raise InvalidArgument("duration out of range", reason="INVALID_DURATION")
    seconds = duration.seconds + duration.nanos / 1e9
    if seconds < 0:
        raise InvalidArgument("duration must not be negative", reason="INVALID_DURATION")
    return int(seconds) if seconds > 0 else default
