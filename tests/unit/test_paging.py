"""The one place for page sizes and tokens (common/paging.py) and the client's page following."""

from __future__ import annotations

import pytest

from securefiles.authz.v1 import authz_pb2
from securefiles.client.paging import all_pages
from securefiles.common.errors import InvalidArgument
from securefiles.common.paging import (
    MAX_READS_PER_PAGE,
    encode_page_token,
    fill_page,
    int_key,
    keyset_page,
    next_page_token,
    page_limit,
    page_request,
    repository_page,
    sort_key,
)


def test_page_sizes_default_cap_and_refuse_negatives() -> None:
    assert (page_limit(0), page_limit(7), page_limit(5000)) == (100, 7, 1000)
    with pytest.raises(InvalidArgument) as raised:
        page_limit(-1)
    assert raised.value.reason == "INVALID_PAGE_SIZE"


def test_keyset_pages_resume_after_the_last_key_not_at_an_offset() -> None:
    items = [5, 1, 3, 2, 4]
    page, token = keyset_page(items, sort_key, "p", "q", 2, "")
    assert page == [1, 2]
    items.insert(0, 0)  # inserted before the cursor: the next page does not shift
    page, token = keyset_page(items, sort_key, "p", "q", 2, token)
    assert page == [3, 4]
    page, token = keyset_page(items, sort_key, "p", "q", 2, token)
    assert (page, token) == ([5], "")


def test_descending_pages() -> None:
    page, token = keyset_page(range(1, 12), sort_key, "p", "", 5, "", descending=True)
    assert page == [11, 10, 9, 8, 7]
    assert keyset_page(range(1, 12), sort_key, "p", "", 5, token, descending=True)[0] == [6, 5, 4, 3, 2]


@pytest.mark.parametrize("token", ["%%%", "e30", encode_page_token("other", "q", "1"), encode_page_token("p", "r", "1"),
                                   "A" * 5000])
def test_a_token_of_another_listing_or_none_at_all_is_refused(token: str) -> None:
    with pytest.raises(InvalidArgument) as raised:
        keyset_page([1, 2, 3], sort_key, "p", "q", 1, token)
    assert raised.value.reason == "INVALID_PAGE_TOKEN"


def test_the_client_follows_every_page_into_one_response() -> None:
    pages = {"": ("a", "t1"), "t1": ("b", "t2"), "t2": ("c", "")}
    asked: list[str] = []

    def call(request: authz_pb2.ListProjectsRequest) -> authz_pb2.ListProjectsResponse:
        asked.append(request.page_token)
        name, token = pages[request.page_token]
        return authz_pb2.ListProjectsResponse(projects=[authz_pb2.Project(name=name)], next_page_token=token)

    merged = all_pages(call, authz_pb2.ListProjectsRequest(), "projects")
    assert [p.name for p in merged.projects] == ["a", "b", "c"] and not merged.next_page_token
    assert asked == ["", "t1", "t2"]


def test_the_client_stops_on_a_server_that_repeats_its_token() -> None:
    def call(request: authz_pb2.ListProjectsRequest) -> authz_pb2.ListProjectsResponse:
        return authz_pb2.ListProjectsResponse(next_page_token="same")

    with pytest.raises(InvalidArgument):
        all_pages(call, authz_pb2.ListProjectsRequest(), "projects")


class _Rows:
    """A repository of rows 1..n in order that records the limit of every read."""

    def __init__(self, n: int) -> None:
        self.rows = list(range(1, n + 1))
        self.limits: list[int] = []

    def read(self, after: int | None, limit: int) -> list[int]:
        self.limits.append(limit)
        return [r for r in self.rows if after is None or r > after][:limit]


def _all_pages(rows: _Rows, page_size: int, keep=lambda r: r) -> list[list[int]]:
    pages: list[list[int]] = []
    token = ""
    while True:
        request = page_request("regions/eu", "", page_size, token, int_key)
        page, resume_after = fill_page(rows.read, lambda r: r, request.after, request.limit, keep)
        pages.append(page)
        token = next_page_token(request, resume_after)
        if not token:
            return pages


def test_a_repository_page_reads_one_row_more_than_the_page_never_the_whole_listing() -> None:
    rows = _Rows(250)
    pages = _all_pages(rows, 100)
    assert [len(p) for p in pages] == [100, 100, 50]
    assert [r for p in pages for r in p] == rows.rows
    assert rows.limits == [101, 101, 101]


def test_tokens_from_a_repository_page_are_the_keyset_tokens() -> None:
    request = page_request("regions/eu", "", 2, "", int_key)
    page, token = repository_page(_Rows(5).read, lambda r: r, request)
    assert (page, token) == ([1, 2], encode_page_token("regions/eu", "", sort_key(2)))


def test_a_filtered_page_reads_on_until_full_and_ends() -> None:
    rows = _Rows(250)
    pages = _all_pages(rows, 10, keep=lambda r: r if r % 7 == 0 else None)
    assert [r for p in pages for r in p] == [r for r in rows.rows if r % 7 == 0]
    assert all(len(p) == 10 for p in pages[:-1])
    assert max(rows.limits) == 11


def test_a_page_of_sparse_rows_stops_after_a_bounded_number_of_reads_and_continues() -> None:
    rows = _Rows(5000)
    request = page_request("regions/eu", "", 10, "", int_key)
    page, resume_after = fill_page(rows.read, lambda r: r, None, 10, lambda r: r if r == 4000 else None)
    assert page == [] and len(rows.limits) == MAX_READS_PER_PAGE  # short, but not the end
    assert resume_after == 11 * MAX_READS_PER_PAGE
    assert next_page_token(request, resume_after)
    assert [r for p in _all_pages(rows, 10, keep=lambda r: r if r == 4000 else None) for r in p] == [4000]


@pytest.mark.parametrize("after", ["abc", "-1", "1e3", "", "٣", "1" * 21])
def test_a_token_whose_key_is_not_a_number_is_refused(after: str) -> None:
    with pytest.raises(InvalidArgument) as refused:
        page_request("regions/eu", "", 10, encode_page_token("regions/eu", "", after), int_key)
    assert refused.value.reason == "INVALID_PAGE_TOKEN"


def test_a_token_of_another_parent_is_refused_before_any_read() -> None:
    token = next_page_token(page_request("regions/us", "", 10, "", int_key), 20)
    with pytest.raises(InvalidArgument) as refused:
        page_request("regions/eu", "", 10, token, int_key)
    assert refused.value.reason == "INVALID_PAGE_TOKEN"
