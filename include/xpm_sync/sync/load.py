"""One engine for every entity: fetch, parse, upsert in batches inside a transaction, then advance
the entity's checkpoint once the rows are committed.

A call to XPM is never made while a write transaction is open (SQLite has one writer): the hook
reads each answer in full before `load` opens its transaction. Re-running with no upstream change
writes nothing. Only a complete list of the expected shape marks rows removed, and never too many
at once without a confirmed full sync.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, select, true, update
from sqlalchemy.orm import Session

from xpm_sync import activity, config, decisions
from xpm_sync.api.fingerprint import Fingerprints, ListAnswer
from xpm_sync.api.records import Record
from xpm_sync.api.xml import UNCHANGED
from xpm_sync.store import feed
from xpm_sync.store.engine import analyze_stale, writing
from xpm_sync.store.models import ActivityStatus, Base, ChangeKind, DecisionKind, SyncState, table_of
from xpm_sync.store.stage import Stage
from xpm_sync.store.types import utcnow
from xpm_sync.store.upsert import mark_removed
from xpm_sync.sync.context import SyncContext

log = logging.getLogger(__name__)

# The tables that mirror XPM (every one carries the practice and the removal mark).
MIRRORED = [t.name for t in Base.metadata.sorted_tables if "removed_upstream_at" in t.c]

# Records staged and merged at a time: large enough for the bulk path to pay, small enough that a
# batch of detailed clients stays a few megabytes.
BATCH = 2000
Children = Callable[[Session, str, Sequence[Record]], int]


class _DryRun(Exception):
    """Raised to roll a dry run's transaction back after counting."""


def parent_rows(batch: Sequence[Record], tenant_id: str) -> list[dict[str, Any]]:
    return [{"tenant_id": tenant_id, **{k: v for k, v in r.items() if not k.startswith("_")}} for r in batch]


def load(
    ctx: SyncContext,
    model: type[Base],
    records: Iterable[Record],
    *,
    key: str = "uuid",
    children: Children | None = None,
    insert_only: bool = False,
    seen: set[str] | None = None,
    fingerprints: Fingerprints | None = None,
) -> tuple[int, int]:
    """Stream `records` into `model` in one transaction; return (fetched, written).

    Nothing is committed unless the whole answer was read: a truncated or malformed answer
    raises out of `records` and rolls the batch back. Records that came as unchanged markers
    (their fingerprint matched, see `xpm_sync.api.fingerprint`) count as fetched and seen and
    cost nothing more; the others are staged and merged a batch at a time (`store.stage`).
    """
    fetched = written = 0
    # The fingerprints of what was written, for the rest of the pass to compare with: taken up
    # only once the transaction has committed.
    done: list[tuple[str, str | None]] = []
    # Every key of a whole list answer, for its fingerprint (`Fingerprints.answer_loaded`).
    answer = records if isinstance(records, ListAnswer) else None
    listed: list[str] | None = [] if answer is not None else None
    with Session(writing(ctx.engine)) as session:
        try:
            with session.begin():
                batch: list[Record] = []
                for record in records:
                    fetched += 1
                    if seen is not None:
                        seen.add(record[key])
                    if listed is not None:
                        listed.append(record[key])
                    if record.get(UNCHANGED):
                        continue
                    batch.append(record)
                    if len(batch) >= BATCH:
                        written += _write(session, ctx, model, batch, key, children, insert_only, fingerprints, done)
                        batch = []
                if batch:
                    written += _write(session, ctx, model, batch, key, children, insert_only, fingerprints, done)
                if answer is not None and listed is not None and fingerprints is not None:
                    fingerprints.answer_loaded(session, answer, listed)
                if ctx.dry_run:
                    raise _DryRun
        except _DryRun:
            done = []
    if fingerprints is not None:
        fingerprints.remember(done)
    return fetched, written


def _write(
    session: Session,
    ctx: SyncContext,
    model: type[Base],
    batch: Sequence[Record],
    key: str,
    children: Children | None,
    insert_only: bool,
    fingerprints: Fingerprints | None,
    done: list[tuple[str, str | None]],
) -> int:
    # The records themselves are the rows (the stage reads only their columns); the practice is
    # the same for all. A record repeated in a batch is written as last listed.
    rows = list({r[key]: r for r in batch}.values())
    practice = {"tenant_id": ctx.tenant_id}
    if insert_only:
        table = table_of(model)
        known = set(
            session.scalars(
                select(table.c[key]).where(table.c.tenant_id == ctx.tenant_id, table.c[key].in_([r[key] for r in rows]))
            )
        )
        batch = [r for r in batch if r[key] not in known]
    stage = Stage.of(session)
    written, every = 0, rows
    inserted: list[tuple[Any, ...]] = []
    changed: list[tuple[Any, ...]] = []
    new = {r[key] for r in rows if fingerprints.is_new(r[key])} if fingerprints is not None else set()
    if new:
        # Records the store never held go in by the bulk path, with their children.
        with stage.new_parents():
            written += stage.merge(
                model, [r for r in rows if r[key] in new], insert_only=insert_only, constants=practice, track=True
            )
            inserted += stage.inserted
            changed += stage.changed
            fresh = [r for r in batch if r[key] in new]
            if children is not None and fresh:
                written += children(session, ctx.tenant_id, fresh)
        rows, batch = [r for r in rows if r[key] not in new], [r for r in batch if r[key] not in new]
    if rows:
        written += stage.merge(model, rows, insert_only=insert_only, constants=practice, track=True)
        inserted += stage.inserted
        changed += stage.changed
        if children is not None and batch:
            written += children(session, ctx.tenant_id, batch)
    for kind, keys in ((ChangeKind.INSERTED, inserted), (ChangeKind.CHANGED, changed)):
        record_changes(session, ctx, model, kind, keys)
    done.extend((r[key], r.get("row_hash")) for r in every)
    return written


def record_changes(
    session: Session, ctx: SyncContext, model: type[Base], kind: ChangeKind, keys: Sequence[Sequence[Any]]
) -> None:
    """Say in the change feed, in the load's transaction, what it did to these rows of `model`."""
    name = table_of(model).name
    feed.record(
        session, tenant_id=ctx.tenant_id, entity=ctx.entity or name, table_name=name, kind=kind, keys=keys,
        run_id=ctx.run_id,
    )  # fmt: skip


def record_stage(session: Session, ctx: SyncContext, model: type[Base]) -> None:
    """Say in the change feed what the session's stage last merged and marked gone in `model`
    (`replace_children(..., track=True)`)."""
    stage = Stage.of(session)
    for kind, keys in (
        (ChangeKind.INSERTED, stage.inserted),
        (ChangeKind.CHANGED, stage.changed),
        (ChangeKind.REMOVED, stage.removed),
    ):
        record_changes(session, ctx, model, kind, keys)


def too_many_removals(gone: int, present: int, listed: int) -> bool:
    """Whether removing `gone` of `present` stored rows, on a list of `listed`, needs confirming."""
    if gone == 0:
        return False
    if listed == 0:
        return True
    return gone >= config.get_int("mass_removal_min_rows") and gone > present * config.get_float("mass_removal_share")


def mark_missing(
    ctx: SyncContext,
    model: type[Base],
    seen: set[str],
    *,
    label: str,
    key: str = "uuid",
    within: ColumnElement[bool] | None = None,
) -> int:
    """After a complete list: mark rows XPM no longer returns as removed upstream (never delete them).

    `within` narrows the rows the list answers for (a list by date answers for the rows of its
    dates only). A list that would remove too many rows at once (more than `mass_removal_share` of
    them, or all of them) marks nothing and raises an Alert instead, unless the run confirmed
    removals. Returns how many were marked; `ctx.held_back` counts those held back.
    """
    table = table_of(model)
    with Session(writing(ctx.engine)) as session:
        try:
            with session.begin():
                present = set(
                    session.scalars(
                        select(table.c[key]).where(
                            table.c.tenant_id == ctx.tenant_id,
                            table.c.removed_upstream_at.is_(None),
                            true() if within is None else within,
                        )
                    )
                )
                gone = sorted(present - seen)
                held = too_many_removals(len(gone), len(present), len(seen)) and not ctx.confirm_removals
                if not held:
                    marked = mark_removed(session, model, ctx.tenant_id, [key], [(k,) for k in gone])
                    record_changes(session, ctx, model, ChangeKind.REMOVED, marked)
                    # A newer complete list answered: an earlier run's question about it is moot.
                    decisions.supersede(session, ctx.tenant_id, DecisionKind.REMOVAL, table.name, ctx.run_id)
                if ctx.dry_run:
                    raise _DryRun
        except _DryRun:
            pass
    if held:
        what = f"XPM's full list would mark {len(gone):,} of the {len(present):,} stored rows removed"
        question = f"{label} XPM no longer lists {len(gone):,} of the {len(present):,} stored: mark them removed?"
        hold_back(ctx, label, what, len(present), Held(DecisionKind.REMOVAL, model, key, gone, question))
        return 0
    return len(gone)


def set_current(ctx: SyncContext, model: type[Base], key: str, current: set[str]) -> int:
    """Flag the rows on XPM's current list (`is_current`); only rows whose flag changes are written."""
    if ctx.dry_run:
        return 0
    table = table_of(model)
    with Session(writing(ctx.engine)) as session, session.begin():
        flags = session.execute(
            select(table.c[key], table.c.is_current).where(table.c.tenant_id == ctx.tenant_id)
        ).all()
        on = sorted(k for k, flag in flags if k in current and flag is not True)
        off = sorted(k for k, flag in flags if k not in current and flag is not False)
        for keys, value in ((on, True), (off, False)):
            for start in range(0, len(keys), 500):
                session.execute(
                    update(table)
                    .where(table.c.tenant_id == ctx.tenant_id, table.c[key].in_(keys[start : start + 500]))
                    .values(is_current=value)
                )
    return len(on) + len(off)


@dataclass(frozen=True)
class Held:
    """What a held-back change would have done: its kind, the rows' keys, and the question it asks."""

    kind: DecisionKind
    model: type[Base]
    key: str
    keys: Sequence[str]
    question: str


def hold_back(ctx: SyncContext, label: str, what: str, present: int, held: Held) -> None:
    """Too much would change at once to trust the answer: change nothing, keep the exact keys for a
    person to decide (the run's Required Action), and raise an Alert."""
    gone = len(held.keys)
    ctx.held_back += gone
    entity = ctx.entity or "the entity"
    message = (
        f"{label} {what} ({100 * gone // max(present, 1)}%); nothing was changed, in case the answer was "
        "incomplete. The run asks in Airflow's Required Actions whether to apply it (the XPM page links to "
        f"it); from a shell, `xpm-sync sync --entities {entity} --full --confirm-removals` applies it."
    )
    alert(ctx, message, {"entity": entity, "would_change": gone, "stored": present})
    if ctx.dry_run:
        return
    with Session(writing(ctx.engine)) as session, session.begin():
        decisions.hold(
            session,
            tenant_id=ctx.tenant_id,
            kind=held.kind,
            entity=entity,
            model=held.model,
            key_column=held.key,
            keys=held.keys,
            stored=present,
            question=held.question,
            run_id=ctx.run_id,
        )


def alert(ctx: SyncContext, message: str, details: dict[str, Any]) -> None:
    """Log `message` and, unless this is a dry run, record it as a Practice Activity Alert."""
    log.warning("%s", message)
    if ctx.dry_run:
        return
    with Session(writing(ctx.engine)) as session, session.begin():
        activity.record(
            session,
            ActivityStatus.ALERT,
            "Sync",
            message,
            details={**details, "run_id": ctx.run_id},
            actor=ctx.actor,
            tenant_id=ctx.tenant_id,
        )


def state(ctx: SyncContext, entity: str) -> SyncState | None:
    with Session(ctx.engine, expire_on_commit=False) as session:
        return session.get(SyncState, (ctx.tenant_id, entity))


def checkpoint(
    ctx: SyncContext,
    entity: str,
    *,
    watermark: datetime | None = None,
    cursor: dict[str, Any] | None = None,
    complete: bool = True,
    full_pass: bool = False,
    error: str | None = None,
) -> None:
    """Record where an entity got to. Called only after its rows are committed; `full_pass` when
    this run read everything XPM holds for the entity."""
    if ctx.dry_run:
        return
    with Session(writing(ctx.engine)) as session, session.begin():
        row = session.get(SyncState, (ctx.tenant_id, entity)) or SyncState(tenant_id=ctx.tenant_id, entity=entity)
        session.add(row)
        now = utcnow()
        if error is None and complete:
            row.last_success_at = now
            if watermark is not None:
                row.watermark = watermark
            if full_pass:
                row.last_full_sync_at = now
        row.cursor = cursor
        row.last_status = "success" if error is None and complete else ("partial" if error is None else "failed")
        row.last_error = error
        row.last_run_id = ctx.run_id
    # What a first load (or a big night) wrote is analysed now, not when autovacuum comes: the next
    # night's process then plans its statements from the tables' true size.
    analyze_stale(ctx.engine, MIRRORED)
