"""`securefiles files list --filter` and `files update --etag` against a running system: the
filter keeps what it says (with the other options added as terms), a bad one is one line and
INVALID_FILTER; a stale etag is one line, ETAG_MISMATCH, and changes nothing."""

from __future__ import annotations

import datetime as dt

import pytest

from tests.conftest import LocalSystem, unique
from tests.integration.test_beyond_references import certificate_pem

SOON = dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(days=10)
LATER = SOON + dt.timedelta(days=400)


@pytest.fixture(scope="module")
def project(system: LocalSystem) -> str:
    project = unique("cli-filter")
    with system.client() as admin:
        admin.create_project(project)
    with system.client(project=project) as admin:
        admin.upload_file(certificate_pem("soon", SOON), name="ios-soon.pem", properties={"team": "ios"})
        admin.upload_file(certificate_pem("later", LATER), name="ios-later.pem", properties={"team": "ios"})
        admin.upload_file(certificate_pem("android", SOON), name="android.pem", properties={"team": "android"})
        admin.upload_file(b"just notes", name='ios "notes" AND x.txt', properties={"team": "ios"})
    return project


def _listed(system: LocalSystem, project: str, *options: str) -> list[str]:
    listed = system.cli("files", "list", "--project", project, "--output", "json", *options)
    assert listed.code == 0, listed.stderr
    return [f["displayName"] for f in listed.json()]


def test_files_list_keeps_what_the_filter_says(system: LocalSystem, project: str) -> None:
    assert _listed(system, project, "--filter", 'properties.team = "ios" AND type = "x509"') == [
        "ios-later.pem", "ios-soon.pem"]
    assert _listed(system, project, "--filter", 'properties.team != "android"') == [
        "ios \"notes\" AND x.txt", "ios-later.pem", "ios-soon.pem"]
    table = system.cli("files", "list", "--project", project, "--filter", 'display_name = "android.*"')
    assert table.code == 0 and "android.pem" in table.stdout and "ios-" not in table.stdout


def test_the_other_options_are_added_to_the_filter_as_terms(system: LocalSystem, project: str) -> None:
    assert _listed(system, project, "--filter", 'type = "x509"', "--expiring-within", "30d") == [
        "android.pem", "ios-soon.pem"]
    assert _listed(system, project, "--filter", 'type = "x509"', "--name-pattern", "ios-*",
                   "--expiring-within", "30d") == ["ios-soon.pem"]
    # A name with quotes and AND in it stays one value (backslashes: tests/unit/test_list_filter.py).
    assert _listed(system, project, "--filter", 'properties.team = "ios"', "--name-pattern",
                   'ios "notes" AND x.txt') == ['ios "notes" AND x.txt']


@pytest.mark.parametrize("bad", ['display_name = "a" OR type = "x509"', "color = \"red\"", "type =",
                                 'expire_time < "tomorrow"'])
def test_a_bad_filter_is_one_line_and_invalid_filter(system: LocalSystem, project: str, bad: str) -> None:
    refused = system.cli("files", "list", "--project", project, "--filter", bad)
    assert refused.code == 2 and refused.stdout == ""
    assert refused.stderr.count("\n") == 1 and refused.stderr.rstrip().endswith("[INVALID_FILTER]"), refused.stderr


def test_files_update_with_the_current_etag_changes_and_a_stale_one_changes_nothing(system: LocalSystem) -> None:
    name = unique("etag") + ".bin"
    with system.client() as admin:
        admin.upload_file(b"content", name=name, properties={"team": "ios"})
    shown = system.cli("files", "show", name, "--output", "json")
    assert shown.code == 0, shown.stderr
    first = shown.json()["etag"]
    assert first

    updated = system.cli("files", "update", name, "--property", "team=android", "--etag", first, "--output", "json")
    assert updated.code == 0, updated.stderr
    assert updated.json()["properties"] == {"team": "android"} and updated.json()["etag"] != first

    stale = system.cli("files", "update", name, "--rename", name + ".old", "--etag", first)
    assert stale.code == 1 and stale.stdout == ""
    assert stale.stderr.count("\n") == 1 and stale.stderr.rstrip().endswith("[ETAG_MISMATCH]"), stale.stderr
    after = system.cli("files", "show", name, "--output", "json").json()
    assert (after["displayName"], after["properties"], after["etag"]) == (name, {"team": "android"},
                                                                         updated.json()["etag"])
    human = system.cli("files", "show", name)
    assert f"etag:         {after['etag']}" in human.stdout.splitlines()


def test_files_update_without_an_etag_is_unconditional(system: LocalSystem) -> None:
    name = unique("no-etag") + ".bin"
    with system.client() as admin:
        admin.upload_file(b"content", name=name)
        admin.update_file(name, properties={"changed": "meanwhile"})
    updated = system.cli("files", "update", name, "--property", "team=ios", "--output", "json")
    assert updated.code == 0, updated.stderr
    assert updated.json()["properties"] == {"team": "ios"}
