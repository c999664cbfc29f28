"""Time entries, costs, invoices (with jobs and payments) and quotes against the sandbox, on SQLite
and PostgreSQL: a full pass, then nights in which XPM corrects old time entries, deletes one, takes
payments, invoices jobs and decides quotes; the store equals the sandbox each night, at the calls
the strategy promises (`xpm_sync.sync.work`).

The nights run at the sandbox's clock (`work.utcnow` follows it): the sandbox moves a day at a
time, and the windows are the practice's days, not the machine's."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tests.integration.conftest import Xpm
from tests.integration.sync.test_pull import sync
from tests.integration.sync.truth import differences, work_differences
from xpm_sandbox.model import Practice, Quote
from xpm_sync import catalog, settings
from xpm_sync.store import models as m
from xpm_sync.sync import work

WORK = catalog.WORK


@pytest.fixture
def connected(xpm: Xpm, monkeypatch: pytest.MonkeyPatch) -> Xpm:
    xpm.connect()
    xpm.control("identity", {"access_lifetime_seconds": 30 * 86_400})
    xpm.connect()
    clock = xpm.srv.sandbox.clock
    monkeypatch.setattr(work, "utcnow", lambda: clock.now().replace(tzinfo=UTC))
    monkeypatch.setenv("AIRFLOW__XPM_SYNC__JOB_START_YEAR", "2022")  # the sandbox's first year
    monkeypatch.setenv("AIRFLOW__XPM_SYNC__PAYMENT_CALLS_PER_NIGHT", "10000")
    return xpm


def _years(xpm: Xpm) -> int:
    """Years from the sandbox's first to the one two days ahead of its clock (XPM's dates run ahead of UTC)."""
    return (xpm.srv.sandbox.clock.now() + timedelta(days=2)).year - 2022 + 1


def _endpoints(xpm: Xpm, before: int) -> Counter[str]:
    """The XPM calls made since `before`, by endpoint (a payments call counted under one name)."""
    found: Counter[str] = Counter()
    for call in xpm.srv.sandbox.gateway.calls[before:]:
        path = call.path.split("/3.1/", 1)[-1]
        found["invoice.api/payments" if path.startswith("invoice.api/payments/") else path] += 1
    return found


def _early_quote(p: Practice, state: str) -> Quote:
    """A quote of 20 December 2021, before the first year the store reads (2022)."""
    amount = Decimal(1500)
    quote = Quote(
        number=f"Q{len(p.quotes) + 1:06d}", client_uuid=next(iter(p.clients)), name=f"{state} early",
        valid_date=date(2022, 1, 19), date=date(2021, 12, 20), amount=amount, tax=amount / 10,
        estimated_cost=amount / 2, state=state,
    )  # fmt: skip
    p.quotes[quote.number] = quote
    return quote


def test_a_full_pass_then_nights_of_corrections_keep_the_store_equal_to_xpm(connected: Xpm, monkeypatch: Any):
    p = connected.srv.sandbox.main
    # Two quotes dated before the first year read (job_start_year): the one XPM still lists as current
    # is stored from that list; the decided one is outside every window read, and not stored.
    decided, still_open = (_early_quote(p, "Accepted"), _early_quote(p, "Issued"))
    first = sync(connected, catalog.ALL, full=True)
    assert differences(connected.engine, p) == []
    assert work_differences(connected.engine, p) == []
    with Session(connected.engine) as s:
        stored = set(s.scalars(select(m.Quote.quote_number).where(m.Quote.quote_date < date(2022, 1, 1))))
    assert still_open.number in stored
    assert decided.number not in stored
    again = sync(connected, WORK)
    assert {name: r.written for name, r in again.items()} == dict.fromkeys(WORK, 0)  # nothing changed, nothing written
    years = _years(connected)
    assert first["time_entries"].calls == years  # a year a call
    # A year a call, the current list, and the payments of each invoice with money paid.
    assert first["invoices"].calls == years + 1 + len([i for i in p.invoices.values() if i.paid])
    assert first["quotes"].calls == years + 1
    assert first["costs"].calls == len(p.costs) // work_page() + 2  # the pages, and the empty one

    still_open.state = "Accepted"  # decided in XPM: it leaves the current list, and no window covers it
    # Every older year read again every night: the corrections of long ago arrive the next morning.
    monkeypatch.setenv("AIRFLOW__XPM_SYNC__HISTORY_RECONCILE_DAYS", "0")
    monkeypatch.setenv("AIRFLOW__XPM_SYNC__HISTORY_YEARS_PER_NIGHT", "20")
    years = _years(connected)
    for _night in range(3):
        changes = connected.control("next-day", {"share": 0.05})
        assert changes["times_edited"]
        assert changes["times_deleted"]
        before = len(connected.srv.sandbox.gateway.calls)
        nightly = sync(connected, WORK)
        assert work_differences(connected.engine, p) == []
        made = _endpoints(connected, before)
        # The payments of exactly the invoices whose amount paid moved, and of the day's new paid ones.
        moved = set(changes["invoices_paid"]) | {n for n in changes["invoices_added"] if p.invoices[n].payments}
        assert made["invoice.api/payments"] == len(moved)
        assert made["time.api/list"] == 1 + years  # the recent window, and every year again (as configured)
        assert nightly["time_entries"].removed >= 1  # the deleted entry, marked (never deleted here)
    with Session(connected.engine) as s:
        gone = s.scalar(select(func.count()).where(m.TimeEntry.removed_upstream_at.is_not(None)))
        early_state = s.scalar(select(m.Quote.state).where(m.Quote.quote_number == still_open.number))
    assert gone == 3
    assert early_state == "Accepted"  # read on its own once it left the current list


def work_page() -> int:
    from xpm_sandbox.api import PAGE

    return PAGE


def test_by_default_a_night_reads_the_recent_window_and_one_older_year_in_turn(connected: Xpm):
    p = connected.srv.sandbox.main
    sync(connected, WORK, full=True)
    # A correction to a time entry of the first year: outside the recent window.
    oldest = min(p.times.values(), key=lambda t: t.date)
    oldest.minutes += 45
    seen_years = []
    for _night in range(len(work.years(work.utcnow().date())) + 1):
        connected.srv.sandbox.clock.advance(8 * 86_400)  # past `history_reconcile_days`
        before = len(connected.srv.sandbox.gateway.calls)
        sync(connected, ["time_entries"])
        made = connected.srv.sandbox.gateway.calls[before:]
        assert len(made) <= 2  # the recent window, and at most one older year
        seen_years += [c.path for c in made]
        with Session(connected.engine) as s:
            stored = s.get(m.TimeEntry, (p.tenant_id, oldest.uuid))
        if stored is not None and stored.minutes == oldest.minutes:
            break
    else:
        pytest.fail(f"the correction of {oldest.date} never arrived: {seen_years}")


def test_an_empty_answer_for_a_window_that_held_entries_removes_nothing(connected: Xpm, monkeypatch: Any):
    p = connected.srv.sandbox.main
    sync(connected, WORK, full=True)
    monkeypatch.setenv("AIRFLOW__XPM_SYNC__HISTORY_RECONCILE_DAYS", "0")
    monkeypatch.setenv("AIRFLOW__XPM_SYNC__HISTORY_YEARS_PER_NIGHT", "20")
    kept = dict(p.times)
    p.times.clear()  # XPM answers every window with no entries at all
    result = sync(connected, ["time_entries"])["time_entries"]
    assert result.removed == 0
    assert result.held_back > 0
    with Session(connected.engine) as s:
        assert s.scalar(select(func.count()).where(m.TimeEntry.removed_upstream_at.is_not(None))) == 0
        alert = s.scalars(
            select(m.PracticeActivity).where(m.PracticeActivity.status == "Alert").order_by(m.PracticeActivity.id)
        ).all()[-1]
    assert "Time entries" in alert.message
    assert "nothing was changed" in alert.message
    p.times.update(kept)


def test_a_list_switched_off_makes_no_call_and_keeps_what_is_stored(connected: Xpm):
    sync(connected, WORK, full=True)
    with Session(connected.engine) as s, s.begin():
        settings.change(s, "read_invoices", False, actor="admin")
    before = len(connected.srv.sandbox.gateway.calls)
    result = sync(connected, ["invoices"])["invoices"]
    assert result.mode == "skipped"
    assert "'Read invoices from XPM' is off" in (result.skipped or "")
    assert len(connected.srv.sandbox.gateway.calls) == before
    assert work_differences(connected.engine, connected.srv.sandbox.main) == []


def test_payments_past_the_nights_share_wait_for_the_next_night(connected: Xpm, monkeypatch: Any):
    p = connected.srv.sandbox.main
    monkeypatch.setenv("AIRFLOW__XPM_SYNC__PAYMENT_CALLS_PER_NIGHT", "5")
    paid = len([i for i in p.invoices.values() if i.paid])
    first = sync(connected, ["invoices"], full=True)["invoices"]
    assert first.calls == _years(connected) + 1 + 5
    with Session(connected.engine) as s:
        assert work.payments_due(s, p.tenant_id) == paid - 5
    monkeypatch.setenv("AIRFLOW__XPM_SYNC__PAYMENT_CALLS_PER_NIGHT", "10000")
    sync(connected, WORK)  # the other lists' first pass, and the invoices' next night
    with Session(connected.engine) as s:
        assert work.payments_due(s, p.tenant_id) == 0
    assert work_differences(connected.engine, p) == []
