"""glob_match: `*` any run (also `/`), `?` one character, everything else itself; never a blow-up."""

from __future__ import annotations

import fnmatch

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from securefiles.common.glob import glob_match, has_wildcards, literal_prefix


@pytest.mark.parametrize(("pattern", "text", "matches"), [
    ("", "", True),
    ("", "a", False),
    ("*", "", True),
    ("*", "anything/at all", True),
    ("?", "", False),
    ("?", "a", True),
    ("?", "ab", False),
    ("ios-*", "ios-signing.p12", True),
    ("ios-*", "android-ios-signing.p12", False),
    ("*.p12", "signing.p12", True),
    ("*.p12", "signing.p12.bak", False),
    ("a*b*c", "abc", True),
    ("a*b*c", "aXbYc", True),
    ("a*b*c", "acb", False),
    ("a*a", "a", False),
    ("a*a", "aa", True),
    ("*ab*ab*", "xabyab", True),
    ("*ab*ab*", "xaby", False),
    ("a?c", "abc", True),
    ("a?c", "ac", False),
    ("*?b", "ab", True),
    ("*?b", "b", False),
    ("release/*", "release/2024/v1", True),  # `*` crosses `/` (bound claims: refs/heads/*)
    ("refs/heads/*", "refs/tags/v1", False),
    ("cert[1].pem", "cert[1].pem", True),  # no character classes: `[` is itself
    ("cert[1].pem", "cert1.pem", False),
    ("[ab]", "a", False),
    ("a\\*", "a\\xyz", True),  # no escape character either
    (".*", "x", False),  # regex characters are themselves
    (".*", ".x", True),
    ("a+b", "aab", False),
    ("ä*", "äbc", True),
    ("*\n", "line\n", True),
    ("x##vso[*", "x##vso[task.setvariable variable=INJ]pwn.bin", True),
])
def test_glob_match(pattern: str, text: str, matches: bool) -> None:
    assert glob_match(pattern, text) is matches


@settings(max_examples=500, deadline=None, derandomize=True)
@given(pattern=st.text(alphabet="ab?*[/", max_size=8), text=st.text(alphabet="ab[/", max_size=10))
def test_glob_match_agrees_with_fnmatch_without_classes(pattern: str, text: str) -> None:
    as_fnmatch = pattern.replace("[", "[[]")
    assert glob_match(pattern, text) is fnmatch.fnmatchcase(text, as_fnmatch)


def test_hostile_patterns_finish() -> None:
    """`*a*a*…*b` against `aaa…` makes a backtracking matcher try every way to split the text among the
    stars (255 ** 16 here: it would never finish); placing each piece once, this completes."""
    hostile = "*" + "a*" * 16 + "?" * 100 + "b"
    assert not any(glob_match(hostile, "a" * length) for length in range(200, 256))
    assert glob_match(hostile, "a" * 200 + "b")


@pytest.mark.parametrize(("pattern", "wild", "prefix"), [
    ("ios-*", True, "ios-"), ("a?b", True, "a"), ("plain.p12", False, "plain.p12"), ("x[1]", False, "x[1]"),
    ("*", True, ""),
])
def test_wildcards_and_literal_prefix(pattern: str, wild: bool, prefix: str) -> None:
    assert has_wildcards(pattern) is wild
    assert literal_prefix(pattern) == prefix
