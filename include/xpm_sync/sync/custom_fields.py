"""Custom field values: one call per client or job, so they are spent where there is evidence of change.

XPM's lists carry no custom field values, and a custom-field edit moves nothing a list shows (the
recorded material has no such field, and a client's modified date is not documented to move on one).
So the values are read, in this order:

1. Evidence: records marked due (a local push, or a read XPM refused; the longest waiting first),
   records whose data changed since their values were read (a client whose modified date moved, a
   job that changed state or entered or left the current list), and new records (clients never
   read, open jobs never read).
   All of it, within the day's budget.
2. The sweep: a fixed number of calls a night (`custom_field_sweep_calls`) for everything else:
   first the backlog never read at all (closed jobs, mostly), then values older than
   `custom_field_refresh_days`, the stalest first. It runs only in the overnight sync.

A full sync reads every client and every job. The pull stops when the day's
share of XPM's calls is spent (by default 80% of the 5,000, leaving the rest for pushes and manual
work) and resumes there next run.

A record XPM refuses (200 + ERROR) keeps its stored values: the failure is reported with XPM's
words and the record stays due.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, case, func, select, true, update
from sqlalchemy.orm import Session

from xpm_sync import config
from xpm_sync.api.records import Record
from xpm_sync.api.usage import calls_today
from xpm_sync.plain_errors import XpmBusinessError
from xpm_sync.store.engine import writing
from xpm_sync.store.models import Base, Client, ClientCustomFieldValue, CustomFieldDefinition, Job, JobCustomFieldValue
from xpm_sync.store.types import utcnow
from xpm_sync.sync.children import replace_children
from xpm_sync.sync.context import EntityResult, SyncContext
from xpm_sync.sync.load import checkpoint, record_stage

log = logging.getLogger(__name__)

WRITE_EVERY = 25


def day_share() -> int:
    """Calls custom field values may use in a day, over both kinds."""
    return int(config.get_int("daily_call_limit") * config.get_float("custom_field_budget_share"))


def _fetched_today(ctx: SyncContext, model: Any) -> int:
    midnight = datetime.combine(utcnow().date(), datetime.min.time(), tzinfo=UTC)
    with Session(ctx.engine) as session:
        query = (
            select(func.count())
            .select_from(model)
            .where(model.tenant_id == ctx.tenant_id, model.custom_fields_fetched_at >= midnight)
        )
        return int(session.scalar(query) or 0)


def budget(ctx: SyncContext, model: Any, other_model: Any, mine: int, other: int) -> int:
    """Calls this kind may still make today.

    The day's share, less the calls that were not for custom fields, is split between clients
    and jobs in proportion to how many of each are waiting; neither kind can starve the other,
    and together they never pass the calls left today.
    """
    share = day_share()
    made, _left = calls_today(ctx.engine, ctx.tenant_id)
    mine_today, other_today = _fetched_today(ctx, model), _fetched_today(ctx, other_model)
    pool = share - (made - mine_today - other_today)
    part = pool if mine + other == 0 else pool * mine // (mine + other)
    return max(0, min(part - mine_today, share - made))


def mark_due(ctx: SyncContext, model: Any, key: Any, keys: Iterable[str]) -> None:
    """There is reason to read these records' custom fields again (they changed, or a read failed)."""
    ordered = sorted(keys)
    if ctx.dry_run or not ordered:
        return
    now = utcnow()
    with Session(writing(ctx.engine)) as session, session.begin():
        for start in range(0, len(ordered), 500):
            session.execute(
                update(model)
                .where(model.tenant_id == ctx.tenant_id, key.in_(ordered[start : start + 500]))
                # The first mark stands: what has waited longest (a read XPM refused) is read first.
                .values(custom_fields_due_at=func.coalesce(model.custom_fields_due_at, now))
                .execution_options(synchronize_session=False)
            )


def _evidence(model: Any) -> Any:
    """Reason to believe this record's values changed, or were never read while it is new."""
    fetched = model.custom_fields_fetched_at
    changed = fetched.is_not(None) & (model.synced_at > fetched)
    new = fetched.is_(None) if model is Client else fetched.is_(None) & model.is_current.is_(True)
    return model.custom_fields_due_at.is_not(None) | changed | new


def _live(model: Any) -> Any:
    return model.removed_upstream_at.is_(None) & (model.uuid.is_not(None) if model is Client else true())


def _sweep_pool(model: Any) -> Any:
    """What the sweep may read: never read, or read longer ago than the refresh age."""
    fetched = model.custom_fields_fetched_at
    refresh = utcnow() - timedelta(days=config.get_int("custom_field_refresh_days"))
    return ~_evidence(model) & (fetched.is_(None) | (fetched < refresh))


def _keys(engine: Engine, tenant_id: str, model: Any, key: Any, where: Any, limit: int | None = None) -> list[str]:
    fetched = model.custom_fields_fetched_at
    rank = case((model.custom_fields_due_at.is_not(None), 0), (fetched.is_not(None), 1), else_=2)
    query = (
        select(key)
        .where(model.tenant_id == tenant_id, _live(model), where)
        .order_by(rank, model.custom_fields_due_at.asc().nulls_last(), fetched.asc().nulls_first(), key)
        .limit(limit)
    )
    with Session(engine) as session:
        return list(session.scalars(query))


def _count(engine: Engine, tenant_id: str, model: Any, where: Any) -> int:
    with Session(engine) as session:
        query = select(func.count()).select_from(model).where(model.tenant_id == tenant_id, _live(model), where)
        return int(session.scalar(query) or 0)


def sweep_share(engine: Engine, tenant_id: str, model: Any) -> int:
    """This kind's part of the night's sweep, in proportion to what each kind has waiting."""
    pools = {m: _count(engine, tenant_id, m, _sweep_pool(m)) for m in (Client, Job) if _defined(engine, tenant_id, m)}
    total = sum(pools.values())
    calls = config.get_int("custom_field_sweep_calls")
    if not total or model not in pools:
        return 0
    # The kinds' shares are rounded up, so a small pool is not starved by a big one.
    return min(pools[model], -(-calls * pools[model] // total))


def read_order(engine: Engine, tenant_id: str, model: Any, *, full: bool = False, sweep: bool = True) -> list[str]:
    """The records of this kind whose custom fields are read next, in order."""
    if not _defined(engine, tenant_id, model):
        return []
    key = Client.uuid if model is Client else Job.job_number
    if full:
        return _keys(engine, tenant_id, model, key, true())
    due = _keys(engine, tenant_id, model, key, _evidence(model))
    if not sweep:
        return due
    return due + _keys(engine, tenant_id, model, key, _sweep_pool(model), sweep_share(engine, tenant_id, model))


def coverage(engine: Engine, tenant_id: str) -> dict[str, Any]:
    """How far the stored values reach: every value read on or after `complete_to`, unless some
    were never read; then how many, and the nights the sweep needs for them."""
    never = waiting = 0
    oldest: datetime | None = None
    for model in (Client, Job):
        if not _defined(engine, tenant_id, model):
            continue
        never += _count(engine, tenant_id, model, model.custom_fields_fetched_at.is_(None))
        waiting += _count(engine, tenant_id, model, _evidence(model))
        with Session(engine) as session:
            first = session.scalar(
                select(func.min(model.custom_fields_fetched_at)).where(model.tenant_id == tenant_id, _live(model))
            )
        if first is not None and (oldest is None or first < oldest):
            oldest = first
    sweep = max(1, config.get_int("custom_field_sweep_calls"))
    return {
        "complete_to": None if never else oldest,
        "never_read": never,
        "waiting": waiting,
        "nights_for_backlog": -(-never // sweep),
    }


def describe_coverage(info: dict[str, Any]) -> str:
    """One line for status and the page."""
    if info["complete_to"] is None and not info["never_read"]:
        return "Custom fields: not read yet."
    if info["never_read"]:
        return (
            f"Custom fields: {info['never_read']:,} records never read yet; the nightly sweep covers them "
            f"in about {info['nights_for_backlog']:,} nights."
        )
    return f"Custom fields complete to {info['complete_to']:%Y-%m-%d}."


def _defined(engine: Engine, tenant_id: str, model: Any) -> bool:
    flag = CustomFieldDefinition.use_client if model is Client else CustomFieldDefinition.use_job
    return _defined_for(engine, tenant_id, flag)


def _defined_for(engine: Engine, tenant_id: str, flag: Any) -> bool:
    with Session(engine) as session:
        query = select(CustomFieldDefinition.uuid).where(
            CustomFieldDefinition.tenant_id == tenant_id,
            flag.is_(True),
            CustomFieldDefinition.removed_upstream_at.is_(None),
        )
        return session.scalars(query).first() is not None


def _write(
    ctx: SyncContext,
    value_model: type[Base],
    parent_model: Any,
    parent_column: str,
    fetched: dict[str, list[Record]],
    now: datetime,
) -> int:
    if ctx.dry_run or not fetched:
        return 0
    rows = [
        {"tenant_id": ctx.tenant_id, parent_column: parent, **v} for parent, values in fetched.items() for v in values
    ]
    key = parent_model.uuid if parent_model is Client else parent_model.job_number
    with Session(writing(ctx.engine)) as session, session.begin():
        written = replace_children(session, value_model, ctx.tenant_id, parent_column, list(fetched), rows, track=True)
        record_stage(session, ctx, value_model)
        session.execute(
            update(parent_model)
            .where(parent_model.tenant_id == ctx.tenant_id, key.in_(list(fetched)))
            .values(custom_fields_fetched_at=now, custom_fields_due_at=None)
            .execution_options(synchronize_session=False)
        )
    return written


def _pull(
    ctx: SyncContext,
    name: str,
    targets: Sequence[str],
    fetch: Callable[[str], list[Record]],
    value_model: type[Base],
    parent_model: Any,
    parent_column: str,
    allowed: int,
) -> EntityResult:
    before = ctx.hook.api.usage.calls
    result = EntityResult(name, "budgeted")
    fetched: dict[str, list[Record]] = {}
    refused: list[str] = []
    written = done = 0
    now = utcnow()
    key = parent_model.uuid if parent_model is Client else parent_model.job_number
    try:
        for target in targets:
            if ctx.hook.api.usage.calls - before >= allowed:
                break
            try:
                fetched[target] = fetch(target)
            except XpmBusinessError as exc:
                # The values XPM would not give are not "no values": keep what is stored.
                log.warning("Custom fields of %s %s not read: %s", name, target, exc.description)
                result.add_failure(target, exc.description)
                refused.append(target)
            done += 1
            if len(fetched) >= WRITE_EVERY:
                written += _write(ctx, value_model, parent_model, parent_column, fetched, now)
                fetched = {}
    finally:
        # Whatever stops the loop (the day's limit, a failure), what was fetched is kept.
        written += _write(ctx, value_model, parent_model, parent_column, fetched, now)
        mark_due(ctx, parent_model, key, refused)
    result.fetched, result.written = done, written
    result.calls = ctx.hook.api.usage.calls - before
    result.complete = done == len(targets)
    if not result.complete:
        result.note = f"{len(targets) - done} left for the next run (daily budget reached)"
    return result


def client_targets(engine: Engine, tenant_id: str, *, full: bool = False, sweep: bool = True) -> list[str]:
    """The clients whose custom fields are read next, in order."""
    return read_order(engine, tenant_id, Client, full=full, sweep=sweep)


def job_targets(engine: Engine, tenant_id: str, *, full: bool = False, sweep: bool = True) -> list[str]:
    """The jobs whose custom fields are read next, in order."""
    return read_order(engine, tenant_id, Job, full=full, sweep=sweep)


def pull_client_values(spec: Any, ctx: SyncContext) -> EntityResult:
    if ctx.client_uuid:
        targets, allowed = [ctx.client_uuid], 1
    elif not _defined_for(ctx.engine, ctx.tenant_id, CustomFieldDefinition.use_client):
        return EntityResult(spec.name, "budgeted", skipped="no client custom fields are defined")
    else:
        sweep = not ctx.manual
        targets = client_targets(ctx.engine, ctx.tenant_id, full=ctx.full, sweep=sweep)
        others = job_targets(ctx.engine, ctx.tenant_id, full=ctx.full, sweep=sweep)
        allowed = budget(ctx, Client, Job, len(targets), len(others))
    values = ctx.hook.client_field_values
    result = _pull(ctx, spec.name, targets, values, ClientCustomFieldValue, Client, "client_uuid", allowed)
    _checkpoint(ctx, spec.name, result)
    return result


def pull_job_values(spec: Any, ctx: SyncContext) -> EntityResult:
    if ctx.job_number:
        targets, allowed = [ctx.job_number], 1
    elif not _defined_for(ctx.engine, ctx.tenant_id, CustomFieldDefinition.use_job):
        return EntityResult(spec.name, "budgeted", skipped="no job custom fields are defined")
    else:
        sweep = not ctx.manual
        targets = job_targets(ctx.engine, ctx.tenant_id, full=ctx.full, sweep=sweep)
        others = client_targets(ctx.engine, ctx.tenant_id, full=ctx.full, sweep=sweep)
        allowed = budget(ctx, Job, Client, len(targets), len(others))
    values = ctx.hook.job_field_values
    result = _pull(ctx, spec.name, targets, values, JobCustomFieldValue, Job, "job_number", allowed)
    _checkpoint(ctx, spec.name, result)
    return result


def _checkpoint(ctx: SyncContext, name: str, result: EntityResult) -> None:
    if ctx.client_uuid or ctx.job_number:
        return
    checkpoint(ctx, name, complete=result.complete and not result.failures, full_pass=ctx.full and result.complete)
