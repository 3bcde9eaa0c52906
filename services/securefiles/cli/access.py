"""`securefiles access …`: break-glass, time-bound diagnostic access for operators."""

from __future__ import annotations

import argparse

from securefiles.cli.context import add_output, client_for, wants_json
from securefiles.cli.output import json_object, print_json, print_table, when
from securefiles.cli.parser import Subcommands
from securefiles.client.types import AccessRequest
from securefiles.common.durations import parse_duration
from securefiles.common.errors import InvalidArgument


def _id(r: AccessRequest) -> str:
    return r.name.rsplit("/", 1)[1]


def _project(r: AccessRequest) -> str:
    return r.project.split("/", 1)[1]


def _show(args: argparse.Namespace, request: AccessRequest) -> int:
    if wants_json(args):
        print_json(json_object(request))
    else:
        until = f" until {when(request.expire_time)}" if request.state == "STATE_GRANTED" else ""
        print(f"access request {_id(request)} for {_project(request)} by {request.requester}: "
              f"{request.state_word}{until}")
    return 0


def access_request(args: argparse.Namespace) -> int:
    try:
        ttl = parse_duration(args.ttl) if args.ttl else None
    except ValueError as error:
        raise InvalidArgument(str(error), reason="INVALID_DURATION") from None
    with client_for(args) as client:
        return _show(args, client.access.request(args.project or client.project, args.reason, ttl))


def access_approve(args: argparse.Namespace) -> int:
    with client_for(args) as client:
        return _show(args, client.access.approve(args.id))


def access_revoke(args: argparse.Namespace) -> int:
    with client_for(args) as client:
        return _show(args, client.access.revoke(args.id))


def access_list(args: argparse.Namespace) -> int:
    with client_for(args) as client:
        requests = client.access.list()
    if wants_json(args):
        print_json(json_object(requests))
    else:
        print_table(("ID", "PROJECT", "REQUESTER", "STATE", "APPROVER", "EXPIRES", "REASON"),
                    [(_id(r), _project(r), r.requester, r.state_word, r.approver, when(r.expire_time), r.reason)
                     for r in requests])
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
