"""What every client command needs: a client for the chosen project and the output mode."""

from __future__ import annotations

import argparse

from securefiles.client.api import SecureFilesClient


def client_for(args: argparse.Namespace) -> SecureFilesClient:
    client = SecureFilesClient.from_environment()
    if getattr(args, "project", None):
        client.project = args.project
    return client


def wants_json(args: argparse.Namespace) -> bool:
    return getattr(args, "output", "table") == "json"


def add_output(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--output", "-o", choices=("table", "json"), default="table")
