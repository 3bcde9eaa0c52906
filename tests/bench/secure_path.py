"""The secure path: a real `securefiles up`, files and a running job to download them with."""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from securefiles.client import SecureFilesClient
from securefiles.common.tls import channel_options, client_channel_credentials
from securefiles.storage.v1 import storage_pb2, storage_pb2_grpc
from tests.bench.raw_baseline import upload_messages
from tests.conftest import LocalSystem, bearer, unique

BIG_BYTES = 10_000_000
SMALL_BYTES = 4096


# The periodic background rewrap (default every 300 s) would race the timed `keys rewrap`.
BENCH_ENV = {"SECUREFILES_REWRAP_INTERVAL_SECONDS": "0"}


@contextmanager
def running_system(database_url: str = "", blob_store: str = "directory", code: str = "") -> Iterator[LocalSystem]:
    """`securefiles up` in a temporary directory, stopped (and removed) on any exit.

    SQLite and the blob directory unless told otherwise (SECUREFILES_TEST_DATABASE_URL and
    SECUREFILES_TEST_BLOB_STORE, which LocalSystem follows, do not apply here); the
    databases of a PostgreSQL run are dropped at the end. `code`: a directory whose `securefiles`
    package the services run instead of this checkout's (A/B comparisons, see ab.py)."""
    env = {**BENCH_ENV, **({"PYTHONPATH": code} if code else {})}
    with tempfile.TemporaryDirectory(prefix="securefiles-bench-") as base:
        system = LocalSystem(state_dir=Path(base) / "state", home=Path(base) / "home", extra_env=env,
                             database_url=database_url, blob_store=blob_store,
                             database_prefix=f"sfbench_{uuid.uuid4().hex[:8]}_")
        try:
            system.start()
            yield system
        finally:
            system.stop()
            system.drop_databases()


def client_channel(system: LocalSystem, target: str) -> grpc.Channel:
    """A blocking channel as the agent opens it: server-authenticated TLS, no client certificate."""
    return grpc.secure_channel(target, client_channel_credentials(system.tls("storage").ca),
                               options=channel_options(target))


@dataclass
class SecureFixture:
    """Everything the secure scenarios need: files, an authorized pipeline, a job token."""

    system: LocalSystem
    admin: SecureFilesClient
    big_name: str
    big_content: bytes
    small_name: str
    job_token: str
    # Id-based names, looked up once (outside any measured call).
    resources: dict[str, str] = field(default_factory=dict)

    @classmethod
    def create(cls, system: LocalSystem) -> SecureFixture:
        admin = system.client()
        big_name, small_name, pipeline = unique("bench-10mb"), unique("bench-4kb"), unique("bench-pipeline")
        big_content = os.urandom(BIG_BYTES)
        admin.upload_file(big_content, name=big_name)
        admin.upload_file(os.urandom(SMALL_BYTES), name=small_name)
        admin.create_pipeline(pipeline)
        admin.set_pipeline_permission(big_name, pipeline, True)
        admin.set_pipeline_permission(small_name, pipeline, True)
        job_token = admin.start_run(pipeline, "refs/heads/main").job_token
        return cls(system, admin, big_name, big_content, small_name, job_token)

    def close(self) -> None:
        for name in (self.big_name, self.small_name):
            try:
                self.admin.delete_file(name)
            except Exception as error:  # best effort: the system is thrown away anyway
                print(f"bench: could not delete {name}: {error}")
        self.admin.close()

    def resource(self, name: str) -> str:
        if name not in self.resources:
            self.resources[name] = self.admin.file_resource(name)
        return self.resources[name]

    def job_client(self) -> SecureFilesClient:
        return self.system.client(token=self.job_token)


def download(stub: storage_pb2_grpc.SecureFileServiceStub, resource: str, job_token: str,
             timeout: float = 60.0, on_chunk: Callable[[bytes], object] | None = None) -> int:
    """Receive one full DownloadSecureFile stream; return the number of content bytes."""
    received = 0
    stream = stub.DownloadSecureFile(storage_pb2.DownloadSecureFileRequest(name=resource),
                                     metadata=bearer(job_token), timeout=timeout)
    for message in stream:
        chunk = message.chunk
        received += len(chunk)
        if on_chunk is not None:
            on_chunk(chunk)
    return received


def upload(stub: storage_pb2_grpc.SecureFileServiceStub, name: str, content: bytes, admin_token: str,
           timeout: float = 120.0) -> storage_pb2.SecureFile:
    """One UploadSecureFile stream with the same messages as the raw upload."""
    return stub.UploadSecureFile(upload_messages(name, content), metadata=bearer(admin_token), timeout=timeout)
