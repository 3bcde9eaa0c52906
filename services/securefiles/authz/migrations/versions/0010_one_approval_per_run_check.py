"""an index to find a run's approval for one check of one file before creating another

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-28 18:40:00

"""

from collections.abc import Sequence

from alembic import op

revision: str = "0010"
down_revision: str | Sequence[str] | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_approvals_run_check", "approvals", ["project", "run_id", "resource", "check_id"])


def downgrade() -> None:
    op.drop_index("ix_approvals_run_check", table_name="approvals")
