"""ListSecureFiles' `filter`: the part of AIP-160 a file listing needs, parsed by hand.

    display_name = "ios-*.p12" AND expire_time < "2027-01-01T00:00:00Z" AND type = "pkcs12"
    AND properties.team = "ios"

Terms are joined by AND (or by whitespace, which AIP-160 reads as AND); OR, NOT, `-` and
parentheses are refused. `display_name` takes `=` with a plain name or a glob (`*` any run, `?`
one character, as name patterns; matched without backtracking by common/glob.py), at most once;
`expire_time` takes `<`, `<=`, `>`, `>=` and an RFC 3339 time with its offset (a file without a
known expiry never matches); `type` (the parsed metadata's type) and `properties.KEY` take `=` or
`!=` and a string. Values may be quoted ("…" or '…', with `\\` escaping the next character).

No maintained Python library parses AIP-160 (the Go and Java ones are Google-internal or generated
for Cloud APIs), and the subset is small. A filter is at most 2048 characters and 16 terms, and is
read left to right once, so hostile input costs nothing beyond its length.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from securefiles.common.errors import InvalidArgument
from securefiles.common.glob import compile_glob, has_wildcards, literal_prefix
from securefiles.storage.domain.model import SecureFile
from securefiles.storage.domain.names import validate_name_pattern

MAX_FILTER_CHARS = 2048
MAX_TERMS = 16
_OPERATORS = ("<=", ">=", "!=", "=", "<", ">", ":")
_WORD = re.compile(r"[^\s\"'()=<>!:]+")
_PROPERTY = re.compile(r"properties\.([A-Za-z0-9_.\-]{1,128})")
_RFC3339 = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?(Z|[+-]\d\d:\d\d)", re.IGNORECASE)


def invalid(why: str) -> InvalidArgument:
    return InvalidArgument(f"invalid filter: {why}", reason="INVALID_FILTER",
                           metadata={"max_chars": str(MAX_FILTER_CHARS), "max_terms": str(MAX_TERMS)})


@dataclass(frozen=True)
class FileFilter:
    """What a listing keeps: a name pattern (also narrowing the query by its literal prefix), an
    expiry bound the database applies, and further conditions checked on each file."""

    name_pattern: str = ""
    expires_before: dt.datetime | None = None
    conditions: tuple[Callable[[SecureFile], bool], ...] = field(default=(), compare=False)
    query: str = ""  # what a page token of this listing is bound to

    @property
    def prefix(self) -> str:
        return literal_prefix(self.name_pattern)

    def matcher(self) -> Callable[[SecureFile], bool] | None:
        """The test for one file, or None when the database's query already keeps only matches."""
        glob = compile_glob(self.name_pattern) if has_wildcards(self.name_pattern) else None
        exact = self.name_pattern if self.name_pattern and glob is None else None
        checks = list(self.conditions)
        if glob is not None:
            checks.insert(0, lambda f: glob.fullmatch(f.display_name) is not None)
        elif exact is not None:
            checks.insert(0, lambda f: f.display_name == exact)
        if not checks:
            return None
        return lambda f: all(check(f) for check in checks)


def parse_filter(text: str) -> FileFilter:
    """The filter `text` means; INVALID_FILTER (saying why) for anything outside the grammar."""
    if len(text) > MAX_FILTER_CHARS:
        raise invalid(f"it is longer than {MAX_FILTER_CHARS} characters")
    if any(unicodedata.category(ch) in ("Cc", "Cs") and ch not in "\t\n\r" for ch in text):
        raise invalid("it contains NUL or control characters")
    tokens = list(_tokens(text))
    name_pattern = ""
    expires_before: dt.datetime | None = None
    conditions: list[Callable[[SecureFile], bool]] = []
    terms = 0
    position = 0
    while position < len(tokens):
        if terms and tokens[position] == ("word", "AND"):
            position += 1
        if position + 3 > len(tokens):
            raise invalid("a term needs a field, an operator and a value")
        (kind, name), (op_kind, op), (value_kind, value) = tokens[position:position + 3]
        position += 3
        if kind != "word" or name in ("AND", "OR", "NOT"):
            raise invalid(f"expected a field, found {name!r}" if name not in ("OR", "NOT")
                          else "only AND joins terms (no OR, NOT)")
        if op_kind != "op":
            raise invalid(f"expected an operator after {name!r}")
        if value_kind == "op":
            raise invalid(f"expected a value after {name} {op}")
        terms += 1
        if terms > MAX_TERMS:
            raise invalid(f"it has more than {MAX_TERMS} terms")
        if name == "display_name":
            if op != "=":
                raise invalid("display_name takes = (a name or a glob)")
            if name_pattern:
                raise invalid("display_name may appear once")
            name_pattern = validate_name_pattern(value)
            if not name_pattern:
                raise invalid("display_name needs a name or a glob")
        elif name == "expire_time":
            bound = _timestamp(value)
            if op == "<" and (expires_before is None or bound < expires_before):
                expires_before = bound
            conditions.append(_expiry_condition(op, bound))
        elif name == "type":
            conditions.append(_equality(op, name, value, lambda f: str(f.current.metadata.get("type", ""))))
        elif (match := _PROPERTY.fullmatch(name)) is not None:
            conditions.append(_equality(op, name, value, _property(match.group(1))))
        else:
            raise invalid(f"unknown field {name!r}: display_name, expire_time, type or properties.KEY")
    if not terms and text.strip():
        raise invalid("it has no terms")
    return FileFilter(name_pattern, expires_before, tuple(conditions), query=f"filter:{text}")


def _tokens(text: str) -> Iterator[tuple[str, str]]:
    """("word"|"string"|"op", text) in order; quoted strings lose their quotes and escapes."""
    position = 0
    while position < len(text):
        ch = text[position]
        if ch.isspace():
            position += 1
        elif ch in "\"'":
            value, position = _quoted(text, position)
            yield "string", value
        elif ch in "()":
            raise invalid("parentheses are not supported (terms are joined by AND)")
        elif ch.isdigit() and (stamp := _RFC3339.match(text, position)) is not None:
            yield "string", stamp.group(0)  # a bare time: its colons are not operators
            position = stamp.end()
        elif (op := next((o for o in _OPERATORS if text.startswith(o, position)), None)) is not None:
            yield "op", op
            position += len(op)
        elif (word := _WORD.match(text, position)) is not None:
            if word.group(0).startswith("-"):
                raise invalid("negation (-) is not supported")
            yield "word", word.group(0)
            position = word.end()
        else:
            raise invalid(f"unexpected {ch!r} at {position}")


def _quoted(text: str, start: int) -> tuple[str, int]:
    quote, out, position = text[start], [], start + 1
    while position < len(text):
        ch = text[position]
        if ch == "\\" and position + 1 < len(text):
            out.append(text[position + 1])
            position += 2
        elif ch == quote:
            return "".join(out), position + 1
        else:
            out.append(ch)
            position += 1
    raise invalid(f"the string at {start} has no closing quote")


def _timestamp(value: str) -> dt.datetime:
    if not _RFC3339.fullmatch(value):
        raise invalid(f"expire_time needs an RFC 3339 time with an offset, e.g. 2027-01-01T00:00:00Z; got {value!r}")
    try:
        # Python reads at most microseconds: nanoseconds are cut, not refused.
        value = re.sub(r"(\.\d{6})\d+", r"\1", value.upper().replace("Z", "+00:00"))
        return dt.datetime.fromisoformat(value)
    except ValueError:
        raise invalid(f"{value!r} is not a valid time") from None


def _expiry_condition(op: str, bound: dt.datetime) -> Callable[[SecureFile], bool]:
    compare: dict[str, Callable[[dt.datetime], bool]] = {
        "<": lambda t: t < bound, "<=": lambda t: t <= bound, ">": lambda t: t > bound, ">=": lambda t: t >= bound}
    if op not in compare:
        raise invalid("expire_time takes <, <=, > or >=")
    test = compare[op]
    return lambda f: f.current.expires_at is not None and test(f.current.expires_at)


def _property(key: str) -> Callable[[SecureFile], str | None]:
    return lambda f: f.properties.get(key)


def _equality(op: str, name: str, value: str, read: Callable[[SecureFile], str | None]
              ) -> Callable[[SecureFile], bool]:
    if op == "=":
        return lambda f: read(f) == value
    if op == "!=":
        return lambda f: read(f) != value
    raise invalid(f"{name} takes = or !=")
