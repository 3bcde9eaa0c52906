"""Audit export to a SIEM: JSON lines to a file or stdout and syslog, resumable from a
sequence number (or a state file), so the tail is also kept outside the database."""

from __future__ import annotations

import itertools
import json
import socket
from pathlib import Path

from tests.conftest import LocalSystem, unique


def _upload(system: LocalSystem, count: int) -> list[str]:
    names = [unique("exported") + ' "quoted" ü{}' for _ in range(count)]
    with system.client() as admin:
        for name in names:
            admin.upload_file(b"x" * 10, name=name)
    return names


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_export_resumes_where_it_stopped_without_gaps_or_repeats(system: LocalSystem, tmp_path: Path) -> None:
    out, state = tmp_path / "audit.jsonl", tmp_path / "state.json"
    _upload(system, 1)
    first = system.cli("audit", "export", "--service", "storage", "--to", str(out), "--state", str(state))
    assert first.code == 0, first.stderr
    exported = _lines(out)
    sequences = [e["sequence"] for e in exported]
    assert sequences == list(range(1, len(sequences) + 1))  # the whole chain, in order
    assert json.loads(state.read_text()) == {"storage": sequences[-1]}

    names = _upload(system, 3)
    second = system.cli("audit", "export", "--service", "storage", "--to", str(out), "--state", str(state))
    assert second.code == 0, second.stderr
    everything = _lines(out)
    assert [e["sequence"] for e in everything] == list(range(1, len(everything) + 1))  # appended, nothing twice
    new = everything[len(exported):]
    assert {e["details"].get("display_name") for e in new if e["action"] == "UploadSecureFile"} == set(names)
    # Each line carries its chain hashes: the SIEM can check the links too.
    assert all(later["previousHash"] == earlier["hash"] for earlier, later in itertools.pairwise(everything))
    # A hostile name stays inside its JSON string: one entry, one line.
    assert len(out.read_text().splitlines()) == len(everything)


def test_export_from_a_sequence_to_stdout_and_syslog(system: LocalSystem, tmp_path: Path) -> None:
    _upload(system, 2)
    everything = system.cli("audit", "export", "--service", "storage", "--to", "-")
    assert everything.code == 0, everything.stderr
    head = json.loads(everything.stdout.splitlines()[-1])["sequence"]

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as receiver:
        receiver.bind(("127.0.0.1", 0))
        receiver.settimeout(10)
        port = receiver.getsockname()[1]
        tail = system.cli("audit", "export", "--service", "storage", "--after", str(head - 2), "--to", "-",
                          "--syslog", f"127.0.0.1:{port}")
        assert tail.code == 0, tail.stderr
        # (reading the log is audited too: the first export's own entry may follow `head`)
        sequences = [json.loads(line)["sequence"] for line in tail.stdout.splitlines()]
        assert sequences[:2] == [head - 1, head] and sequences == list(range(head - 1, head - 1 + len(sequences)))
        datagrams = [receiver.recv(65536).decode() for _ in sequences]
    for datagram, sequence in zip(datagrams, sequences, strict=True):
        assert datagram.startswith("<38>securefiles-audit: ")  # facility auth (4 * 8) + severity info (6)
        assert json.loads(datagram.split(": ", 1)[1].rstrip("\x00"))["sequence"] == sequence


def test_bad_export_arguments_are_one_line_errors(system: LocalSystem, tmp_path: Path) -> None:
    nowhere = system.cli("audit", "export", "--service", "storage")
    assert nowhere.code == 2 and len(nowhere.stderr.splitlines()) == 1 and "--to" in nowhere.stderr
    negative = system.cli("audit", "export", "--service", "storage", "--to", "-", "--after", "-1")
    assert negative.code == 2 and len(negative.stderr.splitlines()) == 1
    broken = tmp_path / "state.json"
    broken.write_text("not json")
    bad_state = system.cli("audit", "export", "--to", str(tmp_path / "o"), "--state", str(broken))
    assert bad_state.code == 2 and "INVALID_STATE_FILE" in bad_state.stderr
    assert not (tmp_path / "o").exists() or (tmp_path / "o").read_text() == ""
