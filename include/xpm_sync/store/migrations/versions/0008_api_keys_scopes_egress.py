"""The JSON API's Idempotency-Key (each keyed write and its answer); the scopes a connection was
found to miss; the bytes of XPM's answers per practice and day.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 19:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from xpm_sync.store.types import UtcDateTime

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "api_requests",
        sa.Column("actor", sa.String(length=255), nullable=False),
        sa.Column("idempotency_key", sa.String(length=255), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("response", sa.JSON(), nullable=True),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("actor", "idempotency_key", name=op.f("pk_api_requests")),
    )
    with op.batch_alter_table("xpm_connection", schema=None) as batch_op:
        batch_op.add_column(sa.Column("missing_scopes", sa.JSON(), nullable=True))
    with op.batch_alter_table("api_usage", schema=None) as batch_op:
        batch_op.add_column(sa.Column("bytes", sa.BigInteger(), server_default="0", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("api_usage", schema=None) as batch_op:
        batch_op.drop_column("bytes")
    with op.batch_alter_table("xpm_connection", schema=None) as batch_op:
        batch_op.drop_column("missing_scopes")
    op.drop_table("api_requests")
