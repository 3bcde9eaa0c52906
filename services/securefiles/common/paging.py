"""Page sizes and page tokens for every List (AIP-158), in one place.

A token names the listing it continues (its parent and query) and the last key of the page it
ended: keyset pagination on the listing's order column, so rows inserted meanwhile neither repeat
nor shift a page. A token is refused (INVALID_PAGE_TOKEN) for any other listing, so it cannot be
turned into a look at another parent or filter; the key it carries only says where to resume in a
listing the caller may read from its start anyway.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from securefiles.common.errors import InvalidArgument

T = TypeVar("T")
R = TypeVar("R")
K = TypeVar("K", int, str)  # a listing's order column

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000
# A token longer than this was not made here (a name is at most a few hundred characters).
MAX_TOKEN_CHARS = 4096


def page_limit(page_size: int, default: int = DEFAULT_PAGE_SIZE, maximum: int = MAX_PAGE_SIZE) -> int:
    """How many items a page holds: `page_size`, or the default when 0, capped at the maximum."""
    if page_size < 0:
        raise InvalidArgument("page_size must not be negative", reason="INVALID_PAGE_SIZE")
    return min(page_size or default, maximum)


def encode_page_token(parent: str, query: str, after: str) -> str:
    """A token continuing the listing of `parent` for `query` after the key `after`."""
    raw = json.dumps({"p": parent, "q": query, "a": after}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _invalid_token() -> InvalidArgument:
    return InvalidArgument("page_token is not valid for this request", reason="INVALID_PAGE_TOKEN")


def decode_page_token(token: str, parent: str, query: str) -> str:
    """The key to resume after; INVALID_PAGE_TOKEN unless the token came from this very listing."""
    invalid = _invalid_token()
    if len(token) > MAX_TOKEN_CHARS:
        raise invalid
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise invalid from None
    if not isinstance(data, dict) or data.get("p") != parent or data.get("q") != query:
        raise invalid
    after = data.get("a")
    if not isinstance(after, str):
        raise invalid
    return after


def sort_key(value: int | str) -> str:
    """A string key that sorts like `value` (integers zero-padded), for tokens over mixed columns."""
    return f"{value:020d}" if isinstance(value, int) else value


def keyset_page(items: Sequence[T], key: Callable[[T], str], parent: str, query: str, page_size: int,
                page_token: str, descending: bool = False) -> tuple[list[T], str]:
    """One page of `items` in `key` order (or reversed) after the token's key, and the next page's token.

    For listings whose rows are few enough to read whole (a project's pipelines, a file's checks):
    the page still resumes after a key, never at an offset, so concurrent inserts do not shift it.
    Listings that grow forever (approvals, key versions) read a page from SQL: `repository_page`.
    """
    limit = page_limit(page_size)
    after = decode_page_token(page_token, parent, query) if page_token else None
    ordered = sorted(items, key=key, reverse=descending)
    rest = [item for item in ordered if after is None or (key(item) < after if descending else key(item) > after)]
    page = rest[:limit]
    more = len(rest) > limit
    return page, encode_page_token(parent, query, key(page[-1])) if more else ""


# Reads one listing may make to fill a page whose rows a filter drops: with pages of at most
# MAX_PAGE_SIZE + 1 rows, one call reads at most ~10,000 rows, however sparse the caller's rows are;
# a page cut short by this bound still carries a token, so the caller reads on from there.
MAX_READS_PER_PAGE = 10


@dataclass(frozen=True)
class PageRequest(Generic[K]):
    """Where a listing's page starts and how many items it holds (from a request's size and token)."""

    parent: str
    query: str
    limit: int
    after: K | None  # resume strictly after this key in the listing's order; None on the first page


def int_key(raw: str) -> int:
    """An integer key as `sort_key` wrote it into a token; ValueError for anything else."""
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 20):
        raise ValueError(raw)
    return int(raw)


def page_request(parent: str, query: str, page_size: int, page_token: str,
                 parse_key: Callable[[str], K]) -> PageRequest[K]:
    """The page a List request asks for; INVALID_PAGE_SIZE / INVALID_PAGE_TOKEN as for `keyset_page`."""
    limit = page_limit(page_size)
    if not page_token:
        return PageRequest(parent, query, limit, None)
    raw = decode_page_token(page_token, parent, query)
    try:
        return PageRequest(parent, query, limit, parse_key(raw))
    except ValueError:
        raise _invalid_token() from None


def fill_page(read: Callable[[K | None, int], Sequence[R]], key: Callable[[R], K], after: K | None, limit: int,
              keep: Callable[[R], T | None], max_reads: int = MAX_READS_PER_PAGE) -> tuple[list[T], K | None]:
    """Up to `limit` kept items after `after`, read from a repository in pages, and the key to resume after
    (None when the rows ended).

    `read(after, n)` returns at most n rows after the key in listing order; each read asks for one row
    more than a page, so a full page knows whether another follows. `keep` returns the item a row
    shows this caller, or None to drop it; reads go on until the page is full, the rows end, or
    `max_reads` reads were made (then the page is short but still has a next one).
    """
    page: list[T] = []
    for _ in range(max_reads):
        rows = read(after, limit + 1)
        for row in rows:
            kept = keep(row)
            if kept is None:
                after = key(row)
                continue
            if len(page) == limit:
                return page, after  # a kept row follows the full page
            page.append(kept)
            after = key(row)
        if len(rows) <= limit:
            return page, None
    return page, after


def next_page_token(request: PageRequest[K], resume_after: K | None,
                    encode_key: Callable[[K], str] = sort_key) -> str:
    """The token continuing `request`'s listing after `resume_after`, or "" when it ended."""
    if resume_after is None:
        return ""
    return encode_page_token(request.parent, request.query, encode_key(resume_after))


def repository_page(read: Callable[[K | None, int], Sequence[R]], key: Callable[[R], K],
                    request: PageRequest[K]) -> tuple[list[R], str]:
    """One page read from a repository (a page and one row more, never the whole listing), and its token."""
    page, resume_after = fill_page(read, key, request.after, request.limit, lambda row: row)
    return page, next_page_token(request, resume_after)
