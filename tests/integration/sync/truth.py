"""The sandbox's practice as the store should hold it, for field-by-field comparison."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from xpm_sandbox.model import OPEN_QUOTES, Practice
from xpm_sandbox.render import web_url
from xpm_sync import config
from xpm_sync.store import models as m


def _n(value: Any) -> Any:
    """The store keeps empty text as None."""
    return None if value == "" else value


def expected_clients(p: Practice) -> dict[str, dict[str, Any]]:
    return {
        c.uuid: {
            "name": c.name, "email": _n(c.email), "phone": _n(c.phone), "city": _n(c.city),
            "is_archived": c.is_archived, "balance_month": c.balance_month, "return_type": _n(c.return_type),
            "prepare_tax_return": c.prepare_tax_return, "gst_registered": c.gst_registered,
            "agency_status": _n(c.agency_status), "account_manager_uuid": _n(c.account_manager_uuid),
            "client_type": _n(c.client_type), "date_of_birth": c.date_of_birth,
            "provisional_tax_ratio": c.provisional_tax_ratio, "business_structure": _n(c.business_structure),
            "title": _n(c.title), "gender": _n(c.gender), "middle_name": _n(c.middle_name),
            "other_name": _n(c.other_name), "billing_client_uuid": _n(c.billing_client_uuid),
            "date_of_death": c.date_of_death, "postal_address": _n(c.postal_address), "industry": _n(c.industry),
            "bank_bsb": _n(c.bank_bsb), "branch_number": _n(c.branch_number), "fax": _n(c.fax),
            "web_url": web_url("client", c.uuid),
        }
        for c in p.clients.values()
    }  # fmt: skip


def expected_jobs(p: Practice) -> dict[str, dict[str, Any]]:
    return {
        j.number: {
            "uuid": j.uuid, "name": j.name, "state": j.state, "client_uuid": j.client_uuid,
            "start_date": j.start_date, "due_date": j.due_date, "completed_date": j.completed_date,
            "budget": j.budget, "manager_uuid": _n(j.manager_uuid), "partner_uuid": _n(j.partner_uuid),
            "job_type": _n(j.job_type), "is_current": p.is_current(j), "contact_uuid": _n(j.contact_uuid),
            "web_url": web_url("job", j.number),
        }
        for j in p.jobs.values()
    }  # fmt: skip


def _row(obj: Any, fields: list[str]) -> dict[str, Any]:
    out = {f: getattr(obj, f) for f in fields}
    for f, v in out.items():
        if isinstance(v, Decimal):
            out[f] = v.normalize()
    return out


def _normal(expected: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.normalize() if isinstance(v, Decimal) else v) for k, v in expected.items()}


def _live(s: Session, model: Any, tenant_id: str) -> list[Any]:
    """The tenant's rows of `model` not marked removed upstream."""
    return list(s.scalars(select(model).where(model.tenant_id == tenant_id, model.removed_upstream_at.is_(None))))


def differences(engine: Any, p: Practice, *, custom_fields: bool = True) -> list[str]:
    """Every way the store differs from the sandbox's truth for practice `p` (empty when equal)."""
    problems: list[str] = []
    t = p.tenant_id
    with Session(engine) as s:
        staff = {
            r.uuid: r
            for r in s.scalars(select(m.Staff).where(m.Staff.tenant_id == t, m.Staff.removed_upstream_at.is_(None)))
        }
        if {u: (x.name, _n(x.email), _n(x.payroll_code), web_url("staff", u)) for u, x in p.staff.items()} != {
            u: (r.name, r.email, r.payroll_code, r.web_url) for u, r in staff.items()
        }:
            problems.append("staff differ")
        for model, truth in ((m.Category, p.categories), (m.JobState, p.job_states)):
            rows = {
                r.uuid: r.name
                for r in s.scalars(select(model).where(model.tenant_id == t, model.removed_upstream_at.is_(None)))
            }
            if rows != {u: x.name for u, x in truth.items()}:
                problems.append(f"{model.__tablename__} differ")
        groups = {
            r.uuid: (r.name, r.taxable, r.web_url)
            for r in s.scalars(select(m.ClientGroup).where(m.ClientGroup.tenant_id == t))
        }
        if groups != {g.uuid: (g.name, g.taxable, web_url("group", g.uuid)) for g in p.groups.values()}:
            problems.append("client groups differ")
        definitions = {r.uuid: (r.name, r.link_url, r.value_element) for r in _live(s, m.CustomFieldDefinition, t)}
        if definitions != {d.uuid: (d.name, _n(d.link_url), d.value_element) for d in p.field_definitions.values()}:
            problems.append("custom field definitions differ")

        clients = {r.uuid: r for r in s.scalars(select(m.Client).where(m.Client.tenant_id == t))}
        want = expected_clients(p)
        if set(clients) != set(want):
            problems.append(f"client keys differ: {len(set(clients) ^ set(want))}")
        for uuid, fields in want.items():
            if uuid in clients and _row(clients[uuid], list(fields)) != _normal(fields):
                problems.append(f"client {uuid} differs: {_row(clients[uuid], list(fields))} != {fields}")
        links = {(r.client_uuid, r.contact_uuid, r.is_primary) for r in _live(s, m.ClientContact, t)}
        if links != {(c.uuid, k.uuid, k.is_primary) for c in p.clients.values() for k in c.contacts}:
            problems.append("client contacts differ")
        contacts = {r.uuid: (r.name, r.is_deleted) for r in _live(s, m.Contact, t)}
        if contacts != {k.uuid: (k.name, k.is_deleted) for c in p.clients.values() for k in c.contacts}:
            problems.append("contacts differ")
        members = {(r.group_uuid, r.client_uuid) for r in _live(s, m.ClientGroupMember, t)}
        if members != {(g.uuid, c) for g in p.groups.values() for c in g.members}:
            problems.append("group memberships differ")
        rels = {(r.client_uuid, r.uuid, r.related_client_uuid, r.relationship_type, r.end_date) for r in s.scalars(
            select(m.ClientRelationship).where(m.ClientRelationship.tenant_id == t))}  # fmt: skip
        truth_rels = {
            (c.uuid, r.uuid, r.related_uuid, r.type, r.end_date) for c in p.clients.values() for r in c.relationships
        }
        if rels != truth_rels:
            problems.append("relationships differ")
        notes = {(r.client_uuid, r.position, r.title, r.text, r.folder, r.tag, r.note_date, r.created_by)
                 for r in _live(s, m.ClientNote, t)}  # fmt: skip
        truth_notes = {
            (c.uuid, i, n.title, n.text, None, n.tag or None, n.date.date(), n.created_by)
            for c in p.clients.values()
            for i, n in enumerate(c.notes)
        }
        if notes != truth_notes:
            problems.append(f"client notes differ: {len(notes ^ truth_notes)}")

        jobs = {
            r.job_number: r
            for r in s.scalars(select(m.Job).where(m.Job.tenant_id == t, m.Job.removed_upstream_at.is_(None)))
        }
        want_jobs = expected_jobs(p)
        if set(jobs) != set(want_jobs):
            problems.append(f"job keys differ: {sorted(set(jobs) ^ set(want_jobs))[:5]}")
        for number, fields in want_jobs.items():
            if number in jobs and _row(jobs[number], list(fields)) != _normal(fields):
                problems.append(f"job {number} differs: {_row(jobs[number], list(fields))} != {fields}")
        assigned = {(r.job_number, r.staff_uuid, r.allocated_minutes) for r in _live(s, m.JobAssignment, t)}
        # The job's own staff list, which carries no minutes.
        truth_assigned = {(j.number, st, None) for j in p.jobs.values() for st in j.assigned}
        if assigned != truth_assigned:
            problems.append(f"job assignments differ in {len(assigned ^ truth_assigned)} places")
        problems += _task_differences(s, p)

        if custom_fields:
            problems += _custom_field_differences(s, p)
    return problems


def _task_differences(s: Session, p: Practice) -> list[str]:
    problems = []
    t = p.tenant_id
    tasks = {
        (r.job_number, r.uuid, r.position, r.task_type_uuid, r.name, r.estimated_minutes, r.actual_minutes,
         r.completed, r.billable, r.start_date, r.due_date)
        for r in _live(s, m.JobTask, t)
    }  # fmt: skip
    truth = {
        (j.number, k.uuid, i, k.task_uuid, k.name, k.estimated_minutes, k.actual_minutes, k.completed, k.billable,
         k.start_date, k.due_date)
        for j in p.jobs.values()
        for i, k in enumerate(j.tasks)
    }  # fmt: skip
    if tasks != truth:
        problems.append(f"job tasks differ in {len(tasks ^ truth)} places")
    staff = {(r.job_number, r.task_uuid, r.staff_uuid, r.allocated_minutes) for r in _live(s, m.JobTaskStaff, t)}
    truth_staff = {(j.number, k.uuid, st, mins) for j in p.jobs.values() for k in j.tasks for st, mins in k.assigned}
    if staff != truth_staff:
        problems.append(f"task staff differ in {len(staff ^ truth_staff)} places")
    milestones = {
        (r.job_number, r.uuid, r.milestone_date, r.description, r.completed) for r in _live(s, m.JobMilestone, t)
    }
    truth_milestones = {
        (j.number, x.uuid, x.date, x.description, x.completed) for j in p.jobs.values() for x in j.milestones
    }
    if milestones != truth_milestones:
        problems.append(f"job milestones differ in {len(milestones ^ truth_milestones)} places")
    return problems


def _value(d: Any, value: Any) -> tuple[str, Any]:
    column = {
        "Text": "text_value",
        "Decimal": "decimal_value",
        "Number": "number_value",
        "Boolean": "boolean_value",
        "Date": "date_value",
    }[d.value_element]
    return column, (Decimal(value).normalize() if column in ("decimal_value", "number_value") else value)


def _stored_values(s: Session, model: Any, parent: str, p: Practice) -> dict[tuple[str, str], Any]:
    values = {}
    for r in _live(s, model, p.tenant_id):
        d = p.field_definitions[r.field_uuid]
        column, _ = _value(d, 0 if d.value_element in ("Decimal", "Number") else None)
        value = getattr(r, column)
        values[(getattr(r, parent), r.field_uuid)] = value.normalize() if isinstance(value, Decimal) else value
    return values


def _custom_field_differences(s: Session, p: Practice) -> list[str]:
    problems = []
    stored = _stored_values(s, m.ClientCustomFieldValue, "client_uuid", p)
    truth = {
        (c.uuid, f): _value(p.field_definitions[f], v)[1]
        for c in p.clients.values()
        for f, v in c.custom_fields.items()
    }
    if stored != truth:
        problems.append(f"client custom field values differ in {len(set(stored.items()) ^ set(truth.items()))} places")
    current = {j.number for j in p.jobs.values() if p.is_current(j)}
    stored_jobs = {
        k: v for k, v in _stored_values(s, m.JobCustomFieldValue, "job_number", p).items() if k[0] in current
    }
    truth_jobs = {
        (j.number, f): _value(p.field_definitions[f], v)[1]
        for j in p.jobs.values()
        if j.number in current
        for f, v in j.custom_fields.items()
    }
    if stored_jobs != truth_jobs:
        wrong = len(set(stored_jobs.items()) ^ set(truth_jobs.items()))
        problems.append(f"job custom field values of open jobs differ in {wrong} places")
    return problems


def work_differences(engine: Any, p: Practice, since: date | None = None) -> list[str]:
    """How the store's time entries, costs, invoices (their jobs and payments) and quotes differ from
    the sandbox's (empty when equal).

    Lists by date are read from 1 January of `job_start_year` (`since`): an invoice or quote dated
    before it (a quote made in the December before a January job's first year, say) is the store's
    while XPM's current list holds it, and once stored it keeps in step (its final state read when it
    leaves that list); one never current while synced is not the store's."""
    problems: list[str] = []
    t = p.tenant_id
    since = since or date(config.get_int("job_start_year"), 1, 1)
    with Session(engine) as s:
        held_invoices = set(s.scalars(select(m.Invoice.invoice_number).where(m.Invoice.tenant_id == t)))
        held_quotes = set(s.scalars(select(m.Quote.quote_number).where(m.Quote.tenant_id == t)))
    invoices = [
        i for i in p.invoices.values() if i.date >= since or p.invoice_is_current(i) or i.number in held_invoices
    ]
    quotes = [q for q in p.quotes.values() if q.date >= since or q.state in OPEN_QUOTES or q.number in held_quotes]

    def compare(what: str, stored: set[Any], truth: set[Any]) -> None:
        if stored != truth:
            problems.append(f"{what} differ in {len(stored ^ truth)} places: {sorted(stored ^ truth, key=str)[:3]}")

    with Session(engine) as s:
        compare(
            "time entries",
            {(r.uuid, r.job_number, r.task_uuid, r.staff_uuid, r.entry_date, r.minutes, r.note, r.billable,
              r.start_time, r.invoice_task_uuid) for r in _live(s, m.TimeEntry, t)},
            {(x.uuid, x.job_number, x.task_uuid, x.staff_uuid, x.date, x.minutes, _n(x.note), x.billable, _n(x.start),
              _n(x.invoice_task_uuid)) for x in p.times.values()},
        )  # fmt: skip
        compare(
            "costs",
            {(r.uuid, r.job_number, r.cost_date, r.description, r.quantity.normalize(), r.unit_price.normalize(),
              r.billable, r.supplier_name) for r in _live(s, m.JobCost, t)},
            {(c.uuid, c.job_number, c.date, c.description, c.quantity.normalize(), c.unit_price.normalize(),
              c.billable, _n(c.supplier_name)) for c in p.costs.values()},
        )  # fmt: skip
        compare(
            "invoices",
            {(r.invoice_number, r.uuid, r.status, r.invoice_date, r.client_uuid, r.amount.normalize(),
              r.amount_paid.normalize(), r.is_current) for r in _live(s, m.Invoice, t)},
            {(i.number, i.uuid, i.status, i.date, i.client_uuid, i.amount.normalize(), i.paid.normalize(),
              p.invoice_is_current(i)) for i in invoices},
        )  # fmt: skip
        compare(
            "invoice jobs",
            {(r.invoice_number, r.job_number) for r in _live(s, m.InvoiceJob, t)},
            {(i.number, n) for i in invoices for n in i.job_numbers},
        )
        compare(
            "payments",
            {(r.invoice_number, r.position, r.payment_date, r.amount.normalize(), r.reference)
             for r in _live(s, m.InvoicePayment, t)},
            {(i.number, n, x.date, x.amount.normalize(), x.reference) for i in invoices
             for n, x in enumerate(i.payments)},
        )  # fmt: skip
        compare(
            "quotes",
            {(r.quote_number, r.state, r.quote_date, r.client_uuid, r.amount.normalize(), r.is_current)
             for r in _live(s, m.Quote, t)},
            {(q.number, q.state, q.date, q.client_uuid, q.amount.normalize(), q.state in OPEN_QUOTES)
             for q in quotes},
        )  # fmt: skip
    return problems
