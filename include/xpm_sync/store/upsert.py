"""Idempotent batch upserts for the tables mirrored from XPM.

A row is written only when one of its XPM columns differs from what is stored; a row waiting to
be pushed (`pending_push`) is never overwritten. Loading the same rows twice writes nothing the
second time, and the count returned says so.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import Table, and_, or_, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from xpm_sync.store.models import Base, table_of
from xpm_sync.store.types import utcnow

# Rows sent per round trip; SQLAlchemy splits larger lists itself ("insertmanyvalues").
BATCH_ROWS = 1000


def content_columns(table: Table) -> list[str]:
    """The columns that carry XPM data: not the key and not the sync's own bookkeeping."""
    return [c.name for c in table.columns if not c.primary_key and not c.info.get("meta")]


def _batches(rows: Sequence[Mapping[str, Any]], size: int) -> Iterable[Sequence[Mapping[str, Any]]]:
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


def upsert(session: Session, model: type[Base], rows: Sequence[Mapping[str, Any]], *, insert_only: bool = False) -> int:
    """Insert or update `rows` of `model`; return how many rows were inserted or changed.

    Every row must carry the same keys: the table's primary key and some of its XPM columns.
    Columns a row leaves out are not touched on update. With `insert_only`, existing rows are
    left exactly as they are (for records mastered locally).

    One statement is compiled once and run with all the rows; `RETURNING` counts what changed,
    because a row the `WHERE` leaves alone returns nothing.
    """
    if not rows:
        return 0
    table = table_of(model)
    keys = [c.name for c in table.primary_key.columns]
    given = list(rows[0].keys())
    missing = [k for k in keys if k not in given]
    if missing:
        raise ValueError(f"{table.name}: rows lack key columns {missing}")
    data_cols = [c for c in content_columns(table) if c in given]
    now = utcnow()
    stamped = [{**row, "synced_at": now, "removed_upstream_at": None} for row in rows]
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    stmt = insert(table)
    if insert_only:
        stmt = stmt.on_conflict_do_nothing(index_elements=keys)
    else:
        excluded = stmt.excluded
        differs = [table.c[c].is_distinct_from(excluded[c]) for c in data_cols]
        # A row marked removed upstream that shows up again is restored even with equal data.
        differs.append(table.c.removed_upstream_at.is_not(None))
        update = {c: excluded[c] for c in [*data_cols, "synced_at", "removed_upstream_at"]}
        stmt = stmt.on_conflict_do_update(
            index_elements=keys, set_=update, where=and_(table.c.pending_push.is_(False), or_(*differs))
        )
    returning = stmt.returning(*[table.c[k] for k in keys])
    changed = 0
    for batch in _batches(stamped, BATCH_ROWS):
        changed += len(session.execute(returning, list(batch)).all())
    return changed


def mark_removed(
    session: Session, model: type[Base], tenant_id: str, columns: Sequence[str], keys: Sequence[tuple[Any, ...]]
) -> list[tuple[Any, ...]]:
    """Mark the rows with these keys (values of `columns`) as removed upstream; never delete them.
    Returns the keys of the rows marked.

    A row with a local change not yet pushed is left alone: XPM does not have it yet; one already
    marked keeps the time it was first marked.
    """
    table = table_of(model)
    target = tuple_(*[table.c[c] for c in columns]) if len(columns) > 1 else table.c[columns[0]]
    values = list(keys) if len(columns) > 1 else [k[0] for k in keys]
    now = utcnow()
    marked: list[tuple[Any, ...]] = []
    for start in range(0, len(values), 500):
        statement = (
            update(table)
            .where(
                table.c.tenant_id == tenant_id,
                target.in_(values[start : start + 500]),
                table.c.pending_push.is_(False),
                table.c.removed_upstream_at.is_(None),
            )
            .values(removed_upstream_at=now)
            .returning(*[table.c[c] for c in columns])
        )
        marked += [tuple(row) for row in session.execute(statement)]
    return marked
