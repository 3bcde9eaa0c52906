"""Composition root of the authz service."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Engine

from securefiles.audit.api import SERVICE_NAME as AUDIT_SERVICE
from securefiles.audit.api import WITNESS_METHODS, audit_registration
from securefiles.authz.adapters.oidc_keys import IssuerKeys
from securefiles.authz.adapters.sql_break_glass import SqlAccessRequestRepository
from securefiles.authz.adapters.sql_checks import SqlChecksRepository
from securefiles.authz.adapters.sql_repository import SqlAuthzRepository
from securefiles.authz.adapters.sql_run_retention import SqlCompletedRunStore
from securefiles.authz.adapters.sql_token_registry import SqlTokenRegistry
from securefiles.authz.adapters.sql_trusts import SqlTrustRepository
from securefiles.authz.api.servicer import AuthorizationServicer
from securefiles.authz.domain.oidc import IssuerSource
from securefiles.authz.domain.run_retention import DEFAULT_KEEP_DAYS, MIN_KEEP, RunRetention
from securefiles.authz.domain.service import Authorization, IdentitySettings
from securefiles.authz.domain.sign_in import SignInSettings
from securefiles.authz.domain.trusts import validate_issuer
from securefiles.authz.v1 import authz_pb2, authz_pb2_grpc
from securefiles.common.audit import AuditLog
from securefiles.common.authentication import Authenticator
from securefiles.common.clock import utcnow
from securefiles.common.config import ConfigError, ServerSettings, env_bool, env_int, env_optional, env_str
from securefiles.common.db import make_engine, ping
from securefiles.common.db_threads import DatabaseThreads, run_inline
from securefiles.common.errors import InvalidArgument
from securefiles.common.housekeeping import Job, archive_audit, keep_house
from securefiles.common.logging import configure_logging
from securefiles.common.migrations import upgrade
from securefiles.common.principal import Principal
from securefiles.common.server import RunningServer, create_server, run_until_signalled
from securefiles.common.tokens import PublishedKeys, TokenIssuer, TokenVerifier, load_signing_key
from securefiles.common.tracing import configure_tracing
from securefiles.common.unit_of_work import UnitsOfWork

log = logging.getLogger("securefiles.authz")


# The CI providers trusts may name unless the operator says otherwise (`OIDC_ALLOWED_ISSUERS`):
# a trust of any other issuer would let whoever runs that issuer mint jobs.
DEFAULT_ALLOWED_ISSUERS = ("https://token.actions.githubusercontent.com", "https://gitlab.com")


@dataclass(frozen=True)
class OidcKeySettings:
    """How long an outside issuer's keys are trusted (see `oidc_keys.IssuerKeys`)."""

    refresh_after: float = 300.0
    max_age: float = 3600.0
    min_refetch: float = 10.0


@dataclass(frozen=True)
class AuthzSettings:
    server: ServerSettings
    signing_key_file: Path
    regions: tuple[str, ...]
    bootstrap_admin: str
    identity: IdentitySettings = field(default_factory=IdentitySettings)
    oidc_keys: OidcKeySettings = field(default_factory=OidcKeySettings)
    run_retention_days: int = DEFAULT_KEEP_DAYS

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> AuthzSettings:
        env = os.environ if env is None else env
        regions = tuple(r.strip() for r in env_str(env, "REGIONS", "eu").split(",") if r.strip())
        dev_mode = env_bool(env, "DEV_MODE")
        return cls(
            server=ServerSettings.from_env("authz", env),
            signing_key_file=Path(env_str(env, "SIGNING_KEY_FILE")),
            regions=regions,
            bootstrap_admin=env_str(env, "BOOTSTRAP_ADMIN", "user:admin"),
            identity=IdentitySettings(
                dev_mode=dev_mode,
                sign_in=_sign_in_settings(env),
                allowed_issuers=tuple(i.strip() for i in env_str(
                    env, "OIDC_ALLOWED_ISSUERS", "*" if dev_mode else ",".join(DEFAULT_ALLOWED_ISSUERS)).split(",")
                    if i.strip()),
            ),
            oidc_keys=OidcKeySettings(
                refresh_after=float(env_int(env, "OIDC_KEYS_REFRESH_SECONDS", 300)),
                max_age=float(env_int(env, "OIDC_KEYS_MAX_AGE_SECONDS", 3600)),
                min_refetch=float(env_int(env, "OIDC_KEYS_MIN_REFETCH_SECONDS", 10)),
            ),
            run_retention_days=_run_retention_days(env),
        )


def _run_retention_days(env: Mapping[str, str]) -> int:
    days = env_int(env, "RUN_RETENTION_DAYS", DEFAULT_KEEP_DAYS)
    if dt.timedelta(days=days) < MIN_KEEP:
        raise ConfigError(f"SECUREFILES_RUN_RETENTION_DAYS must be at least {MIN_KEEP.days}: a job token lives "
                          "up to 31 days")
    return days


def _sign_in_settings(env: Mapping[str, str]) -> SignInSettings | None:
    """People's sign-in: `OIDC_LOGIN_ISSUER` and `OIDC_LOGIN_CLIENT_ID` (both, or neither)."""
    issuer, client_id = env_optional(env, "OIDC_LOGIN_ISSUER"), env_optional(env, "OIDC_LOGIN_CLIENT_ID")
    if not issuer and not client_id:
        return None
    if not (issuer and client_id):
        raise ConfigError("set both SECUREFILES_OIDC_LOGIN_ISSUER and SECUREFILES_OIDC_LOGIN_CLIENT_ID")
    try:
        validate_issuer(issuer)
    except InvalidArgument as error:
        raise ConfigError(f"SECUREFILES_OIDC_LOGIN_ISSUER: {error.message}") from None
    return SignInSettings(
        # OIDC_LOGIN_CA_FILE: the CA of the provider's HTTPS certificate (default: the system's).
        source=IssuerSource(issuer, ca_pem=env_optional(env, "OIDC_LOGIN_CA") or ""),
        client_id=client_id,
        user_claim=env_str(env, "OIDC_LOGIN_USER_CLAIM", "preferred_username"),
        groups_claim=env_str(env, "OIDC_LOGIN_GROUPS_CLAIM", "groups"),
        session_seconds=env_int(env, "SESSION_TTL_SECONDS", 3600),
    )


UNAUDITED = frozenset({
    "GetSigningKeys", "GetProject", "ListProjects", "ListPipelines", "ListRoleAssignments", "GetPipelinePermissions",
    "CheckAccess", "ListChecks", "ListApprovals", "FilterUsableResources", "ListAccessRequests", "GetTrust",
    "ListTrusts", "GetSignInConfig", "ListRuns", "ListGroups", "ListTokens",
})
# Callable without a token: the request carries the credential (an OIDC token).
PUBLIC = frozenset({"ExchangeToken", "SignIn", "GetSignInConfig"})


def build_authorization(settings: AuthzSettings, database: DatabaseThreads | None = None
                        ) -> tuple[Authorization, TokenIssuer, AuditLog, Engine]:
    """The domain service on its database (bootstrapped), its audit log, the database."""
    upgrade("authz", settings.server.database_url)
    engine = make_engine(settings.server.database_url, busy_timeout=settings.server.database_busy_timeout)
    issuer = TokenIssuer(load_signing_key(settings.signing_key_file.read_bytes()))
    audit = AuditLog(engine, "authz", key=settings.server.audit_key)
    keys = IssuerKeys(refresh_after=settings.oidc_keys.refresh_after, max_age=settings.oidc_keys.max_age,
                      min_refetch=settings.oidc_keys.min_refetch)
    authorization = Authorization(SqlAuthzRepository(engine), SqlChecksRepository(engine), issuer, settings.regions,
                                  access_requests=SqlAccessRequestRepository(engine),
                                  trusts=SqlTrustRepository(engine), oidc_keys=keys, identity=settings.identity,
                                  issued_tokens=SqlTokenRegistry(engine),
                                  blocking=database.run if database is not None else run_inline,
                                  unit_of_work=UnitsOfWork(engine, audit))
    authorization.bootstrap(settings.bootstrap_admin)
    return authorization, issuer, audit, engine


def build(settings: AuthzSettings) -> tuple[RunningServer, list[Job], Callable[[], None]]:
    """Wire the authz service (call inside the event loop): the server, its housekeeping, and
    what releases its database threads and connections once the server has stopped."""
    database = DatabaseThreads(settings.server.database_threads, "authz-db")
    authorization, issuer, audit, engine = build_authorization(settings, database)
    retention = RunRetention(SqlCompletedRunStore(engine), dt.timedelta(days=settings.run_retention_days), utcnow,
                             UnitsOfWork(engine, audit).for_job("service:authz", "ForgetCompletedRuns"))

    async def forget_completed_runs() -> None:
        cutoff = retention.cutoff()
        forgotten = await database.run(retention.forget_old_runs, cutoff)
        if forgotten:
            log.info("completed runs forgotten", extra={"runs": forgotten, "completed_before": cutoff.isoformat()})

    async def require_operator(principal: Principal) -> None:
        await database.run(authorization.require_operator, principal)


    async def own_keys() -> PublishedKeys:
        tokens = authorization.tokens
        revoked = await database.run(tokens.revoked_ids) if tokens else set()
        return PublishedKeys({issuer.kid: issuer.public_key}, frozenset(revoked))

    # Its own key never goes stale; the revoked list is read again every few seconds (another
    # replica may have revoked a token).
    verifier = TokenVerifier(own_keys, max_key_age=5.0)
    running = create_server(
        service="authz",
        registrations=[(
            authz_pb2_grpc.add_AuthorizationServiceServicer_to_server,
            AuthorizationServicer(authorization, issuer, verifier, database, UnitsOfWork(engine, audit, database)),
        ), audit_registration(audit, require_operator, database)],
        service_names=[authz_pb2.DESCRIPTOR.services_by_name["AuthorizationService"].full_name, AUDIT_SERVICE],
        tls=settings.server.tls,
        authenticator=Authenticator(verifier),
        address=settings.server.listen,
        internal_address=settings.server.internal_listen,
        reflection_enabled=settings.server.reflection,
        limits=settings.server.limits,
        audit=audit,
        readiness={"database": lambda: ping(engine)},
        unaudited_methods=UNAUDITED | WITNESS_METHODS,
        public_methods=PUBLIC,
    )
    def close() -> None:
        audit.close()
        database.close()
        engine.dispose()

    return running, [archive_audit(audit, database, settings.server.audit_retention_days),
                     forget_completed_runs], close


async def serve(settings: AuthzSettings, stop: asyncio.Event | None = None) -> None:
    """Serve until signalled, or until `stop` is set (a server sharing its process)."""
    running, housekeeping, close = build(settings)
    background = asyncio.create_task(keep_house(housekeeping, settings.server.retention_interval))
    try:
        await run_until_signalled(running, settings.server, on_stop=close, stop=stop)
    finally:
        background.cancel()


def main() -> None:
    settings = AuthzSettings.from_env()
    configure_logging("authz", settings.server.log_level)
    configure_tracing("authz")
    asyncio.run(serve(settings))
