"""`securefiles backup --to DIR` and `securefiles restore --from DIR`: the state of a deployment
(every service's database and the blob store) as a directory with a manifest of sha256 sums.

SQLite databases are copied with SQLite's online backup (consistent while the services run);
PostgreSQL databases with `pg_dump --format=custom` and restored with `pg_restore`. Blobs are
immutable under their keys: the storage snapshot is taken first and exactly the blobs it
references are copied. Restore checks every sum before it writes anything and only fills an
empty state. The backup holds ciphertext and wrapped keys only: without the root keys (or the
HSM), the signing key and the audit keys, kept separately, it decrypts nothing.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from securefiles.cli.parser import Subcommands
from securefiles.common.errors import FailedPrecondition, InvalidArgument, SecureFilesError

MANIFEST = "manifest.json"
FORMAT = 1


@dataclass(frozen=True)
class Deployment:
    """Where a deployment keeps its state (as `securefiles up` lays it out)."""

    state_dir: Path
    database_url: str = ""  # a PostgreSQL server: one database per service, named prefix + service
    database_prefix: str = "securefiles_"

    @property
    def data(self) -> Path:
        return self.state_dir / "data"

    @property
    def blob_root(self) -> Path:
        return self.data / "blobs" / "blobs"

    def services(self) -> list[str]:
        """storage, authz and each kms-<region> that has a database."""
        if not self.database_url:
            return sorted(p.stem for p in self.data.glob("*.db"))
        from sqlalchemy import create_engine, make_url, text

        url = make_url(self.database_url)
        engine = create_engine(url.set(database=url.database or "postgres"))
        try:
            with engine.connect() as conn:
                names = conn.execute(text("SELECT datname FROM pg_database WHERE datname LIKE :p"),
                                     {"p": self.database_prefix.replace("_", r"\_") + "%"}).scalars().all()
        finally:
            engine.dispose()
        prefix = len(self.database_prefix)
        return sorted(name[prefix:].replace("_", "-") for name in names)

    def libpq_url(self, service: str) -> str:
        from sqlalchemy import make_url

        url = make_url(self.database_url).set(drivername="postgresql",
                                              database=f"{self.database_prefix}{service}".replace("-", "_"))
        return url.render_as_string(hide_password=False)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _sqlite_backup(source: Path, target: Path) -> None:
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    dst = sqlite3.connect(target)
    try:
        src.backup(dst)
    finally:
        dst.close()
        src.close()


def _referenced_blobs(storage_db: Path) -> list[str]:
    connection = sqlite3.connect(storage_db)
    try:
        return [row[0] for row in connection.execute("SELECT blob_key FROM file_versions")]
    finally:
        connection.close()


def _blob_path(root: Path, key: str) -> Path:
    file_id, name = key.split("/")
    return root / file_id[:2] / file_id / name


def _run(command: list[str], what: str) -> None:
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["failed"])[-1]
        raise SecureFilesError(f"{what}: {last}", reason="BACKUP_FAILED")


def backup(deployment: Deployment, target: Path, blob_store: str = "directory") -> dict[str, Any]:
    """Write the backup into `target` (new or empty); return its manifest."""
    if target.exists() and any(target.iterdir()):
        raise FailedPrecondition(f"{target} is not empty", reason="TARGET_NOT_EMPTY")
    services = deployment.services()
    if "storage" not in services:
        raise FailedPrecondition(f"no storage database under {deployment.state_dir}", reason="NOTHING_TO_BACK_UP")
    target.mkdir(parents=True, exist_ok=True)
    os.chmod(target, 0o700)
    databases: dict[str, str] = {}
    # storage first: the blobs copied are exactly the ones its snapshot references.
    for service in sorted(services, key=lambda s: s != "storage"):
        if deployment.database_url:
            name = f"{service}.dump"
            _run(["pg_dump", "--format=custom", "--no-owner", f"--file={target / name}",
                  deployment.libpq_url(service)], f"pg_dump of {service}")
        else:
            name = f"{service}.db"
            _sqlite_backup(deployment.data / name, target / name)
        databases[service] = name
    if blob_store == "directory":
        keys = _referenced_blobs(target / "storage.db") if not deployment.database_url else _pg_blob_keys(deployment)
        missing = [key for key in keys if not _blob_path(deployment.blob_root, key).exists()]
        if missing:
            raise SecureFilesError(f"{len(missing)} blobs vanished while backing up (files deleted meanwhile); "
                                   "run the backup again", reason="BACKUP_INCONSISTENT")
        for key in keys:
            destination = _blob_path(target / "blobs", key)
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(_blob_path(deployment.blob_root, key), destination)
    files = {str(p.relative_to(target)): _sha256(p) for p in sorted(target.rglob("*")) if p.is_file()}
    manifest = {
        "format": FORMAT, "created_at": dt.datetime.now(dt.UTC).isoformat(),
        "database": "postgresql" if deployment.database_url else "sqlite", "blob_store": blob_store,
        "databases": databases, "sha256": files,
        "not_included": ["root keys (or the HSM)", "authz signing key", "audit keys", "TLS keys"],
    }
    (target / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return manifest


def _pg_blob_keys(deployment: Deployment) -> list[str]:
    from sqlalchemy import create_engine, text

    engine = create_engine(deployment.libpq_url("storage").replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with engine.connect() as conn:
            return list(conn.execute(text("SELECT blob_key FROM file_versions")).scalars())
    finally:
        engine.dispose()


def verify(source: Path) -> dict[str, Any]:
    """The manifest, once every file it lists has its sum and nothing else is there."""
    try:
        manifest = json.loads((source / MANIFEST).read_text())
    except (OSError, ValueError):
        raise InvalidArgument(f"{source} has no readable {MANIFEST}", reason="NOT_A_BACKUP") from None
    if manifest.get("format") != FORMAT:
        raise InvalidArgument("unknown backup format", reason="NOT_A_BACKUP")
    present = {str(p.relative_to(source)) for p in source.rglob("*") if p.is_file()} - {MANIFEST}
    listed: dict[str, str] = manifest["sha256"]
    if present != set(listed):
        raise InvalidArgument("the backup's files differ from its manifest", reason="BACKUP_CORRUPT")
    for name, expected in listed.items():
        if _sha256(source / name) != expected:
            raise InvalidArgument(f"{name} does not match its sha256 in the manifest", reason="BACKUP_CORRUPT")
    return dict(manifest)


def restore(source: Path, deployment: Deployment) -> dict[str, Any]:
    """Fill an empty deployment from a verified backup."""
    manifest = verify(source)
    if (manifest["database"] == "postgresql") != bool(deployment.database_url):
        raise InvalidArgument(f"this backup is of a {manifest['database']} deployment", reason="BACKUP_MISMATCH")
    if deployment.services():
        raise FailedPrecondition("the target already has databases; restore into an empty state",
                                 reason="TARGET_NOT_EMPTY")
    if manifest["blob_store"] == "directory" and deployment.blob_root.exists() and any(deployment.blob_root.iterdir()):
        raise FailedPrecondition(f"{deployment.blob_root} is not empty", reason="TARGET_NOT_EMPTY")
    deployment.data.mkdir(parents=True, exist_ok=True)
    for service, name in manifest["databases"].items():
        if deployment.database_url:
            from securefiles.cli.up import ensure_postgres_database

            ensure_postgres_database(deployment.database_url,
                                     f"{deployment.database_prefix}{service}".replace("-", "_"))
            _run(["pg_restore", "--no-owner", "--exit-on-error", f"--dbname={deployment.libpq_url(service)}",
                  str(source / name)], f"pg_restore of {service}")
        else:
            partial = deployment.data / f".{name}.restoring"
            shutil.copyfile(source / name, partial)
            os.replace(partial, deployment.data / name)
    blobs = source / "blobs"
    if blobs.exists():
        for path in sorted(p for p in blobs.rglob("*") if p.is_file()):
            destination = deployment.blob_root / path.relative_to(blobs)
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, destination)
    return manifest


def _deployment(args: argparse.Namespace) -> Deployment:
    return Deployment(Path(args.state_dir).absolute(), args.database_url or "", args.database_prefix)


def backup_command(args: argparse.Namespace) -> int:
    manifest = backup(_deployment(args), Path(args.to).absolute(), args.blob_store)
    print(f"backed up {', '.join(sorted(manifest['databases']))} and {len(manifest['sha256'])} files to {args.to}")
    print("not included (keep them separately): " + ", ".join(manifest["not_included"]))
    return 0


def restore_command(args: argparse.Namespace) -> int:
    manifest = restore(Path(getattr(args, "from")).absolute(), _deployment(args))
    print(f"restored {', '.join(sorted(manifest['databases']))} from a backup of {manifest['created_at']}")
    return 0


def register(subparsers: Subcommands) -> None:
    for name, handler, flag, help_text in (
        ("backup", backup_command, "--to", "snapshot every service's database and the blobs into a directory"),
        ("restore", restore_command, "--from", "fill an empty state from a backup directory (sums checked first)"),
    ):
        parser = subparsers.add_parser(name, help=help_text)
        parser.add_argument(flag, required=True, metavar="DIR")
        parser.add_argument("--state-dir", default=".securefiles", help="the deployment's state (as `up` keeps it)")
        parser.add_argument("--database-url", help="its PostgreSQL server, if not SQLite (as given to `up`)")
        parser.add_argument("--database-prefix", default="securefiles_")
        if name == "backup":
            parser.add_argument("--blob-store", choices=("directory", "db"), default="directory")
        parser.set_defaults(handler=handler)
