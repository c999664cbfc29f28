"""Fingerprints of XPM's answers: per client and job row, and per list answer last loaded.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 08:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from xpm_sync.store.types import UtcDateTime

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("clients", "jobs")


def upgrade() -> None:
    # Rows stored before this revision have no fingerprint: the next answer rewrites them once.
    for table in TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column("row_hash", sa.String(32), nullable=True))
    op.create_table(
        "answer_fingerprints",
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("request", sa.String(length=500), nullable=False),
        sa.Column("digest", sa.String(length=32), nullable=False),
        sa.Column("keys", sa.JSON(), nullable=False),
        sa.Column("signature", sa.String(length=200), nullable=False),
        sa.Column("loaded_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "request", name=op.f("pk_answer_fingerprints")),
    )


def downgrade() -> None:
    op.drop_table("answer_fingerprints")
    for table in TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column("row_hash")
