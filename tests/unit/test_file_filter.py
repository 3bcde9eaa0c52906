"""ListSecureFiles' AIP-160 filter (storage/domain/file_filter.py): each form keeps what it says,
and anything outside the grammar, or hostile, is INVALID_FILTER at once."""

from __future__ import annotations

import dataclasses
import datetime as dt
import time

import pytest

from securefiles.common.errors import InvalidArgument
from securefiles.storage.domain.file_filter import MAX_FILTER_CHARS, parse_filter
from securefiles.storage.domain.model import SecureFile
from tests.unit.storage_fakes import stored_file

NOW = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)


def _file(name: str, expires: str | None = None, kind: str = "x509", **properties: str) -> SecureFile:
    made = stored_file("demo", name, name, NOW)
    current = dataclasses.replace(made.current, metadata={"type": kind},
                                  expires_at=dt.datetime.fromisoformat(expires) if expires else None)
    return dataclasses.replace(made, current=current, properties=properties)


FILES = [
    _file("ios-dist.p12", "2026-07-01T00:00:00+00:00", "pkcs12", team="ios"),
    _file("ios-dev.p12", "2027-07-01T00:00:00+00:00", "pkcs12", team="ios", env="dev"),
    _file("android.jks", "2026-12-31T23:59:59+00:00", "android_keystore", team="android"),
    _file("notes.txt", None, "unknown"),
    _file("a*b", None, "unknown"),
]


def kept(text: str) -> list[str]:
    wanted = parse_filter(text)
    matches = wanted.matcher()
    bound = wanted.expires_before  # applied by the database's query
    return [f.display_name for f in FILES if (matches is None or matches(f))
            and (bound is None or (f.current.expires_at is not None and f.current.expires_at < bound))]


@pytest.mark.parametrize(("text", "names"), [
    ('display_name = "ios-dev.p12"', ["ios-dev.p12"]),
    ('display_name = "ios-*"', ["ios-dist.p12", "ios-dev.p12"]),
    ("display_name=ios-*.p12", ["ios-dist.p12", "ios-dev.p12"]),
    ('display_name = "a\\*b"', ["a*b"]),  # an escaped star is still a glob star (names patterns have no escape)
    ('expire_time < "2027-01-01T00:00:00Z"', ["ios-dist.p12", "android.jks"]),
    ("expire_time <= 2026-12-31T23:59:59Z", ["ios-dist.p12", "android.jks"]),
    ("expire_time < 2026-12-31T23:59:59Z", ["ios-dist.p12"]),
    ('expire_time > "2026-12-31T23:59:59Z"', ["ios-dev.p12"]),
    ('expire_time >= "2026-12-31T23:59:59Z"', ["ios-dev.p12", "android.jks"]),
    ('expire_time > "2027-01-01T01:00:00+02:00"', ["ios-dev.p12", "android.jks"]),  # 23:00Z the day before
    ('expire_time > "2027-01-01T02:00:00+02:00"', ["ios-dev.p12"]),
    ('type = "pkcs12"', ["ios-dist.p12", "ios-dev.p12"]),
    ('type != "unknown"', ["ios-dist.p12", "ios-dev.p12", "android.jks"]),
    ('properties.team = "ios"', ["ios-dist.p12", "ios-dev.p12"]),
    ("properties.env = 'dev'", ["ios-dev.p12"]),
    ('properties.team = "ios" AND expire_time < "2027-01-01T00:00:00Z"', ["ios-dist.p12"]),
    ('display_name = "*" type = "android_keystore"', ["android.jks"]),  # whitespace is AND (AIP-160)
    ('properties.team = "i\\"os"', []),
    ("", ["ios-dist.p12", "ios-dev.p12", "android.jks", "notes.txt", "a*b"]),
])
def test_each_form_keeps_what_it_says(text: str, names: list[str]) -> None:
    assert kept(text) == names


@pytest.mark.parametrize("text", [
    'display_name = "a" OR type = "x"', 'NOT type = "x"', '-type = "x"', '(type = "x")', 'type = "x" AND',
    'owner = "bob"', 'display_name != "a"', 'display_name = "a" AND display_name = "b"', 'display_name = ""',
    'expire_time < "tomorrow"', 'expire_time < "2027-01-01"', 'expire_time < "2027-01-01T00:00:00"',
    'expire_time = "2027-01-01T00:00:00Z"', 'expire_time < "2027-13-01T00:00:00Z"', 'type < "x"',
    'properties.k:*', 'type = "unterminated', "type =", "type", '= "x"', 'type = = "x"', "type = \x00",
    'display_name = "' + "*a" * 9 + '"', " AND ".join(['type = "x"'] * 17), "x" * (MAX_FILTER_CHARS + 1),
    "(" * 1000 + 'type = "x"' + ")" * 1000, '"' * 2000,
])
def test_anything_else_is_invalid_filter(text: str) -> None:
    started = time.perf_counter()
    with pytest.raises(InvalidArgument) as raised:
        parse_filter(text)
    assert raised.value.reason in ("INVALID_FILTER", "INVALID_NAME_PATTERN"), raised.value
    assert time.perf_counter() - started < 0.1


def test_page_tokens_bind_to_the_filter_as_written() -> None:
    assert parse_filter('display_name = "ios-*"').query != parse_filter('display_name = "ios-?"').query
    assert parse_filter("").query != parse_filter('display_name = "*"').query


def test_the_database_narrows_by_the_literal_prefix_and_the_strictest_upper_bound() -> None:
    wanted = parse_filter('display_name = "ios-*" AND expire_time < "2028-01-01T00:00:00Z" '
                          'AND expire_time < "2027-01-01T00:00:00Z"')
    assert wanted.prefix == "ios-" and wanted.expires_before == dt.datetime(2027, 1, 1, tzinfo=dt.UTC)
