"""`securefiles audit export`: stream audit entries to a SIEM as JSON lines (a file or stdout)
and/or syslog, resumable from a sequence number, so the tail is also kept outside the database.

Each line is one entry with its chain hashes (a SIEM can check the chain too). With `--state
FILE` the last sequence exported per service is kept there (written atomically after the
entries are flushed and fsynced), and the next run resumes after it: nothing is skipped, and
at most the entries of an interrupted batch are sent twice (the sequence tells them apart).
"""

from __future__ import annotations

import argparse
import json
import logging
import logging.handlers
import os
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any

from securefiles.cli.context import client_for
from securefiles.cli.output import json_object
from securefiles.cli.parser import Subcommands
from securefiles.client.types import AuditEvent
from securefiles.common.errors import InvalidArgument

_FACILITIES = {"auth": logging.handlers.SysLogHandler.LOG_AUTH, "authpriv": logging.handlers.SysLogHandler.LOG_AUTHPRIV,
               "local0": logging.handlers.SysLogHandler.LOG_LOCAL0, "user": logging.handlers.SysLogHandler.LOG_USER}


def event_line(event: AuditEvent) -> str:
    """One JSON object on one line, the proto's JSON names for keys (names from strangers stay
    escaped inside it)."""
    return json.dumps(json_object(event), sort_keys=True, separators=(",", ":"), ensure_ascii=True)


class ExportState:
    """Last exported sequence per service, in a small JSON file."""

    def __init__(self, path: Path | None) -> None:
        self._path = path
        self.positions: dict[str, int] = {}
        if path is not None and path.exists():
            try:
                self.positions = {str(k): int(v) for k, v in json.loads(path.read_text()).items()}
            except (ValueError, AttributeError):
                raise InvalidArgument(f"{path} is not an export state file", reason="INVALID_STATE_FILE") from None

    def save(self) -> None:
        if self._path is None:
            return
        partial = self._path.with_name(f".{self._path.name}.partial")
        partial.write_text(json.dumps(self.positions, sort_keys=True) + "\n")
        os.replace(partial, self._path)


class Sinks:
    """Where lines go: a file or stdout, and/or syslog."""

    def __init__(self, output: str | None, syslog: str | None, facility: str) -> None:
        self._file: IO[str] | None = None
        if output == "-":
            self._file = sys.stdout
        elif output:
            self._file = open(output, "a", encoding="utf-8")
        self._syslog: logging.handlers.SysLogHandler | None = None
        if syslog:
            address: Any = syslog if syslog.startswith("/") else _host_port(syslog)
            self._syslog = logging.handlers.SysLogHandler(address=address, facility=_FACILITIES[facility])
            self._syslog.ident = "securefiles-audit: "

    def write(self, lines: Iterable[str]) -> None:
        for line in lines:
            if self._file is not None:
                self._file.write(line + "\n")
            if self._syslog is not None:
                self._syslog.emit(logging.LogRecord("securefiles.audit", logging.INFO, "", 0, line, None, None))
        if self._file is not None:
            self._file.flush()
            if self._file is not sys.stdout:
                os.fsync(self._file.fileno())

    def close(self) -> None:
        if self._file is not None and self._file is not sys.stdout:
            self._file.close()
        if self._syslog is not None:
            self._syslog.close()


def _host_port(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise InvalidArgument("--syslog takes HOST:PORT (UDP) or a socket path", reason="INVALID_ARGUMENT")
    return host, int(port)


def audit_export(args: argparse.Namespace) -> int:
    if not args.to and not args.syslog:
        raise InvalidArgument("give --to FILE (or - for stdout) and/or --syslog", reason="INVALID_ARGUMENT")
    if args.after is not None and args.after < 0:
        raise InvalidArgument("--after must not be negative", reason="INVALID_ARGUMENT")
    state = ExportState(Path(args.state) if args.state else None)
    sinks = Sinks(args.to, args.syslog, args.syslog_facility)
    try:
        with client_for(args) as client:
            services = args.service or list(client.audit.targets())
            while True:
                for service in services:
                    start = args.after if args.after is not None and service not in state.positions else (
                        state.positions.get(service, 0))
                    batch: list[AuditEvent] = []
                    for event in client.audit.events(service, after_sequence=start):
                        batch.append(event)
                        if len(batch) >= 1000:
                            _flush(sinks, state, service, batch)
                    _flush(sinks, state, service, batch)
                if not args.follow:
                    return 0
                time.sleep(args.interval)
    finally:
        sinks.close()


def _flush(sinks: Sinks, state: ExportState, service: str, batch: list[AuditEvent]) -> None:
    if not batch:
        return
    sinks.write(event_line(e) for e in batch)
    state.positions[service] = batch[-1].sequence  # only once the lines are out
    state.save()
    batch.clear()


def register(actions: Subcommands) -> None:
    export = actions.add_parser("export", help="stream audit entries as JSON lines to a file, stdout or syslog")
    export.add_argument("--service", action="append", help="storage, authz or kms-<region> (repeatable; default all)")
    export.add_argument("--to", metavar="FILE", help="append JSON lines to FILE (- for stdout)")
    export.add_argument("--syslog", metavar="HOST:PORT|PATH", help="also send each entry to syslog (UDP or socket)")
    export.add_argument("--syslog-facility", choices=sorted(_FACILITIES), default="auth")
    export.add_argument("--after", type=int, help="start after this sequence number (services not in --state)")
    export.add_argument("--state", metavar="FILE", help="keep the last exported sequence per service here; resume")
    export.add_argument("--follow", action="store_true", help="keep exporting new entries")
    export.add_argument("--interval", type=float, default=5.0, help="seconds between polls with --follow")
    export.set_defaults(handler=audit_export)
