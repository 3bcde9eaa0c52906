"""`securefiles trusts add|list|show|delete`: which CI provider's OIDC tokens run as a pipeline."""

from __future__ import annotations

import argparse
from pathlib import Path

from securefiles.cli.context import add_output, client_for, wants_json
from securefiles.cli.output import json_object, print_json, print_table
from securefiles.cli.parser import Subcommands
from securefiles.client.identity_api import TrustSpec
from securefiles.client.types import Trust
from securefiles.common.durations import parse_duration
from securefiles.common.errors import InvalidArgument

GITHUB_ISSUER = "https://token.actions.githubusercontent.com"
GITLAB_ISSUER = "https://gitlab.com"
DEFAULT_AUDIENCE = "securefiles"


def _claims(pairs: list[str]) -> dict[str, str]:
    bound: dict[str, str] = {}
    for pair in pairs:
        claim, sep, pattern = pair.partition("=")
        if not sep or not claim or not pattern:
            raise InvalidArgument(f"--claim {pair!r} must look like CLAIM=VALUE or CLAIM=GLOB",
                                  reason="INVALID_ARGUMENT")
        bound[claim] = pattern
    return bound


def _read(path: str | None, what: str) -> str:
    if not path:
        return ""
    try:
        return Path(path).read_text()
    except (OSError, UnicodeDecodeError) as error:
        raise InvalidArgument(f"cannot read {what} {path}: {getattr(error, 'strerror', error)}",
                              reason="INVALID_ARGUMENT") from None


def spec_from_args(args: argparse.Namespace) -> TrustSpec:
    """The trust the flags describe: a preset (`--github`, `--gitlab`) or the generic form."""
    if args.github and args.gitlab:
        raise InvalidArgument("give --github or --gitlab, not both", reason="INVALID_ARGUMENT")
    extra = _claims(args.claim or [])
    runs: tuple[str, ...]
    if args.github:
        # GitHub Actions: `ref` is refs/heads/…; a re-run attempt is a new run; `actor` started it.
        bound, issuer = {"repository": args.github, **extra}, args.issuer or GITHUB_ISSUER
        branch, ref_type, runs, requester = "ref", "", ("run_id", "run_attempt"), "actor"
    elif args.gitlab:
        # GitLab CI: `ref` is short and `ref_type` says branch or tag; a pipeline's jobs share a run.
        bound, issuer = {"project_path": args.gitlab, **extra}, args.issuer or GITLAB_ISSUER
        branch, ref_type, runs, requester = "ref", "ref_type", ("pipeline_id",), "user_login"
    else:
        if not args.issuer:
            raise InvalidArgument("give --issuer URL (or a preset: --github OWNER/REPO, --gitlab GROUP/PROJECT)",
                                  reason="INVALID_ARGUMENT")
        bound, issuer = extra, args.issuer
        branch, ref_type, runs, requester = "", "", (), ""
    run_claims = tuple(c.strip() for c in args.run_claims.split(",") if c.strip()) if args.run_claims else runs
    return TrustSpec(
        issuer=issuer, audience=args.audience, bound_claims=bound,
        branch_claim=args.branch_claim if args.branch_claim is not None else branch,
        ref_type_claim=args.ref_type_claim if args.ref_type_claim is not None else ref_type,
        run_claims=run_claims,
        requester_claim=args.requester_claim if args.requester_claim is not None else requester,
        max_ttl_seconds=_seconds(args.max_ttl) if args.max_ttl else 3600,
        jwks=_read(args.jwks_file, "--jwks-file"), ca_certificates=_read(args.ca_file, "--ca-file"),
    )


def _seconds(text: str) -> int:
    try:
        return int(parse_duration(text))
    except ValueError as error:
        raise InvalidArgument(str(error), reason="INVALID_DURATION") from None


def _bound(t: Trust) -> str:
    return ", ".join(f"{c}={g}" for c, g in sorted(t.bound_claims.items()))


def add(args: argparse.Namespace) -> int:
    spec = spec_from_args(args)
    with client_for(args) as client:
        created = client.trusts.create(args.name, args.pipeline, spec)
    if wants_json(args):
        print_json(json_object(created))
    else:
        print(f"trust {created.display_name}: tokens of {created.issuer} with {_bound(created)} run as "
              f"{created.pipeline}")
    return 0


def list_(args: argparse.Namespace) -> int:
    with client_for(args) as client:
        trusts = client.trusts.list()
    if wants_json(args):
        print_json(json_object(trusts))
    else:
        print_table(("NAME", "PIPELINE", "ISSUER", "BOUND CLAIMS"),
                    [(t.display_name, t.pipeline.rsplit("/", 1)[-1], t.issuer, _bound(t)) for t in trusts])
    return 0


def show(args: argparse.Namespace) -> int:
    with client_for(args) as client:
        trust = client.trusts.get(args.name)
    obj = json_object(trust)
    if wants_json(args):
        print_json(obj)
    else:
        # Static keys and CAs are long: the table says whether there are any.
        obj.update(jwks="static" if trust.jwks else "", caCertificates="static" if trust.ca_certificates else "")
        print_table(("FIELD", "VALUE"), [(k, v if not isinstance(v, dict | list) else str(v)) for k, v in obj.items()])
    return 0


def delete(args: argparse.Namespace) -> int:
    with client_for(args) as client:
        client.trusts.delete(args.name)
    print(f"deleted trust {args.name}")
    return 0


def register(subparsers: Subcommands) -> None:
    trusts = subparsers.add_parser(
        "trusts", help="which CI provider's OIDC tokens run as which pipeline (project administrators)",
    ).add_subparsers(dest="action", required=True)
    p = trusts.add_parser("add", help="trust a CI provider's OIDC tokens for one pipeline", description=(
        "Examples: trusts add app-release --pipeline release --github org/app --claim ref=refs/heads/main ; "
        "trusts add ios --pipeline ios --gitlab group/ios ; trusts add jenkins --pipeline build --issuer "
        "https://jenkins.example/oidc --claim sub=job/build --run-claims build_number"))
    add_output(p)
    p.add_argument("name", help="lowercase letters, digits and -")
    p.add_argument("--pipeline", required=True, help="the pipeline the tokens run as (name or id)")
    p.add_argument("--github", metavar="OWNER/REPO", help="preset: GitHub Actions tokens of this repository")
    p.add_argument("--gitlab", metavar="GROUP/PROJECT", help="preset: GitLab CI tokens of this project")
    p.add_argument("--issuer", help=f"token issuer URL (presets: {GITHUB_ISSUER}, {GITLAB_ISSUER})")
    p.add_argument("--audience", default=DEFAULT_AUDIENCE, help=f"required `aud` (default {DEFAULT_AUDIENCE})")
    p.add_argument("--claim", action="append", metavar="CLAIM=GLOB",
                   help="a claim the token must carry, exact or a glob (* any run, ? one character); repeatable")
    p.add_argument("--branch-claim", help="claim with the branch ref (presets: ref)")
    p.add_argument("--ref-type-claim", help="claim saying branch or tag, for a short ref (GitLab: ref_type)")
    p.add_argument("--run-claims", metavar="C,C", help="claims identifying one run (GitHub: run_id,run_attempt)")
    p.add_argument("--requester-claim", help="claim naming who started the job (GitHub: actor)")
    p.add_argument("--max-ttl", help="longest job token lifetime (default 1h)")
    p.add_argument("--jwks-file", help="the issuer's keys as a static JWKS (air-gapped installs)")
    p.add_argument("--ca-file", help="CA certificates for the issuer's HTTPS")
    p.set_defaults(handler=add)
    p = trusts.add_parser("list", help="list the project's trusts")
    add_output(p)
    p.set_defaults(handler=list_)
    p = trusts.add_parser("show", help="show one trust")
    add_output(p)
    p.add_argument("name")
    p.set_defaults(handler=show)
    p = trusts.add_parser("delete", help="remove a trust (its runs keep running until they end)")
    add_output(p)
    p.add_argument("name")
    p.set_defaults(handler=delete)
