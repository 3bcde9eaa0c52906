"""registered files: the files storage committed; only these take policies

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 10:00:00

Existing files are taken from the Administrator role storage granted each upload (ids in
storage's canonical UUID form only: a grant on a display name or a made-up id never took effect).
"""

import datetime as dt
import uuid
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _is_file_id(text: str) -> bool:
    try:
        return str(uuid.UUID(text)) == text
    except ValueError:
        return False


def upgrade() -> None:
    registered = op.create_table(
        "registered_files",
        sa.Column("resource", sa.String(length=512), nullable=False),
        sa.Column("project", sa.String(length=63), nullable=False),
        sa.Column("registered_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("resource"),
    )
    scopes = op.get_bind().execute(sa.text(
        "SELECT DISTINCT scope FROM role_assignments WHERE role = 'ADMINISTRATOR' AND scope LIKE 'projects/%'"
    )).scalars().all()
    now = dt.datetime.now(dt.UTC)
    rows = []
    for scope in scopes:
        parts = scope.split("/")
        if len(parts) == 4 and parts[2] == "secureFiles" and _is_file_id(parts[3]):
            rows.append({"resource": scope, "project": parts[1], "registered_at": now})
    if rows:
        op.bulk_insert(registered, rows)


def downgrade() -> None:
    op.drop_table("registered_files")
