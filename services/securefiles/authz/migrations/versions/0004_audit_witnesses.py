"""audit witnesses: other services' chain heads as this service saw them

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 11:00:00

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "audit_witnesses",
        sa.Column("service", sa.String(length=64), nullable=False),
        sa.Column("sequence", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.Column("witnessed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("service", "sequence"),
    )


def downgrade() -> None:
    op.drop_table("audit_witnesses")
