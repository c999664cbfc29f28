"""The JSON API's Idempotency-Key (each keyed write and its answer); the scopes a connection was
found to miss; the bytes of XPM's answers per practice and day; clients' notes (with their Tag).

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
    op.create_table(
        "client_notes",
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("client_uuid", sa.String(length=36), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(length=255), nullable=True),
        sa.Column("text", sa.Text(), nullable=True),
        sa.Column("folder", sa.String(length=255), nullable=True),
        sa.Column("tag", sa.String(length=255), nullable=True),
        sa.Column("note_date", sa.Date(), nullable=True),
        sa.Column("created_by", sa.String(length=255), nullable=True),
        sa.Column("synced_at", UtcDateTime(), nullable=False),
        sa.Column("removed_upstream_at", UtcDateTime(), nullable=True),
        sa.Column("pending_push", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "client_uuid", "position", name=op.f("pk_client_notes")),
    )
    with op.batch_alter_table("api_usage", schema=None) as batch_op:
        batch_op.add_column(sa.Column("bytes", sa.BigInteger(), server_default="0", nullable=False))


def downgrade() -> None:
    op.drop_table("client_notes")
    with op.batch_alter_table("api_usage", schema=None) as batch_op:
        batch_op.drop_column("bytes")
    with op.batch_alter_table("xpm_connection", schema=None) as batch_op:
        batch_op.drop_column("missing_scopes")
    op.drop_table("api_requests")
