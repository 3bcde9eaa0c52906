"""Glob matching without backtracking blow-ups: `*` matches any run of characters (`/`
included), `?` exactly one; everything else matches itself."""

from __future__ import annotations


def glob_match(pattern: str, text: str) -> bool:
    """Whether `text` matches `pattern`, in O(len(pattern) * len(text)) at worst."""
    p = t = 0
    star = -1  # position in pattern just after the last `*` seen
    resume = 0  # position in text that `*` was last tried up to
    while t < len(text):
        if p < len(pattern) and pattern[p] == "*":
            star, resume = p + 1, t
            p += 1
        elif p < len(pattern) and (pattern[p] == "?" or pattern[p] == text[t]):
            p += 1
            t += 1
        elif star >= 0:
            resume += 1  # let the last `*` swallow one more character and retry from there
            p, t = star, resume
        else:
            return False
    while p < len(pattern) and pattern[p] == "*":
        p += 1
    return p == len(pattern)
