"""Several practices on one deployment: each setting and each Practice Activity entry names its
practice (the `xpm` connection id). What was there belongs to the deployment's one practice
(`[xpm_sync] conn_id`), so a single-practice database upgrades in place with nothing to re-connect.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07 17:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _primary() -> str:
    from xpm_sync import config

    return config.option_default("conn_id")


def upgrade() -> None:
    primary = _primary()
    with op.batch_alter_table("practice_activity") as batch:
        batch.add_column(sa.Column("conn_id", sa.String(length=250), nullable=False, server_default=primary))
    with op.batch_alter_table("practice_activity") as batch:
        batch.alter_column("conn_id", server_default=None)
    op.create_index("ix_practice_activity_conn_id_id", "practice_activity", ["conn_id", "id"])

    with op.batch_alter_table("practice_settings", recreate="always") as batch:
        batch.add_column(sa.Column("conn_id", sa.String(length=250), nullable=False, server_default=primary))
        batch.drop_constraint("pk_practice_settings", type_="primary")
        batch.create_primary_key("pk_practice_settings", ["conn_id", "name"])
    with op.batch_alter_table("practice_settings") as batch:
        batch.alter_column("conn_id", server_default=None)


def downgrade() -> None:
    primary = _primary()
    op.execute(sa.text("DELETE FROM practice_settings WHERE conn_id != :primary").bindparams(primary=primary))
    with op.batch_alter_table("practice_settings", recreate="always") as batch:
        batch.drop_constraint("pk_practice_settings", type_="primary")
        batch.drop_column("conn_id")
        batch.create_primary_key("pk_practice_settings", ["name"])
    op.drop_index("ix_practice_activity_conn_id_id", table_name="practice_activity")
    with op.batch_alter_table("practice_activity") as batch:
        batch.drop_column("conn_id")
