"""Metadata parsing in a small pool of separate processes (parser_worker.py).

A parse runs in another process, so it never holds the interpreter lock the service's requests
need, and a parse that outlives its deadline is stopped by killing its process (a thread cannot
be stopped: crafted files once kept storage's parser threads busy long after their timeout). A
killed worker is replaced in the background. Uploads wait for a free worker in a bounded queue;
when the queue is full, or the deadline passes while waiting, the file is stored without
metadata and its metadata says so. The deadline covers waiting and parsing together, so an
upload never waits on parsing much longer than `timeout` seconds.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
import logging
import struct
import sys
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

from securefiles.storage.domain.content import PARSER_BUSY, TIMED_OUT
from securefiles.storage.domain.file_metadata import FileMetadata
from securefiles.storage.domain.ports import NoEvents, OperationalEvents

log = logging.getLogger("securefiles.storage")

WORKER_MODULE = "securefiles.storage.adapters.parser_worker"
MAX_RESPONSE_BYTES = 1024 * 1024
READY_TIMEOUT_SECONDS = 60.0
RESPAWN_DELAY_SECONDS = 1.0
FAILED = FileMetadata({"type": "unknown", "parse_error": "could not parse file"}, None)


@dataclass(frozen=True)
class ParserSettings:
    workers: int = 2
    queue: int = 8  # uploads that may wait for a worker; beyond that, no metadata
    timeout: float = 5.0  # seconds, waiting for a worker included


class WorkerFailed(Exception):
    """The worker broke the protocol or died: it is replaced."""


def _frame(body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + body


class _Worker:
    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    @property
    def pid(self) -> int:
        return self.process.pid

    async def _read(self) -> bytes:
        assert self.process.stdout is not None
        try:
            (size,) = struct.unpack(">I", await self.process.stdout.readexactly(4))
            if size > MAX_RESPONSE_BYTES:
                raise WorkerFailed("response too large")
            return await self.process.stdout.readexactly(size)
        except (asyncio.IncompleteReadError, ConnectionError) as error:
            raise WorkerFailed(str(error)) from None

    async def ready(self) -> None:
        if json.loads(await self._read()) != {"ready": True}:
            raise WorkerFailed("no ready message")

    async def parse(self, name: str, plaintext: bytes, password: bytes | None) -> FileMetadata:
        assert self.process.stdin is not None
        header = json.dumps({"name": name,
                             "password": base64.b64encode(password).decode() if password is not None else None})
        try:
            self.process.stdin.write(_frame(header.encode()) + _frame(plaintext))
            await self.process.stdin.drain()
        except ConnectionError as error:
            raise WorkerFailed(str(error)) from None
        try:
            answer = json.loads(await self._read())
            metadata, expires = answer["metadata"], answer["expires_at"]
            if not isinstance(metadata, dict) or not isinstance(metadata.get("type"), str):
                raise WorkerFailed("malformed metadata")
            return FileMetadata(metadata, dt.datetime.fromisoformat(expires) if expires is not None else None)
        except (ValueError, KeyError, TypeError) as error:
            raise WorkerFailed(f"malformed response: {type(error).__name__}") from None

    async def stop(self, kill: bool) -> None:
        if self.process.returncode is None:
            if kill:
                self.process.kill()
            elif self.process.stdin is not None:
                self.process.stdin.close()  # end of requests: the worker exits
        try:
            await asyncio.wait_for(self.process.wait(), 10)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()


class ParserPool:
    """The `MetadataParser` the service uses; `start()` inside the event loop, `close()` at the end."""

    def __init__(self, settings: ParserSettings, events: OperationalEvents | None = None) -> None:
        self._settings = settings
        self._events = events or NoEvents()
        self._idle: asyncio.Queue[_Worker] = asyncio.Queue()
        self._waiting = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._workers: set[_Worker] = set()
        self._closed = False

    def start(self) -> None:
        for _ in range(max(1, self._settings.workers)):
            self._in_background(self._add_worker())

    def _in_background(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _add_worker(self) -> None:
        """Start a worker and make it available once it is ready; retry while the pool is open."""
        while not self._closed:
            try:
                process = await asyncio.create_subprocess_exec(
                    sys.executable, "-m", WORKER_MODULE, stdin=asyncio.subprocess.PIPE,
                    stdout=asyncio.subprocess.PIPE)
            except OSError:
                log.error("cannot start a metadata parser process; retrying", exc_info=True)
                await asyncio.sleep(RESPAWN_DELAY_SECONDS)
                continue
            worker = _Worker(process)
            self._workers.add(worker)
            try:
                await asyncio.wait_for(worker.ready(), READY_TIMEOUT_SECONDS)
            except (WorkerFailed, TimeoutError, ValueError):
                log.error("a metadata parser process did not start; retrying", extra={"pid": worker.pid})
                await self._discard(worker)
                await asyncio.sleep(RESPAWN_DELAY_SECONDS)
                continue
            if self._closed:
                await self._discard(worker, kill=False)
                return
            self._idle.put_nowait(worker)
            return

    async def _discard(self, worker: _Worker, kill: bool = True) -> None:
        self._workers.discard(worker)
        await worker.stop(kill)

    def _replace(self, worker: _Worker) -> None:
        self._in_background(self._discard(worker))
        if not self._closed:
            self._in_background(self._add_worker())

    async def parse(self, name: str, plaintext: bytes, password: bytes | None) -> FileMetadata:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._settings.timeout
        if self._idle.empty() and self._waiting >= self._settings.queue:
            log.warning("metadata parser queue full; file stored without metadata")
            return PARSER_BUSY
        self._waiting += 1
        try:
            while True:
                worker = await asyncio.wait_for(self._idle.get(), max(0.0, deadline - loop.time()))
                if worker.process.returncode is None:
                    break
                log.warning("a metadata parser process had exited; it is replaced", extra={"pid": worker.pid})
                self._replace(worker)
        except TimeoutError:
            log.warning("no metadata parser free before the deadline; file stored without metadata")
            return PARSER_BUSY
        finally:
            self._waiting -= 1
        try:
            result = await asyncio.wait_for(worker.parse(name, plaintext, password),
                                            max(0.0, deadline - loop.time()))
        except TimeoutError:
            log.warning("metadata parsing timed out; its process is killed", extra={"pid": worker.pid})
            self._events.metadata_parse_timed_out()
            self._replace(worker)
            return TIMED_OUT
        except WorkerFailed as error:
            log.error("a metadata parser process failed; it is replaced", extra={"pid": worker.pid,
                                                                                 "error": str(error)})
            self._replace(worker)
            return FAILED
        except BaseException:  # cancelled mid-request: the worker's state is unknown
            self._replace(worker)
            raise
        self._idle.put_nowait(worker)
        return result

    async def close(self) -> None:
        self._closed = True
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await asyncio.gather(*(worker.stop(kill=True) for worker in list(self._workers)), return_exceptions=True)
        self._workers.clear()
