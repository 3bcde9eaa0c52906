"""The v1 contract stays compatible: `buf breaking` (run by `make lint`) compares the protos with the
committed image of the released v1, offline, and refuses a change that breaks wire or JSON."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BUF = Path(sys.executable).with_name("buf")
BASELINE = ROOT / "protos-v1.binpb"

pytestmark = pytest.mark.skipif(not BUF.exists(), reason="buf (the buf-bin package) is not installed")


def breaking(workdir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BUF), "breaking", "protos", "--against", str(BASELINE)], cwd=workdir,
                          capture_output=True, text=True, timeout=120, check=False)


def test_the_protos_are_compatible_with_the_released_v1() -> None:
    result = breaking(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_renumbered_field_is_refused(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "protos", tmp_path / "protos")
    shutil.copytree(ROOT / "third_party", tmp_path / "third_party")
    shutil.copy(ROOT / "buf.yaml", tmp_path / "buf.yaml")
    proto = tmp_path / "protos" / "securefiles" / "storage" / "v1" / "storage.proto"
    head, found, tail = proto.read_text().partition("message GetSecureFileRequest {")
    assert found and "string name = 1 " in tail
    proto.write_text(head + found + tail.replace("string name = 1 ", "string name = 99 ", 1))
    result = breaking(tmp_path)
    assert result.returncode != 0
    assert "GetSecureFileRequest" in result.stdout + result.stderr
