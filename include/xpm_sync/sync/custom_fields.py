"""Custom field values: one call per client or job, so they are fetched within a budget.

Order: records marked due (they changed, or their last read failed), then those that changed since
their values were last fetched, then those never fetched, then the stalest. The pull stops when
the day's share of XPM's calls is spent (by default 80% of the 5,000, leaving the rest for pushes
and manual work) and resumes there next run.

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
from xpm_sync.errors import XpmBusinessError
from xpm_sync.store.models import Base, Client, ClientCustomFieldValue, CustomFieldDefinition, Job, JobCustomFieldValue
from xpm_sync.store.types import utcnow
from xpm_sync.sync.children import replace_children
from xpm_sync.sync.context import EntityResult, SyncContext
from xpm_sync.sync.engine import checkpoint

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
    with Session(ctx.engine) as session, session.begin():
        for start in range(0, len(ordered), 500):
            session.execute(
                update(model)
                .where(model.tenant_id == ctx.tenant_id, key.in_(ordered[start : start + 500]))
                .values(custom_fields_due_at=now)
                .execution_options(synchronize_session=False)
            )


def _order(engine: Engine, tenant_id: str, full: bool, model: Any, key: Any, scope: Any) -> list[str]:
    """Marked due, then changed since last fetched, then never fetched, then those older than the
    refresh age (all of them in a full sync), the stalest first."""
    fetched = model.custom_fields_fetched_at
    marked = model.custom_fields_due_at.is_not(None)
    rank = case((marked, 0), (fetched.is_(None), 2), (model.synced_at > fetched, 1), else_=3)
    refresh = utcnow() - timedelta(days=config.get_int("custom_field_refresh_days"))
    due = true() if full else marked | fetched.is_(None) | (model.synced_at > fetched) | (fetched < refresh)
    query = (
        select(key)
        .where(model.tenant_id == tenant_id, model.removed_upstream_at.is_(None), scope, due)
        .order_by(rank, fetched.asc().nulls_first(), key)
    )
    with Session(engine) as session:
        return list(session.scalars(query))


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
    with Session(ctx.engine) as session, session.begin():
        written = replace_children(session, value_model, ctx.tenant_id, parent_column, list(fetched), rows)
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


def client_targets(engine: Engine, tenant_id: str, *, full: bool = False) -> list[str]:
    """The clients whose custom fields are due, in the order they are read."""
    if not _defined_for(engine, tenant_id, CustomFieldDefinition.use_client):
        return []
    return _order(engine, tenant_id, full, Client, Client.uuid, Client.uuid.is_not(None))


def job_targets(engine: Engine, tenant_id: str, *, full: bool = False) -> list[str]:
    """The jobs whose custom fields are due: open jobs, and any job whose data changed since."""
    if not _defined_for(engine, tenant_id, CustomFieldDefinition.use_job):
        return []
    changed = Job.custom_fields_fetched_at.is_not(None) & (Job.synced_at > Job.custom_fields_fetched_at)
    return _order(engine, tenant_id, full, Job, Job.job_number, Job.is_current.is_(True) | changed)


def pull_client_values(spec: Any, ctx: SyncContext) -> EntityResult:
    if ctx.client_uuid:
        targets, allowed = [ctx.client_uuid], 1
    elif not _defined_for(ctx.engine, ctx.tenant_id, CustomFieldDefinition.use_client):
        return EntityResult(spec.name, "budgeted", skipped="no client custom fields are defined")
    else:
        targets = client_targets(ctx.engine, ctx.tenant_id, full=ctx.full)
        allowed = budget(ctx, Client, Job, len(targets), len(job_targets(ctx.engine, ctx.tenant_id, full=ctx.full)))
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
        targets = job_targets(ctx.engine, ctx.tenant_id, full=ctx.full)
        allowed = budget(ctx, Job, Client, len(targets), len(client_targets(ctx.engine, ctx.tenant_id, full=ctx.full)))
    values = ctx.hook.job_field_values
    result = _pull(ctx, spec.name, targets, values, JobCustomFieldValue, Job, "job_number", allowed)
    _checkpoint(ctx, spec.name, result)
    return result


def _checkpoint(ctx: SyncContext, name: str, result: EntityResult) -> None:
    if ctx.client_uuid or ctx.job_number:
        return
    checkpoint(ctx, name, complete=result.complete and not result.failures, full_pass=ctx.full and result.complete)
