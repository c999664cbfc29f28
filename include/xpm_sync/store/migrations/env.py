"""Alembic environment for the practice database; the engine comes from `xpm_sync.store.migrate`."""

from __future__ import annotations

from alembic import context

from xpm_sync.store.engine import get_engine
from xpm_sync.store.models import Base

config = context.config


def run_migrations_online() -> None:
    engine = config.attributes.get("engine") or get_engine()
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=Base.metadata,
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()


if context.is_offline_mode():
    raise SystemExit("xpm-sync migrations run online only: use `xpm-sync db upgrade`.")
run_migrations_online()
