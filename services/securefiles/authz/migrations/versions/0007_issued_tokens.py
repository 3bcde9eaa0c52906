"""issued tokens (list and revoke)

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-28 11:00:00

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "issued_tokens",
        sa.Column("token_id", sa.String(length=64), nullable=False),
        sa.Column("subject", sa.String(length=160), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("issued_by", sa.String(length=600), nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expire_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_by", sa.String(length=160), server_default="", nullable=False),
        sa.PrimaryKeyConstraint("token_id"),
    )
    op.create_index(op.f("ix_issued_tokens_subject"), "issued_tokens", ["subject"], unique=False)
    op.create_index(op.f("ix_issued_tokens_issued_by"), "issued_tokens", ["issued_by"], unique=False)
    op.create_index(op.f("ix_issued_tokens_expire_at"), "issued_tokens", ["expire_at"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_issued_tokens_expire_at"), table_name="issued_tokens")
    op.drop_index(op.f("ix_issued_tokens_issued_by"), table_name="issued_tokens")
    op.drop_index(op.f("ix_issued_tokens_subject"), table_name="issued_tokens")
    op.drop_table("issued_tokens")
