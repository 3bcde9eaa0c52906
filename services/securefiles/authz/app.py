"""Composition root of the authz service."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from securefiles.authz.adapters.sql_break_glass import SqlAccessRequestRepository
from securefiles.authz.adapters.sql_checks import SqlChecksRepository
from securefiles.authz.adapters.sql_repository import SqlAuthzRepository
from securefiles.authz.api.servicer import AuthorizationServicer
from securefiles.authz.domain.service import Authorization
from securefiles.authz.v1 import authz_pb2, authz_pb2_grpc
from securefiles.common.audit import AuditLog
from securefiles.common.config import ServerSettings, env_str
from securefiles.common.db import make_engine
from securefiles.common.interceptors import Authenticator
from securefiles.common.logging import configure_logging
from securefiles.common.migrations import upgrade
from securefiles.common.principal import Principal
from securefiles.common.server import RunningServer, create_server, run_until_signalled
from securefiles.common.tokens import TokenIssuer, TokenVerifier, load_signing_key

log = logging.getLogger("securefiles.authz")


@dataclass(frozen=True)
class AuthzSettings:
    server: ServerSettings
    signing_key_file: Path
    regions: tuple[str, ...]
    bootstrap_admin: str

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> AuthzSettings:
        env = os.environ if env is None else env
        regions = tuple(r.strip() for r in env_str(env, "REGIONS", "eu").split(",") if r.strip())
        return cls(
            server=ServerSettings.from_env("authz", env),
            signing_key_file=Path(env_str(env, "SIGNING_KEY_FILE")),
            regions=regions,
            bootstrap_admin=env_str(env, "BOOTSTRAP_ADMIN", "user:admin"),
        )


UNAUDITED = frozenset({
    "GetSigningKeys", "GetProject", "ListProjects", "ListPipelines", "ListRoleAssignments", "GetPipelinePermissions",
    "CheckAccess", "ListChecks", "ListApprovals", "FilterUsableResources", "ListAccessRequests", "ListRuns",
    "ListGroups",
})


def build_authorization(settings: AuthzSettings) -> tuple[Authorization, TokenIssuer, AuditLog]:
    """The domain service on its database, bootstrapped."""
    upgrade("authz", settings.server.database_url)
    engine = make_engine(settings.server.database_url, busy_timeout=settings.server.database_busy_timeout)
    issuer = TokenIssuer(load_signing_key(settings.signing_key_file.read_bytes()))
    authorization = Authorization(SqlAuthzRepository(engine), SqlChecksRepository(engine), issuer, settings.regions,
                                  access_requests=SqlAccessRequestRepository(engine))
    authorization.bootstrap(settings.bootstrap_admin)
    return authorization, issuer, AuditLog(engine, "authz", key=settings.server.audit_key)


def build(settings: AuthzSettings) -> RunningServer:
    """Wire the authz service (call inside the event loop)."""
    authorization, issuer, audit = build_authorization(settings)

    async def require_operator(principal: Principal) -> None:
        authorization.require_operator(principal)


    async def own_keys() -> dict:
        return {issuer.kid: issuer.public_key}

    verifier = TokenVerifier(own_keys)
    verifier.set_keys({issuer.kid: issuer.public_key})
    return create_server(
        service="authz",
        registrations=[(
            authz_pb2_grpc.add_AuthorizationServiceServicer_to_server,
            AuthorizationServicer(authorization, issuer, verifier),
        )],
        service_names=[authz_pb2.DESCRIPTOR.services_by_name["AuthorizationService"].full_name],
        tls=settings.server.tls,
        authenticator=Authenticator(verifier),
        address=settings.server.listen,
        internal_address=settings.server.internal_listen,
        reflection_enabled=settings.server.reflection,
        limits=settings.server.limits,
        audit=audit,
        audit_reader=require_operator,
        unaudited_methods=UNAUDITED,
        # No entry, no change: each change's entry is written before its first write. Not for
        # AuthorizeUse, whose entry is the decision (its check-suite bookkeeping comes first), nor
        # for the two creations whose entry names what the database numbered (they grant nothing).
        audit_before_writes=frozenset(
            m.name for m in authz_pb2.DESCRIPTOR.services_by_name["AuthorizationService"].methods
        ) - {"AuthorizeUse", "RequestAccess", "CreateCheck"},
    )


async def serve(settings: AuthzSettings) -> None:
    await run_until_signalled(build(settings), settings.server)


def main() -> None:
    settings = AuthzSettings.from_env()
    configure_logging("authz", settings.server.log_level)
    asyncio.run(serve(settings))
