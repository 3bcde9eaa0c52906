"""audit seals (one per complete block of entries) and the archive of old blocks

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05 10:00:00

"""

from collections.abc import Sequence

from securefiles.common.audit_migrations import create_seals_and_archive, drop_seals_and_archive

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    create_seals_and_archive()


def downgrade() -> None:
    drop_seals_and_archive()
