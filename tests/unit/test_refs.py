"""Ref names and ref patterns: what `git check-ref-format` refuses is refused (issue #15, item 3)."""

from __future__ import annotations

import pytest

from securefiles.authz.domain.check_kinds import BranchControl, CheckType, check_kind
from securefiles.authz.domain.refs import ref_problem, validate_ref
from securefiles.common.errors import InvalidArgument

VALID = [
    "refs/heads/main", "refs/heads/release/1.2", "refs/tags/v1.0.0", "refs/pull/42/merge", "refs/heads/feature/x",
    "refs/heads/a.b", "refs/heads/@", "refs/heads/ünïcödé", "heads/main",
]

INVALID = [
    ("refs/heads/release/../../evil", "'..'"),
    ("refs/heads/release/", "'/'"),
    ("/refs/heads/main", "'/'"),
    ("refs//heads/main", "'/'"),
    ("main", "no '/'"),
    ("", "empty"),
    ("@", "'@'"),
    ("refs/heads/.hidden", "starts with '.'"),
    ("refs/heads/main.lock", ".lock"),
    ("refs/heads/main.", "ends with '.'"),
    ("refs/heads/a@{1}", "'@{'"),
    ("refs/heads/a b", "' '"),
    ("refs/heads/a~1", "'~'"),
    ("refs/heads/a^", "'^'"),
    ("refs/heads/a:b", "':'"),
    ("refs/heads/a?", "'?'"),
    ("refs/heads/a*", "'*'"),
    ("refs/heads/a[b", "'['"),
    ("refs/heads/a\\b", "'\\\\'"),
    ("refs/heads/a\x00b", "control"),
    ("refs/heads/a\nb", "control"),
    ("refs/heads/a\x7fb", "control"),
    ("refs/heads/" + "x" * 250, "longer"),
]


@pytest.mark.parametrize("ref", VALID)
def test_valid_refs_are_accepted(ref: str) -> None:
    assert ref_problem(ref) == ""
    assert validate_ref(ref) == ref


@pytest.mark.parametrize(("ref", "why"), INVALID)
def test_invalid_refs_are_refused_saying_why(ref: str, why: str) -> None:
    assert why in ref_problem(ref)
    with pytest.raises(InvalidArgument) as refused:
        validate_ref(ref)
    assert refused.value.reason == "INVALID_BRANCH"


@pytest.mark.parametrize("pattern", ["refs/heads/release/*", "refs/heads/*", "refs/tags/v*"])
def test_patterns_may_hold_a_star(pattern: str) -> None:
    assert ref_problem(pattern, pattern=True) == ""
    assert check_kind(CheckType.BRANCH_CONTROL, {"allowed_refs": [pattern]}) == BranchControl((pattern,))


@pytest.mark.parametrize(("pattern", "_why"), [p for p in INVALID if p[0] != "refs/heads/a*"])
def test_check_settings_refuse_invalid_patterns(pattern: str, _why: str) -> None:
    with pytest.raises(InvalidArgument) as refused:
        check_kind(CheckType.BRANCH_CONTROL, {"allowed_refs": [pattern or "x", "refs/heads/main"]})
    assert refused.value.reason == "INVALID_CHECK"


@pytest.mark.parametrize("branch", ["refs/heads/release/../../evil", "refs/heads/release/"])
def test_an_invalid_branch_never_matches_a_pattern(branch: str) -> None:
    """Runs started before validation existed: their branch matches nothing."""
    check = BranchControl(("refs/heads/release/*",))
    assert not check.allows(branch)
    assert check.allows("refs/heads/release/1.0")
