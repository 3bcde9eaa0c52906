"""Settings read from the environment once, at start-up (never at import).

Secrets are passed as `*_FILE` paths, never as values.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from securefiles.common.limits import LimitSettings
from securefiles.common.tls import TlsFiles

PREFIX = "SECUREFILES_"


class ConfigError(ValueError):
    """A setting is missing or malformed."""


def env_optional(env: Mapping[str, str], name: str) -> str | None:
    """A setting, or None; an empty value counts as unset. `NAME_FILE` (a path) may carry it instead."""
    value = env.get(PREFIX + name) or None
    file_path = env.get(PREFIX + name + "_FILE")
    if value is None and file_path:
        try:
            value = Path(file_path).read_text().strip() or None
        except OSError as error:
            raise ConfigError(f"{PREFIX}{name}_FILE: cannot read {file_path}: {error.strerror}") from None
    return value


def env_str(env: Mapping[str, str], name: str, default: str | None = None) -> str:
    """A required setting (or its default); see `env_optional`."""
    value = env_optional(env, name) or default
    if value is None or value == "":
        raise ConfigError(f"{PREFIX}{name} is required")
    return value


def env_int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(PREFIX + name)
    if raw in (None, ""):
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"{PREFIX}{name} must be an integer") from None


def _at_least_one(value: int, name: str) -> int:
    if value < 1:
        raise ConfigError(f"{PREFIX}{name} must be at least 1")
    return value


def env_float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(PREFIX + name)
    if raw in (None, ""):
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{PREFIX}{name} must be a number") from None
    if not value > 0:
        raise ConfigError(f"{PREFIX}{name} must be positive")
    return value


def env_bool(env: Mapping[str, str], name: str, default: bool = False) -> bool:
    raw = env.get(PREFIX + name)
    if raw in (None, ""):
        return default
    return raw.strip().lower() in ("1", "true", "yes", "on")


def parse_endpoints(raw: str) -> dict[str, str]:
    """`eu=host:port,us=host:port` -> {"eu": "host:port", "us": "host:port"}."""
    endpoints: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in raw.split(","))):
        region, sep, target = item.partition("=")
        region, target = region.strip(), target.strip()
        if not sep or not region or not target:
            raise ConfigError(f"endpoint {item!r} must look like region=host:port")
        if region in endpoints:
            raise ConfigError(f"region {region!r} is given twice")
        endpoints[region] = target
    if not endpoints:
        raise ConfigError("no endpoints given")
    return endpoints


def _audit_key(env: Mapping[str, str]) -> bytes | None:
    """The key of the audit chain's HMAC (`AUDIT_KEY_FILE`), if configured."""
    key = env_optional(env, "AUDIT_KEY")
    if key is None:
        return None
    if len(key) < 32:
        raise ConfigError(f"{PREFIX}AUDIT_KEY(_FILE) must hold at least 32 bytes")
    return key.encode()


@dataclass(frozen=True)
class ServerSettings:
    """What every service needs to serve."""

    listen: str  # public: server TLS, bearer tokens
    internal_listen: str  # internal: mutual TLS, service certificates
    http_listen: str  # operations: plain HTTP probes and metrics
    tls: TlsFiles
    database_url: str
    reflection: bool
    log_level: str
    port_file: Path | None
    internal_port_file: Path | None
    http_port_file: Path | None
    parent_pid: int | None
    limits: LimitSettings
    outbound_timeout: float
    signing_keys_max_age: float
    database_busy_timeout: float
    audit_key: bytes | None
    database_threads: int = 8  # the pool that keeps database work off the event loop (common/db_threads.py)
    # Housekeeping (common/housekeeping.py): audit entries older than this many days are archived
    # (0: never), every `retention_interval` seconds (0: no housekeeping).
    audit_retention_days: int = 365
    retention_interval: int = 3600

    @classmethod
    def from_env(cls, service: str, env: Mapping[str, str] | None = None) -> ServerSettings:
        env = os.environ if env is None else env
        port_file = env.get(PREFIX + "PORT_FILE")
        internal_port_file = env.get(PREFIX + "INTERNAL_PORT_FILE")
        http_port_file = env.get(PREFIX + "HTTP_PORT_FILE")
        return cls(
            listen=env_str(env, "LISTEN", "127.0.0.1:0"),
            internal_listen=env_str(env, "INTERNAL_LISTEN", "127.0.0.1:0"),
            http_listen=env_str(env, "HTTP_LISTEN", "127.0.0.1:0"),
            tls=TlsFiles(
                ca=Path(env_str(env, "TLS_CA_FILE")),
                cert=Path(env_str(env, "TLS_CERT_FILE")),
                key=Path(env_str(env, "TLS_KEY_FILE")),
            ),
            database_url=env_str(env, "DATABASE_URL", f"sqlite:///{service}.db"),
            reflection=env_bool(env, "REFLECTION"),
            log_level=env_str(env, "LOG_LEVEL", "INFO"),
            port_file=Path(port_file) if port_file else None,
            internal_port_file=Path(internal_port_file) if internal_port_file else None,
            http_port_file=Path(http_port_file) if http_port_file else None,
            parent_pid=env_int(env, "PARENT_PID", 0) or None,
            outbound_timeout=float(env_int(env, "OUTBOUND_TIMEOUT_SECONDS", 10)),
            signing_keys_max_age=float(env_int(env, "SIGNING_KEYS_MAX_AGE_SECONDS", 300)),
            database_busy_timeout=float(env_int(env, "DATABASE_BUSY_TIMEOUT_SECONDS", 15)),
            audit_key=_audit_key(env),
            database_threads=_at_least_one(env_int(env, "DATABASE_THREADS", 8), "DATABASE_THREADS"),
            audit_retention_days=env_int(env, "AUDIT_RETENTION_DAYS", 365),
            retention_interval=env_int(env, "RETENTION_INTERVAL_SECONDS", 3600),
            limits=LimitSettings(
                max_streams_per_caller=env_int(env, "MAX_STREAMS_PER_CALLER", 16),
                requests_per_second=float(env_int(env, "REQUESTS_PER_SECOND", 200)),
                burst=env_int(env, "REQUEST_BURST", 400),
                auth_failures_per_second=float(env_int(env, "AUTH_FAILURES_PER_SECOND", 10)),
                auth_failure_burst=env_int(env, "AUTH_FAILURE_BURST", 100),
            ),
        )
