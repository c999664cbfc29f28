"""A lease for the token refresh (no lock held across the call to Xero); custom fields due again.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-21 16:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from xpm_sync.store.types import UtcDateTime

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("xpm_connection", schema=None) as batch_op:
        batch_op.add_column(sa.Column("refresh_lease_owner", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("refresh_lease_until", UtcDateTime(), nullable=True))
    for table in ("clients", "jobs"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column("custom_fields_due_at", UtcDateTime(), nullable=True))


def downgrade() -> None:
    for table in ("jobs", "clients"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column("custom_fields_due_at")
    with op.batch_alter_table("xpm_connection", schema=None) as batch_op:
        batch_op.drop_column("refresh_lease_until")
        batch_op.drop_column("refresh_lease_owner")
