"""`securefiles checks|approvals|groups …` and `runs request`: approvals and checks on files."""

from __future__ import annotations

import argparse

from securefiles.cli.context import add_output, client_for, wants_json
from securefiles.cli.output import json_object, print_json, print_table
from securefiles.cli.parser import Subcommands
from securefiles.client.api import SecureFilesClient
from securefiles.client.job_identity import job_claims
from securefiles.client.types import Check
from securefiles.common.resource_names import ANY_PIPELINE, run_name


def _summary(c: Check) -> str:
    if c.branch_control is not None:
        return ", ".join(c.branch_control.allowed_refs)
    if c.approval is not None:
        return f"{c.approval.min_approvals} of {', '.join(c.approval.approvers)}" + (
            " (requester may approve)" if c.approval.allow_requester else "")
    if c.business_hours is not None:
        b = c.business_hours
        return f"{','.join(b.days)} {b.start_time}-{b.end_time} {b.time_zone}"
    return "one run at a time"


def checks_add(args: argparse.Namespace) -> int:
    with client_for(args) as client:
        created = client.checks.add(
            args.file, args.type, allowed=args.allowed or "", approvers=args.approver or [],
            min_approvals=args.min_approvals, allow_requester=args.allow_requester,
            instructions=args.instructions or "", timezone=args.timezone or "", days=args.days or "",
            start=args.start or "", end=args.end or "", timeout=args.timeout or "")
    if wants_json(args):
        print_json(json_object(created))
    else:
        print(f"added {created.type} check {created.check_id} to {args.file}: {_summary(created)}")
    return 0


def checks_list(args: argparse.Namespace) -> int:
    with client_for(args) as client:
        listed = client.checks.list(args.file)
    if wants_json(args):
        print_json(json_object(listed))
    else:
        print_table(("ID", "TYPE", "SETTINGS", "TIMEOUT"),
                    [(c.check_id, c.type, _summary(c), f"{int(c.timeout.total_seconds()) if c.timeout else 0}s")
                     for c in listed])
    return 0


def checks_delete(args: argparse.Namespace) -> int:
    with client_for(args) as client:
        client.checks.delete(args.file, args.check_id)
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
        suites = client.checks.request(run, args.files)
    if wants_json(args):
        print_json(json_object(suites))
    else:
        for file, suite in zip(args.files, suites, strict=True):
            waits = "; ".join(f"{r.type} {r.state_word.lower()}: {r.reason}"
                              for r in suite.results) or "no checks"
            print(f"{file}: {suite.state_word} ({waits})")
    return 0


def approvals_list(args: argparse.Namespace) -> int:
    with client_for(args) as client:
        approvals = client.checks.approvals(args.pending)
    if wants_json(args):
        print_json(json_object(approvals))
    else:
        print_table(("ID", "STATE", "RUN", "FILE", "APPROVERS", "REQUESTED BY"),
                    [(a.approval_id, a.state_word, a.run, a.resource, ", ".join(a.approvers), a.requested_by)
                     for a in approvals])
    return 0


def _decide(args: argparse.Namespace, approve: bool) -> int:
    with client_for(args) as client:
        decided = client.checks.decide(args.id, approve, args.comment or "")
    if wants_json(args):
        print_json(json_object(decided))
    else:
        print(f"approval {decided.approval_id} is {decided.state_word.lower()}")
    return 0


def approvals_approve(args: argparse.Namespace) -> int:
    return _decide(args, True)


def approvals_reject(args: argparse.Namespace) -> int:
    return _decide(args, False)


def groups_list(args: argparse.Namespace) -> int:
    with client_for(args) as client:
        groups = client.checks.groups()
    if wants_json(args):
        print_json(json_object(groups))
    else:
        print_table(("GROUP", "MEMBERS"), [(g.name, ", ".join(g.members)) for g in groups])
    return 0


def groups_member(args: argparse.Namespace) -> int:
    with client_for(args) as client:
        group = client.checks.set_group_member(args.group, args.principal, args.action == "add-member")
    if wants_json(args):
        print_json(json_object(group))
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
