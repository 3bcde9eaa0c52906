"""`securefiles files …`: manage secure files (people never download contents)."""

from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path

from securefiles.cli.confirm import confirm_typed, require_yes_or_terminal
from securefiles.cli.context import add_output, client_for, wants_json
from securefiles.cli.output import file_object, human_size, json_object, print_json, print_table, terminal_safe, when
from securefiles.cli.parser import Subcommands
from securefiles.client.types import SecureFile
from securefiles.common.durations import parse_duration
from securefiles.common.errors import InvalidArgument, PermissionDenied


def parse_properties(items: list[str] | None) -> dict[str, str]:
    properties: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InvalidArgument(f"property {item!r} must look like KEY=VALUE", reason="INVALID_PROPERTY")
        properties[key] = value
    return properties


def _show(args: argparse.Namespace, f: SecureFile) -> None:
    obj = file_object(f)
    if wants_json(args):
        print_json(obj)
        return
    shown = {"name": f.display_name, "id": f.secure_file_id, "size": f.size_bytes, "sha256": f.sha256,
             "version": f.version, "key_version": f.key_version, "created_by": f.created_by,
             "create_time": when(f.create_time), "update_time": when(f.update_time), "expires_at": when(f.expire_time),
             "etag": f.etag}
    for key, value in shown.items():
        print(terminal_safe(f"{key + ':':<13} {value if value is not None else '-'}"))
    for key, value in sorted(obj["properties"].items()):
        print(terminal_safe(f"{'property:':<13} {key}={value}"))
    print(f"{'metadata:':<13} type={f.file_type}")
    for key, value in f.facts.items():
        if not isinstance(value, (list, dict)):
            print(terminal_safe(f"{'metadata:':<13} {key}={value}"))
        elif key == "certificates":
            print(f"{'metadata:':<13} certificates={len(value)}")


def _password(path: str | None) -> bytes | None:
    """A password for parsing only, read from a file (never from the command line)."""
    if not path:
        return None
    try:
        return Path(path).read_bytes().rstrip(b"\r\n")
    except OSError as error:
        raise InvalidArgument(f"cannot read {path}: {error.strerror}", reason="INVALID_ARGUMENT") from None


def _source(path_text: str) -> Path:
    path = Path(path_text)
    if not path.is_file():
        raise InvalidArgument(f"{path} is not a readable file", reason="INVALID_SOURCE")
    return path


def upload(args: argparse.Namespace) -> int:
    path = _source(args.path)
    with client_for(args) as client:
        created = client.files.upload(path, name=args.name, properties=parse_properties(args.property),
                                      parse_password=_password(args.parse_password_file))
        if args.authorize_all_pipelines:
            client.pipelines.set_permission(created.name, None, True)
    _show(args, created)
    return 0


def list_files(args: argparse.Namespace) -> int:
    expires_before = None
    if args.expired:
        expires_before = dt.datetime.now(dt.UTC)
    elif args.expiring_within:
        try:
            expires_before = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=parse_duration(args.expiring_within))
        except ValueError as error:
            raise InvalidArgument(str(error), reason="INVALID_DURATION") from None
    with client_for(args) as client:
        files = list(client.files.list(args.name_pattern or "", expires_before=expires_before,
                                       filter=args.filter or ""))
    if wants_json(args):
        print_json([file_object(f) for f in files])
    else:
        rows = [(f.display_name, human_size(f.size_bytes), f.file_type,
                 when(f.expire_time) or "-", when(f.update_time)) for f in files]
        print_table(("NAME", "SIZE", "TYPE", "EXPIRES", "UPDATED"), rows)
    return 0


def replace(args: argparse.Namespace) -> int:
    path = _source(args.path)
    with client_for(args) as client:
        _show(args, client.files.replace(args.file, path, args.reason or "", _password(args.parse_password_file)))
    return 0


def versions(args: argparse.Namespace) -> int:
    with client_for(args) as client:
        kept = client.files.versions(args.file)
    if wants_json(args):
        print_json(json_object(kept))
    else:
        print_table(("VERSION", "CURRENT", "SIZE", "SHA256", "CREATED", "BY"),
                    [(v.version, "*" if v.current else "", human_size(v.size_bytes), v.sha256[:12],
                      when(v.create_time), v.created_by) for v in kept])
    return 0


def rollback(args: argparse.Namespace) -> int:
    with client_for(args) as client:
        _show(args, client.files.rollback(args.file, args.to_version, args.reason or ""))
    return 0


def _bool(text: str) -> bool:
    if text.lower() in ("true", "yes", "on", "1"):
        return True
    if text.lower() in ("false", "no", "off", "0"):
        return False
    raise InvalidArgument(f"expected true or false, got {text!r}", reason="INVALID_ARGUMENT")


def library(args: argparse.Namespace) -> int:
    with client_for(args) as client:
        if args.action == "update":
            settings = client.files.update_library(
                None if args.allow_replace is None else _bool(args.allow_replace), args.keep_versions)
        else:
            settings = client.files.library()
    if wants_json(args):
        print_json(json_object(settings))
    else:
        print(f"library of {settings.name.split('/')[1]}: replace "
              f"{'allowed' if settings.allow_replace else 'not allowed'}, keeps {settings.keep_versions} version(s)")
    return 0


def show(args: argparse.Namespace) -> int:
    with client_for(args) as client:
        _show(args, client.files.get(args.file))
    return 0


def update(args: argparse.Namespace) -> int:
    properties = parse_properties(args.property) if args.property is not None else None
    with client_for(args) as client:
        _show(args, client.files.update(args.file, rename=args.rename, properties=properties, etag=args.etag or ""))
    return 0


def delete(args: argparse.Namespace) -> int:
    ask = require_yes_or_terminal(args.yes, f"deleting {args.file}")
    with client_for(args) as client:
        if ask:
            found = client.files.get(args.file)  # a typo is told NOT_FOUND before anyone types anything
            confirm_typed(args.file, f"Deleting {found.display_name} ({human_size(found.size_bytes)}, "
                                     f"{found.version} version(s)) crypto-shreds it: its content cannot be "
                                     "recovered, and its roles, pipeline permissions and checks go with it.")
        client.files.delete(args.file)
    if wants_json(args):
        print_json({"deleted": args.file})
    else:
        print(f"deleted {args.file}")
    return 0


def permissions(args: argparse.Namespace) -> int:
    """Who may manage or use a file, and which pipelines may use it."""
    with client_for(args) as client:
        perms = client.pipelines.permissions(args.file)
        listed = client.roles.list(args.file)
        library = None
        if listed.inherit_from_library:
            try:
                library = client.roles.list()
            except PermissionDenied:
                library = None  # a file-only role may not see the library's
    if wants_json(args):
        # PipelinePermissions' fields, then ListRoleAssignmentsResponse's for the file, then the library's
        # role assignments (null when they do not apply or may not be listed).
        print_json({**json_object(perms), **json_object(listed), "libraryRoleAssignments":
                    json_object(library.role_assignments) if library is not None else None})
        return 0
    pipelines = "all pipelines of the project" if perms.all_pipelines else (
        ", ".join(f"{p.display_name} (id {p.pipeline_id})" for p in perms.pipelines) or "none")
    print(f"pipelines that may use {args.file}: {pipelines}")
    rows = [(r.principal, r.role, "this file") for r in listed.role_assignments]
    if library is not None:
        rows += [(r.principal, r.role, "library") for r in library.role_assignments]
    print_table(("PRINCIPAL", "ROLE", "GIVEN ON"), rows)
    if not listed.inherit_from_library:
        print(f"library roles do not apply to {args.file} (securefiles files inheritance {args.file} on)")
    elif library is None:
        print("library roles apply too (you may not list them)")
    return 0


def inheritance(args: argparse.Namespace) -> int:
    with client_for(args) as client:
        changed = client.roles.set_inheritance(args.file, _bool(args.state))
    inherit = changed.inherit_from_library
    if wants_json(args):
        print_json(json_object(changed))
    else:
        print(f"{args.file}: library roles {'apply' if inherit else 'no longer apply'}")
    return 0


def register(subparsers: Subcommands) -> None:
    files = subparsers.add_parser("files", help="upload, list, inspect, change and delete secure files")
    actions = files.add_subparsers(dest="action", required=True)
    up = actions.add_parser("upload", help="upload a new secure file")
    up.add_argument("path")
    up.add_argument("--name", help="display name (default: the file's name)")
    up.add_argument("--property", action="append", metavar="KEY=VALUE")
    up.add_argument("--authorize-all-pipelines", action="store_true", help="open access for every pipeline")
    up.add_argument("--parse-password-file", help="password to read metadata of a .p12/keystore (never stored)")
    add_output(up)
    up.set_defaults(handler=upload)
    ls = actions.add_parser("list", help="list secure files")
    ls.add_argument("--name-pattern", help="glob over names, e.g. 'ios-*'")
    ls.add_argument("--expiring-within", metavar="DURATION", help="only files expiring within, e.g. 30d")
    ls.add_argument("--expired", action="store_true", help="only files already expired")
    ls.add_argument("--filter", metavar="EXPR",
                    help='AIP-160 filter, e.g. \'type = "pkcs12" AND properties.team = "ios"\' '
                         "(display_name, expire_time, type, properties.KEY; terms joined by AND; "
                         "the options above are added to it)")
    add_output(ls)
    ls.set_defaults(handler=list_files)
    sh = actions.add_parser("show", help="show one file's metadata")
    sh.add_argument("file")
    add_output(sh)
    sh.set_defaults(handler=show)
    upd = actions.add_parser("update", help="rename a file or replace its properties")
    upd.add_argument("file")
    upd.add_argument("--rename")
    upd.add_argument("--property", action="append", metavar="KEY=VALUE")
    upd.add_argument("--etag", help="change it only if its etag is still this one (files show --output json)")
    add_output(upd)
    upd.set_defaults(handler=update)
    rm = actions.add_parser("delete", help="delete a file (crypto-shredded; asks you to type its name)")
    rm.add_argument("file")
    rm.add_argument("--yes", "-y", action="store_true", help="do not ask (needed when stdin is not a terminal)")
    add_output(rm)
    rm.set_defaults(handler=delete)
    perm = actions.add_parser("permissions", help="who may manage or use a file, and which pipelines")
    perm.add_argument("file")
    perm.set_defaults(handler=permissions)
    inh = actions.add_parser("inheritance", help="whether the library's roles apply to a file")
    inh.add_argument("file")
    inh.add_argument("state", metavar="on|off", help="on: library roles apply (the default); off: only the file's")
    inh.set_defaults(handler=inheritance)
    rep = actions.add_parser("replace", help="store new content as a new version (if the library allows it)")
    rep.add_argument("file")
    rep.add_argument("path")
    rep.add_argument("--reason", help="why (audited)")
    rep.add_argument("--parse-password-file")
    add_output(rep)
    rep.set_defaults(handler=replace)
    ver = actions.add_parser("versions", help="list the kept versions of a file")
    ver.add_argument("file")
    add_output(ver)
    ver.set_defaults(handler=versions)
    back = actions.add_parser("rollback", help="serve a kept version again")
    back.add_argument("file")
    back.add_argument("--to-version", type=int, required=True)
    back.add_argument("--reason", help="why (audited)")
    add_output(back)
    back.set_defaults(handler=rollback)

    lib = subparsers.add_parser("library", help="library settings of a project").add_subparsers(
        dest="action", required=True)
    show_lib = lib.add_parser("show")
    add_output(show_lib)
    show_lib.set_defaults(handler=library)
    update_lib = lib.add_parser("update", help="e.g. --allow-replace true (Administrators)")
    update_lib.add_argument("--allow-replace", metavar="true|false")
    update_lib.add_argument("--keep-versions", type=int)
    add_output(update_lib)
    update_lib.set_defaults(handler=library)
