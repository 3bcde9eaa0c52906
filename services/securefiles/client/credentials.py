"""A signed-in person's session, kept between commands.

`$XDG_CONFIG_HOME/securefiles/credentials.json` (mode 0600), one entry per authz endpoint:
the session token, its expiry, who it names, and what refreshing needs (the provider and its
refresh token). A session token that is about to expire is refreshed at the provider and
signed in again, so the provider stays the judge of whether the person may still sign in.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

from securefiles.client.config import default_config_path
from securefiles.common.files import write_private_file

REFRESH_BEFORE_SECONDS = 300


@dataclass(frozen=True)
class Session:
    authz: str
    token: str
    expire_time: int
    principal: str
    issuer: str = ""
    client_id: str = ""
    token_endpoint: str = ""
    refresh_token: str = ""

    def due(self, now: float | None = None) -> bool:
        return (now if now is not None else time.time()) >= self.expire_time - REFRESH_BEFORE_SECONDS


def credentials_path(env: Mapping[str, str] | None = None) -> Path:
    return default_config_path(env).with_name("credentials.json")


def _read(path: Path) -> dict[str, dict[str, object]]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def load_session(authz: str, env: Mapping[str, str] | None = None) -> Session | None:
    entry = _read(credentials_path(env)).get(authz)
    if not isinstance(entry, dict):
        return None
    try:
        return Session(**{k: entry[k] for k in Session.__dataclass_fields__ if k in entry})  # type: ignore[arg-type]
    except TypeError:
        return None


def save_session(session: Session, env: Mapping[str, str] | None = None) -> Path:
    path = credentials_path(env)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    entries = _read(path)
    entries[session.authz] = asdict(session)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    write_private_file(tmp, json.dumps(entries, indent=2).encode())
    os.replace(tmp, path)
    return path


def forget_session(authz: str, env: Mapping[str, str] | None = None) -> bool:
    path = credentials_path(env)
    entries = _read(path)
    if entries.pop(authz, None) is None:
        return False
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    write_private_file(tmp, json.dumps(entries, indent=2).encode())
    os.replace(tmp, path)
    return True
