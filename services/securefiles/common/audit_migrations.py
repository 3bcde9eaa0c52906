"""Schema changes of the audit tables every service keeps, shared by the services' migrations."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


def create_seals_and_archive() -> None:
    """`audit_seals` (a seal per complete block of entries) and `audit_archive` (old blocks)."""
    op.create_table(
        "audit_seals",
        sa.Column("first_sequence", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("last_sequence", sa.Integer(), nullable=False),
        sa.Column("seal", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("first_sequence"),
    )
    op.create_table(
        "audit_archive",
        sa.Column("first_sequence", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("last_sequence", sa.Integer(), nullable=False),
        sa.Column("seal", sa.String(length=64), nullable=False),
        sa.Column("rows", sa.LargeBinary(), nullable=False),
        sa.Column("archived_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("first_sequence"),
    )


def drop_seals_and_archive() -> None:
    op.drop_table("audit_archive")
    op.drop_table("audit_seals")
