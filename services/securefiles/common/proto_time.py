"""Conversions between datetimes and protobuf Timestamps/Durations."""

from __future__ import annotations

import datetime as dt

from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp


def to_timestamp(value: dt.datetime | None) -> Timestamp | None:
    if value is None:
        return None
    ts = Timestamp()
    ts.FromDatetime(value if value.tzinfo else value.replace(tzinfo=dt.UTC))
    return ts


def from_timestamp(ts: Timestamp) -> dt.datetime:
    return ts.ToDatetime(tzinfo=dt.UTC)


def duration_seconds(duration: Duration, default: int) -> int:
    seconds = duration.seconds + duration.nanos / 1e9
    return int(seconds) if seconds > 0 else default
