"""Alembic migrations per service, applied at start and by `securefiles db upgrade SERVICE`.

Each service keeps its own version table, and upgrades hold a lock (an advisory lock on
PostgreSQL, `BEGIN IMMEDIATE` on SQLite) so that replicas starting at once migrate once.
"""

from __future__ import annotations

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, MetaData, text

SCRIPT_LOCATIONS = {
    "storage": "securefiles.storage:migrations",
    "kms": "securefiles.kms:migrations",
    "authz": "securefiles.authz:migrations",
}
_LOCK_IDS = {"storage": 7_701, "kms": 7_702, "authz": 7_703}


def alembic_config(service: str, url: str) -> Config:
    if service not in SCRIPT_LOCATIONS:
        raise ValueError(f"unknown service {service!r}")
    config = Config()
    config.set_main_option("script_location", SCRIPT_LOCATIONS[service])
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    config.attributes["service"] = service
    return config


def upgrade(service: str, url: str, revision: str = "head") -> None:
    """Bring the service's database to `revision`."""
    command.upgrade(alembic_config(service, url), revision)


def run_migrations(config: Config, target_metadata: list[MetaData]) -> None:
    """Body of each service's env.py (online mode only)."""
    from alembic import context

    from securefiles.common.db import make_engine

    service = config.attributes["service"]
    engine = make_engine(config.get_main_option("sqlalchemy.url") or "")
    with engine.connect().execution_options(securefiles_immediate=True) as connection:
        _configure_and_run(context, connection, service, target_metadata)
    engine.dispose()


def _configure_and_run(context: object, connection: Connection, service: str, target_metadata: list[MetaData]) -> None:
    context.configure(  # type: ignore[attr-defined]
        connection=connection, target_metadata=target_metadata, version_table=f"alembic_version_{service}",
        render_as_batch=connection.dialect.name == "sqlite", transactional_ddl=True,
    )
    with context.begin_transaction():  # type: ignore[attr-defined]
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _LOCK_IDS[service]})
        context.run_migrations()  # type: ignore[attr-defined]
