"""ListSecureFiles' AIP-160 `filter` against the running system: each form, pages followed with a
token bound to the filter, and bad filters refused with INVALID_FILTER."""

from __future__ import annotations

import datetime as dt

import grpc
import pytest

from securefiles.common.rich_status import error_info_of
from securefiles.storage.v1 import storage_pb2, storage_pb2_grpc
from tests.conftest import LocalSystem, bearer, unique
from tests.integration.test_beyond_references import certificate_pem

SOON = dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(days=10)
LATER = SOON + dt.timedelta(days=400)


@pytest.fixture(scope="module")
def library(system: LocalSystem) -> str:
    project = unique("filtered")
    with system.client() as admin:
        admin.create_project(project)
    with system.client(project=project) as admin:
        admin.upload_file(certificate_pem("soon", SOON), name="ios-soon.pem", properties={"team": "ios"})
        admin.upload_file(certificate_pem("later", LATER), name="ios-later.pem", properties={"team": "ios"})
        admin.upload_file(certificate_pem("android", SOON), name="android.pem", properties={"team": "android"})
        admin.upload_file(b"just notes", name="ios-notes.txt", properties={"team": "ios", "kind": "notes"})
    return project


def _page(system: LocalSystem, project: str, filter_text: str, page_size: int = 0, token: str = "",
          **fields: object) -> storage_pb2.ListSecureFilesResponse:
    with system.channel("storage") as channel:
        return storage_pb2_grpc.SecureFileServiceStub(channel).ListSecureFiles(storage_pb2.ListSecureFilesRequest(
            parent=f"projects/{project}", filter=filter_text, page_size=page_size, page_token=token, **fields),
            metadata=bearer(system.admin_token), timeout=30)


def _all(system: LocalSystem, project: str, filter_text: str) -> list[str]:
    names: list[str] = []
    token = ""
    while True:  # pages of one, so each filter is also followed across pages
        response = _page(system, project, filter_text, 1, token)
        names += [f.display_name for f in response.secure_files]
        token = response.next_page_token
        if not token:
            return names


def _stamp(when: dt.datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.mark.parametrize(("filter_text", "names"), [
    ('display_name = "ios-soon.pem"', ["ios-soon.pem"]),
    ('display_name = "ios-*"', ["ios-later.pem", "ios-notes.txt", "ios-soon.pem"]),
    (f'expire_time < "{_stamp(SOON + dt.timedelta(days=1))}"', ["android.pem", "ios-soon.pem"]),
    (f"expire_time <= {_stamp(SOON)}", ["android.pem", "ios-soon.pem"]),
    (f'expire_time > "{_stamp(SOON)}"', ["ios-later.pem"]),
    (f'expire_time >= "{_stamp(SOON)}"', ["android.pem", "ios-later.pem", "ios-soon.pem"]),
    ('type = "x509"', ["android.pem", "ios-later.pem", "ios-soon.pem"]),
    ('type = "unknown"', ["ios-notes.txt"]),
    ('properties.team = "ios"', ["ios-later.pem", "ios-notes.txt", "ios-soon.pem"]),
    ('properties.kind != "notes" AND properties.team = "ios"', ["ios-later.pem", "ios-soon.pem"]),
    (f'display_name = "ios-*" AND type = "x509" AND expire_time < "{_stamp(LATER)}"', ["ios-soon.pem"]),
])
def test_each_filter_form_over_pages(system: LocalSystem, library: str, filter_text: str, names: list[str]) -> None:
    assert _all(system, library, filter_text) == names


def _refused(call) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as raised:
        call()
    info = error_info_of(raised.value)
    return raised.value.code(), info.reason if info else ""


@pytest.mark.parametrize("filter_text", [
    'display_name = "a" OR type = "x509"', 'owner = "bob"', 'expire_time < "next week"', '(type = "x509")',
    'type = "unterminated', " AND ".join(['type = "x509"'] * 17), "(" * 100_000, 'type = "' + "x" * 5000 + '"',
])
def test_bad_filters_are_invalid_and_list_nothing(system: LocalSystem, library: str, filter_text: str) -> None:
    assert _refused(lambda: _page(system, library, filter_text)) == (grpc.StatusCode.INVALID_ARGUMENT,
                                                                      "INVALID_FILTER")


def test_a_token_continues_only_the_filter_it_came_from(system: LocalSystem, library: str) -> None:
    token = _page(system, library, 'properties.team = "ios"', 1).next_page_token
    assert token
    assert _refused(lambda: _page(system, library, 'properties.team = "android"', 1, token)) == (
        grpc.StatusCode.INVALID_ARGUMENT, "INVALID_PAGE_TOKEN")
    assert _refused(lambda: _page(system, library, 'display_name = "ios-*"', 1, token)) == (
        grpc.StatusCode.INVALID_ARGUMENT, "INVALID_PAGE_TOKEN")
