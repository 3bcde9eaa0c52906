"""trusts, OIDC runs and sign-in groups

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28 10:00:00

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "trusts",
        sa.Column("project", sa.String(length=63), nullable=False),
        sa.Column("trust_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("display_name", sa.String(length=63), nullable=False),
        sa.Column("pipeline_id", sa.Integer(), nullable=False),
        sa.Column("issuer", sa.String(length=512), nullable=False),
        sa.Column("audience", sa.String(length=256), nullable=False),
        sa.Column("bound_claims", sa.Text(), nullable=False),
        sa.Column("branch_claim", sa.String(length=64), nullable=False),
        sa.Column("ref_type_claim", sa.String(length=64), nullable=False),
        sa.Column("run_claims", sa.Text(), nullable=False),
        sa.Column("requester_claim", sa.String(length=64), nullable=False),
        sa.Column("max_ttl_seconds", sa.Integer(), nullable=False),
        sa.Column("static_jwks", sa.Text(), nullable=False),
        sa.Column("ca_pem", sa.Text(), nullable=False),
        sa.Column("created_by", sa.String(length=160), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("project", "trust_id"),
        sa.UniqueConstraint("project", "display_name", name="uq_trusts_name"),
    )
    op.create_index(op.f("ix_trusts_issuer"), "trusts", ["issuer"], unique=False)
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("trust_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("external_key", sa.String(length=320), nullable=True))
        batch.add_column(sa.Column("asserted_by", sa.String(length=160), server_default="", nullable=False))
        batch.add_column(sa.Column("claims", sa.Text(), server_default="{}", nullable=False))
    op.create_index("uq_runs_external_key", "runs", ["project", "external_key"], unique=True)
    with op.batch_alter_table("group_members") as batch:
        batch.add_column(sa.Column("source", sa.String(length=16), server_default="manual", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("group_members") as batch:
        batch.drop_column("source")
    op.drop_index("uq_runs_external_key", table_name="runs")
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("claims")
        batch.drop_column("asserted_by")
        batch.drop_column("external_key")
        batch.drop_column("trust_id")
    op.drop_index(op.f("ix_trusts_issuer"), table_name="trusts")
    op.drop_table("trusts")
