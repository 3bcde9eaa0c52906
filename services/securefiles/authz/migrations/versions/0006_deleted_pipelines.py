"""deleted pipelines keep their ids

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-28 09:30:00.000000

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table(
        "deleted_pipelines",
        sa.Column("project", sa.String(length=63), nullable=False),
        sa.Column("pipeline_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("display_name", sa.String(length=128), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("project", "pipeline_id"),
    )


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_table("deleted_pipelines")
