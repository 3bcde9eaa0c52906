"""Glob patterns over names and claims: `*` matches any run of characters (`/` included), `?` exactly
one character, and every other character (`[`, `]` and `\\` included) only itself.

Matching never backtracks: the pattern is split at its stars, the first piece must start the text,
the last must end it, and each piece in between is taken at its leftmost place after the previous
one (which is always as good as any later place). That costs at most len(pattern) x len(text)
character steps, in C, where `fnmatch` (translated to a backtracking regular expression, and cached
per pattern without a size bound) took seconds and hundreds of megabytes for one hostile pattern.
"""

from __future__ import annotations

import re


def _piece(text: str) -> str:
    return "".join("." if ch == "?" else re.escape(ch) for ch in text)


def compile_glob(pattern: str) -> re.Pattern[str]:
    """The pattern as a regular expression without backtracking between stars (atomic groups)."""
    pieces = pattern.split("*")
    if len(pieces) == 1:
        return re.compile(_piece(pattern), re.DOTALL)
    middle = "".join(f"(?>.*?{_piece(piece)})" for piece in pieces[1:-1] if piece)
    return re.compile(f"{_piece(pieces[0])}{middle}.*{_piece(pieces[-1])}", re.DOTALL)


def glob_match(pattern: str, text: str) -> bool:
    """Whether `text` matches `pattern` as a whole (`*` any run, `?` one character)."""
    return compile_glob(pattern).fullmatch(text) is not None


def has_wildcards(pattern: str) -> bool:
    """Whether `pattern` is a glob rather than a plain name."""
    return "*" in pattern or "?" in pattern


def literal_prefix(pattern: str) -> str:
    """The part before the first wildcard: every match starts with it."""
    for index, ch in enumerate(pattern):
        if ch in "*?":
            return pattern[:index]
    return pattern
