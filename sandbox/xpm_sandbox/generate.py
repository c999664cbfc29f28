"""A seeded generator of realistic practices, and the "next day" step that changes one.

The same seed always builds the same practice. 20,000 clients and 100,000 jobs take seconds.
"""

from __future__ import annotations

import random
import uuid
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from xpm_sandbox.model import (
    Client,
    Contact,
    FieldDefinition,
    Group,
    Job,
    Named,
    Note,
    Practice,
    Relationship,
    Staff,
    Task,
    Template,
)

FIRST = [
    "Olivia",
    "Liam",
    "Charlotte",
    "Noah",
    "Amelia",
    "Jack",
    "Isla",
    "William",
    "Mia",
    "Oliver",
    "Ava",
    "Leo",
    "Grace",
    "Henry",
    "Chloe",
    "Thomas",
    "Ruby",
    "Lucas",
    "Zoe",
    "James",
    "Aroha",
    "Nikau",
    "Mere",
    "Tane",
    "Priya",
    "Arjun",
    "Mei",
    "Wei",
    "Sofia",
    "Mateo",
    "Hana",
    "Kai",
]
LAST = [
    "Smith",
    "Jones",
    "Williams",
    "Brown",
    "Wilson",
    "Taylor",
    "Nguyen",
    "Johnson",
    "Martin",
    "White",
    "Anderson",
    "Walker",
    "Harris",
    "Ngata",
    "Thompson",
    "Clarke",
    "Singh",
    "Patel",
    "Chen",
    "Wang",
    "Kelly",
    "Ryan",
    "Murphy",
    "Campbell",
    "Stewart",
    "Parata",
    "Te",
    "Whata",
    "Lee",
]
TRADES = [
    "Plumbing",
    "Electrical",
    "Cafe",
    "Bakery",
    "Consulting",
    "Logistics",
    "Dental",
    "Physio",
    "Vineyard",
    "Orchard",
    "Building",
    "Landscaping",
    "Design",
    "Media",
    "Software",
    "Freight",
    "Joinery",
    "Salon",
    "Fitness",
    "Realty",
]
INDUSTRIES = ["Construction", "Hospitality", "Health", "Professional Services", "Retail", "Agriculture"]
COMPANY_SUFFIX = {"Australia": "Pty Ltd", "New Zealand": "Limited"}
CITIES = {
    "Australia": [("Sydney", "NSW", "2000"), ("Melbourne", "VIC", "3000"), ("Brisbane", "QLD", "4000")],
    "New Zealand": [("Auckland", "Auckland", "1010"), ("Wellington", "Wellington", "6011")],
}
RETURN_TYPES = {
    "Australia": {
        "Individual": "Individual",
        "Company": "Company",
        "Trust": "Trust",
        "Partnership": "Partnership",
    },
    "New Zealand": {"Individual": "IR3", "Company": "IR4", "Trust": "IR6", "Partnership": "IR7"},
}
JOB_STATES = [
    ("Planned", "PLANNED"),
    ("In Progress", "INPROGRESS"),
    ("Waiting on Client", "WAITING"),
    ("Review", "REVIEW"),
    ("Completed", "COMPLETED"),
    ("Cancelled", "CANCELLED"),
]
CATEGORIES = ["Compliance", "Consulting", "Internal", "Tax", "Bookkeeping"]
JOB_KINDS = [
    ("Income Tax Return", "Tax Return", "Tax"),
    ("Annual Financial Statements", "Annual Accounts", "Compliance"),
    ("Activity Statement", "BAS", "Compliance"),
    ("Monthly Bookkeeping", "Bookkeeping", "Bookkeeping"),
    ("Advisory Meeting", "Advisory", "Consulting"),
]
TASK_TYPES = ["Gather records", "Preparation", "Partner review", "Lodgement", "Client meeting"]
TEMPLATES = [
    ("Tax Return - Individual", ["Gather records", "Prepare return", "Partner review", "Lodge"]),
    ("Annual Accounts", ["Bank reconciliation", "Year-end adjustments", "Financial statements"]),
    ("Xero Setup/Conversion", ["Xero Setup"]),
]
FIELD_DEFS = [
    # name, XPM type, value element, on clients, on jobs, options
    ("Entity Code", "Text", "Text", True, False, ""),
    ("Risk Rating", "Select", "Text", True, False, "Low,Medium,High"),
    ("Fee Estimate", "Decimal", "Decimal", True, True, ""),
    ("Staff Count", "Number", "Number", True, False, ""),
    ("Engagement Letter Signed", "Checkbox", "Boolean", True, True, ""),
    ("Next Review", "Date", "Date", True, False, ""),
    ("Priority", "Number", "Number", False, True, ""),
    ("Portal Link", "Link", "Text", True, False, ""),
    ("Job Reference", "Text", "Text", False, True, ""),
    ("Lodgement Due", "Date", "Date", False, True, ""),
]


def new_uuid(rng: random.Random) -> str:
    """A version-4 UUID drawn from `rng`, so that a seed fixes every key."""
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _person(rng: random.Random) -> tuple[str, str]:
    return rng.choice(FIRST), rng.choice(LAST)


def _field_value(rng: random.Random, d: FieldDefinition, today: date) -> object:
    element = d.value_element
    if element == "Boolean":
        return rng.random() < 0.7
    if element == "Decimal":
        return Decimal(rng.randint(500, 250_000)) / 100
    if element == "Number":
        return rng.randint(1, 60)
    if element == "Date":
        return today + timedelta(days=rng.randint(-200, 400))
    if d.type == "Select":
        return rng.choice(d.options.split(","))
    if d.type == "Link":
        return f"https://portal.example/{rng.randint(1000, 99999)}"
    return f"E{rng.randint(10000, 99999)}"


def _fill_fields(rng: random.Random, defs: list[FieldDefinition], today: date, share: float) -> dict[str, object]:
    values = {d.uuid: _field_value(rng, d, today) for d in defs if rng.random() < share}
    # XPM holds no value for an unticked checkbox: it is simply absent.
    return {k: v for k, v in values.items() if v is not False}


def _client(rng: random.Random, practice: Practice, now: datetime, index: int) -> Client:
    country = "Australia" if rng.random() < 0.6 else "New Zealand"
    city, region, post_code = rng.choice(CITIES[country])
    structure = rng.choices(["Individual", "Company", "Trust", "Partnership"], weights=[55, 25, 12, 8])[0]
    first, last = _person(rng)
    if structure == "Individual":
        name = f"{first} {last}"
    else:
        name = f"{last} {rng.choice(TRADES)} {COMPANY_SUFFIX[country] if structure == 'Company' else structure}"
    staff = list(practice.staff)
    gst = structure != "Individual" or rng.random() < 0.2
    person = structure == "Individual"
    postal = rng.random() < 0.3  # a separate postal address (a PO box)
    street = f"{rng.randint(1, 400)} {rng.choice(LAST)} Street"
    client = Client(
        uuid=new_uuid(rng),
        name=f"{name} ({index})" if rng.random() < 0.02 else name,
        modified_at=now - timedelta(days=rng.randint(1, 900), seconds=rng.randint(0, 86_399)),
        title=rng.choice(["Mr", "Ms", "Mrs", "Dr", ""]) if person else "",
        gender=rng.choice(["Male", "Female", ""]) if person else "",
        first_name=first if person else "",
        middle_name=rng.choice(FIRST) if person and rng.random() < 0.3 else "",
        last_name=last if person else "",
        other_name=f"{last} {rng.choice(TRADES)}" if not person and rng.random() < 0.2 else "",
        email=f"{first.lower()}.{last.lower()}{index}@example.com",
        date_of_birth=date(rng.randint(1940, 2004), rng.randint(1, 12), rng.randint(1, 28)) if person else None,
        date_of_death=date(rng.randint(2015, 2025), rng.randint(1, 12), rng.randint(1, 28))
        if person and rng.random() < 0.01
        else None,
        place_of_birth_city=rng.choice(CITIES[country])[0] if person and rng.random() < 0.5 else "",
        place_of_birth_country_code=("AU" if country == "Australia" else "NZ") if person else "",
        address=street,
        city=city,
        region=region,
        post_code=post_code,
        country=country,
        postal_address=f"PO Box {rng.randint(10, 9999)}" if postal else street,
        postal_city=city,
        postal_region=region,
        postal_post_code=post_code,
        postal_country=country,
        phone=f"0{rng.randint(2, 9)} {rng.randint(1000, 9999)} {rng.randint(1000, 9999)}",
        fax=f"0{rng.randint(2, 9)} {rng.randint(1000, 9999)} {rng.randint(1000, 9999)}" if rng.random() < 0.05 else "",
        website=f"https://{last.lower()}{index}.example" if not person else "",
        referral_source=rng.choice(["", "Referral", "Website", "Existing client"]),
        export_code=f"X{index:05d}" if rng.random() < 0.1 else "",
        industry=rng.choice(INDUSTRIES) if not person else "",
        is_prospect=rng.random() < 0.03,
        is_archived=rng.random() < 0.04,
        account_manager_uuid=rng.choice(staff),
        job_manager_uuid=rng.choice(staff),
        client_type=rng.choice(["Standard", "Premium", "Monthly retainer"]),
        tax_number=f"{rng.randint(100_000_000, 999_999_999)}",
        company_number=f"{rng.randint(100_000, 999_999)}" if structure == "Company" else "",
        business_number=f"{rng.randint(10**10, 10**11 - 1)}" if country == "Australia" else "",
        business_structure=structure,
        balance_month=6 if country == "Australia" else 3,
        gst_registered=gst,
        prepare_gst=gst and rng.random() < 0.8,
        gst_period=rng.choice(["Monthly", "Two Monthly", "Six Monthly"]) if gst else "",
        gst_basis=rng.choice(["Invoice", "Payments", "Hybrid"]) if gst else "",
        provisional_tax_basis=rng.choice(["Standard", "Estimate", "Ratio"]) if country == "New Zealand" else "",
        provisional_tax_ratio=Decimal(rng.randint(5, 150)) / 10 if country == "New Zealand" else None,
        signed_tax_authority=rng.random() < 0.8,
        tax_agent=rng.choice(["", "Agent 1", "Agent 2"]),
        agency_status=rng.choice(["Linked", "Unlinked"]),
        return_type=RETURN_TYPES[country][structure],
        prepare_activity_statement=country == "Australia" and gst,
        prepare_tax_return=rng.random() < 0.85,
        branch_number=str(rng.randint(1, 9)) if country == "Australia" and rng.random() < 0.2 else "",
        bank_bsb=f"{rng.randint(100, 999)}-{rng.randint(100, 999)}" if country == "Australia" else "",
        bank_account_name=name if rng.random() < 0.5 else "",
        bank_account_number=str(rng.randint(10**7, 10**9)) if rng.random() < 0.5 else "",
        bank_name=rng.choice(["", "Harbour Bank", "Southern Savings"]),
        active_ato_client=country == "Australia",
        client_code=f"{last[:3].upper()}{index:05d}",
    )
    for n in range(rng.choices([0, 1, 2, 3], weights=[15, 55, 20, 10])[0]):
        cf, cl = _person(rng)
        client.contacts.append(
            Contact(
                uuid=new_uuid(rng),
                name=f"{cf} {cl}",
                email=f"{cf.lower()}@{last.lower()}.example",
                mobile=f"021 {rng.randint(100, 999)} {rng.randint(1000, 9999)}",
                position=rng.choice(["", "Director", "Owner", "Office Manager", "Trustee"]),
                salutation=cf,
                addressee=f"{cf} {cl}",
                is_primary=n == 0,
                is_deleted=n > 0 and rng.random() < 0.05,
            )
        )
    return client


def build_practice(
    tenant_id: str,
    name: str,
    *,
    seed: int = 1,
    clients: int = 200,
    jobs: int = 600,
    staff: int = 12,
    start_year: int = 2022,
    now: datetime,
) -> Practice:
    """A practice of `clients` clients and `jobs` jobs created from `start_year` until `now`."""
    rng = random.Random(f"{seed}:{tenant_id}")
    today = now.date()
    practice = Practice(tenant_id=tenant_id, name=name)
    for i in range(staff):
        first, last = _person(rng)
        s = Staff(
            uuid=new_uuid(rng),
            name=f"{first} {last}",
            email=f"{first.lower()}.{last.lower()}{i}@{name.split()[0].lower()}.example",
            phone=f"09 {rng.randint(100, 999)} {rng.randint(1000, 9999)}",
            payroll_code=f"P{i:03d}",
        )
        practice.staff[s.uuid] = s
    for cat in CATEGORIES:
        category = Named(uuid=new_uuid(rng), name=cat)
        practice.categories[category.uuid] = category
    for state_name, code in JOB_STATES:
        s_ = Named(uuid=new_uuid(rng), name=state_name, code=code)
        practice.job_states[s_.uuid] = s_
    for fname, ftype, element, on_client, on_job, options in FIELD_DEFS:
        d = FieldDefinition(new_uuid(rng), fname, ftype, element, on_client, on_job, options)
        if ftype == "Link":
            d.link_url = "https://portal.example/open?ref={0}"
        practice.field_definitions[d.uuid] = d
    for template_name, task_names in TEMPLATES:
        template = Template(new_uuid(rng), template_name, [(new_uuid(rng), t) for t in task_names])
        practice.templates[template.uuid] = template
    client_defs = [d for d in practice.field_definitions.values() if d.use_client]
    job_defs = [d for d in practice.field_definitions.values() if d.use_job]

    for i in range(clients):
        c = _client(rng, practice, now, i)
        c.custom_fields = _fill_fields(rng, client_defs, today, 0.5)
        practice.clients[c.uuid] = c
    client_list = list(practice.clients.values())
    for g in range(max(1, clients // 25)):
        group = Group(uuid=new_uuid(rng), name=f"{rng.choice(LAST)} Family Group {g + 1}", taxable=rng.random() < 0.3)
        for member in rng.sample(client_list, k=min(len(client_list), rng.randint(2, 5))):
            group.members.append(member.uuid)
            member.group_uuids.append(group.uuid)
        practice.groups[group.uuid] = group
    for owner in rng.sample(client_list, k=min(len(client_list), clients // 10)):
        other = rng.choice(client_list)
        if other is not owner:
            owner.relationships.append(
                Relationship(
                    uuid=new_uuid(rng),
                    type=rng.choice(["Director", "Shareholder", "Trustee", "Beneficiary", "Partner"]),
                    related_uuid=other.uuid,
                    related_name=other.name,
                    number_of_shares=rng.choice([None, 100, 500]),
                    percentage=Decimal(rng.choice([25, 50, 100])),
                    start_date=date(rng.randint(2005, 2024), rng.randint(1, 12), 1),
                    end_date=date(2025, rng.randint(1, 12), 1) if rng.random() < 0.1 else None,
                )
            )

    for client in rng.sample(client_list, k=len(client_list) // 20):
        payer = rng.choice(client_list)
        if payer is not client:
            client.billing_client_uuid = payer.uuid
    for task_name in TASK_TYPES:
        practice.task_types[task_name] = new_uuid(rng)
    _add_jobs(practice, rng, jobs, start_year, now, job_defs)
    _add_notes(practice, random.Random(f"notes:{seed}:{tenant_id}"), now)
    from xpm_sandbox import work  # it builds on this module's records

    work.add_work(practice, seed, now)
    return practice


NOTE_TAGS = ("", "Tax", "Bookkeeping", "Engagement", "Payroll")


def _add_notes(practice: Practice, rng: random.Random, now: datetime) -> None:
    """Notes on about a third of the clients, most of them tagged."""
    authors = [s.name for s in practice.staff.values()] or ["Ada Admin"]
    for client in practice.clients.values():
        for n in range(rng.choice((0, 0, 1, 1, 2, 3))):
            when = (now - timedelta(days=rng.randint(1, 900))).replace(microsecond=0, tzinfo=None)
            client.notes.append(
                Note(
                    title=f"{rng.choice(('Call', 'Meeting', 'Email', 'Review'))} {n + 1}",
                    text=rng.choice(("Discussed the year-end.", "Sent the engagement letter.", "Asked for records.")),
                    date=when,
                    created_by=rng.choice(authors),
                    tag=rng.choice(NOTE_TAGS),
                )
            )


def _tasks(rng: random.Random, practice: Practice, job: Job) -> list[Task]:
    """One to three tasks, each allocating minutes to some of the job's staff."""
    tasks = []
    for name in rng.sample(TASK_TYPES, k=rng.randint(1, 3)):
        people = rng.sample(job.assigned, k=rng.randint(1, len(job.assigned)))
        estimate = rng.choice([30, 60, 120, 240])
        tasks.append(
            Task(
                uuid=new_uuid(rng),
                name=name,
                task_uuid=practice.task_types[name],
                estimated_minutes=estimate,
                actual_minutes=rng.randint(0, estimate) if job.state != "Planned" else 0,
                completed=job.state == "Completed",
                start_date=job.start_date,
                due_date=job.due_date,
                assigned=[(s, rng.choice([15, 30, 60, 90])) for s in people],
            )
        )
    return tasks


def _add_jobs(
    practice: Practice,
    rng: random.Random,
    count: int,
    start_year: int,
    now: datetime,
    job_defs: list[FieldDefinition],
    *,
    recent_only: bool = False,
    closed_days_back: int = 0,
) -> list[Job]:
    """Add `count` jobs. `closed_days_back`: created that many days ago (or fewer) and already
    Completed, as when a practice records work after the fact."""
    if closed_days_back:
        start = now.date() - timedelta(days=closed_days_back)
    else:
        start = now.date() - timedelta(days=3) if recent_only else date(start_year, 1, 1)
    span = max(1, (now.date() - start).days)
    created = sorted(start + timedelta(days=rng.randint(0, span)) for _ in range(count))
    staff = list(practice.staff)
    clients = [c for c in practice.clients.values() if not c.is_deleted]
    categories = {c.name: c.uuid for c in practice.categories.values()}
    added = []
    next_number = len(practice.jobs) + 1
    for created_on in created:
        title, kind, category = rng.choice(JOB_KINDS)
        client = rng.choice(clients)
        age = (now.date() - created_on).days
        if closed_days_back:
            state = "Completed"
        elif age > 150:
            state = "Completed" if rng.random() < 0.93 else "Cancelled"
        else:
            state = rng.choice(["Planned", "In Progress", "Waiting on Client", "Review", "Completed"])
        due = created_on + timedelta(days=rng.randint(14, 120))
        year = created_on.year if created_on.month > 6 else created_on.year - 1
        job = Job(
            number=f"J{next_number:06d}",
            uuid=new_uuid(rng),
            name=f"{year} {title}" if kind == "Tax Return" else title,
            client_uuid=client.uuid,
            state=state,
            created_on=created_on,
            start_date=created_on,
            due_date=due,
            description=f"{title} for {client.name}",
            client_order_number=str(rng.randint(10_000, 99_999)) if rng.random() < 0.2 else "",
            budget=Decimal(rng.randint(200, 12_000)),
            job_type=kind,
            completed_date=min(due, now.date()) if state == "Completed" else None,
            internal_id=str(40_000_000 + next_number),
            manager_uuid=rng.choice(staff),
            partner_uuid=rng.choice(staff) if rng.random() < 0.6 else "",
            category_uuid=categories[category],
            assigned=rng.sample(staff, k=rng.randint(1, 3)),
        )
        if client.contacts and rng.random() < 0.5:
            job.contact_uuid = rng.choice(client.contacts).uuid
        job.tasks = _tasks(rng, practice, job)
        job.custom_fields = _fill_fields(rng, job_defs, now.date(), 0.3)
        practice.jobs[job.number] = job
        added.append(job)
        next_number += 1
    return added


def next_day(
    practice: Practice, *, seed: int, share: float, now: datetime, closed_backdated: int = 0, days_back: int = 3
) -> dict[str, Any]:
    """Move the practice on a day: edit, archive and add records; return what changed.

    New jobs are created up to 3 days back, some already completed, as XPM allows. With
    `closed_backdated`, that many more are created already completed up to `days_back` days back.
    """
    rng = random.Random(f"next-day:{seed}:{practice.tenant_id}:{now.isoformat()}")
    today = now.date()
    clients = list(practice.clients.values())
    edited = rng.sample(clients, k=max(1, int(len(clients) * share)))
    archived, cf_clients = [], []
    client_defs = [d for d in practice.field_definitions.values() if d.use_client]
    for c in edited:
        roll = rng.random()
        if roll < 0.1:
            c.is_archived = True
            archived.append(c.uuid)
        elif roll < 0.4:
            c.custom_fields = _fill_fields(rng, client_defs, today, 0.6)
            cf_clients.append(c.uuid)
        else:
            c.phone = f"0{rng.randint(2, 9)} {rng.randint(1000, 9999)} {rng.randint(1000, 9999)}"
            c.email = f"updated{rng.randint(1, 10**6)}@example.com"
        c.modified_at = now - timedelta(seconds=rng.randint(1, 3600))

    current = [j for j in practice.jobs.values() if practice.is_current(j)]
    moved = rng.sample(current, k=min(len(current), max(1, int(len(current) * share))))
    states = ["Planned", "In Progress", "Waiting on Client", "Review", "Completed"]
    job_defs = [d for d in practice.field_definitions.values() if d.use_job]
    for job in moved:
        job.state = rng.choice([s for s in states if s != job.state])
        job.completed_date = today if job.state == "Completed" else None
        if rng.random() < 0.3:
            job.custom_fields = _fill_fields(rng, job_defs, today, 0.5)
    # Back-dated jobs first: the day's later jobs take the numbers after theirs.
    new_jobs = _add_jobs(practice, rng, closed_backdated, 0, now, job_defs, closed_days_back=days_back)
    new_jobs += _add_jobs(
        practice, rng, max(1, int(len(practice.jobs) * share / 10)), 0, now, job_defs, recent_only=True
    )
    from xpm_sandbox import work

    completed = [j.number for j in moved if j.state == "Completed"]
    worked = work.next_day(practice, seed=seed, share=share, now=now, completed=completed)
    return {
        **worked,
        "clients_edited": len(edited),
        "clients_archived": archived,
        "clients_custom_fields_changed": cf_clients,
        "jobs_state_changed": [j.number for j in moved],
        "jobs_added": [j.number for j in new_jobs],
    }
