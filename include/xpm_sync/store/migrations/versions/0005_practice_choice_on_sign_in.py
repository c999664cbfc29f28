"""A sign-in that reaches several practices waits for the administrator's choice (XPM page).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-21 17:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from xpm_sync.store.types import UtcDateTime

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("oauth_attempts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("pending_ciphertext", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("pending_practices", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("chosen_at", UtcDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("oauth_attempts", schema=None) as batch_op:
        batch_op.drop_column("chosen_at")
        batch_op.drop_column("pending_practices")
        batch_op.drop_column("pending_ciphertext")
