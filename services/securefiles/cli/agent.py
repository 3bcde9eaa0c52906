"""`securefiles agent download|cleanup`: the pipeline side, with DownloadSecureFile@1 parity."""

from __future__ import annotations

import argparse
import datetime as dt
import fnmatch
import hashlib
import json
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path

import jwt

from securefiles.cli.context import wants_json
from securefiles.cli.output import print_json
from securefiles.client.api import SecureFilesClient
from securefiles.client.config import job_token_from_env
from securefiles.client.download import DownloadedFile
from securefiles.common.durations import parse_duration
from securefiles.common.errors import FailedPrecondition, InvalidArgument, NotFound

MANIFEST = ".securefiles-downloads.json"
_OUTPUT_NAME = re.compile(r"[^A-Za-z0-9_-]")


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


def _manifest(dest: Path) -> list[str]:
    try:
        names = json.loads((dest / MANIFEST).read_text())
    except (OSError, ValueError):
        return []
    return [n for n in names if isinstance(n, str)] if isinstance(names, list) else []


def _record(dest: Path, names: list[str]) -> None:
    known = _manifest(dest)
    merged = known + [n for n in names if n not in known]
    tmp = dest / f".{MANIFEST}.tmp"
    tmp.write_text(json.dumps(merged))
    os.chmod(tmp, 0o600)
    os.replace(tmp, dest / MANIFEST)


class _ProgressBar:
    def __init__(self, name: str) -> None:
        self._name = name
        self._shown = -1

    def __call__(self, received: int, total: int) -> None:
        percent = 100 if total == 0 else received * 100 // total
        if percent != self._shown:
            self._shown = percent
            sys.stderr.write(f"\r{self._name}  {percent:3d}%  {received / 1e6:.1f}/{total / 1e6:.1f} MB")
            if received >= total:
                sys.stderr.write("\n")
            sys.stderr.flush()


EXPIRY_WARNING_DAYS = 30
_GLOB_CHARS = set("*?[")


def expand_names(client: SecureFilesClient, patterns: list[str]) -> list[str]:
    """Names as given; globs matched against the files this job's pipeline may use."""
    if not any(_GLOB_CHARS & set(p) for p in patterns):
        return list(dict.fromkeys(patterns))
    authorized = [f.display_name for f in client.list_authorized_files()]
    names: list[str] = []
    for pattern in patterns:
        if _GLOB_CHARS & set(pattern):
            matched = [n for n in authorized if fnmatch.fnmatchcase(n, pattern)]
            if not matched:
                raise NotFound(f"no file this job may use matches {pattern!r}", reason="NO_MATCHING_FILE")
            names += matched
        else:
            names.append(pattern)
    return list(dict.fromkeys(names))


def _escape_azure(text: str) -> str:
    return (text.replace("%", "%AZP25").replace(";", "%3B").replace("\r", "%0D").replace("\n", "%0A")
            .replace("]", "%5D"))


def _escape_github(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


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
    if os.environ.get("TF_BUILD"):
        line = f"##vso[task.logissue type=warning]{_escape_azure(message)}"
    elif os.environ.get("GITHUB_ACTIONS"):
        line = f"::warning::{_escape_github(message)}"
    else:
        line = f"warning: {message}"
    print(line, file=sys.stderr, flush=True)


def announce(downloaded: DownloadedFile, ref: str) -> None:
    """Print the path and set `<ref>.secureFilePath` for Azure Pipelines / GitHub Actions."""
    print(downloaded.path, flush=True)
    if os.environ.get("TF_BUILD"):
        print(f"##vso[task.setvariable variable={ref}.secureFilePath]{downloaded.path}", flush=True)
    github_output = os.environ.get("GITHUB_OUTPUT")
    if github_output:
        with open(github_output, "a", encoding="utf-8") as out:
            out.write(f"{_OUTPUT_NAME.sub('_', ref)}_path={downloaded.path}\n")


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
            print(f"{self._name}: {pending.message}; waiting", file=sys.stderr, flush=True)


def download(args: argparse.Namespace) -> int:
    if args.break_glass:
        # An operator's own token, under an approved break-glass grant; every download is audited.
        client = SecureFilesClient.from_environment()
        token = client.config.token
        if not args.dest:
            raise InvalidArgument("--break-glass needs --dest", reason="INVALID_ARGUMENT")
    else:
        token = job_token_from_env()
        if not token:
            raise InvalidArgument("no job token: set SECUREFILES_JOB_TOKEN (or SYSTEM_ACCESSTOKEN)",
                                  reason="MISSING_JOB_TOKEN")
        client = SecureFilesClient.from_environment(job=True)
    if args.name and len(args.files) > 1:
        raise InvalidArgument("--name names one file's output variable; give one file", reason="INVALID_ARGUMENT")
    if args.retry_count < 0:
        raise InvalidArgument("--retry-count must not be negative", reason="INVALID_ARGUMENT")
    dest, _private = (Path(args.dest), False) if args.dest else default_destination(os.environ, token)
    timeout = args.socket_timeout / 1000 if args.socket_timeout else None
    if args.project:
        client.project = args.project
    wait = _wait_seconds(args.wait_for_checks)
    done: list[DownloadedFile] = []
    try:
        names = expand_names(client, args.files)
        if args.name and len(names) > 1:
            raise InvalidArgument("--name names one file's output variable, but the patterns match several",
                                  reason="INVALID_ARGUMENT")
        for name in names:
            progress = _ProgressBar(name) if sys.stderr.isatty() else None
            done.append(client.download_secure_file(name, dest, args.retry_count, timeout, progress, wait,
                                                    _Waiting(name)))
    except BaseException:
        # All or nothing: a failure removes what this invocation already wrote.
        for downloaded in done:
            downloaded.path.unlink(missing_ok=True)
        raise
    finally:
        client.close()
    _record(dest, [d.name for d in done])
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
    else:
        token = job_token_from_env()
        if not token and not (os.environ.get("AGENT_TEMPDIRECTORY") or os.environ.get("RUNNER_TEMP")):
            raise InvalidArgument("give --dest or the job's environment", reason="INVALID_DESTINATION")
        dest, private = default_destination(os.environ, token)
    removed = 0
    for name in _manifest(dest):
        path = dest / name
        if "/" not in name and path.is_file() and not path.is_symlink():
            path.unlink()
            removed += 1
    (dest / MANIFEST).unlink(missing_ok=True)
    if private:
        shutil.rmtree(dest, ignore_errors=True)
    if wants_json(args):
        print_json({"removed": removed, "directory": str(dest)})
    else:
        print(f"removed {removed} file(s) from {dest}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    agent = subparsers.add_parser("agent", help="pipeline agent: download secure files in a job")
    actions = agent.add_subparsers(dest="action", required=True)
    dl = actions.add_parser("download", help="download secure files (job token required)")
    dl.add_argument("files", nargs="+", metavar="NAME|GLOB", help="names or globs, e.g. 'ios/*' 'android-*.jks'")
    dl.add_argument("--dest", help="directory (default $AGENT_TEMPDIRECTORY, $RUNNER_TEMP, or a private temp dir)")
    dl.add_argument("--name", help="output variable reference: sets REF.secureFilePath")
    dl.add_argument("--retry-count", type=int, default=8, help="retries of transient failures (default 8)")
    dl.add_argument("--socket-timeout", type=int, default=0, metavar="MS", help="per-attempt timeout in ms")
    dl.add_argument("--wait-for-checks", metavar="DURATION", help="poll while checks are pending, e.g. 30m")
    dl.add_argument("--break-glass", action="store_true",
                    help="as an operator with an approved `securefiles access` grant (audited)")
    dl.set_defaults(handler=download)
    cl = actions.add_parser("cleanup", help="delete what this job downloaded")
    cl.add_argument("--dest")
    cl.set_defaults(handler=cleanup)
