"""owed policy purges

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26 04:30:00

A deleted file's resource name stays here until authz confirms it forgot the file's policies.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table(
        "owed_purges",
        sa.Column("resource", sa.String(length=128), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("resource"),
    )


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_table("owed_purges")
