"""The protos are the whole contract (issue #18, item 13): a client built from them alone, compiled
fresh by `grpc_tools.protoc` and run where the project cannot be imported, uploads a file as a
person and downloads it as a job whose CI provider's OIDC token it exchanged, over TLS, and
reads error reasons from the google.rpc.Status of failed calls."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc_tools
import pytest
from grpc_tools import protoc

from securefiles.client.config import load_config
from tests.conftest import LocalSystem
from tests.oidc_provider import OidcProvider

ROOT = Path(__file__).resolve().parents[2]
CLIENT = ROOT / "tests" / "foreign_client" / "client.py"


@pytest.fixture
def oidc(tmp_path: Path) -> Iterator[OidcProvider]:
    provider = OidcProvider(tmp_path / "oidc")
    with provider.running():
        yield provider


def _compile_protos(out: Path) -> None:
    """Every .proto under protos/securefiles, with protoc's well-known types and the googleapis
    annotation protos the contracts import (as a foreign build gets them: the vendored copies in
    third_party/googleapis; their generated modules come from googleapis-common-protos at run time)."""
    protos = sorted(str(p.relative_to(ROOT / "protos")) for p in (ROOT / "protos" / "securefiles").rglob("*.proto"))
    out.mkdir()
    well_known = Path(grpc_tools.__file__).parent / "_proto"
    code = protoc.main(["protoc", f"-I{ROOT / 'protos'}", f"-I{ROOT / 'third_party' / 'googleapis'}",
                        f"-I{well_known}", f"--python_out={out}",
                        f"--grpc_python_out={out}", *protos])
    assert code == 0, "protoc failed"


def _isolated_python(*args: str) -> subprocess.CompletedProcess[str]:
    """An interpreter that sees the installed libraries (grpcio, protobuf, googleapis-common-protos)
    but not the project: isolated (-I), without site processing (-S) so the editable install's
    .pth is never read, with only site-packages on its path."""
    site_packages = sysconfig.get_paths()["purelib"]
    bootstrap = f"import sys, runpy; sys.path.append({site_packages!r}); "
    env = {"PATH": os.environ.get("PATH", ""), "LANG": "C.UTF-8"}
    return subprocess.run([sys.executable, "-I", "-S", "-c", bootstrap + args[0], *args[1:]], env=env,
                          capture_output=True, text=True, timeout=120)


def test_the_isolated_interpreter_cannot_import_the_project() -> None:
    probe = _isolated_python("import grpc, google.rpc.status_pb2; import securefiles")
    assert probe.returncode != 0 and "No module named 'securefiles'" in probe.stderr, probe.stderr


def test_a_client_from_the_protos_alone_uploads_and_a_job_downloads(system: LocalSystem, oidc: OidcProvider,
                                                                    tmp_path: Path) -> None:
    stubs = tmp_path / "stubs"
    _compile_protos(stubs)
    content = os.urandom(2 * 1024 * 1024 + 12345)  # three chunks
    upload = tmp_path / "signing-key.p12"
    upload.write_bytes(content)
    project = f"foreign-{uuid.uuid4().hex[:8]}"
    oidc_token = tmp_path / "oidc-token"
    oidc_token.write_text(oidc.mint({"aud": "securefiles", "repository": "org/app", "ref": "refs/heads/main",
                                     "run_id": "4242", "actor": "alice", "sub": "repo:org/app:ref:refs/heads/main"}))
    config = load_config(system.env())
    downloaded = tmp_path / "downloaded"

    ran = _isolated_python(
        f"sys.argv[0] = {str(CLIENT)!r}; runpy.run_path({str(CLIENT)!r}, run_name='__main__')",
        "--stubs", str(stubs), "--storage", config.storage, "--authz", config.authz,
        "--ca-file", str(config.ca_file), "--admin-token", system.admin_token, "--project", project,
        "--upload", str(upload), "--download-to", str(downloaded), "--issuer", oidc.issuer,
        "--issuer-ca-file", str(oidc.ca_file), "--oidc-token-file", str(oidc_token))

    assert ran.returncode == 0, ran.stderr
    report = json.loads(ran.stdout)
    # The generated code it ran is the fresh one, not the project's.
    assert report["modules"] and all(m.startswith(str(stubs)) for m in report["modules"]), report["modules"]
    assert downloaded.read_bytes() == content
    assert report["downloaded"]["display_name"] == "signing-key.p12"
    assert report["run"]["branch"] == "refs/heads/main"
    assert report["run"]["name"].startswith(f"projects/{project}/pipelines/")
    errors = report["errors"]
    assert errors["checksum_mismatch"] == {"code": "INVALID_ARGUMENT", "status_code": "3",
                                           "reason": "CHECKSUM_MISMATCH", "domain": "storage.securefiles"}
    assert errors["chunk_too_large"]["code"] == "INVALID_ARGUMENT"
    assert errors["chunk_too_large"]["reason"] == "CHUNK_TOO_LARGE"
    assert errors["person_downloads"]["code"] == "PERMISSION_DENIED"
    assert errors["person_downloads"]["reason"] == "JOB_TOKEN_REQUIRED"
    assert errors["no_token"]["code"] == "UNAUTHENTICATED"
    assert errors["no_token"]["reason"] == "MISSING_CREDENTIALS"
    # The refused uploads stored nothing.
    assert report["files_after_errors"] == ["signing-key.p12"]
