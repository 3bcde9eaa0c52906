"""Expiry alerts as a signed webhook: one JSON POST per alert.

The body is signed with HMAC-SHA256 under a shared secret, over `<timestamp>.<body>`:
`X-Securefiles-Timestamp: <unix seconds>` and `X-Securefiles-Signature: sha256=<hex>`. A
receiver recomputes the signature, compares in constant time and refuses old timestamps
(replays); `id` is the same for every delivery of one alert.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import time

import httpx

from securefiles.storage.domain.expiry_alerts import ExpiryAlert

EVENT = "secure_file.expiring"


def signature(secret: bytes, timestamp: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def alert_body(alert: ExpiryAlert, now: dt.datetime) -> bytes:
    return json.dumps({
        "event": EVENT, "id": alert.id, "project": alert.project, "secure_file": alert.resource,
        "display_name": alert.display_name, "version": alert.version,
        "expires_at": alert.expires_at.isoformat(), "threshold_days": alert.threshold_days,
        "days_left": alert.days_left(now), "expired": alert.expires_at <= now,
    }, sort_keys=True, separators=(",", ":")).encode()


class WebhookNotifier:
    """POSTs each alert to `url`; a non-2xx answer or no answer is a failed delivery."""

    def __init__(self, url: str, secret: bytes, timeout: float = 10.0, ca_file: str | None = None) -> None:
        self._url = url
        self._secret = secret
        self._client = httpx.AsyncClient(timeout=timeout, verify=ca_file or True, follow_redirects=False)

    async def notify(self, alert: ExpiryAlert, now: dt.datetime) -> None:
        body = alert_body(alert, now)
        timestamp = str(int(time.time()))
        response = await self._client.post(self._url, content=body, headers={
            "Content-Type": "application/json", "User-Agent": "securefiles-expiry-alerts",
            "X-Securefiles-Event": EVENT, "X-Securefiles-Timestamp": timestamp,
            "X-Securefiles-Signature": signature(self._secret, timestamp, body),
        })
        response.raise_for_status()

    async def close(self) -> None:
        await self._client.aclose()


class LogOnlyNotifier:
    """No webhook configured: the log line and the audit entry are the alert."""

    async def notify(self, alert: ExpiryAlert, now: dt.datetime) -> None:
        return None

    async def close(self) -> None:
        return None
