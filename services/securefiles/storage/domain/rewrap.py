"""Rewrap: move every stored data key to its region's primary key version.

Only wrapped keys change (compare-and-swap per row); ciphertext is never read or
rewritten, and downloads keep working throughout because the old version stays
ENABLED until an operator disables it.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from securefiles.common.resource_names import key_version_name
from securefiles.storage.domain.model import encryption_context
from securefiles.storage.domain.ports import (
    DataKeys,
    FileRepository,
    NoEvents,
    OperationalEvents,
    Unaudited,
    UnitsOfWork,
)

log = logging.getLogger("securefiles.storage.rewrap")

BATCH = 500  # keys per kms call (it takes at most 1000) and per swap transaction


@dataclass(frozen=True)
class RewrapReport:
    before: dict[str, int]
    after: dict[str, int]
    rewrapped: int
    failed: int


async def version_counts(files: FileRepository, region: str | None) -> dict[str, int]:
    """{`regions/{r}/keyVersions/{n}`: data keys}."""
    return {
        key_version_name(r, v): count
        for (r, v), count in sorted((await files.count_data_keys(region)).items())
    }


class DataKeyRewrapper:
    def __init__(self, files: FileRepository, keys: DataKeys, events: OperationalEvents | None = None,
                 changes: UnitsOfWork | None = None) -> None:
        self._files = files
        self._changes: UnitsOfWork = changes or Unaudited()
        self._keys = keys
        self._events = events or NoEvents()
        self._lock = asyncio.Lock()

    async def rewrap_region(self, region: str) -> tuple[int, int]:
        """Batches of keys: one kms call re-wraps a batch, one transaction swaps it in."""
        primary = await self._keys.primary_version(region)
        rewrapped = failed = 0
        cursor = ("", 0)
        while True:
            batch = await self._files.data_keys_not_under(region, primary, cursor, BATCH)
            if not batch:
                return rewrapped, failed
            cursor = (batch[-1].file_id, batch[-1].version)
            results = await self._keys.reencrypt_many(region, [
                (key.wrapped_key, encryption_context(key.project, key.file_id, key.version)) for key in batch])
            swaps = []
            for key, result in zip(batch, results, strict=True):
                if isinstance(result, str):
                    log.warning("data key not rewrapped", extra={"file_id": key.file_id, "reason": result})
                else:
                    swaps.append((key, *result))
            # A concurrent delete or rewrap wins the compare-and-swap; that key needs nothing more.
            async with self._changes.begin():  # a call's entry commits with its first batch
                await self._files.swap_wrapped_keys(swaps)
            rewrapped += len(swaps)
            failed += len(batch) - len(swaps)
            self._events.data_keys_rewrapped(region, len(swaps), len(batch) - len(swaps))  # progress per batch

    async def rewrap(self, region: str | None) -> RewrapReport:
        """Rewrap one region (or all); one run at a time per process."""
        regions = [region] if region else self._keys.regions
        async with self._lock:
            before = await version_counts(self._files, region)
            rewrapped = failed = 0
            for name in regions:
                done, not_done = await self.rewrap_region(name)
                rewrapped, failed = rewrapped + done, failed + not_done
            after = await version_counts(self._files, region)
        log.info("rewrap finished", extra={"rewrapped": rewrapped, "failed": failed})
        return RewrapReport(before, after, rewrapped, failed)
