"""The change feed: what each load inserted, changed or marked removed (entity, table, key, kind,
run, time), for the pipelines that build on the store.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07 07:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from xpm_sync.store.types import UtcDateTime

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "changes",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("entity", sa.String(length=64), nullable=False),
        sa.Column("table_name", sa.String(length=64), nullable=False),
        sa.Column("record_key", sa.String(length=100), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("run_id", sa.String(length=250), nullable=True),
        sa.Column("changed_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_changes")),
    )
    op.create_index("ix_changes_tenant_id_changed_at", "changes", ["tenant_id", "changed_at"])
    op.create_index("ix_changes_tenant_id_run_id_entity", "changes", ["tenant_id", "run_id", "entity"])


def downgrade() -> None:
    op.drop_index("ix_changes_tenant_id_run_id_entity", table_name="changes")
    op.drop_index("ix_changes_tenant_id_changed_at", table_name="changes")
    op.drop_table("changes")
