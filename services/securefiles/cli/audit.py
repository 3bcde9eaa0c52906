"""`securefiles audit list|verify`: read and check every service's hash-chained audit log."""

from __future__ import annotations

import argparse
import datetime as dt

from securefiles.cli import audit_export
from securefiles.cli.context import add_output, client_for, wants_json
from securefiles.cli.output import json_object, print_json, print_table, when
from securefiles.cli.parser import Subcommands

_EPOCH = dt.datetime.fromtimestamp(0, dt.UTC)


def audit_list(args: argparse.Namespace) -> int:
    with client_for(args) as client:
        services = [args.service] if args.service else list(client.audit.targets())
        events = [e for s in services for e in client.audit.events(s, args.resource or "")]
    events.sort(key=lambda e: (e.time or _EPOCH, e.service, e.sequence))
    if wants_json(args):
        print_json(json_object(events))
    else:
        print_table(("TIME", "SERVICE", "PRINCIPAL", "ACTION", "RESOURCE", "DECISION", "REASON"),
                    [(when(e.time), e.service, e.principal, e.action, e.resource, e.decision, e.reason)
                     for e in events])
    return 0


def audit_verify(args: argparse.Namespace) -> int:
    with client_for(args) as client:
        services = [args.service] if args.service else list(client.audit.targets())
        # A chain cannot prove its own tail: each is checked against its newest head another
        # service witnessed.
        witnessed = {s: client.audit.latest_witnessed_head(s) for s in services}
        results = {s: client.audit.verify(s, witnessed[s]) for s in services}
    sequences = {s: head.sequence if (head := witnessed[s]) else 0 for s in services}
    if wants_json(args):
        # The witnessed head's sequence under its name in VerifyAuditLogRequest.
        print_json({s: {**json_object(r), "witnessedSequence": sequences[s]} for s, r in results.items()})
    else:
        print_table(("SERVICE", "INTACT", "EVENTS", "WITNESSED", "UNACCOUNTED", "PROBLEM"),
                    [(s, "yes" if r.intact else "NO", r.events_checked, sequences[s], r.unaccounted_entries,
                      f"{r.problem} at #{r.first_bad_sequence}" if not r.intact else "")
                     for s, r in results.items()])
    return 0 if all(r.intact for r in results.values()) else 1


def register(subparsers: Subcommands) -> None:
    actions = subparsers.add_parser("audit", help="audit logs (operators)").add_subparsers(
        dest="action", required=True)
    ls = actions.add_parser("list", help="list audit events of every service (or one)")
    ls.add_argument("--service", help="storage, authz or kms-<region>")
    ls.add_argument("--resource", help="only events whose resource starts with this")
    add_output(ls)
    ls.set_defaults(handler=audit_list)
    verify = actions.add_parser("verify", help="check that no audit entry was edited, deleted or reordered")
    verify.add_argument("--service")
    add_output(verify)
    verify.set_defaults(handler=audit_verify)
    audit_export.register(actions)
