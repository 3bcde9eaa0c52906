"""expiry alerts: which file versions were announced at which threshold

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 10:00:00

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
        "expiry_alerts",
        sa.Column("file_id", sa.String(length=36), nullable=False),
        sa.Column("version", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("threshold_days", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["file_id"], ["secure_files.file_id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("file_id", "version", "threshold_days"),
    )


def downgrade() -> None:
    op.drop_table("expiry_alerts")
