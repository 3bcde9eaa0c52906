"""Expiry alerts: certificates, profiles and keystores whose current version expires within a
window are announced once per file version and threshold (30, 7, 1 days by default).

Each run takes the files expiring within the widest threshold, picks for each the most urgent
threshold it has crossed and not yet been announced at, notifies (a signed webhook, where
configured), then writes the audit entry of the delivered alert and the record that it was sent
in one transaction: a notification that fails is tried again on the next run, nothing is
recorded without its entry nor audited without its record, and an alert whose entry could not
be written is sent again (receivers deduplicate by its `id`). A file
first seen at 5 days gets the 7-day alert only; a replaced version is announced afresh.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Protocol

from securefiles.storage.domain.model import SecureFile
from securefiles.storage.domain.ports import Change

log = logging.getLogger("securefiles.storage.expiry")

THRESHOLDS_DAYS = (30, 7, 1)


@dataclass(frozen=True)
class ExpiryAlert:
    project: str
    resource: str  # projects/{project}/secureFiles/{id}
    display_name: str
    version: int
    expires_at: dt.datetime
    threshold_days: int

    @property
    def id(self) -> str:
        """The same for every delivery of this alert."""
        return f"{self.resource.rsplit('/', 1)[1]}/v{self.version}/{self.threshold_days}d"

    def days_left(self, now: dt.datetime) -> float:
        return round((self.expires_at - now).total_seconds() / 86400, 2)


class ExpiryAlertRepository(Protocol):
    def expiring(self, before: dt.datetime, after: tuple[dt.datetime, str] | None, limit: int
                 ) -> list[tuple[SecureFile, frozenset[int]]]:
        """Files whose current version expires before `before`, ordered by (expires_at, file id) past
        `after`, each with the thresholds already announced for that version."""
        ...

    def mark_sent(self, file_id: str, version: int, threshold_days: int, now: dt.datetime) -> None: ...

    def try_lead(self) -> bool:
        """Become the one replica running this pass (False: another one is)."""
        ...

    def stop_leading(self) -> None: ...


class ExpiryNotifier(Protocol):
    async def notify(self, alert: ExpiryAlert, now: dt.datetime) -> None:
        """Deliver the alert; raise if it was not delivered."""
        ...


class AuditedUnits(Protocol):
    """`with units() as change: change.audit(...); repository.mark_sent(...)`: both or neither
    (`common/unit_of_work.py`'s units for a job in the service)."""

    def __call__(self) -> AbstractContextManager[Change]: ...


class Observer(Protocol):
    def expiry_run(self, alerts: int, failures: int) -> None: ...


def due_threshold(expires_at: dt.datetime, now: dt.datetime, thresholds: Sequence[int],
                  announced: frozenset[int]) -> int | None:
    """The most urgent threshold crossed, unless it (or a more urgent one) was announced."""
    crossed = [days for days in thresholds if expires_at - now <= dt.timedelta(days=days)]
    if not crossed:
        return None
    urgent = min(crossed)
    if any(days <= urgent for days in announced):
        return None
    return urgent


class ExpiryAlerts:
    def __init__(self, repository: ExpiryAlertRepository, notifier: ExpiryNotifier,
                 units: AuditedUnits, clock: Callable[[], dt.datetime],
                 thresholds: Sequence[int] = THRESHOLDS_DAYS, observer: Observer | None = None,
                 page: int = 500) -> None:
        """`units`: where a sent alert's entry and its record commit together (raising if they cannot)."""
        if not thresholds or any(days <= 0 for days in thresholds):
            raise ValueError("expiry thresholds must be positive numbers of days")
        self._repository = repository
        self._notifier = notifier
        self._units = units
        self._clock = clock
        self._thresholds = tuple(sorted(set(thresholds), reverse=True))
        self._observer = observer
        self._page = page

    async def run_once(self) -> list[ExpiryAlert]:
        """One pass over the files expiring within the widest threshold; the alerts sent."""
        # Replicas sharing a database take turns: two passes at once would both notify.
        if not await asyncio.to_thread(self._repository.try_lead):
            return []
        try:
            return await self._run(self._clock())
        finally:
            await asyncio.to_thread(self._repository.stop_leading)

    async def _run(self, now: dt.datetime) -> list[ExpiryAlert]:
        window = now + dt.timedelta(days=max(self._thresholds))
        sent: list[ExpiryAlert] = []
        failures = 0
        after: tuple[dt.datetime, str] | None = None
        while True:
            rows = await asyncio.to_thread(self._repository.expiring, window, after, self._page)
            for secure_file, announced in rows:
                alert = self._alert(secure_file, announced, now)
                if alert is None:
                    continue
                if await self._announce(alert, now):
                    sent.append(alert)
                else:
                    failures += 1
            if len(rows) < self._page:
                break
            last = rows[-1][0]
            assert last.current.expires_at is not None
            after = (last.current.expires_at, last.file_id)
        if self._observer is not None:
            self._observer.expiry_run(len(sent), failures)
        return sent

    def _alert(self, secure_file: SecureFile, announced: frozenset[int], now: dt.datetime) -> ExpiryAlert | None:
        expires_at = secure_file.current.expires_at
        if expires_at is None:
            return None
        threshold = due_threshold(expires_at, now, self._thresholds, announced)
        if threshold is None:
            return None
        return ExpiryAlert(secure_file.project, secure_file.name, secure_file.display_name,
                           secure_file.current.version, expires_at, threshold)

    async def _announce(self, alert: ExpiryAlert, now: dt.datetime) -> bool:
        # The resource name, not the display name: names stay out of the logs.
        facts = {"secure_file": alert.resource, "version": alert.version, "threshold_days": alert.threshold_days,
                 "expires_at": alert.expires_at.isoformat(), "days_left": alert.days_left(now)}
        try:
            await self._notifier.notify(alert, now)
        except Exception as error:
            log.warning("expiry alert not delivered; will retry", extra={**facts, "error": type(error).__name__})
            return False
        try:
            await asyncio.to_thread(self._record_sent, alert, now)
        except Exception:
            log.error("expiry alert sent but not recorded; it will be sent again", exc_info=True, extra=facts)
            return False
        log.warning("secure file expires soon", extra=facts)
        return True

    def _record_sent(self, alert: ExpiryAlert, now: dt.datetime) -> None:
        with self._units() as change:
            change.audit(alert.resource, id=alert.id, threshold_days=alert.threshold_days,
                         expires_at=alert.expires_at.isoformat())
            self._repository.mark_sent(alert.resource.rsplit("/", 1)[1], alert.version, alert.threshold_days, now)
