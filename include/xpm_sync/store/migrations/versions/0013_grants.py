"""A grant (one consent at Xero, its token set and the refresh lease) apart from the practices it
connected: `xpm_grants`, and `xpm_connection.grant_id`. Each connection's token set moves to a grant of
its own, so nothing needs re-connecting; a later sign-in that connects several practices points them
all at one grant.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07 18:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from xpm_sync.store.types import UtcDateTime

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MOVED = ("token_ciphertext", "access_expires_at", "refresh_issued_at", "last_refresh_at",
         "refresh_lease_owner", "refresh_lease_until")  # fmt: skip


def upgrade() -> None:
    grants = op.create_table(
        "xpm_grants",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("token_ciphertext", sa.Text(), nullable=True),
        sa.Column("auth_event_id", sa.String(length=36), nullable=True),
        sa.Column("access_expires_at", UtcDateTime(), nullable=True),
        sa.Column("refresh_issued_at", UtcDateTime(), nullable=True),
        sa.Column("last_refresh_at", UtcDateTime(), nullable=True),
        sa.Column("refresh_lease_owner", sa.String(length=64), nullable=True),
        sa.Column("refresh_lease_until", UtcDateTime(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_xpm_grants")),
    )
    with op.batch_alter_table("xpm_connection") as batch:
        batch.add_column(sa.Column("grant_id", sa.Integer(), nullable=True))
    op.create_index("ix_xpm_connection_grant_id", "xpm_connection", ["grant_id"])

    bind = op.get_bind()
    connection = sa.table("xpm_connection", sa.column("id"), sa.column("grant_id"), sa.column("auth_event_id"),
                          sa.column("version"), sa.column("created_at"),
                          *(sa.column(name) for name in MOVED))  # fmt: skip
    rows = bind.execute(sa.select(connection).where(connection.c.token_ciphertext.is_not(None))).mappings().all()
    for row in rows:
        values = {name: row[name] for name in MOVED}
        new_id = bind.execute(
            grants.insert()
            .values(
                **values,
                auth_event_id=row["auth_event_id"],
                version=row["version"] or 1,
                created_at=row["created_at"],
                updated_at=row["created_at"],
            )  # fmt: skip
            .returning(grants.c.id)
        ).scalar_one()
        bind.execute(connection.update().where(connection.c.id == row["id"]).values(grant_id=new_id))

    with op.batch_alter_table("xpm_connection") as batch:
        for name in MOVED:
            batch.drop_column(name)


def downgrade() -> None:
    with op.batch_alter_table("xpm_connection") as batch:
        batch.add_column(sa.Column("token_ciphertext", sa.Text(), nullable=True))
        batch.add_column(sa.Column("access_expires_at", UtcDateTime(), nullable=True))
        batch.add_column(sa.Column("refresh_issued_at", UtcDateTime(), nullable=True))
        batch.add_column(sa.Column("last_refresh_at", UtcDateTime(), nullable=True))
        batch.add_column(sa.Column("refresh_lease_owner", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("refresh_lease_until", UtcDateTime(), nullable=True))
    bind = op.get_bind()
    grants = sa.table("xpm_grants", sa.column("id"), *(sa.column(name) for name in MOVED))
    connection = sa.table("xpm_connection", sa.column("grant_id"), *(sa.column(name) for name in MOVED))
    for grant in bind.execute(sa.select(grants)).mappings().all():
        values = {name: grant[name] for name in MOVED}
        bind.execute(connection.update().where(connection.c.grant_id == grant["id"]).values(**values))
    op.drop_index("ix_xpm_connection_grant_id", table_name="xpm_connection")
    with op.batch_alter_table("xpm_connection") as batch:
        batch.drop_column("grant_id")
    op.drop_table("xpm_grants")
