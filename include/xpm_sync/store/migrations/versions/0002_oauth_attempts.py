"""Pending OAuth sign-ins (state, PKCE verifier, who started them).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21 04:51:12.229476
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import xpm_sync.store.types

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "oauth_attempts",
        sa.Column("state", sa.String(length=128), nullable=False),
        sa.Column("conn_id", sa.String(length=250), nullable=False),
        sa.Column("requested_by", sa.String(length=255), nullable=True),
        sa.Column("verifier_ciphertext", sa.Text(), nullable=False),
        sa.Column("redirect_uri", sa.String(length=500), nullable=False),
        sa.Column("switch_practice", sa.Boolean(), nullable=False),
        sa.Column("created_at", xpm_sync.store.types.UtcDateTime(), nullable=False),
        sa.Column("expires_at", xpm_sync.store.types.UtcDateTime(), nullable=False),
        sa.Column("consumed_at", xpm_sync.store.types.UtcDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("state", name=op.f("pk_oauth_attempts")),
    )


def downgrade() -> None:
    op.drop_table("oauth_attempts")
