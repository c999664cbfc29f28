"""The app's calls to XPM per minute over every practice (XPM allows 10,000 a minute per app).

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07 18:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from xpm_sync.store.types import UtcDateTime

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "api_app_minutes",
        sa.Column("minute", UtcDateTime(), nullable=False),
        sa.Column("calls", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("minute", name=op.f("pk_api_app_minutes")),
    )


def downgrade() -> None:
    op.drop_table("api_app_minutes")
