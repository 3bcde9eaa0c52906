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
from typing import TypeVar

from securefiles.common.errors import InvalidArgument

T = TypeVar("T")

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


def decode_page_token(token: str, parent: str, query: str) -> str:
    """The key to resume after; INVALID_PAGE_TOKEN unless the token came from this very listing."""
    invalid = InvalidArgument("page_token is not valid for this request", reason="INVALID_PAGE_TOKEN")
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
    """
    limit = page_limit(page_size)
    after = decode_page_token(page_token, parent, query) if page_token else None
    ordered = sorted(items, key=key, reverse=descending)
    rest = [item for item in ordered if after is None or (key(item) < after if descending else key(item) > after)]
    page = rest[:limit]
    more = len(rest) > limit
    return page, encode_page_token(parent, query, key(page[-1])) if more else ""
