"""One AIP-160 `filter` for ListSecureFiles from what a caller has: a filter of their own, a name
pattern and an expiry bound, joined by AND (the only join the filter has). Names are quoted, so
any name (quotes, backslashes, `AND`) stays one value."""

from __future__ import annotations

import datetime as dt


def quoted(value: str) -> str:
    """`value` as a filter string: in double quotes, `\\` escaping a quote or a backslash."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def rfc3339(moment: dt.datetime) -> str:
    """An aware time (a naive one is taken as UTC) in UTC, e.g. `2027-01-01T00:00:00Z`."""
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)
    return aware.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def combined_filter(filter_text: str = "", name_pattern: str = "", expires_before: dt.datetime | None = None
                    ) -> str:
    """`filter_text AND display_name = "PATTERN" AND expire_time < "TIME"`, leaving out what is not given."""
    terms = [filter_text.strip()] if filter_text.strip() else []
    if name_pattern:
        terms.append(f"display_name = {quoted(name_pattern)}")
    if expires_before is not None:
        terms.append(f"expire_time < {quoted(rfc3339(expires_before))}")
    return " AND ".join(terms)
