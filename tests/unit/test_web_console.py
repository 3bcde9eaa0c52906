"""The console's own rules, without a browser: sessions, where a redirect may go, the name
filter, properties and expiry warnings."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from pathlib import Path

import pytest

from securefiles.client.config import ClientConfig
from securefiles.common.errors import InvalidArgument
from securefiles.common.glob import compile_glob
from securefiles.web.calls import Services
from securefiles.web.console import Console, local_path
from securefiles.web.formatting import expiry, facts, when
from securefiles.web.pages.files import name_glob, properties_from
from securefiles.web.sessions import Person, SessionStore
from securefiles.web.settings import WebSettings


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _person(expire_at: float) -> Person:
    return Person("user:alice", (), "token", expire_at)


def test_unfinished_sign_ins_never_evict_a_signed_in_person() -> None:
    store = SessionStore(max_sessions=3, clock=Clock())
    people = [store.sign_in(store.new(), _person(9999)) for _ in range(3)]
    for _ in range(50):  # a flood of sign-ins that never come back
        store.new()
    assert all(store.get(p.session_id) is people[i] for i, p in enumerate(people))


def test_signing_in_gives_a_new_session_id_and_csrf_token() -> None:
    store = SessionStore(max_sessions=10, clock=Clock())
    anonymous = store.new()
    signed_in = store.sign_in(anonymous, _person(9999))
    assert signed_in.session_id != anonymous.session_id and signed_in.csrf_token != anonymous.csrf_token
    assert store.get(anonymous.session_id) is None  # a fixed (planted) id is worth nothing


def test_a_session_ends_with_the_persons_token_and_on_sign_out() -> None:
    clock = Clock()
    store = SessionStore(max_sessions=10, clock=clock)
    session = store.sign_in(store.new(), _person(clock.now + 60))
    assert store.get(session.session_id) is session
    clock.now += 61
    assert store.get(session.session_id) is None
    other = store.sign_in(store.new(), _person(clock.now + 60))
    store.drop(other.session_id)
    assert store.get(other.session_id) is None


@pytest.mark.parametrize("target", ["//evil.example/x", "https://evil.example/", "/\\evil.example", "javascript:x",
                                    "", None, "files"])
def test_redirects_after_sign_in_stay_on_this_site(target: object) -> None:
    assert local_path(target) == "/"


def test_a_local_path_with_its_query_is_kept() -> None:
    assert local_path("/projects/p/files?name=a%2Fb") == "/projects/p/files?name=a%2Fb"


@pytest.mark.parametrize(("typed", "name", "matches"), [
    ("##vso[", "##vso[task.setvariable]x", True),
    ("vso[task", "a-vso[task-b", True),
    ("[a]", "a", False),
    ("[a]", "x[a]y", True),
    ("100%;]", "100%;]&amp;", True),
    ("ios-*", "ios-release.p12", True),
    ("ios-*", "android.jks", False),
    ("release", "ios-release.p12", True),
])
def test_the_name_filter_is_a_literal_substring_unless_it_is_a_glob(typed: str, name: str, matches: bool) -> None:
    """Matched as storage matches it (common/glob.py), where `[` is itself: fnmatch's `[[]` is not."""
    assert (compile_glob(name_glob(typed)).fullmatch(name) is not None) is matches


def test_properties_are_key_value_lines() -> None:
    assert properties_from("team=ios\n\n owner = a=b \n") == {"team": "ios", "owner": "a=b"}
    with pytest.raises(InvalidArgument) as refused:
        properties_from("no equals sign")
    assert refused.value.reason == "INVALID_PROPERTY"


def test_expiry_warns_within_30_days_and_when_expired_in_words() -> None:
    now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    assert expiry(now + dt.timedelta(days=90), now)["kind"] == "ok"
    soon = expiry(now + dt.timedelta(days=12, hours=1), now)
    assert soon == {"kind": "soon", "label": "expires 2026-01-13 (in 12 days)"}
    assert expiry(now - dt.timedelta(days=1), now) == {"kind": "expired", "label": "expired 2025-12-31"}
    assert expiry(None, now) == {"kind": "none", "label": "—"}


def test_times_are_shown_in_utc_whatever_zone_they_come_in() -> None:
    berlin = dt.timezone(dt.timedelta(hours=2))
    assert when(dt.datetime(2026, 5, 1, 16, 3, tzinfo=berlin)) == "2026-05-01 14:03 UTC"
    assert when(None) == ""
    # 23:30 UTC on the 12th is already the 13th in Berlin: the label is UTC's date
    assert expiry(dt.datetime(2026, 1, 13, 1, 30, tzinfo=berlin), dt.datetime(2026, 1, 1, tzinfo=dt.UTC))["label"] \
        == "expires 2026-01-12 (in 11 days)"


def test_a_files_metadata_becomes_labelled_rows() -> None:
    metadata = {"type": "pkcs12", "entry_count": 2, "certificates": [{"subject": "CN=a", "not_after": "2027"}],
                "aliases": ["one", "two"]}
    assert facts(metadata) == [("type", "pkcs12"), ("entry count", "2"), ("certificates 1 / subject", "CN=a"),
                               ("certificates 1 / not after", "2027"), ("aliases", "one, two")]


def _console(refresh: object) -> Console:
    settings = WebSettings(listen="", tls_cert=Path(), tls_key=Path(), services=ClientConfig(), public_url="https://x",
                           provider_ca_file=None, max_file_bytes=1, max_sessions=10, port_file=None, parent_pid=None,
                           log_level="INFO")
    return Console(settings, Services(settings.services), refresh=refresh)  # type: ignore[arg-type]


def test_a_persons_token_is_refreshed_at_the_provider_only_when_about_to_expire() -> None:
    refreshed: list[Person] = []

    def refresh(person: Person) -> Person:
        refreshed.append(person)
        return Person(person.principal, person.groups, "new-token", time.time() + 3600, "r2")

    console = _console(refresh)
    fresh = console.sessions.sign_in(console.sessions.new(), Person("user:a", (), "t1", time.time() + 3600, "r1"))
    assert asyncio.run(console.person_of(fresh)).token == "t1" and refreshed == []
    due = console.sessions.sign_in(console.sessions.new(), Person("user:a", (), "t2", time.time() + 60, "r1"))
    assert asyncio.run(console.person_of(due)).token == "new-token"
    assert console.sessions.get(due.session_id).expire_at > time.time() + 3000  # the session lives on


def test_a_failed_refresh_keeps_the_session_until_its_token_expires() -> None:
    console = _console(lambda person: None)
    due = console.sessions.sign_in(console.sessions.new(), Person("user:a", (), "t", time.time() + 60, "r"))
    assert asyncio.run(console.person_of(due)).token == "t"


def test_the_console_has_no_way_to_ask_for_a_files_contents() -> None:
    """People never download contents; the console does not even hold the call."""
    import securefiles.web

    package = Path(securefiles.web.__file__).parent
    sources = "\n".join(p.read_text() for p in package.rglob("*") if p.suffix in (".py", ".html", ".js"))
    assert "files.upload" in sources and "checks.decide" in sources  # the pages were read
    for call in ("download_secure_file", "DownloadSecureFile", "download_with_retries", "_storage"):
        assert call not in sources
