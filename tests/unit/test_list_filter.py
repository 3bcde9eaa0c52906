"""The client's one filter from a filter, a name pattern and an expiry bound
(`client/list_filter.py`), read back by storage's own parser: every name stays one value."""

from __future__ import annotations

import datetime as dt
import unicodedata

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from securefiles.client.list_filter import combined_filter, quoted, rfc3339
from securefiles.storage.domain.file_filter import parse_filter

BERLIN = dt.timezone(dt.timedelta(hours=2))


def test_the_parts_are_joined_by_and_leaving_out_what_is_not_given() -> None:
    at = dt.datetime(2027, 1, 1, 2, 0, tzinfo=BERLIN)
    assert combined_filter('type = "x509"', "ios-*", at) == \
        'type = "x509" AND display_name = "ios-*" AND expire_time < "2027-01-01T00:00:00Z"'
    assert combined_filter("  ", "", None) == ""
    assert combined_filter("", "a", None) == 'display_name = "a"'


def test_a_naive_time_is_taken_as_utc() -> None:
    assert rfc3339(dt.datetime(2027, 1, 1, 12, 30, 5, 250000)) == "2027-01-01T12:30:05.250000Z"


@pytest.mark.parametrize("name", ['a"b', "back\\slash", 'ends with \\', "x AND type = \"y\"", "it's", "* ?"])
def test_a_hostile_name_stays_one_value_for_the_server(name: str) -> None:
    parsed = parse_filter(combined_filter('type = "x509"', name))
    assert parsed.name_pattern == name


@given(st.text(alphabet=st.characters(blacklist_categories=("Cc", "Cs")), min_size=1, max_size=40))
def test_any_name_quoted_reads_back_as_itself(text: str) -> None:
    assume(text.strip() and text.count("*") <= 8)  # what a pattern may be at all
    # Storage compares names in NFC (composed and decomposed spellings are one name).
    expected = unicodedata.normalize("NFC", text)
    assert parse_filter(f"display_name = {quoted(text)} AND type = \"x509\"").name_pattern == expected
