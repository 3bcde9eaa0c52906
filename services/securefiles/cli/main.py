"""Entry point of the `securefiles` command: parse, dispatch, map errors to exit codes."""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

from securefiles import __version__
from securefiles.cli import access, admin, agent, audit, backup, completion, files, keys, login, secrets_init, trusts
from securefiles.cli.ci_commands import log_line
from securefiles.cli.context import add_output, client_for, wants_json
from securefiles.cli.output import print_json, print_table, terminal_safe
from securefiles.cli.parser import OUTPUT_CHOICES, CommandParser, finish
from securefiles.common.errors import InvalidArgument, SecureFilesError

EXIT_OK, EXIT_ERROR, EXIT_INVALID, EXIT_DENIED, EXIT_PENDING, EXIT_NOT_FOUND, EXIT_EXISTS = 0, 1, 2, 3, 4, 5, 6


def exit_code_for(error: SecureFilesError) -> int:
    """0 ok · 2 invalid input · 3 unauthenticated/denied · 4 checks pending · 5 not found · 6 exists · 1 else."""
    if error.reason == "CHECKS_PENDING":
        return EXIT_PENDING
    return {
        "INVALID_ARGUMENT": EXIT_INVALID, "UNAUTHENTICATED": EXIT_DENIED, "PERMISSION_DENIED": EXIT_DENIED,
        "NOT_FOUND": EXIT_NOT_FOUND, "ALREADY_EXISTS": EXIT_EXISTS,
    }.get(error.code, EXIT_ERROR)


START_HINT = "are the services running? Start them with `make run` (or `securefiles up`), then `securefiles status`"
PEER_HINT = "a service it needs is down: see `securefiles status` and the services' logs"


def error_line(error: SecureFilesError) -> str:
    """The one line a failed command prints: the message, a hint where one helps, the reason."""
    message = terminal_safe(error.message)
    if error.code in ("UNAVAILABLE", "DEADLINE_EXCEEDED"):
        # No answer at all (the CLI's own reason), or a service that answered for a peer.
        hint = START_HINT if error.reason in ("UNAVAILABLE", "DEADLINE_EXCEEDED") else PEER_HINT
        message = f"{message}; {hint}"
    return f"securefiles: error: {message} [{error.reason}]"


def up(args: argparse.Namespace) -> int:
    from securefiles.cli.up import UpOptions, run_up

    regions = tuple(r.strip() for r in args.regions.split(",") if r.strip())
    if not regions:
        raise InvalidArgument("give at least one region", reason="INVALID_ARGUMENT")
    return run_up(UpOptions(
        state_dir=Path(args.state_dir).absolute(), port_base=args.port_base, regions=regions,
        reflection=args.reflection, write_default_config=not args.no_default_config,
        database_url=args.database_url or "", database_prefix=args.database_prefix, blob_store=args.blob_store,
    ))


def serve(args: argparse.Namespace) -> int:
    from securefiles.common.allocator import keep_large_buffers
    from securefiles.common.core_dumps import refuse_core_dumps

    refuse_core_dumps()  # freed content buffers stay in the heap (below): never in a core file
    keep_large_buffers()  # before the service allocates its first content buffer
    if args.service == "storage":
        from securefiles.storage.app import main as service_main
    elif args.service == "kms":
        from securefiles.kms.app import main as service_main
    else:
        from securefiles.authz.app import main as service_main
    service_main()
    return 0


def web(args: argparse.Namespace) -> int:
    from securefiles.web.app import main as web_main

    web_main()
    return 0


def db_upgrade(args: argparse.Namespace) -> int:
    import os

    from securefiles.common.migrations import upgrade

    url = args.database_url or os.environ.get("SECUREFILES_DATABASE_URL")
    if not url:
        raise InvalidArgument("give --database-url or SECUREFILES_DATABASE_URL", reason="INVALID_ARGUMENT")
    upgrade(args.service, url, args.revision)
    print(f"{args.service}: database at revision {args.revision}")
    return 0


def status(args: argparse.Namespace) -> int:
    with client_for(args) as client:
        health = client.health()
    if wants_json(args):
        print_json(health)
    else:
        print_table(("SERVICE", "STATUS"), sorted(health.items()))
        if "UNREACHABLE" in health.values():
            print(f"securefiles: {START_HINT}", file=sys.stderr)
    return 0 if health and all(s == "SERVING" for s in health.values()) else 1


DESCRIPTION = """Secure files for CI/CD pipelines: people upload and manage files; pipeline jobs download them.

Start here: `make run` (or `securefiles up`) in one terminal, then `securefiles status`.
Every client command takes --project and --output json anywhere on its line;
`securefiles COMMAND --help` shows an example, the exit codes and the environment it reads."""


def build_parser() -> argparse.ArgumentParser:
    parser = CommandParser(prog="securefiles", description=DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"securefiles {__version__}")
    parser.add_argument("--project", help="project to act on (default: the client config's, else 'default')")
    parser.add_argument("--output", "-o", choices=OUTPUT_CHOICES, default="table", help="table (default) or json")
    sub = parser.add_subparsers(dest="command", title="commands")

    p = sub.add_parser("up", help="run every service locally on embedded defaults")
    p.add_argument("--state-dir", default=".securefiles")
    p.add_argument("--port-base", type=int, default=7700, help="first port (0: any free ports)")
    p.add_argument("--regions", default="eu", help="comma-separated regions, one kms each")
    p.add_argument("--reflection", action="store_true", help="serve gRPC reflection")
    p.add_argument("--no-default-config", action="store_true", help="do not point the default client config here")
    p.add_argument("--database-url", help="PostgreSQL server (postgresql+psycopg://user:pw@host/); default SQLite")
    p.add_argument("--database-prefix", default="securefiles_", help="per-service database names start with this")
    p.add_argument("--blob-store", choices=("directory", "db", "s3"), default="directory",
                   help="s3: the bucket and endpoint from SECUREFILES_S3_* (README, Settings)")
    p.set_defaults(handler=up)

    p = sub.add_parser("serve", help="run one service (configured by SECUREFILES_* variables)")
    p.add_argument("service", choices=("storage", "kms", "authz"))
    p.set_defaults(handler=serve)

    p = sub.add_parser("web", help="serve the web console for people (configured by SECUREFILES_* variables)")
    p.set_defaults(handler=web)

    p = sub.add_parser("db", help="database migrations").add_subparsers(dest="action", required=True).add_parser(
        "upgrade", help="apply a service's migrations (services also do this at start)")
    p.add_argument("service", choices=("storage", "kms", "authz"))
    p.add_argument("--database-url", help="default: SECUREFILES_DATABASE_URL")
    p.add_argument("--revision", default="head")
    p.set_defaults(handler=db_upgrade)

    p = sub.add_parser("status", help="health of every configured service")
    add_output(p)
    p.set_defaults(handler=status)

    files.register(sub)
    admin.register(sub)
    keys.register(sub)
    audit.register(sub)
    access.register(sub)
    agent.register(sub)
    trusts.register(sub)
    login.register(sub)
    secrets_init.register(sub)
    backup.register(sub)
    completion.register(sub, parser)
    finish(parser)
    return parser


def main(argv: list[str] | None = None) -> None:
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # `securefiles files list | head` ends quietly
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code = args.handler(args)
    except SecureFilesError as error:
        # Messages carry names from strangers: never a CI command or a second line (ci_commands).
        print(log_line(error_line(error)), file=sys.stderr)
        code = exit_code_for(error)
    except KeyboardInterrupt:
        print("securefiles: interrupted", file=sys.stderr)
        code = 130
    sys.exit(code)
