"""The one place for page sizes and tokens (common/paging.py) and the client's page following."""

from __future__ import annotations

import pytest

from securefiles.authz.v1 import authz_pb2
from securefiles.client.paging import all_pages
from securefiles.common.errors import InvalidArgument
from securefiles.common.paging import encode_page_token, keyset_page, page_limit, sort_key


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
