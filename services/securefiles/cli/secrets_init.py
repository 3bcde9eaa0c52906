"""`securefiles init-secrets`: certificates and keys for a deployment (compose, or by hand).

Generates once, into one directory: a CA, one certificate per service identity (with the
hostnames the services are reached by), the authz signing key and a root key per region;
writes a client configuration (agents and people need no certificate) with a bootstrap
administrator token, and another with the endpoints as published on the host (compose).
Existing files are kept, so running it again is safe.
"""

from __future__ import annotations

import argparse
import base64
import os
from pathlib import Path

from securefiles.cli.parser import Subcommands
from securefiles.client.config import ClientConfig
from securefiles.common.config import parse_endpoints
from securefiles.common.dev_pki import ensure_ca, ensure_identity
from securefiles.common.files import write_private_file
from securefiles.common.tls import kms_server_name
from securefiles.common.tokens import BOOTSTRAP_ISSUER, TokenIssuer, generate_signing_key_pem, load_signing_key

ADMIN_TOKEN_TTL = 30 * 24 * 3600
HOST_CONFIG = "host-client.toml"  # the endpoints as published on the host (compose)


def init_secrets(directory: Path, regions: list[str], hostnames: list[str]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    ensure_ca(directory)
    for identity, hosts in (("storage", ("storage",)), ("authz", ("authz",))):
        ensure_identity(directory, identity, (*hosts, *hostnames))
    for region in regions:  # one certificate and key per region; clients check the region's name
        ensure_identity(directory, f"kms-{region}", (kms_server_name(region), *hostnames), service="kms")
    # The web console's HTTPS certificate, from a CA of its own (browsers trust it, services never).
    web = directory / "web"
    web.mkdir(exist_ok=True)
    ensure_ca(web, "Securefiles web console CA")
    ensure_identity(web, "web", ("web", *hostnames))
    signing = directory / "authz-signing-key.pem"
    if not signing.exists():
        write_private_file(signing, generate_signing_key_pem())
    for region in regions:
        root = directory / f"kms-{region}-root-key"
        if not root.exists():
            write_private_file(root, base64.b64encode(os.urandom(32)) + b"\n")
    for service in ("storage", "authz", *(f"kms-{r}" for r in regions)):
        audit_key = directory / f"{service}-audit-key"  # keys each service's audit hash chain
        if not audit_key.exists():
            write_private_file(audit_key, base64.b64encode(os.urandom(32)) + b"\n")


def hand_over(directory: Path, owner: int) -> None:
    """Services run as an unprivileged user in their containers: give it the files."""
    for path in [directory, *directory.rglob("*")]:
        os.chown(path, owner, owner)


def write_client_config(directory: Path, storage: str, authz: str, kms: dict[str, str], admin: str,
                        name: str = "client.toml", relative_ca: bool = False) -> Path:
    """A client config with a bootstrap administrator token. `relative_ca`: the CA is named
    relative to the config (`ca.pem` beside it), so the directory works wherever it is mounted."""
    issuer = TokenIssuer(load_signing_key((directory / "authz-signing-key.pem").read_bytes()))
    token, _ = issuer.issue(admin, ADMIN_TOKEN_TTL, kind="user", issued_by=BOOTSTRAP_ISSUER)
    config = ClientConfig(
        storage=storage, authz=authz, kms=kms, token=token,
        ca_file=Path("ca.pem") if relative_ca else (directory / "ca.pem").resolve(),
    )
    path = directory / name
    config.write(path)
    return path


def run(args: argparse.Namespace) -> int:
    directory = Path(args.dir)
    regions = [r.strip() for r in args.regions.split(",") if r.strip()]
    init_secrets(directory, regions, args.hostname or [])
    print(f"secrets in {directory}")
    written = []
    if args.storage_endpoint:
        written.append(write_client_config(
            directory, args.storage_endpoint, args.authz_endpoint or "",
            parse_endpoints(args.kms_endpoints) if args.kms_endpoints else {}, args.admin))
    if args.host_storage_endpoint:
        written.append(write_client_config(
            directory, args.host_storage_endpoint, args.host_authz_endpoint or "",
            parse_endpoints(args.host_kms_endpoints) if args.host_kms_endpoints else {}, args.admin,
            name=HOST_CONFIG, relative_ca=True))
    for path in written:
        print(f"client config: {path}")
    if args.owner is not None:
        hand_over(directory, args.owner)
    return 0


def register(subparsers: Subcommands) -> None:
    p = subparsers.add_parser("init-secrets", help="generate certificates and keys for a deployment")
    p.add_argument("--dir", required=True)
    p.add_argument("--regions", default="eu")
    p.add_argument("--hostname", action="append", help="extra name every certificate carries (repeatable)")
    p.add_argument("--owner", type=int, help="chown the files to this uid/gid")
    p.add_argument("--admin", default="user:admin")
    p.add_argument("--storage-endpoint", help="also write client.toml with these endpoints")
    p.add_argument("--authz-endpoint")
    p.add_argument("--kms-endpoints", help="eu=host:port,us=host:port")
    p.add_argument("--host-storage-endpoint", help=f"also write {HOST_CONFIG}: the endpoints as published on the "
                                                   "host (its CA is named relative to it)")
    p.add_argument("--host-authz-endpoint")
    p.add_argument("--host-kms-endpoints", help="eu=localhost:7803,us=localhost:7804")
    p.set_defaults(handler=run)
