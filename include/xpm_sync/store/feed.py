"""The change feed: what each load inserted, changed or marked removed, for the pipelines that build
on the store.

A load writes its feed rows in the transaction that writes the rows themselves, so the feed never
names a change the store does not hold, nor misses one it does. Each entity's task then puts the
counts and the range of its rows in the feed on its Asset event (`extra`): a downstream DAG
scheduled on the Asset reads exactly what changed with `read`, and nothing else. Rows older than
`[xpm_sync] change_feed_days` are pruned.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy import Engine, and_, delete, func, select
from sqlalchemy.orm import Session

from xpm_sync.store.engine import writing
from xpm_sync.store.models import Change, ChangeKind, table_of
from xpm_sync.store.stage import Stage
from xpm_sync.store.types import utcnow

KINDS = tuple(kind.value for kind in ChangeKind)


def key_text(key: Sequence[Any]) -> str:
    """A row's key as the feed holds it: XPM's key, or its parts joined with '/'."""
    return "/".join(str(part) for part in key)


def record(
    session: Session,
    *,
    tenant_id: str,
    entity: str,
    table_name: str,
    kind: ChangeKind,
    keys: Sequence[Sequence[Any]],
    run_id: str | None,
) -> int:
    """Add one feed row per key, in the session's transaction, by the database's bulk path."""
    if not keys:
        return 0
    stage = Stage.of(session)
    constants = {
        "tenant_id": tenant_id,
        "entity": entity,
        "table_name": table_name,
        "kind": kind.value,
        "run_id": run_id,
        "changed_at": stage.now,
    }
    stage.write_rows(table_of(Change), ["record_key"], [{"record_key": key_text(k)} for k in keys], constants)
    return len(keys)


def last_id(engine: Engine) -> int:
    """The newest feed row's id (0 when there is none): rows a task adds after it have higher ids."""
    with Session(engine) as session:
        return int(session.scalar(select(func.max(Change.id))) or 0)


def summary(engine: Engine, tenant_id: str, entity: str, run_id: str | None, after_id: int) -> dict[str, Any]:
    """What `entity`'s task added to the feed in run `run_id`: the counts by kind, and the first and
    last id (None when it changed nothing), with the practice, entity and run they belong to: what
    the entity's Asset event carries, and `read` takes.

    In a run, every try's rows count: a try that failed had committed some of its loads and posted
    no event, and the retry finds those rows already stored. Without a run id (a caller of `runner`
    that gives none), the rows after `after_id`."""
    query = (
        select(Change.kind, func.count(), func.min(Change.id), func.max(Change.id))
        .where(Change.tenant_id == tenant_id, Change.entity == entity)
        .where(and_(Change.run_id.is_(None), Change.id > after_id) if run_id is None else Change.run_id == run_id)
        .group_by(Change.kind)
    )
    counts = dict.fromkeys(KINDS, 0)
    first: int | None = None
    last: int | None = None
    with Session(engine) as session:
        for kind, count, low, high in session.execute(query):
            counts[kind] = int(count)
            first = low if first is None else min(first, low)
            last = high if last is None else max(last, high)
    return {"tenant_id": tenant_id, "entity": entity, "run_id": run_id, **counts, "first_id": first, "last_id": last}


def read(engine: Engine, extra: Mapping[str, Any]) -> list[Change]:
    """The feed rows an entity's Asset event names (its `extra`, as `summary` made it), oldest first."""
    first, last = extra.get("first_id"), extra.get("last_id")
    if first is None or last is None:
        return []
    query = (
        select(Change)
        .where(
            Change.tenant_id == extra["tenant_id"],
            Change.entity == extra["entity"],
            Change.id.between(int(first), int(last)),
            Change.run_id.is_(None) if extra.get("run_id") is None else Change.run_id == extra["run_id"],
        )
        .order_by(Change.id)
    )
    with Session(engine, expire_on_commit=False) as session:
        return list(session.scalars(query))


def after(
    session: Session, tenant_id: str, after_id: int, *, entity: str | None = None, limit: int = 500
) -> list[Change]:
    """The practice's feed rows after `after_id`, oldest first (a reader's cursor), `limit` of them."""
    query = select(Change).where(Change.tenant_id == tenant_id, Change.id > after_id)
    if entity is not None:
        query = query.where(Change.entity == entity)
    return list(session.scalars(query.order_by(Change.id).limit(limit)))


def changed_keys(engine: Engine, extras: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, list[str]]]:
    """The keys the Asset events' `extra`s name, by entity and kind: what a downstream DAG works on."""
    found: dict[str, dict[str, list[str]]] = {}
    for extra in extras:
        for change in read(engine, extra):
            found.setdefault(change.entity, {}).setdefault(change.kind, []).append(change.record_key)
    return found


def prune(engine: Engine, tenant_id: str, days: int) -> int:
    """Drop the practice's feed rows older than `days` (none when `days` is 0); how many went."""
    if days <= 0:
        return 0
    cutoff = utcnow() - timedelta(days=days)
    with Session(writing(engine)) as session, session.begin():
        gone = session.execute(delete(Change).where(Change.tenant_id == tenant_id, Change.changed_at < cutoff))
        return int(gone.rowcount)  # type: ignore[attr-defined]
