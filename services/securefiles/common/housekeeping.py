"""Housekeeping each service runs in the background, so that its hot tables do not grow forever.

Every service archives its audit log's old blocks (`AuditLog.archive`: entries older than
`SECUREFILES_AUDIT_RETENTION_DAYS`, default 365, leave `audit_events` for `audit_archive`, the chain
still verifiable from its first entry); authz also forgets completed runs (see its app). Jobs run
every `SECUREFILES_RETENTION_INTERVAL_SECONDS` (default 3600), in the service's database threads.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Awaitable, Callable, Sequence

from securefiles.common.audit import AuditLog
from securefiles.common.clock import Clock, utcnow
from securefiles.common.db_threads import DatabaseThreads

log = logging.getLogger("securefiles.housekeeping")

Job = Callable[[], Awaitable[object]]


def archive_audit(audit: AuditLog, database: DatabaseThreads, retention_days: int,
                  clock: Clock = utcnow) -> Job:
    """Move the audit log's sealed blocks older than `retention_days` to its archive."""

    async def job() -> int:
        if retention_days <= 0:
            return 0
        archived = await database.run(audit.archive, clock() - dt.timedelta(days=retention_days))
        if archived:
            log.info("audit entries archived", extra={"entries": archived, "service": audit.service})
        return archived

    return job


async def keep_house(jobs: Sequence[Job], interval: float) -> None:
    """Run every job now and then every `interval` seconds; a job that fails is retried next time."""
    if interval <= 0:
        return
    while True:
        for job in jobs:
            try:
                await job()
            except Exception:
                log.warning("housekeeping failed; will retry", exc_info=True)
        await asyncio.sleep(interval)
