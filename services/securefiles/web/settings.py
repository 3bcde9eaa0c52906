"""The console's settings, read from `SECUREFILES_*` variables once at start."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from securefiles.client.config import ClientConfig, load_config
from securefiles.common.config import ConfigError, env_int, env_optional, env_str

DEFAULT_MAX_FILE_BYTES = 10 * 1024 * 1024


@dataclass(frozen=True)
class WebSettings:
    listen: str
    tls_cert: Path
    tls_key: Path
    services: ClientConfig  # public endpoints and the CA of the services; never a token
    public_url: str  # where browsers reach the console ("" = https://localhost:<bound port>)
    provider_ca_file: Path | None  # the CA of the OpenID provider's HTTPS certificate
    max_file_bytes: int
    max_sessions: int
    port_file: Path | None
    parent_pid: int | None
    log_level: str

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> WebSettings:
        env = os.environ if env is None else env
        # The console is a client of the public ports like any other: the client configuration
        # names them (SECUREFILES_CONFIG or SECUREFILES_*_ENDPOINT); its token is ignored.
        services = load_config({k: v for k, v in env.items() if k != "SECUREFILES_TOKEN"})
        services = ClientConfig(storage=services.storage, authz=services.authz, kms=services.kms,
                                ca_file=services.ca_file, project=services.project)
        if not services.storage or not services.authz:
            raise ConfigError("set SECUREFILES_CONFIG, or SECUREFILES_STORAGE_ENDPOINT and SECUREFILES_AUTHZ_ENDPOINT")
        public_url = (env_optional(env, "WEB_PUBLIC_URL") or "").rstrip("/")
        if public_url and urlsplit(public_url).scheme != "https":
            raise ConfigError("SECUREFILES_WEB_PUBLIC_URL must be an https:// address (session cookies are Secure)")
        provider_ca = env.get("SECUREFILES_OIDC_LOGIN_CA_FILE")
        port_file = env.get("SECUREFILES_PORT_FILE")
        return cls(
            listen=env_str(env, "WEB_LISTEN", "127.0.0.1:0"),
            tls_cert=Path(env_str(env, "WEB_TLS_CERT_FILE")),
            tls_key=Path(env_str(env, "WEB_TLS_KEY_FILE")),
            services=services,
            public_url=public_url,
            provider_ca_file=Path(provider_ca) if provider_ca else None,
            max_file_bytes=env_int(env, "MAX_FILE_BYTES", DEFAULT_MAX_FILE_BYTES),
            max_sessions=env_int(env, "WEB_MAX_SESSIONS", 10000),
            port_file=Path(port_file) if port_file else None,
            parent_pid=env_int(env, "PARENT_PID", 0) or None,
            log_level=env_str(env, "LOG_LEVEL", "INFO"),
        )
