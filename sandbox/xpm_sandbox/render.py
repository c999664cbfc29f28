"""XML exactly as XPM 3.1 shapes it: element names and order, `Yes`/`No` for clients,
`true`/`false` for jobs and custom fields, dates as `2008-08-29T00:00:00`."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import date, datetime
from decimal import Decimal
from xml.sax.saxutils import escape

from xpm_sandbox.model import (
    Client,
    Contact,
    Cost,
    FieldDefinition,
    Group,
    Invoice,
    Job,
    Milestone,
    Named,
    Note,
    Payment,
    Practice,
    Quote,
    Relationship,
    Staff,
    Task,
    TimeEntry,
)


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%dT%H:%M:%S")
    if isinstance(value, date):
        return value.strftime("%Y-%m-%dT00:00:00")
    if isinstance(value, Decimal):
        return format(value.normalize(), "f") if value == value.to_integral() else str(value)
    return escape(str(value))


def el(name: str, value: object) -> str:
    """One element; an empty value renders as `<Name></Name>`, as XPM does."""
    return f"<{name}>{_text(value)}</{name}>"


def yes_no(value: bool) -> str:
    return "Yes" if value else "No"


def true_false(value: bool) -> str:
    return "true" if value else "false"


def envelope(method: str, body: str, *, web: str = "") -> str:
    """An OK answer; `web` is the record's web address, which `get` answers carry beside it."""
    return f'<Response api-method="{method}"><Status>OK</Status>{body}{el("WebUrl", web) if web else ""}</Response>'


def error(method: str, description: str) -> str:
    return f'<Response api-method="{method}"><Status>ERROR</Status>{el("ErrorDescription", description)}</Response>'


def ref(name: str, uuid: str, label: str) -> str:
    """A reference to another record: `<Manager><UUID>..</UUID><Name>..</Name></Manager>`."""
    return f"<{name}>{el('UUID', uuid)}{el('Name', label)}</{name}>" if uuid else ""


def collection(name: str, items: Iterable[str]) -> str:
    inner = "".join(items)
    return f"<{name}>{inner}</{name}>" if inner else f"<{name} />"


WEB = "https://practicemanager.sandbox.example"


def web_url(kind: str, key: str) -> str:
    """Where XPM's own web app shows a record (the sandbox's stand-in address)."""
    return f"{WEB}/{kind}/{key}"


def staff(s: Staff) -> str:
    return (
        f"<Staff>{el('UUID', s.uuid)}{el('Name', s.name)}{el('Email', s.email)}{el('Phone', s.phone)}"
        f"{el('Mobile', s.mobile)}{el('Address', s.address)}{el('PayrollCode', s.payroll_code)}"
        f"{el('WebUrl', web_url('staff', s.uuid))}</Staff>"
    )


def named(tag: str, n: Named) -> str:
    return f"<{tag}>{el('UUID', n.uuid)}{el('Name', n.name)}</{tag}>"


def group(g: Group) -> str:
    return (
        f"<Group>{el('UUID', g.uuid)}{el('Name', g.name)}{el('WebUrl', web_url('group', g.uuid))}"
        f"{el('Taxable', yes_no(g.taxable))}</Group>"
    )


def _client_type(name: str) -> str:
    if not name:
        return ""
    terms = f"{el('CostMarkup', Decimal('0'))}{el('PaymentTerm', 'DayOfMonth')}{el('PaymentDay', 20)}"
    return f"<Type>{el('Name', name)}{terms}</Type>"


def _auto_bas(c: Client) -> str:
    """Australian clients who lodge activity statements carry their auto-BAS opt-in choices."""
    if not c.prepare_activity_statement:
        return ""
    choices = "".join(el(tag, "No") for tag in ("Annually", "Monthly", "Quarterly", "Opt-out"))
    return f"<AutoBasOptInCriteria>{choices}</AutoBasOptInCriteria>"


def client(p: Practice, c: Client, *, detailed: bool, contacts: bool = True, web: bool = True) -> str:
    """A client. `contacts` is off in the paged list; `web` is off in `client.api/get`, where XPM
    puts `<WebUrl>` beside the client instead."""
    staff_name = {u: s.name for u, s in p.staff.items()}
    billing = p.clients.get(c.billing_client_uuid)
    parts = [
        el("UUID", c.uuid), el("Name", c.name), el("Title", c.title), el("Gender", c.gender),
        el("FirstName", c.first_name), el("MiddleName", c.middle_name), el("LastName", c.last_name),
        el("OtherName", c.other_name), el("Email", c.email),
        el("DateOfBirth", c.date_of_birth) if c.date_of_birth else "",
        el("DateOfDeath", c.date_of_death) if c.date_of_death else "",
        el("PlaceOfBirthCity", c.place_of_birth_city), el("PlaceOfBirthCountryCode", c.place_of_birth_country_code),
        el("Address", c.address), el("City", c.city), el("Region", c.region), el("PostCode", c.post_code),
        el("Country", c.country), el("PostalAddress", c.postal_address), el("PostalCity", c.postal_city),
        el("PostalRegion", c.postal_region), el("PostalPostCode", c.postal_post_code),
        el("PostalCountry", c.postal_country), el("Phone", c.phone), el("Fax", c.fax), el("Website", c.website),
        el("ReferralSource", c.referral_source), el("ExportCode", c.export_code), el("Industry", c.industry),
        el("IsProspect", yes_no(c.is_prospect)), el("IsArchived", yes_no(c.is_archived)),
        el("IsDeleted", yes_no(c.is_deleted)),
        ref("AccountManager", c.account_manager_uuid, staff_name.get(c.account_manager_uuid, "")),
        ref("JobManager", c.job_manager_uuid, staff_name.get(c.job_manager_uuid, "")),
        _client_type(c.client_type),
        ref("BillingClient", billing.uuid, billing.name) if billing else "",
        el("TaxNumber", c.tax_number), el("CompanyNumber", c.company_number),
        el("BusinessNumber", c.business_number), el("BusinessStructure", c.business_structure),
        el("BalanceMonth", c.balance_month), el("BranchNumber", c.branch_number),
        el("GSTRegistered", yes_no(c.gst_registered)), el("PrepareGST", yes_no(c.prepare_gst)),
        el("GSTPeriod", c.gst_period), el("GSTBasis", c.gst_basis), el("ProvisionalTaxBasis", c.provisional_tax_basis),
        el("ProvisionalTaxRatio", c.provisional_tax_ratio), el("SignedTaxAuthority", yes_no(c.signed_tax_authority)),
        el("TaxAgent", c.tax_agent), el("AgencyStatus", c.agency_status), el("ReturnType", c.return_type),
        el("PrepareActivityStatement", yes_no(c.prepare_activity_statement)),
        el("PrepareTaxReturn", yes_no(c.prepare_tax_return)), el("BankBSB", c.bank_bsb),
        el("BankAccountName", c.bank_account_name), el("BankAccountNumber", c.bank_account_number),
        el("BankName", c.bank_name), el("ActiveAtoClient", yes_no(c.active_ato_client)),
        el("ClientCode", c.client_code), _auto_bas(c),
        el("WebUrl", web_url("client", c.uuid)) if web else "",
    ]  # fmt: skip
    if contacts:
        parts.append(collection("Contacts", map(contact, c.contacts)))
    if detailed:
        parts.append(collection("Notes", map(note, c.notes)))
        parts.append(
            collection("Groups", (named("Group", Named(g, p.groups[g].name)) for g in c.group_uuids if g in p.groups))
        )
        parts.append(collection("Relationships", map(relationship, c.relationships)))
    return f"<Client>{''.join(parts)}</Client>"


def note(n: Note) -> str:
    """A client note as XPM has sent it since August 2025: `Folder` empty, the tag in `Tag`."""
    return (
        f"<Note>{el('Title', n.title)}{el('Text', n.text)}<Folder></Folder>"
        f"{el('Date', n.date.strftime('%Y-%m-%dT%H:%M:%S'))}{el('CreatedBy', n.created_by)}{el('Tag', n.tag)}</Note>"
    )


def relationship(r: Relationship) -> str:
    return (
        f"<Relationship>{el('UUID', r.uuid)}{el('Type', r.type)}"
        f"{ref('RelatedClient', r.related_uuid, r.related_name)}"
        f"{el('NumberOfShares', r.number_of_shares)}{el('Percentage', r.percentage)}"
        f"{el('StartDate', r.start_date)}{el('EndDate', r.end_date)}</Relationship>"
    )


def contact(k: Contact) -> str:
    return (
        f"<Contact>{el('UUID', k.uuid)}{el('Name', k.name)}{el('Mobile', k.mobile)}{el('Email', k.email)}"
        f"{el('Phone', k.phone)}{el('Position', k.position)}{el('Salutation', k.salutation)}"
        f"{el('Addressee', k.addressee)}{el('IsPrimary', yes_no(k.is_primary))}"
        f"{el('IsDeleted', yes_no(k.is_deleted))}</Contact>"
    )


def _assigned(staff_name: dict[str, str], people: list[tuple[str, int | None]]) -> str:
    """`<Assigned><Staff>`: a job's own list carries no minutes; a task's list does."""
    return collection(
        "Assigned",
        (
            f"<Staff>{el('UUID', s)}{el('Name', staff_name.get(s, ''))}"
            + (el("AllocatedMinutes", m) if m is not None else "")
            + "</Staff>"
            for s, m in people
        ),
    )


def task(t: Task, staff_name: dict[str, str]) -> str:
    return (
        f"<Task>{el('UUID', t.uuid)}{el('Name', t.name)}{el('TaskUUID', t.task_uuid)}"
        f"{el('EstimatedMinutes', t.estimated_minutes)}{el('ActualMinutes', t.actual_minutes)}"
        f"{el('Description', t.description)}{el('Completed', true_false(t.completed))}"
        f"{el('Billable', true_false(t.billable))}{el('Folder', t.folder)}"
        f"{el('StartDate', t.start_date)}{el('DueDate', t.due_date)}"
        f"{_assigned(staff_name, [(s, m) for s, m in t.assigned])}</Task>"
    )


def job(p: Practice, j: Job, *, detailed: bool, web: bool = True) -> str:
    """A job. `web` is off in `job.api/get`, where XPM puts `<WebUrl>` beside the job instead."""
    staff_name = {u: s.name for u, s in p.staff.items()}
    client_ = p.clients.get(j.client_uuid)
    contact_ = p.contact(j.contact_uuid) if j.contact_uuid else None
    parts = [
        el("ID", j.number), el("UUID", j.uuid), el("Name", j.name), el("Description", j.description),
        ref("Client", j.client_uuid, client_.name if client_ else ""), el("ClientOrderNumber", j.client_order_number),
        el("Budget", j.budget), el("State", j.state), el("Type", j.job_type), el("StartDate", j.start_date),
        el("DueDate", j.due_date), el("CompletedDate", j.completed_date) if j.completed_date else "",
        ref("Contact", contact_.uuid, contact_.name) if contact_ else "", el("InternalID", j.internal_id),
        ref("Manager", j.manager_uuid, staff_name.get(j.manager_uuid, "")),
        ref("Partner", j.partner_uuid, staff_name.get(j.partner_uuid, "")),
        _assigned(staff_name, [(s, None) for s in j.assigned]),
    ]  # fmt: skip
    if detailed:
        parts += [
            collection("Tasks", (task(t, staff_name) for t in j.tasks)),
            collection("Milestones", map(milestone, j.milestones)),
            "<Notes />",
        ]
    if web:
        parts.append(el("WebUrl", web_url("job", j.number)))
    return f"<Job>{''.join(parts)}</Job>"


def milestone(m: Milestone) -> str:
    return (
        f"<Milestone>{el('UUID', m.uuid)}{el('Date', m.date)}{el('Description', m.description)}"
        f"{el('Completed', true_false(m.completed))}{el('Folder', m.folder)}</Milestone>"
    )


def _job_ref(p: Practice, number: str) -> str:
    """A job as time entries and costs name it: `<Job><ID>J000001</ID><Name>..</Name></Job>`."""
    j = p.jobs.get(number)
    return f"<Job>{el('ID', number)}{el('Name', j.name if j else '')}</Job>"


def _named_ref(name: str, uuid: str, label: str) -> str:
    return f"<{name}>{el('UUID', uuid)}{el('Name', label)}</{name}>"


def time_entry(p: Practice, t: TimeEntry) -> str:
    j = p.jobs.get(t.job_number)
    task_name = next((k.name for k in (j.tasks if j else []) if k.uuid == t.task_uuid), "")
    staff_ = p.staff.get(t.staff_uuid)
    return (
        f"<Time>{el('UUID', t.uuid)}{_job_ref(p, t.job_number)}{_named_ref('Task', t.task_uuid, task_name)}"
        f"{_named_ref('Staff', t.staff_uuid, staff_.name if staff_ else '')}{el('Date', t.date)}"
        f"{el('Minutes', t.minutes)}{el('Note', t.note)}{el('Billable', true_false(t.billable))}"
        f"{el('Start', t.start)}{el('End', t.end)}{el('InvoiceTaskUUID', t.invoice_task_uuid)}"
        f"{el('WebUrl', web_url('time', t.uuid))}</Time>"
    )


def cost(p: Practice, c: Cost, *, with_job: bool) -> str:
    """A job's cost; the paged list of every job's costs names the job (`with_job`)."""
    return (
        f"<Cost>{el('UUID', c.uuid)}{_job_ref(p, c.job_number) if with_job else ''}{el('Description', c.description)}"
        f"{el('Quantity', c.quantity)}{el('UnitCost', c.unit_cost)}{el('UnitPrice', c.unit_price)}"
        f"{el('Date', c.date)}{el('Code', c.code)}{el('Note', c.note)}{el('Billable', true_false(c.billable))}"
        f"{_named_ref('Supplier', c.supplier_uuid, c.supplier_name)}</Cost>"
    )


RATE = Decimal(150)  # the sandbox's one billable rate, an hour


def _money(value: Decimal) -> Decimal:
    return value.quantize(Decimal("0.01"))


def _invoice_task(t: Task, line_uuid: str) -> str:
    amount = _money(RATE * t.actual_minutes / 60)
    tax = _money(amount / 10)
    return (
        f"<Task>{el('UUID', line_uuid)}{el('Name', t.name)}{el('Description', t.description)}"
        f"{el('Minutes', t.actual_minutes)}{el('BillableRate', RATE)}{el('Billable', true_false(t.billable))}"
        f"{el('Amount', amount)}{el('AmountTax', tax)}{el('AmountIncludingTax', amount + tax)}</Task>"
    )


def _invoice_cost(c: Cost) -> str:
    amount = _money(c.quantity * c.unit_price)
    tax = _money(amount / 10)
    return (
        f"<Cost>{el('Description', c.description)}{el('Note', c.note)}{el('Code', c.code)}"
        f"{el('Billable', true_false(c.billable))}{el('Quantity', c.quantity)}{el('UnitCost', c.unit_cost)}"
        f"{el('UnitPrice', c.unit_price)}{el('Amount', amount)}{el('AmountTax', tax)}"
        f"{el('AmountIncludingTax', amount + tax)}</Cost>"
    )


def invoice_lines(p: Practice, inv: Invoice) -> tuple[list[tuple[Task, str]], list[Cost]]:
    """The task and cost lines an invoice bills: its jobs' tasks (each line with its own UUID) and costs."""
    tasks = [(t, line) for n in inv.job_numbers for t in p.jobs[n].tasks if (line := inv.task_lines.get(t.uuid))]
    costs = [c for n in inv.job_numbers for c in p.costs_by_job.get(n, ())]
    return tasks, costs


def invoice_totals(p: Practice, inv: Invoice) -> tuple[Decimal, Decimal]:
    """(amount, tax) of an invoice: the sum of its lines as they are rendered."""
    tasks, costs = invoice_lines(p, inv)
    amounts = [_money(RATE * t.actual_minutes / 60) for t, _line in tasks]
    amounts += [_money(c.quantity * c.unit_price) for c in costs]
    return sum(amounts, Decimal(0)), sum((_money(a / 10) for a in amounts), Decimal(0))


def invoice(p: Practice, inv: Invoice, *, detailed: bool) -> str:
    client_ = p.clients.get(inv.client_uuid)
    contact_ = next((k for k in client_.contacts if k.is_primary), None) if client_ else None
    jobs = [p.jobs[n] for n in inv.job_numbers if n in p.jobs]
    parts = [
        el("ID", inv.number), el("UUID", inv.uuid), el("Type", inv.type), el("Status", inv.status),
        el("JobText", ", ".join(j.name for j in jobs)), el("Description", inv.description), el("Date", inv.date),
        el("DueDate", inv.due_date), el("Amount", inv.amount), el("AmountTax", inv.tax),
        el("AmountIncludingTax", inv.total), el("AmountPaid", inv.paid), el("AmountOutstanding", inv.total - inv.paid),
        _named_ref("Client", inv.client_uuid, client_.name if client_ else ""),
        _named_ref("Contact", contact_.uuid, contact_.name) if contact_ else "",
    ]  # fmt: skip
    if detailed:
        tasks, costs = invoice_lines(p, inv)
        parts.append(
            collection(
                "Jobs",
                (
                    f"<Job>{el('ID', j.number)}{el('Name', j.name)}{el('Description', j.description)}"
                    f"{el('ClientOrderNumber', j.client_order_number)}"
                    f"{collection('Tasks', (_invoice_task(t, line) for t, line in tasks if t in j.tasks))}"
                    f"{collection('Costs', (_invoice_cost(c) for c in costs if c.job_number == j.number))}</Job>"
                    for j in jobs
                ),
            )
        )
        parts += ["<Tasks />", "<Costs />"]  # lines of no job: the sandbox bills jobs only
    return f"<Invoice>{''.join(parts)}</Invoice>"


def payment(pay: Payment) -> str:
    return f"<Payment>{el('Amount', pay.amount)}{el('Date', pay.date)}{el('Reference', pay.reference)}</Payment>"


def quote(p: Practice, q: Quote, *, detailed: bool) -> str:
    client_ = p.clients.get(q.client_uuid)
    contact_ = next((k for k in client_.contacts if k.is_primary), None) if client_ else None
    tax, cost_tax = q.tax, _money(q.estimated_cost / 10)
    parts = [
        el("ID", q.number), el("Type", q.type), el("State", q.state), el("Name", q.name),
        el("Description", q.description), el("Budget", q.budget), el("OptionExplanation", ""), el("Date", q.date),
        el("ValidDate", q.valid_date), el("EstimatedCost", q.estimated_cost), el("EstimatedCostTax", cost_tax),
        el("EstimatedCostIncludingTax", q.estimated_cost + cost_tax), el("Amount", q.amount), el("AmountTax", tax),
        el("AmountIncludingTax", q.amount + tax), _named_ref("Client", q.client_uuid, client_.name if client_ else ""),
        _named_ref("Contact", contact_.uuid, contact_.name) if contact_ else "",
    ]  # fmt: skip
    if detailed:
        parts += ["<Tasks />", "<Costs />", "<Options />"]  # the sandbox's quotes carry totals only
    return f"<Quote>{''.join(parts)}</Quote>"


def field_definition(d: FieldDefinition) -> str:
    return (
        f"<CustomFieldDefinition>{el('UUID', d.uuid)}{el('Name', d.name)}{el('Type', d.type)}"
        f"{el('LinkUrl', d.link_url)}{el('Options', d.options)}"
        f"{el('UseClient', true_false(d.use_client))}{el('UseContact', 'false')}"
        f"{el('UseJob', true_false(d.use_job))}{el('UseLead', 'false')}{el('UseSupplier', 'false')}"
        f"{el('UseJobTask', 'false')}{el('UseJobCost', 'false')}{el('UseJobTime', 'false')}"
        f"{el('ValueElement', d.value_element)}</CustomFieldDefinition>"
    )


def field_values(p: Practice, values: dict[str, object]) -> str:
    """Only fields that hold a value are returned; an unset checkbox is simply absent."""
    items = []
    for uuid, value in values.items():
        d = p.field_definitions.get(uuid)
        if d is None or value is None or value == "":
            continue
        shown = true_false(bool(value)) if d.value_element == "Boolean" else value
        items.append(f"<CustomField>{el('UUID', d.uuid)}{el('Name', d.name)}{el(d.value_element, shown)}</CustomField>")
    return collection("CustomFields", items)


def chunked_list(method: str, wrapper: str, items: Iterable[str], chunk: int = 500) -> Iterator[bytes]:
    """Stream a long list as a few large byte chunks, never as one huge string."""
    yield f'<Response api-method="{method}"><Status>OK</Status><{wrapper}>'.encode()
    batch: list[str] = []
    for item in items:
        batch.append(item)
        if len(batch) >= chunk:
            yield "".join(batch).encode()
            batch.clear()
    yield ("".join(batch) + f"</{wrapper}></Response>").encode()
