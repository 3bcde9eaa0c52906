"""Database work off the event loop: a small pool of threads per service.

Each service serves every call on one asyncio event loop. A SQL statement that waits (for a
lock held elsewhere, up to the busy timeout of 15 s; for the disk; for a slow query) would stop
every other call on that loop, health checks included. So the adapters hand their synchronous
SQLAlchemy work to this pool and the loop awaits it: a lock wait holds one of these threads,
never the loop.

Why threads and not SQLAlchemy's async engine: SQLite has no asynchronous driver (aiosqlite
runs each connection in a thread of its own, i.e. the same thing with more machinery); every
adapter, the units of work that commit a change with its audit entry, psycopg's binary blob path,
Alembic and the tools and benchmarks that seed the databases use the synchronous engine; and a
fixed pool bounds how much database work (and how many connections) a service has in flight.

The caller's context (request id, principal, the call's audit entry, the unit of work under
way) is copied into the thread with the work. Changes the work makes to context variables
stay in the thread.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar

P = ParamSpec("P")
T = TypeVar("T")
S = TypeVar("S", bound="_OnThreads")

DEFAULT_WORKERS = 8


class Blocking(Protocol):
    """How domain code that awaits other things runs a blocking call (a repository's): in a
    database thread in the services (`DatabaseThreads.run`), inline in tests and tools."""

    async def __call__(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T: ...


async def run_inline(fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    return fn(*args, **kwargs)


class DatabaseThreads:
    """A bounded pool for one service's blocking database calls."""

    def __init__(self, workers: int = DEFAULT_WORKERS, name: str = "db") -> None:
        if workers < 1:
            raise ValueError("need at least one database thread")
        self.workers = workers
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix=name)

    async def run(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """`fn(*args, **kwargs)` in a database thread, with the caller's context."""
        context = contextvars.copy_context()
        call = functools.partial(context.run, fn, *args, **kwargs)
        return await asyncio.get_running_loop().run_in_executor(self._pool, call)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


class _OnThreads(Protocol):
    """An adapter whose blocking methods run on its database threads."""

    _threads: DatabaseThreads


def in_database_thread(method: Callable[Concatenate[S, P], T]) -> Callable[Concatenate[S, P], Coroutine[Any, Any, T]]:
    """Make a synchronous adapter method a coroutine that runs in the adapter's `_threads`."""

    @functools.wraps(method)
    async def run(self: S, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return await self._threads.run(method, self, *args, **kwargs)

    return run
