"""The connection row, locked: the one place token refreshes and the outage alert take turns."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from xpm_sync.store.engine import writing
from xpm_sync.store.models import XpmConnection


@contextmanager
def locked_connection(engine: Engine, conn_id: str) -> Iterator[tuple[Session, XpmConnection | None]]:
    """The active connection row, locked for writing until the block ends (and commits)."""
    with Session(writing(engine), expire_on_commit=False) as session, session.begin():
        query = (
            select(XpmConnection)
            .where(XpmConnection.conn_id == conn_id, XpmConnection.active.is_(True))
            .with_for_update()
        )
        yield session, session.scalars(query).first()
