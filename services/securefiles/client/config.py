"""The client configuration: endpoints, TLS files, token and project.

Read from `SECUREFILES_CONFIG`, else `$XDG_CONFIG_HOME/securefiles/client.toml` (the file
`securefiles up` points at), then overridden by `SECUREFILES_*` variables.
"""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from securefiles.common.errors import InvalidArgument
from securefiles.common.files import write_private_file


def default_config_path(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    base = env.get("XDG_CONFIG_HOME") or str(Path(env.get("HOME", str(Path.home()))) / ".config")
    return Path(base) / "securefiles" / "client.toml"


@dataclass(frozen=True)
class ClientConfig:
    storage: str = ""
    authz: str = ""
    kms: dict[str, str] = field(default_factory=dict)
    ca_file: Path | None = None  # the CA that signed the services' certificates (else the system's)
    token: str = field(default="", repr=False)
    project: str = "default"
    source: Path | None = None

    @property
    def regions(self) -> list[str]:
        return list(self.kms)

    def to_toml(self) -> str:
        def q(value: object) -> str:
            return json.dumps(str(value))  # TOML basic strings accept JSON escapes

        lines = [
            "# Securefiles client configuration (written by `securefiles up`). Contains a token: keep private.",
            f"project = {q(self.project)}",
            f"token = {q(self.token)}",
            f"ca_file = {q(self.ca_file or '')}",
            "",
            "[endpoints]",
            f"storage = {q(self.storage)}",
            f"authz = {q(self.authz)}",
            "",
            "[endpoints.kms]",
            *(f"{region} = {q(target)}" for region, target in self.kms.items()),
        ]
        return "\n".join(lines) + "\n"

    def write(self, path: Path) -> None:
        write_private_file(path, self.to_toml().encode())


def _path(value: object) -> Path | None:
    return Path(str(value)) if value else None


def load_config(env: Mapping[str, str] | None = None, path: Path | None = None) -> ClientConfig:
    """Load the config file (if any) and apply environment overrides."""
    env = os.environ if env is None else env
    path = path or (Path(env["SECUREFILES_CONFIG"]) if env.get("SECUREFILES_CONFIG") else default_config_path(env))
    config = ClientConfig()
    if path.exists():
        try:
            data = tomllib.loads(path.read_text())
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
            raise InvalidArgument(f"cannot read client config {path}: {error}", reason="INVALID_CONFIG") from None
        endpoints = data.get("endpoints", {})
        ca_file = _path(data.get("ca_file"))
        if ca_file is not None and not ca_file.is_absolute():
            ca_file = path.parent / ca_file  # beside the config, wherever that directory is
        config = ClientConfig(
            storage=str(endpoints.get("storage", "")),
            authz=str(endpoints.get("authz", "")),
            kms={str(k): str(v) for k, v in dict(endpoints.get("kms", {})).items()},
            ca_file=ca_file,
            token=str(data.get("token", "")),
            project=str(data.get("project", "default")),
            source=path,
        )
    elif env.get("SECUREFILES_CONFIG"):
        raise InvalidArgument(f"client config {path} does not exist", reason="CONFIG_NOT_FOUND")
    overrides: dict[str, object] = {}
    for key, var in (("storage", "STORAGE_ENDPOINT"), ("authz", "AUTHZ_ENDPOINT"), ("project", "PROJECT"),
                     ("token", "TOKEN")):
        if env.get(f"SECUREFILES_{var}"):
            overrides[key] = env[f"SECUREFILES_{var}"]
    if env.get("SECUREFILES_CA_FILE"):
        overrides["ca_file"] = Path(env["SECUREFILES_CA_FILE"])
    if env.get("SECUREFILES_KMS_ENDPOINTS"):
        from securefiles.common.config import parse_endpoints

        overrides["kms"] = parse_endpoints(env["SECUREFILES_KMS_ENDPOINTS"])
    return replace(config, **overrides) if overrides else config  # type: ignore[arg-type]
