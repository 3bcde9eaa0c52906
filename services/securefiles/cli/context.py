"""What every client command needs: a client for the chosen project and the output mode."""

from __future__ import annotations

import argparse

from securefiles.client.api import SecureFilesClient
from securefiles.common.resource_names import validate_project_id


def client_for(args: argparse.Namespace) -> SecureFilesClient:
    client = SecureFilesClient.from_environment()
    if getattr(args, "project", None):
        client.project = args.project
    validate_project_id(client.project)
    return client


def wants_json(args: argparse.Namespace) -> bool:
    return getattr(args, "output", "table") == "json"


def add_output(parser: argparse.ArgumentParser) -> None:
    # SUPPRESS: `--output json` before the command stays unless given again after it.
    parser.add_argument("--output", "-o", choices=("table", "json"), default=argparse.SUPPRESS,
                        help="table (default) or json")
