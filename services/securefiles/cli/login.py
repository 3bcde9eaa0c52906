"""`securefiles login|logout`: people sign in at the organization's OpenID provider."""

from __future__ import annotations

import argparse
import sys

from securefiles.cli.context import add_output, wants_json
from securefiles.cli.output import print_json
from securefiles.cli.parser import Subcommands
from securefiles.client.api import SecureFilesClient
from securefiles.client.config import load_config
from securefiles.client.credentials import Session, credentials_path, forget_session, save_session
from securefiles.client.sign_in import browser_flow, device_flow, discover
from securefiles.common.errors import FailedPrecondition


def _show_code(uri: str, code: str, complete: str) -> None:
    print(f"To sign in, open {uri} and enter the code {code}", file=sys.stderr, flush=True)
    if complete:
        print(f"(or open {complete})", file=sys.stderr, flush=True)


def login(args: argparse.Namespace) -> int:
    config = load_config()
    with SecureFilesClient(config, token="") as client:
        settings = client.sign_in_config()
        if not settings.enabled:
            raise FailedPrecondition("this installation has no sign-in configured (authz needs "
                                     "SECUREFILES_OIDC_LOGIN_ISSUER and _CLIENT_ID)", reason="SIGN_IN_NOT_CONFIGURED")
        provider = discover(settings.issuer, settings.client_id, tuple(settings.scopes))
        tokens = browser_flow(provider) if args.browser else device_flow(provider, _show_code)
        signed = client.sign_in(tokens.id_token)
    save_session(Session(authz=config.authz, token=signed.token, expire_time=signed.expire_time.seconds,
                         principal=signed.principal, issuer=provider.issuer, client_id=provider.client_id,
                         token_endpoint=provider.token_endpoint, refresh_token=tokens.refresh_token))
    obj = {"principal": signed.principal, "groups": list(signed.groups),
           "expire_time": signed.expire_time.ToDatetime().strftime("%Y-%m-%dT%H:%M:%SZ")}
    if wants_json(args):
        print_json(obj)
    else:
        groups = f" ({', '.join(signed.groups)})" if signed.groups else ""
        print(f"signed in as {signed.principal}{groups}; session until {obj['expire_time']}, refreshed as you go")
    return 0


def logout(args: argparse.Namespace) -> int:
    config = load_config()
    removed = forget_session(config.authz)
    if wants_json(args):
        print_json({"signed_out": removed})
    else:
        print("signed out" if removed else f"not signed in (no session in {credentials_path()})")
    return 0


def register(subparsers: Subcommands) -> None:
    p = subparsers.add_parser("login", help="sign in at your organization's identity provider", description=(
        "Device flow by default: open the printed address on any device and enter the code. With --browser: "
        "a browser opens the provider's page and returns to this machine (authorization code + PKCE). The "
        "session token is kept in credentials.json beside the client config and refreshed as you go."))
    add_output(p)
    p.add_argument("--browser", action="store_true", help="sign in in a browser on this machine")
    p.set_defaults(handler=login)
    p = subparsers.add_parser("logout", help="forget this machine's session")
    add_output(p)
    p.set_defaults(handler=logout)
