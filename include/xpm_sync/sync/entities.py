"""Every entity the sync pulls, declared once: what it is called, how it is fetched full and
incrementally, where it lands and what nests in it. `ENTITIES` is the registry the DAGs, the
command line and the tests all use."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from xpm_sync import catalog, config, decisions
from xpm_sync.api import fingerprint
from xpm_sync.api.records import Record
from xpm_sync.errors import XpmBusinessError
from xpm_sync.store.models import (
    Base,
    Category,
    Client,
    ClientGroup,
    CustomFieldDefinition,
    DecisionKind,
    Job,
    JobState,
    Staff,
    SyncState,
)
from xpm_sync.store.types import utcnow
from xpm_sync.sync import children, custom_fields, job_reconcile, tax_returns, work
from xpm_sync.sync.context import EntityResult, SyncContext
from xpm_sync.sync.load import (
    Children,
    Held,
    alert,
    checkpoint,
    hold_back,
    load,
    mark_missing,
    set_current,
    state,
    too_many_removals,
)

Runner = Callable[["EntitySpec", SyncContext], EntityResult]


@dataclass(frozen=True)
class EntitySpec:
    name: str
    run: Runner
    model: type[Base] | None = None
    fetch: str | None = None  # the XpmHook method that lists it
    key: str = "uuid"
    children: Children | None = None
    group: str = "reference"

    @property
    def label(self) -> str:
        return catalog.LABELS[self.name]


def _calls(ctx: SyncContext) -> int:
    return ctx.hook.api.usage.calls


def _label(spec: EntitySpec) -> str:
    return f"({spec.label})"


def pull_list(spec: EntitySpec, ctx: SyncContext) -> EntityResult:
    """Small lists (staff, categories, job states, groups, definitions): one call, every time."""
    if spec.model is None or spec.fetch is None:
        raise TypeError(f"{spec.name} is not a list entity")
    before = _calls(ctx)
    seen: set[str] = set()
    fetched, written = load(ctx, spec.model, getattr(ctx.hook, spec.fetch)(), key=spec.key, seen=seen)
    removed = mark_missing(ctx, spec.model, seen, key=spec.key, label=_label(spec))
    checkpoint(ctx, spec.name, full_pass=True)
    return EntityResult(spec.name, "full", fetched, written, removed, _calls(ctx) - before, held_back=ctx.held_back)


def _reconcile_due(last: SyncState) -> bool:
    """Whether the client list has not been read whole for `client_reconcile_days`."""
    whole = last.last_full_sync_at
    return whole is None or utcnow() - whole >= timedelta(days=config.get_int("client_reconcile_days"))


def pull_clients(spec: EntitySpec, ctx: SyncContext) -> EntityResult:
    """Full (asked for, the first run, and every `client_reconcile_days`): the detailed list.
    Incremental: clients modified since the watermark, less an overlap.

    The watermark moves only past an answer that could be complete: a full list whose removals
    were held back, or an incremental answer that listed nobody, leaves it where it was, so the
    next run asks again from there (see `_quiet_answer`)."""
    before = _calls(ctx)
    if ctx.client_uuid:
        fetched, written = load(ctx, Client, [ctx.hook.client(ctx.client_uuid)], children=children.client_children)
        return EntityResult(spec.name, "one", fetched, written, 0, _calls(ctx) - before)
    last = state(ctx, spec.name)
    started = utcnow()
    with Session(ctx.engine) as session:
        prints = fingerprint.client_fingerprints(session, Client, ctx.tenant_id)
    if ctx.full or last is None or last.watermark is None or _reconcile_due(last):
        reconciling = not ctx.full and last is not None and last.watermark is not None
        seen: set[str] = set()
        fetched, written = load(
            ctx,
            Client,
            ctx.hook.clients(detailed=True, fingerprints=prints),
            children=children.client_children,
            seen=seen,
            fingerprints=prints,
        )
        # A client whose row this wrote has its custom fields read again (`custom_fields._evidence`).
        removed = mark_missing(ctx, Client, seen, label=_label(spec))
        trusted = not ctx.held_back
        checkpoint(ctx, spec.name, watermark=started if trusted else None, full_pass=trusted, cursor=_cursor(last))
        note = "the periodic read of the whole list" if reconciling else None
        return EntityResult(
            spec.name, "full", fetched, written, removed, _calls(ctx) - before, held_back=ctx.held_back, note=note
        )
    overlap = timedelta(minutes=config.get_int("client_overlap_minutes"))
    since = (last.watermark - overlap).strftime("%Y-%m-%dT%H:%M:%S")
    records = ctx.hook.clients(detailed=True, modified_since=since, fingerprints=prints)
    modified: set[str] = set()
    fetched, written = load(ctx, Client, records, children=children.client_children, seen=modified, fingerprints=prints)
    custom_fields.mark_due(ctx, Client, Client.uuid, modified)
    cursor = _cursor(last)
    note = f"modified since {since}"
    if fetched == 0:
        note = _quiet_answer(ctx, spec, since, cursor)
        checkpoint(ctx, spec.name, cursor=cursor)
    else:
        cursor.update(last_listed=fetched, quiet_since=None)
        checkpoint(ctx, spec.name, watermark=started, cursor=cursor)
    return EntityResult(spec.name, "incremental", fetched, written, 0, _calls(ctx) - before, note=note)


def _cursor(last: SyncState | None) -> dict[str, object]:
    return dict(last.cursor or {}) if last is not None else {}


def _quiet_answer(ctx: SyncContext, spec: EntitySpec, since: str, cursor: dict[str, object]) -> str:
    """XPM listed no client modified since `since`. A quiet day is possible, and so is an answer
    that lost what it should have held: the watermark stays, so the next run asks again from the
    same moment (an empty answer costs nothing more). After nights that did list changes, the
    first empty one raises an Alert."""
    listed_before = int(str(cursor.get("last_listed") or 0))
    if listed_before and not cursor.get("quiet_since"):
        alert(
            ctx,
            f"{_label(spec)} XPM listed no client modified since {since} UTC, where the last run's answer listed "
            f"{listed_before}. If clients were changed in XPM meanwhile, its answer was incomplete; nothing is "
            "lost: the watermark was kept, the next run asks again from the same moment, and the whole list "
            f"is read every {config.get_int('client_reconcile_days')} days.",
            {"entity": spec.name, "since": since},
        )
    cursor.update(last_listed=0, quiet_since=cursor.get("quiet_since") or since)
    return f"modified since {since}: none listed, so the watermark was kept"


def _recent_window(last_run: datetime, today: date) -> tuple[date, date]:
    """Jobs created since shortly before the last run. XPM lets a job be created back-dated (and
    already closed, so it never shows on the current list), and its dates are the practice's local
    dates (AU/NZ run ahead of UTC): the window reaches `job_backdate_days` back and two days ahead."""
    start = (last_run - timedelta(days=config.get_int("job_backdate_days"))).date()
    end = today + job_reconcile.AHEAD
    return max(start, end - timedelta(days=365)), end


def pull_jobs(spec: EntitySpec, ctx: SyncContext) -> EntityResult:
    """Full (the first run, or asked for): every year's jobs by created date, then the current list;
    resumable a year at a time. Incremental: jobs created recently and the current list, the
    reconciliation checks (`job_reconcile`), plus one call for each job that left the current list
    and was not read otherwise, to record its final state."""
    before = _calls(ctx)
    insert_only = ctx.settings.maintain_jobs_locally

    with Session(ctx.engine) as session:
        prints = fingerprint.job_fingerprints(session, Job, ctx.tenant_id, skip_known=insert_only)

    def load_jobs(records: Iterable[Record], seen: set[str] | None = None) -> tuple[int, int]:
        return load(
            ctx,
            Job,
            records,
            key="job_number",
            children=children.job_children,
            insert_only=insert_only,
            seen=seen,
            fingerprints=prints,
        )

    if ctx.job_number:
        fetched, written = load_jobs([ctx.hook.job(ctx.job_number)])
        return EntityResult(spec.name, "one", fetched, written, 0, _calls(ctx) - before)
    last = state(ctx, spec.name)
    started = utcnow()
    fetched = written = removed = 0
    seen: set[str] = set()
    resumed = False
    with Session(ctx.engine) as session:
        previously_current = set(
            session.scalars(select(Job.job_number).where(Job.tenant_id == ctx.tenant_id, Job.is_current.is_(True)))
        )
    # Incremental only after a complete full pass.
    watermark = last.watermark if last is not None and last.last_full_sync_at is not None else None
    full = ctx.full or watermark is None
    if ctx.full or watermark is None:
        cursor = dict(last.cursor or {}) if last and last.cursor and not ctx.full else {}
        done = set(cursor.get("years_done", []))
        resumed = bool(done)
        for start, end in work.year_windows(utcnow().date()):
            if start.year in done:
                continue
            f, w = load_jobs(ctx.hook.jobs_created(start, end, fingerprints=prints), seen)
            fetched, written = fetched + f, written + w
            done.add(start.year)
            checkpoint(ctx, spec.name, cursor={"years_done": sorted(done)}, complete=False)
    else:
        start, end = _recent_window(watermark, utcnow().date())
        f, w = load_jobs(ctx.hook.jobs_created(start, end, fingerprints=prints), seen)
        fetched, written = fetched + f, written + w
    current: set[str] = set()
    f, w = load_jobs(ctx.hook.current_jobs(detailed=True, fingerprints=prints), current)
    fetched, written = fetched + f, written + w
    if full:
        job_reconcile.after_full_pass(ctx)
    else:
        f, w, _found = job_reconcile.reconcile(ctx, load_jobs, seen)
        fetched, written = fetched + f, written + w
    if full and not resumed:
        # Only a full pass made in one run has seen every job; a resumed one has not.
        removed = mark_missing(ctx, Job, seen | current, key="job_number", label=_label(spec))
    departed = previously_current - current
    if too_many_removals(len(departed), len(previously_current), len(current)) and not ctx.confirm_removals:
        what = (
            f"XPM's current job list would take {len(departed):,} of the {len(previously_current):,} open jobs off it"
        )
        question = (
            f"{_label(spec)} XPM's current job list no longer holds {len(departed):,} of the "
            f"{len(previously_current):,} open jobs: take them off it?"
        )
        held = Held(DecisionKind.OFF_CURRENT, Job, "job_number", sorted(departed), question)
        hold_back(ctx, _label(spec), what, len(previously_current), held)
        departed, current = set(), current | previously_current
    elif not ctx.dry_run:  # a current list trusted again: an earlier run's question about it is moot
        decisions.supersede_in(ctx.engine, ctx.tenant_id, DecisionKind.OFF_CURRENT, Job, ctx.run_id)
    # Jobs a person took off the current list (a Required Action): their final state is read now.
    approved = decisions.jobs_to_refresh(ctx.engine, ctx.tenant_id)
    departed |= set().union(*approved.values()) - current if approved else set()
    result = EntityResult(spec.name, "full" if full else "incremental", held_back=ctx.held_back)
    final, failed = [], set()
    for number in sorted(departed - seen):
        try:
            final.append(ctx.hook.job(number))
        except XpmBusinessError as exc:
            # Not a sign the job is gone: keep it as it is, still due, and say so.
            result.add_failure(number, exc.description)
            failed.add(number)
    f, w = load_jobs(final)
    result.fetched, result.written = fetched + f, written + w + set_current(ctx, Job, "job_number", current | failed)
    result.removed, result.calls = removed, _calls(ctx) - before
    if not ctx.dry_run:
        decisions.refreshed(ctx.engine, approved)
    checkpoint(ctx, spec.name, watermark=started, cursor=None, full_pass=full)
    return result


ENTITIES: dict[str, EntitySpec] = {
    spec.name: spec
    for spec in [
        EntitySpec("staff", pull_list, Staff, "staff"),
        EntitySpec("categories", pull_list, Category, "categories"),
        EntitySpec("job_states", pull_list, JobState, "job_states"),
        EntitySpec("client_groups", pull_list, ClientGroup, "client_groups"),
        EntitySpec("custom_field_definitions", pull_list, CustomFieldDefinition, "field_definitions"),
        EntitySpec("clients", pull_clients, Client, group="clients"),
        EntitySpec("jobs", pull_jobs, Job, key="job_number", group="jobs"),
        EntitySpec("client_custom_fields", custom_fields.pull_client_values, group="custom_fields"),
        EntitySpec("job_custom_fields", custom_fields.pull_job_values, group="custom_fields"),
        EntitySpec("tax_returns", tax_returns.derive, group="tax_returns"),
        EntitySpec("time_entries", work.pull_by_date, group="work"),
        EntitySpec("costs", work.pull_costs, group="work"),
        EntitySpec("invoices", work.pull_by_date, group="work"),
        EntitySpec("quotes", work.pull_by_date, group="work"),
    ]
}
