"""A client that knows Securefiles only from its protos (issue #18, item 13).

It imports nothing of the project: the stubs come from `protos/` compiled fresh into the
directory given as `--stubs`, errors are read with googleapis-common-protos alone. Run by
tests/integration/test_foreign_client.py in an interpreter that cannot import the project.

It follows what the protos say: calls carry `authorization: Bearer <token>`; an upload is
metadata, then chunks of at most 1 MiB, then the commit with size and SHA-256; a job
exchanges its CI provider's OIDC token for a job token and downloads (header, then chunks).
Prints one JSON object: what it made, the downloaded file's SHA-256, the errors it read.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path

CHUNK = 1024 * 1024  # the largest chunk the upload protocol takes


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--stubs", required=True, help="directory with the freshly generated code")
    parser.add_argument("--storage", required=True)
    parser.add_argument("--authz", required=True)
    parser.add_argument("--ca-file", required=True, help="the services' CA")
    parser.add_argument("--admin-token", required=True, help="a person's token (an administrator)")
    parser.add_argument("--project", required=True)
    parser.add_argument("--upload", required=True, help="the file to upload")
    parser.add_argument("--download-to", required=True)
    parser.add_argument("--issuer", required=True, help="the CI provider's OIDC issuer")
    parser.add_argument("--issuer-ca-file", required=True, help="the CA of the issuer's HTTPS")
    parser.add_argument("--oidc-token-file", required=True, help="the job's OIDC token")
    args = parser.parse_args()
    sys.path.insert(0, args.stubs)

    import grpc
    from google.protobuf import duration_pb2

    from securefiles.authz.v1 import authz_pb2, authz_pb2_grpc
    from securefiles.storage.v1 import storage_pb2, storage_pb2_grpc

    credentials = grpc.ssl_channel_credentials(Path(args.ca_file).read_bytes())
    # The development certificates name `localhost` (and 127.0.0.1).
    options = [("grpc.ssl_target_name_override", "localhost")]
    admin = (("authorization", f"Bearer {args.admin_token}"),)
    report: dict[str, object] = {}
    with grpc.secure_channel(args.authz, credentials, options) as authz_channel, \
            grpc.secure_channel(args.storage, credentials, options) as storage_channel:
        authz = authz_pb2_grpc.AuthorizationServiceStub(authz_channel)
        storage = storage_pb2_grpc.SecureFileServiceStub(storage_channel)
        parent = authz.CreateProject(authz_pb2.CreateProjectRequest(
            project_id=args.project, project=authz_pb2.Project()), metadata=admin).name
        pipeline = authz.CreatePipeline(authz_pb2.CreatePipelineRequest(
            parent=parent, pipeline=authz_pb2.Pipeline(display_name="release")), metadata=admin)

        content = Path(args.upload).read_bytes()
        display_name = Path(args.upload).name
        uploaded = storage.UploadSecureFile(_upload(storage_pb2, parent, display_name, content), metadata=admin)
        report["uploaded"] = {"name": uploaded.name, "size_bytes": uploaded.size_bytes, "sha256": uploaded.sha256}

        authz.SetPipelinePermission(authz_pb2.SetPipelinePermissionRequest(
            name=f"{uploaded.name}/pipelinePermissions", pipeline=pipeline.name, authorized=True), metadata=admin)
        trust = authz.CreateTrust(authz_pb2.CreateTrustRequest(parent=parent, trust=authz_pb2.Trust(
            display_name="ci", pipeline=pipeline.name, issuer=args.issuer, audience="securefiles",
            bound_claims={"repository": "org/app"}, branch_claim="ref", run_claims=["run_id"],
            requester_claim="actor", max_ttl=duration_pb2.Duration(seconds=600),
            ca_certificates=Path(args.issuer_ca_file).read_text())), metadata=admin)
        report["trust"] = trust.name

        # The job: its CI provider's OIDC token is its only credential (ExchangeToken takes no bearer).
        exchanged = authz.ExchangeToken(authz_pb2.ExchangeTokenRequest(
            subject_token=Path(args.oidc_token_file).read_text().strip(),
            subject_token_type="urn:ietf:params:oauth:token-type:jwt", project=parent))
        job = (("authorization", f"Bearer {exchanged.access_token}"),)
        report["run"] = {"name": exchanged.run.name, "branch": exchanged.run.branch}
        # As an agent does: by display name, looked up in the download call itself.
        lookup = storage_pb2.DownloadSecureFileRequest(parent=parent, display_name=display_name)
        report["downloaded"] = _download(storage, lookup, job, Path(args.download_to))

        # Errors, as a foreign client reads them: the reason from the trailing google.rpc.Status.
        report["errors"] = {
            "checksum_mismatch": _error(lambda: storage.UploadSecureFile(
                _upload(storage_pb2, parent, "bad-checksum.bin", b"x", sha256="0" * 64), metadata=admin)),
            "chunk_too_large": _error(lambda: storage.UploadSecureFile(
                _upload(storage_pb2, parent, "big-chunk.bin", b"y" * (CHUNK + 1), chunk=CHUNK + 1),
                metadata=admin)),
            "person_downloads": _error(lambda: list(storage.DownloadSecureFile(
                storage_pb2.DownloadSecureFileRequest(name=uploaded.name), metadata=admin))),
            "no_token": _error(lambda: storage.GetSecureFile(
                storage_pb2.GetSecureFileRequest(name=uploaded.name))),
        }
        report["files_after_errors"] = sorted(f.display_name for f in storage.ListSecureFiles(
            storage_pb2.ListSecureFilesRequest(parent=parent), metadata=admin).secure_files)
    report["modules"] = sorted({m.__file__ or "" for name, m in sys.modules.items()
                                if name.split(".")[0] == "securefiles" and getattr(m, "__file__", None)})
    print(json.dumps(report))
    return 0


def _upload(storage_pb2, parent: str, display_name: str, content: bytes, *, sha256: str = "",
            chunk: int = CHUNK) -> Iterator[object]:
    """The upload protocol: metadata, chunks (at most 1 MiB), the commit with size and SHA-256."""
    yield storage_pb2.UploadSecureFileRequest(metadata=storage_pb2.UploadMetadata(
        parent=parent, secure_file=storage_pb2.SecureFile(display_name=display_name), expected_size_bytes=len(content)))
    for offset in range(0, len(content), chunk):
        yield storage_pb2.UploadSecureFileRequest(chunk=content[offset : offset + chunk])
    yield storage_pb2.UploadSecureFileRequest(commit=storage_pb2.UploadCommit(
        size_bytes=len(content), sha256=sha256 or hashlib.sha256(content).hexdigest()))


def _download(storage, request: object, job: tuple[tuple[str, str], ...], destination: Path) -> dict[str, object]:
    """The header first (size, SHA-256), then chunks; the bytes are checked before they are kept."""
    responses = storage.DownloadSecureFile(request, metadata=job)
    header = next(responses)
    if header.WhichOneof("payload") != "header":
        raise SystemExit("the first message of a download is not its header")
    content = b"".join(response.chunk for response in responses)
    digest = hashlib.sha256(content).hexdigest()
    if len(content) != header.header.size_bytes or digest != header.header.sha256:
        raise SystemExit("downloaded bytes do not match the header")
    destination.write_bytes(content)
    return {"display_name": header.header.secure_file.display_name, "size_bytes": header.header.size_bytes,
            "sha256": digest}


def _error(call) -> dict[str, str]:
    """Make a call expected to fail: its status code and the ErrorInfo of its google.rpc.Status
    (trailing metadata `grpc-status-details-bin`)."""
    import grpc
    from google.rpc import error_details_pb2, status_pb2

    try:
        call()
    except grpc.RpcError as error:
        status = status_pb2.Status()
        for key, value in error.trailing_metadata() or ():
            if key == "grpc-status-details-bin":
                status.ParseFromString(value)
        info = error_details_pb2.ErrorInfo()
        found = [detail for detail in status.details if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR)]
        if found:
            found[0].Unpack(info)
        return {"code": error.code().name, "status_code": str(status.code), "reason": info.reason,
                "domain": info.domain}
    raise SystemExit("the call was expected to fail")


if __name__ == "__main__":
    sys.exit(main())
