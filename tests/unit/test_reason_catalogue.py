"""What a foreign client reads in the protos holds: the ErrorReason enum lists exactly the reasons
the code produces and its numbers never move; the upload protocol states the server's limits."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

from securefiles.errors.v1 import reasons_pb2
from securefiles.storage.domain.service import CHUNK_BYTES, DEFAULT_MAX_FILE_BYTES

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "reason_codes.py"
PROTO = REPO / "protos" / "securefiles" / "errors" / "v1" / "reasons.proto"


def _script() -> ModuleType:
    if str(SCRIPT.parent) not in sys.path:  # as when it runs: its own directory first (its sibling modules)
        sys.path.insert(0, str(SCRIPT.parent))
    spec = importlib.util.spec_from_file_location("reason_codes", SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _numbers(proto_text: str) -> dict[str, int]:
    return {name: int(n) for name, n in re.findall(r"^  ERROR_REASON_(\w+) = (\d+)", proto_text, re.M)}


def test_the_committed_enum_is_up_to_date() -> None:
    result = subprocess.run([sys.executable, str(SCRIPT), "--check-proto"], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr


def test_the_generated_enum_lists_exactly_the_reasons_the_code_produces() -> None:
    produced = set(_script().collect())
    assert {"FILE_NOT_FOUND", "CHUNK_TOO_LARGE", "STREAM_IDLE", "UNAVAILABLE"} <= produced  # the scan works
    listed = {value.name.removeprefix("ERROR_REASON_") for value in reasons_pb2.ErrorReason.DESCRIPTOR.values
              if value.number and not value.GetOptions().deprecated}
    assert listed == produced
    assert reasons_pb2.ErrorReason.Name(reasons_pb2.ERROR_REASON_FILE_NOT_FOUND) == "ERROR_REASON_FILE_NOT_FOUND"


def test_check_proto_fails_when_a_reason_is_missing(tmp_path: Path) -> None:
    stale = tmp_path / "reasons.proto"
    stale.write_text(re.sub(r"^  ERROR_REASON_STREAM_IDLE = \d+;\n", "", PROTO.read_text(), flags=re.M))
    result = subprocess.run([sys.executable, str(SCRIPT), "--check-proto", "--proto", str(stale)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "out of date" in result.stderr and "--write-proto" in result.stderr


def test_a_new_reason_takes_the_next_number_and_no_existing_number_moves() -> None:
    script = _script()
    found, said, existing = script.collect(), script.messages(), PROTO.read_text()
    before = _numbers(existing)
    # Sorted first alphabetically, so a writer that renumbered by name would move every value.
    found["AAA_NEW_REASON"] = {"NOT_FOUND": {"storage"}}

    after = _numbers(script.proto(found, said, existing))

    assert {name: after[name] for name in before} == before
    assert after["AAA_NEW_REASON"] == max(before.values()) + 1


def test_a_reason_no_longer_produced_keeps_its_number_marked_deprecated() -> None:
    script = _script()
    found, said, existing = script.collect(), script.messages(), PROTO.read_text()
    number = _numbers(existing)["STREAM_IDLE"]
    del found["STREAM_IDLE"]

    retired = script.proto(found, said, existing)

    assert f"  ERROR_REASON_STREAM_IDLE = {number} [deprecated = true];" in retired
    assert _numbers(retired) == _numbers(existing)
    # Produced again later: the same number, no longer deprecated.
    found["STREAM_IDLE"] = {"DEADLINE_EXCEEDED": {"storage"}}
    assert f"  ERROR_REASON_STREAM_IDLE = {number};" in script.proto(found, said, retired)


def _upload_protocol() -> str:
    """The comment above UploadSecureFileRequest in storage.proto: the protocol a foreign client follows."""
    proto = (REPO / "protos" / "securefiles" / "storage" / "v1" / "storage.proto").read_text()
    comment = re.search(r"((?:^//.*\n)+)message UploadSecureFileRequest \{", proto, re.M)
    assert comment
    return comment.group(1)


def test_the_upload_protocol_states_the_limits_the_server_enforces() -> None:
    documented = _upload_protocol()
    assert f"at most 1 MiB ({CHUNK_BYTES:,} bytes" in documented
    assert f"at most 10 MiB ({DEFAULT_MAX_FILE_BYTES:,} bytes)" in documented


def test_every_refusal_the_upload_protocol_names_is_in_the_catalogue() -> None:
    named = set(re.findall(r"`([A-Z][A-Z0-9_]+)`", _upload_protocol()))
    assert {"MISSING_METADATA", "CHUNK_TOO_LARGE", "FILE_TOO_LARGE", "INCOMPLETE_UPLOAD", "STREAM_IDLE"} <= named
    storage_reasons = {reason for reason, codes in _script().collect().items()
                       if "storage" in set().union(*codes.values())}
    assert named <= storage_reasons, named - storage_reasons
