"""Idempotent batch upserts for the tables mirrored from XPM.

A row is written only when one of its XPM columns differs from what is stored; a row waiting to
be pushed (`pending_push`) is never overwritten. Loading the same rows twice writes nothing the
second time, and the count returned says so.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import Table, and_, or_
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from xpm_sync.store.models import Base
from xpm_sync.store.types import utcnow

# Bound parameters per statement: under SQLite's limit (32,766) and PostgreSQL's (65,535).
MAX_PARAMS = 30_000


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
    """
    if not rows:
        return 0
    table: Table = model.__table__  # type: ignore[assignment]
    keys = [c.name for c in table.primary_key.columns]
    given = list(rows[0].keys())
    missing = [k for k in keys if k not in given]
    if missing:
        raise ValueError(f"{table.name}: rows lack key columns {missing}")
    data_cols = [c for c in content_columns(table) if c in given]
    now = utcnow()
    stamped = [{**row, "synced_at": now, "removed_upstream_at": None} for row in rows]
    per_row = len(given) + 2
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    changed = 0
    for batch in _batches(stamped, max(1, MAX_PARAMS // per_row)):
        stmt = insert(table).values(list(batch))
        if insert_only:
            result = session.execute(
                stmt.on_conflict_do_nothing(index_elements=keys), execution_options={"preserve_rowcount": True}
            )
            changed += max(result.rowcount, 0)  # type: ignore[attr-defined]
            continue
        excluded = stmt.excluded
        differs = [table.c[c].is_distinct_from(excluded[c]) for c in data_cols]
        # A row marked removed upstream that shows up again is restored even with equal data.
        differs.append(table.c.removed_upstream_at.is_not(None))
        update = {c: excluded[c] for c in data_cols}
        update["synced_at"] = excluded["synced_at"]
        update["removed_upstream_at"] = excluded["removed_upstream_at"]
        stmt = stmt.on_conflict_do_update(
            index_elements=keys,
            set_=update,
            where=and_(table.c.pending_push.is_(False), or_(*differs)),
        )
        result = session.execute(stmt, execution_options={"preserve_rowcount": True})
        changed += max(result.rowcount, 0)  # type: ignore[attr-defined]
    return changed
