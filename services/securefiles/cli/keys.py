"""`securefiles keys …`: per-region key versions, rotation, rewrap, disable/enable/destroy."""

from __future__ import annotations

import argparse
from typing import Any

from securefiles.cli.confirm import confirm_typed
from securefiles.cli.context import add_output, client_for, wants_json
from securefiles.cli.output import json_object, print_json, print_table, when
from securefiles.cli.parser import Subcommands
from securefiles.client.types import KeyVersion
from securefiles.common.errors import FailedPrecondition


def _version_object(v: KeyVersion, data_keys: int) -> dict[str, Any]:
    """A key version and, under KeyVersionCount's JSON name `dataKeys`, the data keys it wraps."""
    obj: dict[str, Any] = json_object(v)
    obj["dataKeys"] = data_keys
    return obj


def keys_list(args: argparse.Namespace) -> int:
    with client_for(args) as client:
        region, versions = client.keys.versions(args.region)
        counts = client.keys.data_keys(region)
    if wants_json(args):
        print_json([_version_object(v, counts.get(v.name, 0)) for v in versions])
    else:
        print(f"region {region}")
        print_table(("VERSION", "STATE", "DATA KEYS", "CREATED", "CREATED BY", "REASON"),
                    [(v.version, v.state_word, counts.get(v.name, 0), when(v.create_time), v.created_by, v.reason)
                     for v in versions])
    return 0


def keys_rotate(args: argparse.Namespace) -> int:
    with client_for(args) as client:
        v = client.keys.rotate(args.region, args.reason or "")
    if wants_json(args):
        print_json(json_object(v))
    else:
        print(f"{v.name} is now primary; run `securefiles keys rewrap` to move data keys to it")
    return 0


def keys_rewrap(args: argparse.Namespace) -> int:
    with client_for(args) as client:
        report = client.keys.rewrap(args.region)
    before = {c.key_version: c.data_keys for c in report.before}
    after = {c.key_version: c.data_keys for c in report.after}
    if wants_json(args):
        print_json(json_object(report))
    else:
        print(f"rewrapped {report.rewrapped} data key(s), {report.failed} failed")
        print_table(("KEY VERSION", "BEFORE", "AFTER"),
                    [(name, before.get(name, 0), after.get(name, 0)) for name in sorted(set(before) | set(after))])
    return 0 if report.failed == 0 else 1


def _change_state(args: argparse.Namespace, action: str) -> int:
    with client_for(args) as client:
        v = client.keys.set_state(args.version, action, args.region)
    if wants_json(args):
        print_json(json_object(v))
    else:
        print(f"{v.name} is {v.state_word}")
    return 0


def keys_disable(args: argparse.Namespace) -> int:
    return _change_state(args, "disable")


def keys_enable(args: argparse.Namespace) -> int:
    return _change_state(args, "enable")


def keys_destroy(args: argparse.Namespace) -> int:
    """Refuse while data keys still use the version; with --force, make the operator type its name."""
    with client_for(args) as client:
        region, _ = client.keys.versions(args.region)
        name = client.keys.version_name(region, args.version)
        in_use = client.keys.data_keys(region).get(name, 0)
    if in_use and not args.force:
        raise FailedPrecondition(
            f"{in_use} data key(s) still use {name}; run `securefiles keys rewrap` first, or pass --force to make "
            "those files permanently unreadable", reason="KEY_VERSION_IN_USE")
    if in_use:
        confirm_typed(name, f"Destroying {name} makes {in_use} file version(s) permanently unreadable.")
    args.version = name
    return _change_state(args, "destroy")


def register(subparsers: Subcommands) -> None:
    actions = subparsers.add_parser("keys", help="per-region keys (operators)").add_subparsers(
        dest="action", required=True)

    def command(name: str, handler: object, help_text: str, version: bool = False) -> argparse.ArgumentParser:
        parser = actions.add_parser(name, help=help_text)
        if version:
            parser.add_argument("version", help="version number or regions/R/keyVersions/N")
        parser.add_argument("--region", help="default: the only configured region")
        add_output(parser)
        parser.set_defaults(handler=handler)
        return parser

    command("list", keys_list, "list key versions with the data keys each wraps")
    command("rotate", keys_rotate, "create a new primary key version").add_argument("--reason")
    command("rewrap", keys_rewrap, "re-wrap every data key under the primary version")
    command("disable", keys_disable, "make a version unusable (reversible)", version=True)
    command("enable", keys_enable, "make a disabled version usable again", version=True)
    command("destroy", keys_destroy, "erase a version's key material for good", version=True).add_argument(
        "--force", action="store_true", help="destroy even while data keys use it (asks you to type its name)")
