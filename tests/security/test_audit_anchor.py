"""The audit chain is anchored outside its database (issue #15, item 8): cutting the newest
entries and resetting the head row is reported by `securefiles audit verify`."""

from __future__ import annotations

import time

from tests.conftest import LocalSystem, unique

SYSTEM_ENV = {"SECUREFILES_AUDIT_WITNESS_SECONDS": "1"}


def _head(system: LocalSystem, service: str) -> tuple[int, str]:
    return system.query(service, "SELECT sequence, hash FROM audit_head WHERE id = 1")[0]


def _witnessed(system: LocalSystem, by: str, service: str) -> tuple[int, str] | None:
    rows = system.query(by, "SELECT sequence, hash FROM audit_witnesses WHERE service = :s "
                            "ORDER BY sequence DESC LIMIT 1", s=service)
    return rows[0] if rows else None


def _wait_witnessed(system: LocalSystem, by: str, service: str) -> tuple[int, str]:
    deadline = time.monotonic() + 30
    while True:
        head = _head(system, service)
        if _witnessed(system, by, service) == head:
            return head
        assert time.monotonic() < deadline, f"{by} never witnessed {service}'s head {head}"
        time.sleep(0.2)


def test_chains_are_witnessed_elsewhere_and_a_cut_tail_is_reported(own_system: LocalSystem) -> None:
    with own_system.client() as admin:
        admin.upload_file(b"witnessed", name=unique())
    _wait_witnessed(own_system, "authz", "storage")
    _wait_witnessed(own_system, "kms-eu", "storage")
    _wait_witnessed(own_system, "storage", "authz")
    _wait_witnessed(own_system, "storage", "kms-eu")
    verified = own_system.cli("audit", "verify", "--output", "json")
    assert verified.code == 0, verified.stdout + verified.stderr
    assert all(v["unaccountedEntries"] == 0 for v in verified.json().values())

    # (one test: once cut, a chain stays behind the head witnessed elsewhere, as it should)
    with own_system.client() as admin:
        for _ in range(6):
            admin.upload_file(b"to be cut", name=unique())
    sequence, _ = _wait_witnessed(own_system, "authz", "storage")
    _wait_witnessed(own_system, "kms-eu", "storage")
    # Someone who can write storage's database cuts the last five entries and resets the head row.
    kept, kept_hash = own_system.query("storage", "SELECT sequence, hash FROM audit_events WHERE sequence = :s",
                                       s=sequence - 5)[0]
    own_system.execute("storage", "DELETE FROM audit_events WHERE sequence > :s", s=kept)
    own_system.execute("storage", "UPDATE audit_head SET sequence = :s, hash = :h WHERE id = 1", s=kept, h=kept_hash)
    verified = own_system.cli("audit", "verify", "--output", "json")
    assert verified.code == 1, verified.stdout + verified.stderr
    report = verified.json()
    assert report["storage"]["intact"] is False
    assert report["storage"]["unaccountedEntries"] == 5, report["storage"]
    assert "unaccounted" in report["storage"]["problem"]
    assert report["authz"]["intact"] and report["kms-eu"]["intact"], report
