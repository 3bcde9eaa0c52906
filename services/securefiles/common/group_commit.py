"""Group commit: appends that arrive together share one transaction and its one durable commit.

Callers queue an item and wait for their own future. One writer thread takes whatever has
queued (up to `max_batch` items) and writes it in one transaction; while that commits, the
next batch gathers. Alone, an append waits for nothing but its own commit; under load one
commit (one fsync on PostgreSQL, one write lock on SQLite) serves many callers, each of whom
still waits until its own item is durable.

A batch that fails is retried item by item when the failure may be one item's doing (a value
the database refuses), so that only that item's caller fails; a failure of the moment (a lock
held past the busy timeout, a lost connection) fails every caller of the batch at once,
rather than making each wait out the timeout again.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Generic, TypeVar

from securefiles.common.errors import Unavailable

log = logging.getLogger("securefiles.group_commit")

Item = TypeVar("Item")
Result = TypeVar("Result")

DEFAULT_MAX_BATCH = 256


def _of_the_moment(error: BaseException) -> bool:
    """Failures that every item of a batch would meet alone too."""
    return isinstance(error, Unavailable) and error.reason == "DATABASE_UNAVAILABLE"  # see db.database_errors


class GroupCommit(Generic[Item, Result]):
    """Serialises `write(batch) -> results` (one result per item, in order) on one thread."""

    def __init__(self, write: Callable[[list[Item]], list[Result]], name: str,
                 max_batch: int = DEFAULT_MAX_BATCH) -> None:
        self._write = write
        self._name = name
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue[tuple[Item, Future[Result]] | None] = queue.SimpleQueue()  # None: stop
        self._lock = threading.Lock()
        self._owner = 0  # pid whose writer thread is running (a forked child starts its own)
        self.batches = 0  # how many transactions were written (for tests and the bench)
        self._closed = False

    def submit(self, item: Item) -> Future[Result]:
        """Queue `item`; the future resolves once it is written (or fails with why it was not)."""
        future: Future[Result] = Future()
        if self._owner != os.getpid():
            self._start()
        with self._lock:  # nothing is queued behind the stop (it would wait forever)
            if self._closed:
                future.set_exception(RuntimeError(f"{self._name} is closed"))
            else:
                self._queue.put((item, future))
        return future

    def _start(self) -> None:
        with self._lock:
            if self._owner == os.getpid() or self._closed:
                return
            if self._owner:  # forked: the queue's waiters belong to the parent
                self._queue = queue.SimpleQueue()
            threading.Thread(target=self._run, name=self._name, daemon=True).start()
            self._owner = os.getpid()

    def close(self) -> None:
        """Stop the writer thread once what is queued is written (a service stopping in a process
        that goes on, such as in-process tests); a later `submit` fails (one writer per chain)."""
        with self._lock:
            self._closed = True
            if self._owner == os.getpid():
                self._queue.put(None)

    def _run(self) -> None:
        stopping = False
        while not stopping:
            batch: list[tuple[Item, Future[Result]]] = []
            queued = self._queue.get()
            while queued is not None:
                batch.append(queued)
                if len(batch) >= self._max_batch:
                    break
                try:
                    queued = self._queue.get_nowait()
                except queue.Empty:
                    break
            stopping = queued is None
            # A caller that gave up (its task was cancelled) before its turn needs nothing written.
            self._commit([(item, future) for item, future in batch if future.set_running_or_notify_cancel()])

    def _commit(self, batch: list[tuple[Item, Future[Result]]]) -> None:
        if not batch:
            return
        try:
            results = self._write([item for item, _ in batch])
        except BaseException as error:
            if len(batch) > 1 and not _of_the_moment(error):
                for one in batch:
                    self._commit([one])
                return
            for _, future in batch:
                future.set_exception(error)
            return
        self.batches += 1
        for (_, future), result in zip(batch, results, strict=True):
            future.set_result(result)
