"""XPM's documented answers (the bodies of tests/unit/api/test_records.py), stored on SQLite and
PostgreSQL through the same load the sync uses: what lands in each table."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from tests.unit.api import test_records as documented
from xpm_sync import settings
from xpm_sync.api import records
from xpm_sync.api.xml import iter_items
from xpm_sync.store import models as m
from xpm_sync.sync import children
from xpm_sync.sync.context import SyncContext
from xpm_sync.sync.load import load

TENANT = "aaaaaaaa-0000-4000-8000-000000000001"


def _ctx(engine: Any) -> SyncContext:
    return SyncContext(hook=None, engine=engine, tenant_id=TENANT, settings=settings.PracticeSettings())  # type: ignore[arg-type]


def _rows(engine: Any, model: Any, *columns: str) -> list[tuple[Any, ...]]:
    with Session(engine) as s:
        found = s.scalars(select(model).where(model.tenant_id == TENANT))
        return sorted(tuple(getattr(r, c) for c in columns) for r in found)


def test_the_documented_job_stores_its_own_staff_and_its_two_tasks_with_their_staff(migrated_engine):
    job = list(iter_items(documented.DOCUMENTED_JOB, ("Job",), records.job))
    assert load(_ctx(migrated_engine), m.Job, job, key="job_number", children=children.job_children) == (
        1,
        8,
    )  # 1 job, 1 + 2 + 3 + 1 children
    # One person on the job's own list, minutes unknown; not the two the tasks name.
    assert _rows(migrated_engine, m.JobAssignment, "job_number", "staff_uuid", "allocated_minutes") == [
        ("J000309", "3", None)
    ]
    assert _rows(migrated_engine, m.JobTask, "uuid", "position", "name", "estimated_minutes", "actual_minutes") == [
        ("257", 0, "Design & Layout", 120, 0),
        ("258", 1, "Printing", 30, 15),
    ]
    assert _rows(migrated_engine, m.JobTaskStaff, "task_uuid", "staff_uuid", "allocated_minutes", "job_number") == [
        ("257", "3", 60, "J000309"),
        ("257", "4", 60, "J000309"),
        ("258", "4", 30, "J000309"),
    ]
    assert _rows(migrated_engine, m.JobMilestone, "uuid", "milestone_date", "completed") == [
        ("5", date(2007, 9, 18), False)
    ]


def test_a_task_gone_from_the_next_detailed_answer_is_marked_removed_not_deleted(migrated_engine):
    ctx = _ctx(migrated_engine)
    load(ctx, m.Job, list(iter_items(documented.DOCUMENTED_JOB, ("Job",), records.job)), key="job_number",
         children=children.job_children)  # fmt: skip
    fewer = documented.DOCUMENTED_JOB.replace(b"<ID>258</ID>", b"<ID>259</ID>")
    load(ctx, m.Job, list(iter_items(fewer, ("Job",), records.job)), key="job_number", children=children.job_children)
    rows = _rows(migrated_engine, m.JobTask, "uuid", "removed_upstream_at")
    assert [(u, gone is not None) for u, gone in rows] == [("257", False), ("258", True), ("259", False)]
    # A job answer that is not detailed (no <Tasks>) leaves the tasks as they are.
    plain = b"<Response><Status>OK</Status><Job><ID>J000309</ID><Name>Brochure Design</Name></Job></Response>"
    load(ctx, m.Job, list(iter_items(plain, ("Job",), records.job)), key="job_number", children=children.job_children)
    assert _rows(migrated_engine, m.JobTask, "uuid", "removed_upstream_at") == rows


def test_the_documented_time_invoice_payments_quote_and_cost_are_stored(migrated_engine):
    ctx = _ctx(migrated_engine)
    load(ctx, m.TimeEntry, iter_items(documented.DOCUMENTED_TIME, ("Times", "Time"), records.time_entry))
    invoices = iter_items(documented.DOCUMENTED_INVOICE, ("Invoices", "Invoice"), records.invoice)
    load(ctx, m.Invoice, invoices, key="invoice_number", children=children.invoice_children)
    load(ctx, m.Quote, iter_items(documented.DOCUMENTED_QUOTE, ("Quotes", "Quote"), records.quote), key="quote_number")
    load(ctx, m.JobCost, iter_items(documented.DOCUMENTED_COST, ("Costs", "Cost"), records.job_cost))
    assert _rows(migrated_engine, m.TimeEntry, "uuid", "job_number", "entry_date", "minutes", "invoice_task_uuid") == [
        ("tm-1", "J000309", date(2008, 6, 4), 120, "it-9")
    ]
    assert _rows(migrated_engine, m.Invoice, "invoice_number", "amount_paid", "amount_outstanding", "client_uuid") == [
        ("I000123", Decimal("500.0000"), Decimal("625.0000"), "c-47")
    ]
    assert _rows(migrated_engine, m.InvoiceJob, "invoice_number", "job_number", "client_order_number") == [
        ("I000123", "J000309", "PO1234")
    ]
    assert _rows(migrated_engine, m.Quote, "quote_number", "state", "amount_including_tax") == [
        ("Q000123", "Issued", Decimal("1125.0000"))
    ]
    assert _rows(migrated_engine, m.JobCost, "uuid", "job_number", "quantity", "unit_price", "supplier_name") == [
        ("cost-1", "J000309", Decimal("2.0000"), Decimal("15.0000"), "Fast Couriers")
    ]
