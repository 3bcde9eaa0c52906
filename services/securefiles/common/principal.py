"""Who is calling an RPC."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

USER_PRINCIPAL = re.compile(r"^user:[A-Za-z0-9][A-Za-z0-9._@+-]{0,127}$")


@dataclass(frozen=True)
class Principal:
    """A person (`user:…`), a pipeline job (`job:<run name>`), or a service (`service:storage`)."""

    kind: str  # "user" | "job" | "service"
    name: str
    claims: dict[str, Any] = field(default_factory=dict, compare=False)
    token: str = field(default="", repr=False, compare=False)

    @property
    def is_user(self) -> bool:
        return self.kind == "user"

    @property
    def is_job(self) -> bool:
        return self.kind == "job"

    def is_service_named(self, service: str) -> bool:
        return self.kind == "service" and self.name == f"service:{service}"
