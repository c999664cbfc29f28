from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from xpm_sync.store import migrate
from xpm_sync.store.models import Base


def test_upgrade_creates_every_table_and_matches_the_models(store_engine):
    migrate.upgrade(store_engine)

    assert migrate.current_revision(store_engine) == migrate.head_revision()
    tables = set(inspect(store_engine).get_table_names())
    assert set(Base.metadata.tables) <= tables
    with store_engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
    assert diff == [], "models and migrations disagree; generate a migration"


def test_downgrade_to_base_removes_everything_and_upgrade_works_again(store_engine):
    migrate.upgrade(store_engine)
    migrate.downgrade(store_engine, "base")

    assert migrate.current_revision(store_engine) is None
    assert set(inspect(store_engine).get_table_names()) <= {"alembic_version"}

    migrate.upgrade(store_engine)
    assert set(Base.metadata.tables) <= set(inspect(store_engine).get_table_names())


def test_sqlite_runs_with_wal_busy_timeout_and_foreign_keys(tmp_path):
    from xpm_sync.store.engine import get_engine

    engine = get_engine(f"sqlite:///{tmp_path / 'p.db'}")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30_000
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
