"""indexes that keep costs flat as runs accumulate: pending approvals of a project, old completed runs

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05 11:00:00

"""

from collections.abc import Sequence

from alembic import op

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_approvals_project_state", "approvals", ["project", "state", "approval_id"])
    op.create_index("ix_runs_state_completed", "runs", ["state", "completed_at"])


def downgrade() -> None:
    op.drop_index("ix_runs_state_completed", table_name="runs")
    op.drop_index("ix_approvals_project_state", table_name="approvals")
