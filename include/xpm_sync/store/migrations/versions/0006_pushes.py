"""Pushing local changes: job state interface codes; the outbox's 'sending' mark and record index.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-21 18:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from xpm_sync.store.types import UtcDateTime

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "job_state_codes",
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("state_name", sa.String(length=100), nullable=False),
        sa.Column("code", sa.String(length=100), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.Column("updated_by", sa.String(length=255), nullable=True),
        sa.PrimaryKeyConstraint("tenant_id", "state_name", name=op.f("pk_job_state_codes")),
    )
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.add_column(sa.Column("sending_at", UtcDateTime(), nullable=True))
        batch_op.create_index("ix_outbox_record", ["tenant_id", "entity", "entity_key"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_index("ix_outbox_record")
        batch_op.drop_column("sending_at")
    op.drop_table("job_state_codes")
