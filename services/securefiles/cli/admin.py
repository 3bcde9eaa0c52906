"""Projects, roles, pipelines, runs, tokens and keys."""

from __future__ import annotations

import argparse
from typing import Any

from securefiles.cli import checks
from securefiles.cli.context import add_output, client_for, wants_json
from securefiles.cli.output import json_object, print_json, print_table, when
from securefiles.cli.parser import Subcommands
from securefiles.common.durations import parse_duration
from securefiles.common.errors import InvalidArgument
from securefiles.common.resource_names import ANY_PIPELINE, run_name


def _seconds(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        return parse_duration(text)
    except ValueError as error:
        raise InvalidArgument(str(error), reason="INVALID_DURATION") from None


def _emit(args: argparse.Namespace, obj: dict[str, Any], line: str) -> int:
    if wants_json(args):
        print_json(obj)
    else:
        print(line)
    return 0


def projects_create(args: argparse.Namespace) -> int:
    with client_for(args) as client:
        p = client.projects.create(args.name, args.region or "")
    return _emit(args, json_object(p), f"created {p.name} in {p.region}")


def projects_list(args: argparse.Namespace) -> int:
    with client_for(args) as client:
        projects = client.projects.list()
    if wants_json(args):
        print_json(json_object(projects))
    else:
        print_table(("PROJECT", "REGION"), [(p.name.split("/", 1)[1], p.region) for p in projects])
    return 0


def roles_assign(args: argparse.Namespace) -> int:
    with client_for(args) as client:
        a = client.roles.assign(args.principal, args.role, args.file, args.organization)
    return _emit(args, json_object(a), f"{a.principal} is {a.role} on {a.scope}")


def roles_list(args: argparse.Namespace) -> int:
    with client_for(args) as client:
        listed = client.roles.list(args.file, args.organization)
    if wants_json(args):
        print_json(json_object(listed))
        return 0
    print_table(("PRINCIPAL", "ROLE"), [(r.principal, r.role) for r in listed.role_assignments])
    if args.file:
        print(f"library roles {'apply' if listed.inherit_from_library else 'do not apply'} to {args.file}")
    return 0


def roles_delete(args: argparse.Namespace) -> int:
    with client_for(args) as client:
        scope = client.roles.delete(args.principal, args.file, args.organization)
    shown = "the organization" if args.organization else (args.file or f"the library of {client.project}")
    return _emit(args, {"scope": scope, "principal": args.principal, "deleted": True},
                 f"{args.principal} has no role on {shown} any more")


def pipelines_create(args: argparse.Namespace) -> int:
    with client_for(args) as client:
        p = client.pipelines.create(args.name)
    return _emit(args, json_object(p), f"created pipeline {p.display_name} (id {p.pipeline_id})")


def pipelines_list(args: argparse.Namespace) -> int:
    with client_for(args) as client:
        pipelines = client.pipelines.list()
    if wants_json(args):
        print_json(json_object(pipelines))
    else:
        print_table(("ID", "NAME"), [(p.pipeline_id, p.display_name) for p in pipelines])
    return 0


def _set_permission(args: argparse.Namespace, authorized: bool) -> int:
    if bool(args.pipeline) == bool(args.all):
        raise InvalidArgument("give a PIPELINE or --all", reason="INVALID_ARGUMENT")
    with client_for(args) as client:
        perms = client.pipelines.set_permission(args.file, None if args.all else args.pipeline, authorized)
    names = "all pipelines" if perms.all_pipelines else (", ".join(p.display_name for p in perms.pipelines) or "none")
    return _emit(args, json_object(perms), f"{args.file}: authorized for {names}")


def pipelines_delete(args: argparse.Namespace) -> int:
    with client_for(args) as client:
        client.pipelines.delete(args.pipeline)
    return _emit(args, {"deleted": args.pipeline}, f"deleted pipeline {args.pipeline} (and its permissions on files)")


def pipelines_authorize(args: argparse.Namespace) -> int:
    return _set_permission(args, True)


def pipelines_revoke(args: argparse.Namespace) -> int:
    return _set_permission(args, False)


def runs_start(args: argparse.Namespace) -> int:
    with client_for(args) as client:
        started = client.pipelines.start_run(args.pipeline, args.branch, args.requested_by or "",
                                             _seconds(args.ttl))
    if wants_json(args):
        print_json(json_object(started))
    else:
        print(f"started {started.run.name}\nexport SECUREFILES_JOB_TOKEN={started.job_token}")
    return 0


def runs_complete(args: argparse.Namespace) -> int:
    with client_for(args) as client:
        # A bare run id is enough: runs are numbered per project ("-" = any pipeline).
        name = run_name(client.project, ANY_PIPELINE, args.run) if args.run.isdigit() else args.run
        run = client.pipelines.complete_run(name)
    return _emit(args, json_object(run), f"completed {run.name}")


def runs_list(args: argparse.Namespace) -> int:
    with client_for(args) as client:
        runs = list(client.pipelines.runs(args.pipeline, args.running))
        names = {p.name: p.display_name for p in client.pipelines.list()} if not wants_json(args) else {}
    if wants_json(args):
        print_json(json_object(runs))
    else:
        print_table(("ID", "PIPELINE", "BRANCH", "REQUESTED BY", "STATE", "STARTED", "EXPIRES"),
                    [(r.run_id, names.get(r.pipeline, r.pipeline), r.branch, r.requested_by, r.state_word,
                      when(r.create_time), when(r.expire_time)) for r in runs])
    return 0


def tokens_issue(args: argparse.Namespace) -> int:
    with client_for(args) as client:
        issued = client.tokens.issue(args.principal, _seconds(args.ttl))
    return _emit(args, json_object(issued), issued.token)


def tokens_list(args: argparse.Namespace) -> int:
    with client_for(args) as client:
        tokens = client.tokens.list(args.subject or "", args.all)
    if wants_json(args):
        print_json(json_object(tokens))
    else:
        print_table(("ID", "SUBJECT", "ISSUED BY", "EXPIRES", "REVOKED"),
                    [(t.token_id, t.subject, t.issued_by, when(t.expire_time), when(t.revoke_time) or "")
                     for t in tokens])
    return 0


def tokens_revoke(args: argparse.Namespace) -> int:
    with client_for(args) as client:
        revoked = client.tokens.revoke(args.id)
    return _emit(args, json_object(revoked),
                 f"revoked token {revoked.token_id} of {revoked.subject} (refused everywhere within minutes)")


def register(subparsers: Subcommands) -> None:
    def group(name: str, help_text: str) -> Subcommands:
        return subparsers.add_parser(name, help=help_text).add_subparsers(dest="action", required=True)

    def command(actions: Subcommands, name: str, handler: object, help_text: str
                ) -> argparse.ArgumentParser:
        parser = actions.add_parser(name, help=help_text)
        add_output(parser)
        parser.set_defaults(handler=handler)
        return parser

    projects = group("projects", "projects and their regions")
    p = command(projects, "create", projects_create, "create a project homed in a region")
    p.add_argument("name")
    p.add_argument("--region")
    command(projects, "list", projects_list, "list projects")

    roles = group("roles", "security roles")
    p = command(roles, "assign", roles_assign, "give a principal a role on the library or a file")
    p.add_argument("--principal", required=True, help="user:NAME or service:NAME (a service account)")
    p.add_argument("--role", required=True, help="reader|user|creator|administrator|operator|orchestrator "
                   "(orchestrator: may start runs by hand, asserting branch and requester)")
    p.add_argument("--file", help="a file's name (default: the whole library)")
    p.add_argument("--organization", action="store_true",
                   help="on the whole organization (administrator, operator, orchestrator)")
    for name, handler, text in (("list", roles_list, "list the roles given on the library, a file or the organization"),
                                ("delete", roles_delete, "take away a principal's roles on the library, a file "
                                                         "or the organization")):
        p = command(roles, name, handler, text)
        if name == "delete":
            p.add_argument("--principal", required=True, help="user:NAME")
        where = p.add_mutually_exclusive_group()
        where.add_argument("--file", help="a file's name (default: the whole library)")
        where.add_argument("--organization", action="store_true", help="organization roles (operator, administrator)")

    pipelines = group("pipelines", "pipelines and their permissions on files")
    p = command(pipelines, "create", pipelines_create, "create a pipeline")
    p.add_argument("name")
    command(pipelines, "list", pipelines_list, "list pipelines")
    for name, handler, text in (("authorize", pipelines_authorize, "let a pipeline (or all) use a file"),
                                ("revoke", pipelines_revoke, "stop a pipeline (or open access) using a file")):
        p = command(pipelines, name, handler, text)
        p.add_argument("file")
        p.add_argument("pipeline", nargs="?")
        p.add_argument("--all", action="store_true", help="open access: every pipeline of the project")
    p = command(pipelines, "delete", pipelines_delete, "delete a pipeline and its permissions (no run may be running)")
    p.add_argument("pipeline", help="name or id")

    runs = group("runs", "pipeline runs (the CI orchestrator's side)")
    checks.register(subparsers, runs)
    p = command(runs, "start", runs_start, "start a run by hand and print its job token (orchestrator role; CI "
                "systems with OIDC use trusts instead)")
    p.add_argument("pipeline")
    p.add_argument("--branch", required=True, help="e.g. refs/heads/main")
    p.add_argument("--requested-by", help="user:NAME the run is for (default: you)")
    p.add_argument("--ttl", help="job token lifetime, e.g. 2h (default 6h, at most 31d)")
    p = command(runs, "complete", runs_complete, "complete a run: its job token stops working")
    p.add_argument("run", help="run id, or projects/P/pipelines/ID/runs/N")
    p = command(runs, "list", runs_list, "list runs, newest first")
    p.add_argument("--pipeline", help="only this pipeline's runs (name or id)")
    p.add_argument("--running", action="store_true", help="only runs whose job token still works")

    tokens = group("tokens", "service account tokens (people sign in with `securefiles login`)")
    p = command(tokens, "issue", tokens_issue, "issue a token for a service account (or refresh your own)")
    p.add_argument("principal", help="service:NAME (user:NAME only in the development mode of `securefiles up`)")
    p.add_argument("--ttl", help="lifetime (default 8h, at most 30d)")
    p = command(tokens, "list", tokens_list, "list live tokens you hold or issued (administrators: all)")
    p.add_argument("--subject", help="only tokens of user:NAME or service:NAME")
    p.add_argument("--all", action="store_true", help="also expired and revoked ones")
    p = command(tokens, "revoke", tokens_revoke, "revoke a token: every service refuses it")
    p.add_argument("id", help="the token's id (tokens list), or tokens/ID")

