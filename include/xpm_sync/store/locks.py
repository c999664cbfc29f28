"""The active connection row of a conn id, read as is or locked (the outage alert takes turns on it),
and the grant holding its tokens, locked while a refresh takes its lease."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, Select, select
from sqlalchemy.orm import Session

from xpm_sync.store.engine import writing
from xpm_sync.store.models import XpmConnection, XpmGrant


def active_connection(conn_id: str) -> Select[XpmConnection]:
    """The query for the connection row of `conn_id` that is in use (one practice at a time)."""
    return select(XpmConnection).where(XpmConnection.conn_id == conn_id, XpmConnection.active.is_(True))


def practice_connection() -> Select[XpmConnection]:
    """The connection row in use of the practice the running code acts for (`practices.using`)."""
    from xpm_sync import config

    return active_connection(config.get("conn_id"))


def practice_tenant(session: Session) -> str | None:
    """The XPM practice (tenant) the practice the running code acts for is connected to, or None."""
    row = session.scalars(practice_connection()).first()
    return row.tenant_id if row is not None else None


def granted_scopes(engine: Engine, conn_id: str) -> str | None:
    """The scopes the connection in use was granted (the token's `scope`); None when not connected."""
    with Session(engine) as session:
        row = session.scalars(active_connection(conn_id)).first()
        return row.scopes if row is not None else None


@contextmanager
def locked_connection(engine: Engine, conn_id: str) -> Iterator[tuple[Session, XpmConnection | None]]:
    """The active connection row, locked for writing until the block ends (and commits)."""
    with Session(writing(engine), expire_on_commit=False) as session, session.begin():
        yield session, session.scalars(active_connection(conn_id).with_for_update()).first()


@contextmanager
def locked_grant(engine: Engine, conn_id: str) -> Iterator[tuple[Session, XpmConnection | None, XpmGrant | None]]:
    """The active connection row and the grant holding its tokens, the grant locked for writing until
    the block ends (and commits): every practice on that grant takes turns on the same row."""
    with Session(writing(engine), expire_on_commit=False) as session, session.begin():
        row = session.scalars(active_connection(conn_id)).first()
        grant = None
        if row is not None and row.grant_id is not None:
            grant = session.scalars(select(XpmGrant).where(XpmGrant.id == row.grant_id).with_for_update()).first()
        yield session, row, grant


def sharing(session: Session, grant_id: int) -> list[XpmConnection]:
    """The active connections on a grant: the practices one consent connected."""
    query = select(XpmConnection).where(XpmConnection.grant_id == grant_id, XpmConnection.active.is_(True))
    return list(session.scalars(query.order_by(XpmConnection.id)))
