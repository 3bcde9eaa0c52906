"""`securefiles files …`: manage secure files (people never download contents)."""

from __future__ import annotations

import argparse
from pathlib import Path

from securefiles.cli.context import add_output, client_for, wants_json
from securefiles.cli.output import file_object, human_size, print_json, print_table, rfc3339
from securefiles.common.errors import InvalidArgument


def parse_properties(items: list[str] | None) -> dict[str, str]:
    properties: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InvalidArgument(f"property {item!r} must look like KEY=VALUE", reason="INVALID_PROPERTY")
        properties[key] = value
    return properties


def _show(args: argparse.Namespace, f: object) -> None:
    obj = file_object(f)  # type: ignore[arg-type]
    if wants_json(args):
        print_json(obj)
        return
    for key in ("name", "id", "size", "sha256", "version", "key_version", "created_by", "create_time", "update_time"):
        print(f"{key + ':':<13} {obj[key]}")
    for key, value in sorted(obj["properties"].items()):
        print(f"{'property:':<13} {key}={value}")


def upload(args: argparse.Namespace) -> int:
    path = Path(args.path)
    if not path.is_file():
        raise InvalidArgument(f"{path} is not a readable file", reason="INVALID_SOURCE")
    with client_for(args) as client:
        created = client.upload_file(path, name=args.name, properties=parse_properties(args.property))
        if args.authorize_all_pipelines:
            client.set_pipeline_permission(created.secure_file_id, None, True)
    _show(args, created)
    return 0


def list_files(args: argparse.Namespace) -> int:
    with client_for(args) as client:
        files = list(client.list_files(args.name_pattern or ""))
    if wants_json(args):
        print_json([file_object(f) for f in files])
    else:
        print_table(("NAME", "SIZE", "SHA256", "UPDATED"),
                    [(f.display_name, human_size(f.size_bytes), f.sha256[:12], rfc3339(f.update_time)) for f in files])
    return 0


def show(args: argparse.Namespace) -> int:
    with client_for(args) as client:
        _show(args, client.get_file(args.file))
    return 0


def update(args: argparse.Namespace) -> int:
    properties = parse_properties(args.property) if args.property is not None else None
    with client_for(args) as client:
        _show(args, client.update_file(args.file, rename=args.rename, properties=properties))
    return 0


def delete(args: argparse.Namespace) -> int:
    with client_for(args) as client:
        client.delete_file(args.file)
    if wants_json(args):
        print_json({"deleted": args.file})
    else:
        print(f"deleted {args.file}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    files = subparsers.add_parser("files", help="upload, list, inspect, change and delete secure files")
    actions = files.add_subparsers(dest="action", required=True)
    up = actions.add_parser("upload", help="upload a new secure file")
    up.add_argument("path")
    up.add_argument("--name", help="display name (default: the file's name)")
    up.add_argument("--property", action="append", metavar="KEY=VALUE")
    up.add_argument("--authorize-all-pipelines", action="store_true", help="open access for every pipeline")
    add_output(up)
    up.set_defaults(handler=upload)
    ls = actions.add_parser("list", help="list secure files")
    ls.add_argument("--name-pattern", help="glob over names, e.g. 'ios-*'")
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
    add_output(upd)
    upd.set_defaults(handler=update)
    rm = actions.add_parser("delete", help="delete a file (crypto-shredded)")
    rm.add_argument("file")
    add_output(rm)
    rm.set_defaults(handler=delete)
