"""Git ref names and ref patterns, refused where `git check-ref-format` refuses them.

A run's branch is compared with branch-control patterns; a name git would never create
(`refs/heads/release/../../evil`, `refs/heads/release/`) must not reach that comparison.
"""

from __future__ import annotations

from securefiles.common.errors import InvalidArgument

MAX_REF_CHARS = 256
# Refused anywhere in a ref (git check-ref-format rules 4, 5 and 10); `*` only in patterns.
_FORBIDDEN = frozenset(" ~^:?*[\\\x7f")


def ref_problem(ref: str, *, pattern: bool = False) -> str:
    """Why `ref` is not a valid ref name (or, with `pattern`, ref pattern); "" if it is."""
    if not ref:
        return "it is empty"
    if len(ref) > MAX_REF_CHARS:
        return f"it is longer than {MAX_REF_CHARS} characters"
    if ref == "@":
        return "it is '@'"
    for ch in ref:
        if ord(ch) < 0x20 or (ch in _FORBIDDEN and not (pattern and ch == "*")):
            return f"it contains {ch!r}" if ch.isprintable() else "it contains a control character"
    if "/" not in ref:
        return "it has no '/' (give the full name, e.g. refs/heads/main)"
    if ref.startswith("/") or ref.endswith("/") or "//" in ref:
        return "it starts or ends with '/' or has an empty component"
    if ".." in ref:
        return "it contains '..'"
    if "@{" in ref:
        return "it contains '@{'"
    if ref.endswith("."):
        return "it ends with '.'"
    for component in ref.split("/"):
        if component.startswith("."):
            return "a component starts with '.'"
        if component.endswith(".lock"):
            return "a component ends with '.lock'"
    return ""


def validate_ref(ref: str, what: str = "branch") -> str:
    """`ref`, or INVALID_ARGUMENT INVALID_BRANCH saying why git would refuse it."""
    problem = ref_problem(ref)
    if problem:
        raise InvalidArgument(f"{what} is not a valid git ref name: {problem}", reason="INVALID_BRANCH")
    return ref

