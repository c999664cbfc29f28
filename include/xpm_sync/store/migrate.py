"""Apply the practice database's Alembic migrations."""

from __future__ import annotations

import os

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine
from sqlalchemy.engine import URL, make_url

from xpm_sync.plain_errors import XpmSetupError
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


def ready_engine(url: URL | str | None = None) -> Engine:
    """The practice database, for commands that only read it: it must exist and be at the newest
    schema. Never creates one; the error says where it looked and what to run."""
    if url is None:
        from xpm_sync.config import airflow_home, store_url

        url, home = store_url(), airflow_home()
    else:
        home = None
    url = make_url(url)
    where = url.render_as_string(hide_password=True)
    looked = f" (Airflow's home is {home})" if home else ""
    if url.get_backend_name() == "sqlite" and url.database and not os.path.exists(url.database):
        raise XpmSetupError(
            f"There is no practice database at {url.database}{looked}. Run `xpm-sync setup` to create it, or "
            "point this shell at the right Airflow home (for the demo: `source .demo/env`)."
        )
    engine = get_engine(url)
    try:
        current = current_revision(engine)
    except Exception as exc:
        raise XpmSetupError(f"The practice database at {where} cannot be read ({type(exc).__name__}).") from None
    newest = head_revision()
    if current is None:
        raise XpmSetupError(f"The practice database at {where} is empty. Run `xpm-sync setup` to prepare it.")
    if current != newest:
        raise XpmSetupError(
            f"The practice database at {where} is at revision {current}; this xpm-sync needs {newest}. "
            "Run `xpm-sync setup` to bring it up to date."
        )
    return engine
