"""Time entries, invoices, quotes and costs: read-only lists, none of which XPM filters by
modification date.

- **By date** (time entries, invoices, quotes): XPM lists them a year at most a call, by the
  record's own date. A first (or asked-for full) pass reads every year from `job_start_year`,
  resumable a year at a time. Each night then reads the recent window (`time_recent_days`,
  `invoice_recent_days`) and XPM's current list where it has one, plus the older year least
  recently read once it is `history_reconcile_days` old (`history_years_per_night` a night), so a
  correction made long after is found within a cycle and nothing is read every night that need not be.
- **Paged** (costs): `job.api/costs?page=N` until a page holds none, every night.

Only a complete answer marks rows removed, and only rows of what it answers for: a list by date
for the rows dated in its window, the paged costs after the empty page. An invoice or quote dated
before `job_start_year` is stored only from XPM's current list; when it leaves that list, it is read
once on its own, for its final state (no window covers it). Invoices' payments are read
per invoice, only for an invoice whose amount paid changed since they were last read, at most
`payment_calls_per_night` a night.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from sqlalchemy import and_, func, select, update
from sqlalchemy.orm import Session

from xpm_sync import config
from xpm_sync.errors import XpmBusinessError
from xpm_sync.store.engine import writing
from xpm_sync.store.models import Base, Invoice, InvoicePayment, JobCost, Quote, SyncState, TimeEntry, table_of
from xpm_sync.store.types import utcnow
from xpm_sync.sync import children
from xpm_sync.sync.context import EntityResult, SyncContext
from xpm_sync.sync.job_reconcile import AHEAD
from xpm_sync.sync.load import Children, checkpoint, load, mark_missing, set_current, state

# A guard against an answer that never ends: far more pages than any practice holds.
MOST_PAGES = 10_000


@dataclass(frozen=True)
class ByDate:
    """An entity XPM lists by the record's date, a year at most a call."""

    model: type[Base]
    key: str
    date_column: str
    fetch: str  # the XpmHook method listing a window: (start, end) -> records
    recent_option: str  # the `[xpm_sync]` option naming the nightly window's days
    current: str | None = None  # the XpmHook method listing XPM's current ones
    one: str | None = None  # the XpmHook method reading one by its key (for those that left the current list)
    children: Children | None = None


BY_DATE = {
    "time_entries": ByDate(TimeEntry, "uuid", "entry_date", "time_entries", "time_recent_days"),
    "invoices": ByDate(
        Invoice, "invoice_number", "invoice_date", "invoices", "invoice_recent_days", "current_invoices",
        "invoice", children.invoice_children,
    ),
    "quotes": ByDate(
        Quote, "quote_number", "quote_date", "quotes", "invoice_recent_days", "current_quotes", "quote",
    ),
}  # fmt: skip


@dataclass(frozen=True)
class Window:
    start: date
    end: date
    why: str  # "year 2024", "recent", "year 2023 again"


def years(today: date) -> list[int]:
    return list(range(config.get_int("job_start_year"), (today + AHEAD).year + 1))


def _year(year: int, today: date) -> tuple[date, date]:
    return date(year, 1, 1), min(date(year, 12, 31), today + AHEAD)


def year_windows(today: date) -> list[tuple[date, date]]:
    """A full pass's windows, a year each (XPM's most), from `job_start_year` to `today` plus `AHEAD`:
    how jobs, time entries, invoices and quotes are read whole."""
    return [_year(y, today) for y in years(today)]


def _full_due(last: SyncState | None, full: bool) -> bool:
    return full or last is None or last.last_full_sync_at is None


def windows(spec: ByDate, last: SyncState | None, today: date, *, full: bool) -> list[Window]:
    """The windows tonight reads, in order: a full pass's years not yet read, or the recent window
    and the older years due again."""
    cursor = dict(last.cursor or {}) if last is not None and last.cursor else {}
    if _full_due(last, full):
        done = set() if full else set(cursor.get("years_done", []))
        return [Window(*_year(y, today), f"year {y}") for y in years(today) if y not in done]
    end = today + AHEAD
    # XPM answers a year at most a call, whatever the option says.
    start = max(today - timedelta(days=config.get_int(spec.recent_option)), end - timedelta(days=365))
    recent = Window(start, end, "recent")
    read: dict[str, str] = dict(cursor.get("read", {}))
    due_after = timedelta(days=config.get_int("history_reconcile_days"))
    older = [y for y in years(today) if date(y, 1, 1) < recent.start]
    due = sorted(
        (read.get(str(y), ""), y) for y in older if not read.get(str(y)) or _age(read[str(y)], today) >= due_after
    )
    again = [
        Window(*_year(y, today), f"year {y} again") for _when, y in due[: config.get_int("history_years_per_night")]
    ]
    return [recent, *again]


def _age(iso: str, today: date) -> timedelta:
    return today - date.fromisoformat(iso)


def pull_by_date(entity: Any, ctx: SyncContext) -> EntityResult:
    spec = BY_DATE[entity.name]
    before = ctx.hook.api.usage.calls
    today = utcnow().date()
    last = state(ctx, entity.name)
    full = _full_due(last, ctx.full)
    cursor: dict[str, Any] = {} if ctx.full or last is None or not last.cursor else dict(last.cursor)
    read: dict[str, str] = dict(cursor.get("read", {}))
    done: set[int] = set(cursor.get("years_done", [])) if full else set()
    result = EntityResult(entity.name, "full" if full else "incremental")
    table = table_of(spec.model)
    dated = table.c[spec.date_column]
    for window in windows(spec, last, today, full=ctx.full):
        seen: set[str] = set()
        records = getattr(ctx.hook, spec.fetch)(window.start, window.end)
        fetched, written = load(ctx, spec.model, records, key=spec.key, children=spec.children, seen=seen)
        result.fetched, result.written = result.fetched + fetched, result.written + written
        result.removed += mark_missing(
            ctx, spec.model, seen, key=spec.key, label=f"({entity.label}, {window.why})",
            within=and_(dated >= window.start, dated <= window.end),
        )  # fmt: skip
        if window.why.startswith("year"):
            year = window.start.year
            read[str(year)] = today.isoformat()
            done.add(year)
        if full:
            checkpoint(ctx, entity.name, cursor={"years_done": sorted(done), "read": read}, complete=False)
    if spec.current is not None:
        current: set[str] = set()
        fetched, written = load(
            ctx, spec.model, getattr(ctx.hook, spec.current)(), key=spec.key, children=spec.children, seen=current
        )
        result.fetched, result.written = result.fetched + fetched, result.written + written
        left = _left_unwindowed(ctx, spec, current)
        result.written += set_current(ctx, spec.model, spec.key, current)
        _read_each(ctx, spec, left, result)
    if spec.model is Invoice:
        _payments(ctx, result)
    result.held_back = ctx.held_back
    result.calls = ctx.hook.api.usage.calls - before
    checkpoint(ctx, entity.name, watermark=utcnow(), cursor={"read": read}, full_pass=full)
    return result


def _left_unwindowed(ctx: SyncContext, spec: ByDate, current: set[str]) -> list[str]:
    """Keys that were on XPM's current list, are not now, and are dated before the first year any
    window reads (a quote made in the December before `job_start_year`): no list will tell their
    final state, so each is read on its own."""
    table = table_of(spec.model)
    first_day = date(config.get_int("job_start_year"), 1, 1)
    with Session(ctx.engine) as session:
        was = session.scalars(
            select(table.c[spec.key]).where(
                table.c.tenant_id == ctx.tenant_id,
                table.c.is_current.is_(True),
                table.c.removed_upstream_at.is_(None),
                table.c[spec.date_column] < first_day,
            )
        )
        return sorted(key for key in was if key not in current)


def _read_each(ctx: SyncContext, spec: ByDate, keys: list[str], result: EntityResult) -> None:
    """Read and store each record on its own; one XPM refuses is reported and its row kept."""
    if spec.one is None:
        return
    found = []
    for key in keys:
        try:
            found.append(getattr(ctx.hook, spec.one)(key))
        except XpmBusinessError as exc:
            result.add_failure(key, exc.description)  # its stored row stays as it is
    if found:
        fetched, written = load(ctx, spec.model, found, key=spec.key, children=spec.children)
        result.fetched, result.written = result.fetched + fetched, result.written + written


def _payments_due(tenant_id: str) -> list[Any]:
    return [
        Invoice.tenant_id == tenant_id,
        Invoice.removed_upstream_at.is_(None),
        func.coalesce(Invoice.amount_paid, 0) != func.coalesce(Invoice.payments_read_at_paid, 0),
    ]


def _payments(ctx: SyncContext, result: EntityResult) -> None:
    """Read the payments of invoices whose amount paid changed since their payments were read."""
    with Session(ctx.engine) as session:
        due = list(
            session.execute(
                select(Invoice.invoice_number, Invoice.amount_paid)
                .where(*_payments_due(ctx.tenant_id))
                .order_by(Invoice.invoice_date.desc(), Invoice.invoice_number)
                .limit(config.get_int("payment_calls_per_night"))
            )
        )
    read: list[tuple[str, Any, list[dict[str, Any]]]] = []
    for number, amount in due:
        try:
            payments = ctx.hook.invoice_payments(number)
        except XpmBusinessError as exc:
            result.add_failure(number, exc.description)  # its stored payments stay as they are
            continue
        read.append((number, amount, [{"invoice_number": number, "position": i, **p} for i, p in enumerate(payments)]))
    if ctx.dry_run or not read:
        return
    # Every answer read first (no call inside a write transaction), then one transaction for all.
    with Session(writing(ctx.engine)) as session, session.begin():
        rows = [row for _number, _amount, found in read for row in found]
        numbers = [number for number, _amount, _found in read]
        result.written += children.replace_children(
            session, InvoicePayment, ctx.tenant_id, "invoice_number", numbers, rows
        )
        for number, amount, _found in read:
            session.execute(
                update(Invoice)
                .where(Invoice.tenant_id == ctx.tenant_id, Invoice.invoice_number == number)
                .values(payments_read_at_paid=amount if amount is not None else 0)
            )


def pull_costs(entity: Any, ctx: SyncContext) -> EntityResult:
    """Every job's costs, page by page until a page holds none; then those XPM no longer lists are
    marked removed (a pass that did not reach the empty page marks nothing)."""
    before = ctx.hook.api.usage.calls
    result = EntityResult(entity.name, "full")
    seen: set[str] = set()
    pages = 0
    for page in range(1, MOST_PAGES + 1):
        rows = ctx.hook.job_costs(page)
        if not rows:
            break
        pages = page
        fetched, written = load(ctx, JobCost, rows, seen=seen)
        result.fetched, result.written = result.fetched + fetched, result.written + written
    else:
        raise RuntimeError(f"XPM's cost list did not end within {MOST_PAGES:,} pages; nothing was marked removed")
    result.removed = mark_missing(ctx, JobCost, seen, label=f"({entity.label})")
    result.held_back = ctx.held_back
    result.calls = ctx.hook.api.usage.calls - before
    checkpoint(ctx, entity.name, watermark=utcnow(), cursor={"pages": pages}, full_pass=True)
    return result


def planned_calls(name: str, last: SyncState | None, today: date, *, full: bool, invoices_due: int = 0) -> int:
    """Calls the entity will make tonight, as far as the store can tell (the plan and the estimate)."""
    if name == "costs":
        pages = last.cursor.get("pages", 1) if last is not None and last.cursor else 1
        return int(pages) + 1
    spec = BY_DATE[name]
    calls = len(windows(spec, last, today, full=full)) + (1 if spec.current else 0)
    if name == "invoices":
        calls += min(invoices_due, config.get_int("payment_calls_per_night"))
    return calls


def payments_due(session: Session, tenant_id: str) -> int:
    """Invoices whose payments are to be read (their amount paid changed since they last were)."""
    return int(session.scalar(select(func.count()).select_from(Invoice).where(*_payments_due(tenant_id))) or 0)
