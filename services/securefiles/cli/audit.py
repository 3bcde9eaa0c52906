"""`securefiles audit list|verify`: read and check every service's hash-chained audit log."""

from __future__ import annotations

import argparse

from securefiles.cli import audit_export
from securefiles.cli.context import add_output, client_for, wants_json
from securefiles.cli.output import print_json, print_table, rfc3339
from securefiles.cli.parser import Subcommands


def audit_list(args: argparse.Namespace) -> int:
    with client_for(args) as client:
        services = [args.service] if args.service else list(client.audit_targets())
        events = [e for s in services for e in client.list_audit_events(s, args.resource or "")]
    events.sort(key=lambda e: (e.time.seconds, e.time.nanos, e.service, e.sequence))
    objects = [{
        "service": e.service, "sequence": e.sequence, "time": rfc3339(e.time), "principal": e.principal,
        "action": e.action, "resource": e.resource, "decision": e.decision, "reason": e.reason,
        "request_id": e.request_id, "details": dict(e.details),
    } for e in events]
    if wants_json(args):
        print_json(objects)
    else:
        print_table(("TIME", "SERVICE", "PRINCIPAL", "ACTION", "RESOURCE", "DECISION", "REASON"),
                    [(o["time"], o["service"], o["principal"], o["action"], o["resource"], o["decision"],
                      o["reason"]) for o in objects])
    return 0


def audit_verify(args: argparse.Namespace) -> int:
    with client_for(args) as client:
        services = [args.service] if args.service else list(client.audit_targets())
        # A chain cannot prove its own tail: each is checked against its newest head another
        # service witnessed.
        witnessed = {s: client.latest_witnessed_head(s) for s in services}
        results = {s: client.verify_audit_log(s, witnessed[s]) for s in services}
    objects = {s: {"intact": r.intact, "events_checked": r.events_checked,
                   "first_bad_sequence": r.first_bad_sequence, "problem": r.problem,
                   "unaccounted_entries": r.unaccounted_entries,
                   "witnessed_sequence": head.sequence if (head := witnessed[s]) else 0}
               for s, r in results.items()}
    if wants_json(args):
        print_json(objects)
    else:
        print_table(("SERVICE", "INTACT", "EVENTS", "WITNESSED", "UNACCOUNTED", "PROBLEM"),
                    [(s, "yes" if o["intact"] else "NO", o["events_checked"], o["witnessed_sequence"],
                      o["unaccounted_entries"],
                      f"{o['problem']} at #{o['first_bad_sequence']}" if not o["intact"] else "")
                     for s, o in objects.items()])
    return 0 if all(o["intact"] for o in objects.values()) else 1


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
