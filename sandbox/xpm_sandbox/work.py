"""A practice's work beyond its jobs: milestones, time entries, costs, invoices (with payments) and
quotes, made from the jobs, and how they move on from one day to the next.

Each draws from its own random stream, so the clients and jobs a seed makes stay as they were.
"""

from __future__ import annotations

import random
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from xpm_sandbox.generate import new_uuid
from xpm_sandbox.model import OPEN_QUOTES, Cost, Invoice, Job, Milestone, Payment, Practice, Quote, TimeEntry
from xpm_sandbox.render import invoice_totals

COSTS = [("Courier", "COUR"), ("Company search fee", "SRCH"), ("Printing and binding", "PRNT"), ("Filing fee", "FILE")]
SUPPLIERS = ["Harbour Couriers", "Registry Services", ""]
NOTES = ["", "Phone call", "Prepared workpapers", "Reviewed", "Client queries"]


def add_work(practice: Practice, seed: int, now: datetime) -> None:
    """Milestones on some jobs; time for every task with minutes; costs on some jobs; an invoice for
    most completed jobs; a quote before some jobs, and a few quotes still open."""
    rng = random.Random(f"work:{seed}:{practice.tenant_id}")
    today = now.date()
    for job in practice.jobs.values():
        _milestones(rng, job)
        _time(rng, practice, job, today)
        if rng.random() < 0.3:
            _costs(rng, practice, job, today)
    done = sorted((j for j in practice.jobs.values() if j.completed_date), key=lambda j: (j.completed_date, j.number))
    for job in done:
        if rng.random() < 0.75:
            _invoice(rng, practice, [job], job.completed_date or today, today)
    for job in sorted(practice.jobs.values(), key=lambda j: j.created_on):
        if rng.random() < 0.25:
            when = job.created_on - timedelta(days=rng.randint(3, 20))
            _quote(rng, practice, job.client_uuid, job.name, when, "Accepted", job.budget)
    _open_quotes(rng, practice, today, count=max(1, len(practice.jobs) // 60))


def _milestones(rng: random.Random, job: Job) -> None:
    if rng.random() < 0.2:
        for n in range(rng.randint(1, 2)):
            when = job.start_date + timedelta(days=rng.randint(0, max(0, (job.due_date - job.start_date).days)))
            job.milestones.append(
                Milestone(new_uuid(rng), when, f"Milestone {n + 1}", completed=job.state == "Completed")
            )


def _entry_day(rng: random.Random, job: Job, today: date) -> date:
    last = min(job.due_date, job.completed_date or today, today)
    return job.start_date + timedelta(days=rng.randint(0, max(0, (last - job.start_date).days)))


def _time(rng: random.Random, practice: Practice, job: Job, today: date) -> None:
    """Each task's actual minutes as one to three entries of its staff."""
    for task in job.tasks:
        left = task.actual_minutes
        people = [s for s, _m in task.assigned] or job.assigned
        pieces = rng.randint(1, 3)
        while left > 0:
            minutes = left if pieces == 1 else max(1, min(left, rng.randint(15, 120)))
            _add_time(rng, practice, job, task.uuid, rng.choice(people), _entry_day(rng, job, today), minutes)
            left, pieces = left - minutes, max(1, pieces - 1)


def _add_time(
    rng: random.Random, practice: Practice, job: Job, task_uuid: str, staff_uuid: str, day: date, minutes: int
) -> TimeEntry:
    start = rng.choice([8, 9, 10, 13, 14]) * 60
    end = min(start + minutes, 24 * 60 - 1)
    entry = TimeEntry(
        uuid=new_uuid(rng),
        job_number=job.number,
        task_uuid=task_uuid,
        staff_uuid=staff_uuid,
        date=day,
        minutes=minutes,
        note=rng.choice(NOTES),
        billable=rng.random() < 0.9,
        start=f"{start // 60:02d}:{start % 60:02d}",
        end=f"{end // 60:02d}:{end % 60:02d}",
    )
    practice.times[entry.uuid] = entry
    practice.times_by_task.setdefault(task_uuid, []).append(entry)
    return entry


def _costs(rng: random.Random, practice: Practice, job: Job, today: date) -> None:
    for _ in range(rng.randint(1, 3)):
        _add_cost(rng, practice, job, _entry_day(rng, job, today))


def _add_cost(rng: random.Random, practice: Practice, job: Job, day: date) -> Cost:
    description, code = rng.choice(COSTS)
    unit_cost = Decimal(rng.randint(10, 400))
    supplier = rng.choice(SUPPLIERS)
    cost = Cost(
        uuid=new_uuid(rng),
        job_number=job.number,
        date=day,
        description=description,
        code=code,
        quantity=Decimal(rng.randint(1, 3)),
        unit_cost=unit_cost,
        unit_price=(unit_cost * Decimal("1.2")).quantize(Decimal("0.01")),
        note=rng.choice(["", "Disbursement"]),
        billable=rng.random() < 0.85,
        supplier_uuid=new_uuid(rng) if supplier else "",
        supplier_name=supplier,
    )
    practice.costs[cost.uuid] = cost
    practice.costs_by_job.setdefault(job.number, []).append(cost)
    return cost


def _invoice(rng: random.Random, practice: Practice, jobs: list[Job], day: date, today: date) -> Invoice:
    """An invoice of the jobs' tasks and costs; one older than 45 days is paid in full."""
    inv = Invoice(
        number=f"INV-{len(practice.invoices) + 1:05d}",
        uuid=new_uuid(rng),
        client_uuid=jobs[0].client_uuid,
        date=day,
        due_date=day + timedelta(days=20),
        amount=Decimal(0),
        tax=Decimal(0),
        job_numbers=[j.number for j in jobs],
        description=f"Professional services: {', '.join(j.name for j in jobs)}",
    )
    inv.task_lines = {t.uuid: new_uuid(rng) for j in jobs for t in j.tasks if t.actual_minutes}
    inv.amount, inv.tax = invoice_totals(practice, inv)
    for task_uuid, line in inv.task_lines.items():
        for entry in practice.times_by_task.get(task_uuid, ()):
            entry.invoice_task_uuid = line
    if (today - day).days > 45:
        _pay(rng, inv, inv.total, day + timedelta(days=rng.randint(5, 30)))
    elif rng.random() < 0.3 and inv.total > 0:
        _pay(rng, inv, (inv.total / 2).quantize(Decimal("0.01")), min(today, day + timedelta(days=3)))
    practice.invoices[inv.number] = inv
    return inv


def _pay(rng: random.Random, inv: Invoice, amount: Decimal, day: date) -> None:
    inv.payments.append(Payment(day, amount, f"EFT {rng.randint(100_000, 999_999)}"))
    if inv.paid >= inv.total:
        inv.status = "Paid"


def _quote(
    rng: random.Random, practice: Practice, client_uuid: str, name: str, day: date, state: str, budget: Decimal | None
) -> Quote:
    amount = budget if budget is not None else Decimal(rng.randint(300, 8_000))
    q = Quote(
        number=f"Q{len(practice.quotes) + 1:06d}",
        client_uuid=client_uuid,
        name=name,
        date=day,
        valid_date=day + timedelta(days=30),
        amount=amount,
        tax=(amount / 10).quantize(Decimal("0.01")),
        estimated_cost=(amount * Decimal("0.6")).quantize(Decimal("0.01")),
        state=state,
        description=f"Quote for {name}",
        budget=budget,
    )
    practice.quotes[q.number] = q
    return q


def _open_quotes(rng: random.Random, practice: Practice, today: date, *, count: int) -> list[Quote]:
    clients = [c.uuid for c in practice.clients.values() if not c.is_deleted]
    return [
        _quote(rng, practice, rng.choice(clients), "Advisory engagement", today - timedelta(days=rng.randint(0, 40)),
               rng.choice(sorted(OPEN_QUOTES)), None)
        for _ in range(count)
    ]  # fmt: skip


def next_day(practice: Practice, *, seed: int, share: float, now: datetime, completed: list[str]) -> dict[str, Any]:
    """Move the work on a day: old time entries corrected (as people do, weeks later), one deleted,
    today's time, a cost, payments, invoices for jobs completed today, and quotes decided."""
    rng = random.Random(f"work-next-day:{seed}:{practice.tenant_id}:{now.isoformat()}")
    today = now.date()
    old = [t for t in practice.times.values() if (today - t.date).days > 40]
    edited = rng.sample(old, k=min(len(old), max(1, int(len(practice.times) * share / 4))))
    for entry in edited:
        entry.minutes += rng.choice([15, 30, -15]) if entry.minutes > 15 else 15
        entry.note = "Corrected"
    deleted = []
    if old:
        gone = rng.choice([t for t in old if t not in edited] or old)
        del practice.times[gone.uuid]
        practice.times_by_task[gone.task_uuid].remove(gone)
        deleted.append(gone.uuid)
    current = [j for j in practice.jobs.values() if practice.is_current(j) and j.tasks]
    added = []
    for job in rng.sample(current, k=min(len(current), max(1, int(len(current) * share)))):
        task = rng.choice(job.tasks)
        people = [s for s, _m in task.assigned] or job.assigned
        added.append(_add_time(rng, practice, job, task.uuid, rng.choice(people), today, rng.choice([30, 60, 90])).uuid)
    costs = [_add_cost(rng, practice, rng.choice(current), today).uuid] if current else []
    paid = []
    for inv in [i for i in practice.invoices.values() if practice.invoice_is_current(i)]:
        if rng.random() < 0.3:
            _pay(rng, inv, inv.total - inv.paid, today)
            paid.append(inv.number)
    invoiced = []
    for number in completed:
        job = practice.jobs[number]
        if job.completed_date == today and rng.random() < 0.5:
            invoiced.append(_invoice(rng, practice, [job], today, today).number)
    decided = []
    for q in [q for q in practice.quotes.values() if q.state in OPEN_QUOTES]:
        if rng.random() < 0.2:
            q.state = rng.choice(["Accepted", "Declined"])
            decided.append(q.number)
    opened = [q.number for q in _open_quotes(rng, practice, today, count=1)]
    return {
        "times_edited": [t.uuid for t in edited],
        "times_deleted": deleted,
        "times_added": added,
        "costs_added": costs,
        "invoices_paid": paid,
        "invoices_added": invoiced,
        "quotes_decided": decided,
        "quotes_added": opened,
    }


def answers(practice: Practice) -> dict[str, list[list[Any]]]:
    """What the practice's own records say to the example queries of `docs/schema.md`, worked out
    from the sandbox's records (not from any store), as JSON-ready rows in the queries' order."""
    p = practice
    unbilled: dict[str, int] = {}
    for t in p.times.values():
        job = p.jobs.get(t.job_number)
        if job is not None and p.is_current(job) and t.billable and not t.invoice_task_uuid:
            unbilled[job.number] = unbilled.get(job.number, 0) + t.minutes
    ranked = sorted(unbilled.items(), key=lambda item: (-item[1], item[0]))
    wip: list[list[Any]] = [[n, p.jobs[n].name, minutes] for n, minutes in ranked]
    weeks: dict[tuple[str, str], int] = {}
    for t in p.times.values():
        staff = p.staff.get(t.staff_uuid)
        if staff is not None:
            key = ((t.date - timedelta(days=t.date.weekday())).isoformat(), staff.name)
            weeks[key] = weeks.get(key, 0) + t.minutes
    hours = [[week, name, minutes / 60] for (week, name), minutes in sorted(weeks.items())]
    invoiced: dict[str, Decimal] = {}
    for inv in p.invoices.values():
        for number in inv.job_numbers:
            if p.jobs[number].budget is not None:
                invoiced[number] = invoiced.get(number, Decimal(0)) + inv.amount
    budget = sorted(
        ([n, str(p.jobs[n].budget), str(total), str(total - (p.jobs[n].budget or 0))] for n, total in invoiced.items()),
        key=lambda r: (-Decimal(r[3]), r[0]),
    )
    return {"work_in_progress": wip, "hours_by_staff_per_week": hours, "invoiced_against_budget": budget}
