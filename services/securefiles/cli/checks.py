"""`securefiles checks|approvals|groups …` and `runs request`: approvals and checks on files."""

from __future__ import annotations

import argparse
from typing import Any

from securefiles.authz.v1 import authz_pb2
from securefiles.cli.context import add_output, client_for, wants_json
from securefiles.cli.output import print_json, print_table, rfc3339
from securefiles.cli.parser import Subcommands
from securefiles.client.api import SecureFilesClient
from securefiles.client.check_spec import build_check
from securefiles.client.job_identity import job_claims
from securefiles.common.resource_names import ANY_PIPELINE, run_name


def check_object(c: authz_pb2.Check) -> dict[str, Any]:
    obj: dict[str, Any] = {"id": c.check_id, "type": c.type, "timeout_seconds": c.timeout.seconds,
                 "created_by": c.created_by, "create_time": rfc3339(c.create_time)}
    kind = c.WhichOneof("settings")
    if kind == "branch_control":
        obj["allowed_refs"] = list(c.branch_control.allowed_refs)
    elif kind == "approval":
        obj.update(approvers=list(c.approval.approvers), min_approvals=c.approval.min_approvals,
                   allow_requester=c.approval.allow_requester, instructions=c.approval.instructions)
    elif kind == "business_hours":
        b = c.business_hours
        obj.update(time_zone=b.time_zone, days=list(b.days), start_time=b.start_time, end_time=b.end_time)
    return obj


def _summary(obj: dict[str, Any]) -> str:
    if obj["type"] == "branch-control":
        return ", ".join(obj["allowed_refs"])
    if obj["type"] == "approval":
        return f"{obj['min_approvals']} of {', '.join(obj['approvers'])}" + (
            " (requester may approve)" if obj["allow_requester"] else "")
    if obj["type"] == "business-hours":
        return f"{','.join(obj['days'])} {obj['start_time']}-{obj['end_time']} {obj['time_zone']}"
    return "one run at a time"


def checks_add(args: argparse.Namespace) -> int:
    check = build_check(args.type, allowed=args.allowed or "", approvers=args.approver or [],
                        min_approvals=args.min_approvals, allow_requester=args.allow_requester,
                        instructions=args.instructions or "", timezone=args.timezone or "", days=args.days or "",
                        start=args.start or "", end=args.end or "", timeout=args.timeout or "")
    with client_for(args) as client:
        created = client.add_check(args.file, check)
    obj = check_object(created)
    if wants_json(args):
        print_json(obj)
    else:
        print(f"added {obj['type']} check {obj['id']} to {args.file}: {_summary(obj)}")
    return 0


def checks_list(args: argparse.Namespace) -> int:
    with client_for(args) as client:
        objects = [check_object(c) for c in client.list_checks(args.file)]
    if wants_json(args):
        print_json(objects)
    else:
        print_table(("ID", "TYPE", "SETTINGS", "TIMEOUT"),
                    [(o["id"], o["type"], _summary(o), f"{o['timeout_seconds']}s") for o in objects])
    return 0


def checks_delete(args: argparse.Namespace) -> int:
    with client_for(args) as client:
        client.delete_check(args.file, args.check_id)
    print(f"deleted check {args.check_id} from {args.file}")
    return 0


def runs_request(args: argparse.Namespace) -> int:
    """Create the run's suites now (approval requests go out) instead of at first download."""
    if args.run:
        client = client_for(args)
        run = args.run if not args.run.isdigit() else run_name(client.project, ANY_PIPELINE, args.run)
    else:
        # As the job itself: its job token, or its CI provider's OIDC token exchanged for one.
        client = SecureFilesClient.from_environment(job=True)
        claims = job_claims(client.token)
        run = run_name(claims.project, claims.pipeline, claims.run)
    with client:
        suites = client.request_checks(run, args.files)
    objects = [{"file": f, "state": authz_pb2.CheckState.Name(s.state),
                "checks": [{"type": r.type, "state": authz_pb2.CheckState.Name(r.state), "reason": r.reason,
                            "approval_id": r.approval_id} for r in s.results]} for f, s in zip(args.files, suites,
                                                                                                strict=True)]
    if wants_json(args):
        print_json(objects)
    else:
        for obj in objects:
            waits = "; ".join(f"{c['type']} {c['state'].lower()}: {c['reason']}" for c in obj["checks"]) or "no checks"
            print(f"{obj['file']}: {obj['state']} ({waits})")
    return 0


def approval_object(a: authz_pb2.Approval) -> dict[str, Any]:
    return {"id": a.approval_id, "run": a.run, "file": a.resource, "state": authz_pb2.CheckState.Name(a.state),
            "approvers": list(a.approvers), "min_approvals": a.min_approvals, "requested_by": a.requested_by,
            "instructions": a.instructions, "expire_time": rfc3339(a.expire_time),
            "decisions": [{"approver": d.approver, "approved": d.approved, "comment": d.comment,
                           "time": rfc3339(d.decide_time)} for d in a.decisions]}


def approvals_list(args: argparse.Namespace) -> int:
    with client_for(args) as client:
        objects = [approval_object(a) for a in client.list_approvals(args.pending)]
    if wants_json(args):
        print_json(objects)
    else:
        print_table(("ID", "STATE", "RUN", "FILE", "APPROVERS", "REQUESTED BY"),
                    [(o["id"], o["state"], o["run"], o["file"], ", ".join(o["approvers"]), o["requested_by"])
                     for o in objects])
    return 0


def _decide(args: argparse.Namespace, approve: bool) -> int:
    with client_for(args) as client:
        decided = client.decide_approval(args.id, approve, args.comment or "")
    obj = approval_object(decided)
    if wants_json(args):
        print_json(obj)
    else:
        print(f"approval {obj['id']} is {obj['state'].lower()}")
    return 0


def approvals_approve(args: argparse.Namespace) -> int:
    return _decide(args, True)


def approvals_reject(args: argparse.Namespace) -> int:
    return _decide(args, False)


def groups_list(args: argparse.Namespace) -> int:
    with client_for(args) as client:
        groups = client.list_groups()
    if wants_json(args):
        print_json([{"group": g.name, "members": list(g.members)} for g in groups])
    else:
        print_table(("GROUP", "MEMBERS"), [(g.name, ", ".join(g.members)) for g in groups])
    return 0


def groups_member(args: argparse.Namespace) -> int:
    with client_for(args) as client:
        group = client.set_group_member(args.group, args.principal, args.action == "add-member")
    if wants_json(args):
        print_json({"group": group.name, "members": list(group.members)})
    else:
        print(f"{group.name}: {', '.join(group.members) or 'no members'}")
    return 0


def register(subparsers: Subcommands,
             runs: Subcommands) -> None:
    checks = subparsers.add_parser("checks", help="approvals and checks on files").add_subparsers(
        dest="action", required=True)
    add = checks.add_parser("add", help="add a check to a file")
    add.add_argument("file")
    add.add_argument("type", choices=("branch-control", "approval", "business-hours", "exclusive-lock"))
    add.add_argument("--allowed", help="branch-control: comma-separated ref patterns")
    add.add_argument("--approver", action="append", help="approval: user:NAME or group:NAME (repeatable)")
    add.add_argument("--min-approvals", type=int)
    add.add_argument("--allow-requester", action="store_true", help="the run's requester may approve it")
    add.add_argument("--instructions")
    add.add_argument("--timezone", help="business-hours: IANA time zone")
    add.add_argument("--days", help="business-hours: e.g. mon-fri")
    add.add_argument("--start", help="business-hours: HH:MM")
    add.add_argument("--end", help="business-hours: HH:MM")
    add.add_argument("--timeout", help="reject after this long pending (default 30d)")
    add_output(add)
    add.set_defaults(handler=checks_add)
    ls = checks.add_parser("list", help="list a file's checks")
    ls.add_argument("file")
    add_output(ls)
    ls.set_defaults(handler=checks_list)
    rm = checks.add_parser("delete", help="remove a check from a file")
    rm.add_argument("file")
    rm.add_argument("check_id", type=int)
    rm.set_defaults(handler=checks_delete)

    request = runs.add_parser("request", help="create a run's check suites for files now (requests approvals)")
    request.add_argument("files", nargs="+", metavar="FILE")
    request.add_argument("--run", help="run id or name (default: the job token's run)")
    add_output(request)
    request.set_defaults(handler=runs_request)

    approvals = subparsers.add_parser("approvals", help="approve or reject runs").add_subparsers(
        dest="action", required=True)
    ls = approvals.add_parser("list", help="list approvals")
    ls.add_argument("--pending", action="store_true")
    add_output(ls)
    ls.set_defaults(handler=approvals_list)
    for name, handler in (("approve", approvals_approve), ("reject", approvals_reject)):
        decide = approvals.add_parser(name, help=f"{name} as the token's user")
        decide.add_argument("id", type=int)
        decide.add_argument("--comment")
        add_output(decide)
        decide.set_defaults(handler=handler)

    groups = subparsers.add_parser("groups", help="groups of approvers").add_subparsers(dest="action", required=True)
    ls = groups.add_parser("list", help="list groups and their members")
    add_output(ls)
    ls.set_defaults(handler=groups_list)
    for name, text in (("add-member", "add a user to a group (organization administrators)"),
                       ("remove-member", "remove a user from a group")):
        member = groups.add_parser(name, help=text)
        member.add_argument("group", help="group:NAME")
        member.add_argument("principal", help="user:NAME")
        add_output(member)
        member.set_defaults(handler=groups_member)
