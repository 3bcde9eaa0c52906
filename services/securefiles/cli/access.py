"""`securefiles access …`: break-glass, time-bound diagnostic access for operators."""

from __future__ import annotations

import argparse
from typing import Any

from securefiles.authz.v1 import authz_pb2
from securefiles.cli.context import add_output, client_for, wants_json
from securefiles.cli.output import print_json, print_table, rfc3339
from securefiles.cli.parser import Subcommands
from securefiles.common.durations import parse_duration
from securefiles.common.errors import InvalidArgument


def access_object(r: authz_pb2.AccessRequest) -> dict[str, Any]:
    return {"id": int(r.name.rsplit("/", 1)[1]), "project": r.project.split("/", 1)[1], "requester": r.requester,
            "reason": r.reason, "ttl_seconds": r.ttl.seconds, "state": authz_pb2.AccessRequest.State.Name(r.state),
            "approver": r.approver, "create_time": rfc3339(r.create_time), "expire_time": rfc3339(r.expire_time),
            "revoked_by": r.revoked_by}


def _show(args: argparse.Namespace, request: authz_pb2.AccessRequest) -> int:
    obj = access_object(request)
    if wants_json(args):
        print_json(obj)
    else:
        until = f" until {obj['expire_time']}" if obj["state"] == "GRANTED" else ""
        print(f"access request {obj['id']} for {obj['project']} by {obj['requester']}: {obj['state']}{until}")
    return 0


def access_request(args: argparse.Namespace) -> int:
    try:
        ttl = parse_duration(args.ttl) if args.ttl else None
    except ValueError as error:
        raise InvalidArgument(str(error), reason="INVALID_DURATION") from None
    with client_for(args) as client:
        return _show(args, client.request_access(args.project or client.project, args.reason, ttl))


def access_approve(args: argparse.Namespace) -> int:
    with client_for(args) as client:
        return _show(args, client.approve_access(args.id))


def access_revoke(args: argparse.Namespace) -> int:
    with client_for(args) as client:
        return _show(args, client.revoke_access(args.id))


def access_list(args: argparse.Namespace) -> int:
    with client_for(args) as client:
        objects = [access_object(r) for r in client.list_access_requests()]
    if wants_json(args):
        print_json(objects)
    else:
        print_table(("ID", "PROJECT", "REQUESTER", "STATE", "APPROVER", "EXPIRES", "REASON"),
                    [(o["id"], o["project"], o["requester"], o["state"], o["approver"], o["expire_time"], o["reason"])
                     for o in objects])
    return 0


def register(subparsers: Subcommands) -> None:
    actions = subparsers.add_parser("access", help="break-glass access for operators").add_subparsers(
        dest="action", required=True)
    req = actions.add_parser("request", help="ask for time-bound access to a project's files")
    req.add_argument("--reason", required=True)
    req.add_argument("--ttl", help="lifetime once approved (default 1h, at most 24h)")
    add_output(req)
    req.set_defaults(handler=access_request)
    for name, handler, text in (("approve", access_approve, "grant another operator's request"),
                                ("revoke", access_revoke, "end a request or grant now")):
        p = actions.add_parser(name, help=text)
        p.add_argument("id", type=int)
        add_output(p)
        p.set_defaults(handler=handler)
    ls = actions.add_parser("list", help="list break-glass requests")
    add_output(ls)
    ls.set_defaults(handler=access_list)
