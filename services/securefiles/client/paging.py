"""Following a List's pages (AIP-158): the client asks again with each `next_page_token` until
there is none, so callers see every item whatever the server's page size."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from securefiles.common.errors import InvalidArgument

R = TypeVar("R")


def pages(call: Callable[[Any], R], request: Any) -> Iterator[R]:
    """Each response of the listing `request` starts, first page to last (`call` sends one request)."""
    token = request.page_token
    while True:
        request.page_token = token
        response = call(request)
        yield response
        previous, token = token, response.next_page_token  # type: ignore[attr-defined]
        if not token:
            return
        if token == previous:  # a server that hands back the same token would keep us here forever
            raise InvalidArgument("the server repeated a page token", reason="INVALID_PAGE_TOKEN")


def all_pages(call: Callable[[Any], R], request: Any, field: str) -> R:
    """The first response with the repeated `field` of every page appended to it."""
    responses = pages(call, request)
    merged = next(responses)
    for response in responses:
        getattr(merged, field).extend(getattr(response, field))
    merged.next_page_token = ""  # type: ignore[attr-defined]
    return merged
