"""Apply the practice database's Alembic migrations."""

from __future__ import annotations

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

from xpm_sync.store.engine import get_engine

SCRIPT_LOCATION = "xpm_sync.store:migrations"


def alembic_config(engine: Engine) -> Config:
    """An Alembic configuration bound to `engine`, with no ini file needed."""
    cfg = Config()
    cfg.set_main_option("script_location", SCRIPT_LOCATION)
    cfg.attributes["engine"] = engine
    return cfg


def upgrade(engine: Engine | None = None, revision: str = "head") -> None:
    """Migrate the practice database up to `revision`."""
    command.upgrade(alembic_config(engine or get_engine()), revision)


def downgrade(engine: Engine | None = None, revision: str = "base") -> None:
    """Migrate the practice database down to `revision`."""
    command.downgrade(alembic_config(engine or get_engine()), revision)


def current_revision(engine: Engine | None = None) -> str | None:
    """The revision the database is at, or None for an empty one."""
    with (engine or get_engine()).connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision() -> str | None:
    """The newest revision the code ships."""
    engine = get_engine("sqlite://")
    return ScriptDirectory.from_config(alembic_config(engine)).get_current_head()
