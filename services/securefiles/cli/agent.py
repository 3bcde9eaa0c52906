"""`securefiles agent download|cleanup`: the pipeline side, with DownloadSecureFile@1 parity."""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import jwt

from securefiles.cli import download_record
from securefiles.cli.ci_commands import (
    azure_set_variable,
    github_file_entry,
    github_output_name,
    log_line,
    warning_line,
)
from securefiles.cli.context import wants_json
from securefiles.cli.output import print_json
from securefiles.cli.parser import Subcommands
from securefiles.client.api import SecureFilesClient
from securefiles.client.download import DownloadedFile
from securefiles.client.job_identity import job_claims
from securefiles.common.durations import parse_duration
from securefiles.common.errors import FailedPrecondition, InvalidArgument, NotFound
from securefiles.common.glob import glob_match, has_wildcards
from securefiles.common.resource_names import run_name


def _job_dir_suffix(token: str) -> str:
    """A stable per-job suffix for the private default directory (no secret in it)."""
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
        key = f"{claims.get('project')}/{claims.get('run')}"
    except jwt.PyJWTError:
        key = token
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def default_destination(env: dict[str, str] | os._Environ[str], token: str) -> tuple[Path, bool]:
    """--dest, else $AGENT_TEMPDIRECTORY, else $RUNNER_TEMP, else a private temp dir (is_private)."""
    for var in ("AGENT_TEMPDIRECTORY", "RUNNER_TEMP"):
        if env.get(var):
            return Path(env[var]), False
    private = Path(tempfile.gettempdir()) / f"securefiles-{os.getuid()}-{_job_dir_suffix(token)}"
    private.mkdir(mode=0o700, exist_ok=True)
    if private.is_symlink() or private.stat().st_uid != os.getuid():
        raise InvalidArgument(f"{private} is not ours; pass --dest", reason="INVALID_DESTINATION")
    os.chmod(private, 0o700)
    return private, True


def _record(dest: Path, done: list[DownloadedFile]) -> None:
    try:
        download_record.record(dest, [download_record.Downloaded(d.name, d.device, d.inode) for d in done])
    except OSError as error:
        raise FailedPrecondition(f"cannot record the download in {dest}: {error.strerror}",
                                 reason="LOCAL_WRITE_FAILED") from None


class _ProgressBar:
    def __init__(self, name: str) -> None:
        self._name = name
        self._shown = -1

    def __call__(self, received: int, total: int) -> None:
        percent = 100 if total == 0 else received * 100 // total
        if percent != self._shown:
            self._shown = percent
            sys.stderr.write(f"\rdownloading {log_line(self._name)}  {percent:3d}%  "
                             f"{received / 1e6:.1f}/{total / 1e6:.1f} MB")
            if received >= total:
                sys.stderr.write("\n")
            sys.stderr.flush()


EXPIRY_WARNING_DAYS = 30


def expand_names(client: SecureFilesClient, patterns: list[str]) -> list[str]:
    """Names as given; globs matched against the files this job's pipeline may use."""
    if not any(has_wildcards(p) for p in patterns):
        return list(dict.fromkeys(patterns))
    authorized = [f.display_name for f in client.list_authorized_files()]
    names: list[str] = []
    for pattern in patterns:
        if has_wildcards(pattern):
            matched = [n for n in authorized if glob_match(pattern, n)]
            if not matched:
                raise NotFound(f"no file this job may use matches {pattern!r}", reason="NO_MATCHING_FILE")
            names += matched
        else:
            names.append(pattern)
    return list(dict.fromkeys(names))


def warn_if_expiring(downloaded: DownloadedFile, now: dt.datetime | None = None) -> None:
    """An expired or soon-expiring certificate/profile is reported before a release fails on it."""
    secure_file = downloaded.secure_file
    if not secure_file.HasField("expire_time"):
        return
    expires = secure_file.expire_time.ToDatetime(tzinfo=dt.UTC)
    now = now or dt.datetime.now(dt.UTC)
    if expires - now > dt.timedelta(days=EXPIRY_WARNING_DAYS):
        return
    when = expires.strftime("%Y-%m-%dT%H:%M:%SZ")
    if expires <= now:
        message = f"secure file {downloaded.name} expired on {when}"
    else:
        message = f"secure file {downloaded.name} expires on {when} (in {(expires - now).days} days)"
    print(warning_line(message, os.environ), file=sys.stderr, flush=True)


def announce(downloaded: DownloadedFile, ref: str) -> None:
    """Print the path and set `<ref>.secureFilePath` for Azure Pipelines / GitHub Actions (every
    name escaped for the command syntax it lands in, see ci_commands)."""
    print(log_line(str(downloaded.path)), flush=True)
    if os.environ.get("TF_BUILD"):
        print(azure_set_variable(f"{ref}.secureFilePath", str(downloaded.path)), flush=True)
    github_output = os.environ.get("GITHUB_OUTPUT")
    if github_output:
        with open(github_output, "a", encoding="utf-8") as out:
            out.write(github_file_entry(f"{github_output_name(ref)}_path", str(downloaded.path)))


def _wait_seconds(text: str | None) -> float:
    if not text:
        return 0
    try:
        return parse_duration(text)
    except ValueError as error:
        raise InvalidArgument(str(error), reason="INVALID_DURATION") from None


class _Waiting:
    """Tell the log once per change what the download waits for."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._last = ""

    def __call__(self, pending: FailedPrecondition) -> None:
        if pending.message != self._last:
            self._last = pending.message
            print(log_line(f"waiting for {self._name}: {pending.message}"), file=sys.stderr, flush=True)


def fetch(client: SecureFilesClient, patterns: list[str], dest: Path, retry_count: int = 8,
          timeout: float | None = None, wait: float = 0, one_name: bool = False) -> list[DownloadedFile]:
    """The files `patterns` name, downloaded into `dest` and recorded for cleanup: all of them, or
    (on any failure) none."""
    done: list[DownloadedFile] = []
    try:
        names = expand_names(client, patterns)
        if one_name and len(names) > 1:
            raise InvalidArgument("--name names one file's output variable, but the patterns match several",
                                  reason="INVALID_ARGUMENT")
        if len(names) == 1:
            progress = _ProgressBar(names[0]) if sys.stderr.isatty() else None
            done.append(client.download_secure_file(names[0], dest, retry_count, timeout, progress, wait,
                                                    _Waiting(names[0])))
        else:  # one call for all: one decision and one key unwrap for the job's files
            done += client.download_secure_files(names, dest, retry_count, timeout,
                                                 _ProgressBar if sys.stderr.isatty() else None, wait,
                                                 _Waiting(", ".join(names)))
        _record(dest, done)
    except BaseException:
        # All or nothing: a failure removes what this invocation already wrote.
        for downloaded in done:
            downloaded.path.unlink(missing_ok=True)
        raise
    return done


def download(args: argparse.Namespace) -> int:
    if args.break_glass:
        # An operator's own token, under an approved break-glass grant; every download is audited.
        client = SecureFilesClient.from_environment()
        token = client.config.token
        if not args.dest:
            raise InvalidArgument("--break-glass needs --dest", reason="INVALID_ARGUMENT")
    else:
        # The job's identity: its job token, or its CI provider's OIDC token exchanged for one.
        # The project is the job's own; a --project naming another is refused below.
        client = SecureFilesClient.from_environment(job=True)
        token = client.token
    if args.name and len(args.files) > 1:
        raise InvalidArgument("--name names one file's output variable; give one file", reason="INVALID_ARGUMENT")
    if args.retry_count < 0:
        raise InvalidArgument("--retry-count must not be negative", reason="INVALID_ARGUMENT")
    dest, _private = (Path(args.dest), False) if args.dest else default_destination(os.environ, token)
    timeout = args.socket_timeout / 1000 if args.socket_timeout else None
    if args.project and args.break_glass:
        client.project = args.project
    elif args.project and args.project != client.project:
        client.close()
        raise InvalidArgument(f"this job belongs to project {client.project}; --project {args.project} cannot change "
                              "that", reason="WRONG_PROJECT")
    wait = _wait_seconds(args.wait_for_checks)
    try:
        done = fetch(client, args.files, dest, args.retry_count, timeout, wait, one_name=bool(args.name))
    finally:
        client.close()
    if wants_json(args):
        # Scripts read the paths from JSON; stdout carries nothing else (no CI commands).
        print_json([{"name": d.name, "path": str(d.path)} for d in done])
    for downloaded in done:
        if not wants_json(args):
            announce(downloaded, args.name or downloaded.name)
        warn_if_expiring(downloaded)
    return 0


def cleanup(args: argparse.Namespace) -> int:
    if args.dest:
        dest, private = Path(args.dest), False
    elif os.environ.get("AGENT_TEMPDIRECTORY") or os.environ.get("RUNNER_TEMP"):
        dest, private = default_destination(os.environ, "")
    else:
        with SecureFilesClient.from_environment(job=True) as client:  # the job's private directory
            dest, private = default_destination(os.environ, client.token)
    try:
        outcome = download_record.remove_downloaded(dest)
    except FileNotFoundError:
        outcome = download_record.Cleanup(0, 0, False)
    except OSError as error:
        raise FailedPrecondition(f"cannot clean up {dest}: {error.strerror}", reason="LOCAL_WRITE_FAILED") from None
    if outcome.ignored_record:
        print(log_line(f"warning: {dest / download_record.RECORD_NAME} is not the agent's record; "
                       "nothing listed in it was removed"), file=sys.stderr)
    if outcome.kept:
        print(log_line(f"warning: left {outcome.kept} file(s) that changed since they were downloaded"),
              file=sys.stderr)
    if private:
        shutil.rmtree(dest, ignore_errors=True)
    if wants_json(args):
        print_json({"removed": outcome.removed, "directory": str(dest)})
    else:
        print(log_line(f"removed {outcome.removed} file(s) from {dest}"))
    return 0


def whoami(args: argparse.Namespace) -> int:
    """The job's identity as its token states it: project, pipeline, run, branch, expiry."""
    with SecureFilesClient.from_environment(job=True) as client:
        claims = job_claims(client.token)
    expires = dt.datetime.fromtimestamp(claims.expire_time, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    run = run_name(claims.project, claims.pipeline, claims.run)
    obj = {"project": claims.project, "pipeline": claims.pipeline_name, "pipeline_id": claims.pipeline, "run": run,
           "branch": claims.branch, "requested_by": claims.requested_by, "trust": claims.trust,
           "issued_by": claims.issued_by, "expire_time": expires}
    # Pipeline names and branches come from people and CI claims: every line is safe for a CI log.
    if wants_json(args):
        for line in json.dumps(obj, indent=2, sort_keys=True).splitlines():
            print(log_line(line))
    else:
        for key, value in obj.items():
            print(log_line(f"{key:<13} {value or '-'}"))
    return 0


def register(subparsers: Subcommands) -> None:
    agent = subparsers.add_parser("agent", help="pipeline agent: download secure files in a job")
    actions = agent.add_subparsers(dest="action", required=True)
    dl = actions.add_parser("download", help="download secure files (job token required)")
    dl.add_argument("files", nargs="+", metavar="NAME|GLOB", help="names or globs, e.g. 'ios/*' 'android-*.jks'")
    dl.add_argument("--dest", help="directory (default $AGENT_TEMPDIRECTORY, $RUNNER_TEMP, or a private temp dir)")
    dl.add_argument("--name", help="output variable reference: sets REF.secureFilePath")
    dl.add_argument("--retry-count", type=int, default=8, help="retries of transient failures (default 8)")
    dl.add_argument("--socket-timeout", type=int, default=0, metavar="MS", help="per-attempt timeout in ms")
    dl.add_argument("--wait-for-checks", metavar="DURATION", help="poll while checks are pending, e.g. 30min")
    dl.add_argument("--break-glass", action="store_true",
                    help="as an operator with an approved `securefiles access` grant (audited)")
    dl.set_defaults(handler=download)
    who = actions.add_parser("whoami", help="the job's project, pipeline, run, branch and token expiry")
    who.set_defaults(handler=whoami)
    cl = actions.add_parser("cleanup", help="delete what this job downloaded")
    cl.add_argument("--dest")
    cl.set_defaults(handler=cleanup)
