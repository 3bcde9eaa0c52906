"""The raw gRPC baseline: a do-nothing storage over the same mutual TLS and messages.

Run as its own process (`python -m tests.bench.raw_baseline --ca … --cert … --key …`),
like the storage service, so that it never shares a GIL with the benchmark's client:

* `Download` streams the first N bytes (N = the request's `name`, an integer) of an
  in-memory random buffer as a `DownloadHeader` followed by `chunk` messages of 1 MiB,
  exactly the shape of `SecureFileService.DownloadSecureFile`;
* `Upload` is a client-streaming sink of `UploadSecureFileRequest` messages that only
  counts the bytes and answers a `SecureFile` with `size_bytes` set.

No token check, no authz, no kms, no crypto, no disk: the ceiling the secure path is
compared against. Server options mirror `securefiles.common.server.create_server`.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc

from securefiles.common.tls import MAX_MESSAGE_BYTES, TlsFiles, public_server_credentials, server_credentials
from securefiles.storage.v1 import storage_pb2

SERVICE = "securefiles.bench.v1.RawBaseline"
DOWNLOAD_METHOD = f"/{SERVICE}/Download"
UPLOAD_METHOD = f"/{SERVICE}/Upload"
CHUNK_BYTES = 1024 * 1024
BUFFER_BYTES = 10 * 1024 * 1024
READY_PREFIX = "raw-baseline port "
REPO_ROOT = Path(__file__).resolve().parents[2]


class _RawServicer:
    def __init__(self, buffer: bytes) -> None:
        self._buffer = buffer
        self._chunks: dict[int, list[bytes]] = {}
        self._digests: dict[int, str] = {}

    def _digest_of(self, size: int) -> str:
        digest = self._digests.get(size)
        if digest is None:
            digest = self._digests[size] = hashlib.sha256(memoryview(self._buffer)[:size]).hexdigest()
        return digest

    def _chunks_of(self, size: int) -> list[bytes]:
        chunks = self._chunks.get(size)
        if chunks is None:
            chunks = [self._buffer[o : min(o + CHUNK_BYTES, size)] for o in range(0, size, CHUNK_BYTES)]
            self._chunks[size] = chunks
        return chunks

    async def download(
        self, request: storage_pb2.DownloadSecureFileRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[storage_pb2.DownloadSecureFileResponse]:
        size = int(request.name or "0")
        if not 0 <= size <= len(self._buffer):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "size out of range")
        # The header carries the content's sha256, as storage's does: a client can verify what it wrote.
        yield storage_pb2.DownloadSecureFileResponse(header=storage_pb2.DownloadHeader(
            size_bytes=size, sha256=self._digest_of(size)))
        for chunk in self._chunks_of(size):
            yield storage_pb2.DownloadSecureFileResponse(chunk=chunk)

    async def upload(
        self, requests: AsyncIterator[storage_pb2.UploadSecureFileRequest], context: grpc.aio.ServicerContext
    ) -> storage_pb2.SecureFile:
        received = 0
        async for request in requests:
            received += len(request.chunk)
        return storage_pb2.SecureFile(size_bytes=received)


def _handler(servicer: _RawServicer) -> grpc.GenericRpcHandler:
    return grpc.method_handlers_generic_handler(SERVICE, {
        "Download": grpc.unary_stream_rpc_method_handler(
            servicer.download,
            request_deserializer=storage_pb2.DownloadSecureFileRequest.FromString,
            response_serializer=storage_pb2.DownloadSecureFileResponse.SerializeToString,
        ),
        "Upload": grpc.stream_unary_rpc_method_handler(
            servicer.upload,
            request_deserializer=storage_pb2.UploadSecureFileRequest.FromString,
            response_serializer=storage_pb2.SecureFile.SerializeToString,
        ),
    })


async def serve(tls: TlsFiles, address: str = "127.0.0.1:0", public: bool = False) -> None:
    """Serve until SIGINT/SIGTERM; print the bound port on stdout once started."""
    server = grpc.aio.server(options=[
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_concurrent_streams", 1024),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
        ("grpc.so_reuseport", 0),
    ])
    server.add_generic_rpc_handlers((_handler(_RawServicer(os.urandom(BUFFER_BYTES))),))
    # `public`: server TLS only, as the services' public ports (agents present no certificate).
    credentials = public_server_credentials(tls) if public else server_credentials(tls)
    port = server.add_secure_port(address, credentials)
    await server.start()
    print(f"{READY_PREFIX}{port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop(0)


class RawBaselineServer:
    """The baseline server in a child process; use as a context manager."""

    def __init__(self, tls: TlsFiles, timeout: float = 30.0, public: bool = False) -> None:
        self._tls = tls
        self._timeout = timeout
        self._public = public
        self.process: subprocess.Popen[str] | None = None
        self.port = 0

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.bench.raw_baseline", "--ca", str(self._tls.ca),
             "--cert", str(self._tls.cert), "--key", str(self._tls.key), *(["--public"] if self._public else [])],
            cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True,
        )
        assert self.process.stdout is not None
        deadline = time.monotonic() + self._timeout
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.process.stdout], [], [], 0.2)
            if ready:
                line = self.process.stdout.readline()
                if line.startswith(READY_PREFIX):
                    self.port = int(line[len(READY_PREFIX):])
                    return
            if self.process.poll() is not None:
                break
        self.stop()
        raise RuntimeError("the raw baseline server did not start")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def __enter__(self) -> RawBaselineServer:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()


# -- client side (blocking, like the agent's Transport) ---------------------------------


def download(channel: grpc.Channel, size: int, timeout: float = 60.0) -> int:
    """Receive one full raw download stream; return the number of content bytes."""
    call = channel.unary_stream(
        DOWNLOAD_METHOD,
        request_serializer=storage_pb2.DownloadSecureFileRequest.SerializeToString,
        response_deserializer=storage_pb2.DownloadSecureFileResponse.FromString,
    )
    received = 0
    for message in call(storage_pb2.DownloadSecureFileRequest(name=str(size)), timeout=timeout):
        received += len(message.chunk)
    return received


def upload_messages(name: str, content: bytes) -> Iterator[storage_pb2.UploadSecureFileRequest]:
    """Metadata first, then 1 MiB chunks, then the commit: the stream both upload paths send."""
    yield storage_pb2.UploadSecureFileRequest(metadata=storage_pb2.UploadMetadata(
        parent="projects/default", secure_file=storage_pb2.SecureFile(display_name=name),
        expected_size_bytes=len(content)))
    view = memoryview(content)
    for offset in range(0, len(content), CHUNK_BYTES):
        yield storage_pb2.UploadSecureFileRequest(chunk=bytes(view[offset : offset + CHUNK_BYTES]))
    yield storage_pb2.UploadSecureFileRequest(commit=storage_pb2.UploadCommit(
        size_bytes=len(content), sha256=hashlib.sha256(content).hexdigest()))


def upload(channel: grpc.Channel, content: bytes, timeout: float = 120.0) -> int:
    """Send one raw client-streaming upload; return the byte count the sink saw."""
    call = channel.stream_unary(
        UPLOAD_METHOD,
        request_serializer=storage_pb2.UploadSecureFileRequest.SerializeToString,
        response_deserializer=storage_pb2.SecureFile.FromString,
    )
    response = call(upload_messages("raw", content), timeout=timeout)
    return response.size_bytes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--ca", type=Path, required=True)
    parser.add_argument("--cert", type=Path, required=True)
    parser.add_argument("--key", type=Path, required=True)
    parser.add_argument("--listen", default="127.0.0.1:0")
    parser.add_argument("--public", action="store_true", help="server TLS only (no client certificate asked)")
    args = parser.parse_args()
    asyncio.run(serve(TlsFiles(ca=args.ca, cert=args.cert, key=args.key), args.listen, args.public))


if __name__ == "__main__":
    main()
