"""XML exactly as XPM 3.1 shapes it: element names and order, `Yes`/`No` for clients,
`true`/`false` for jobs and custom fields, dates as `2008-08-29T00:00:00`."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import date, datetime
from decimal import Decimal
from xml.sax.saxutils import escape

from xpm_sandbox.model import Client, Contact, FieldDefinition, Group, Job, Named, Practice, Staff, Task


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


def envelope(method: str, body: str) -> str:
    return f'<Response api-method="{method}"><Status>OK</Status>{body}</Response>'


def error(method: str, description: str) -> str:
    return f'<Response api-method="{method}"><Status>ERROR</Status>{el("ErrorDescription", description)}</Response>'


def ref(name: str, uuid: str, label: str) -> str:
    """A reference to another record: `<Manager><UUID>..</UUID><Name>..</Name></Manager>`."""
    return f"<{name}>{el('UUID', uuid)}{el('Name', label)}</{name}>" if uuid else ""


def collection(name: str, items: Iterable[str]) -> str:
    inner = "".join(items)
    return f"<{name}>{inner}</{name}>" if inner else f"<{name} />"


def staff(s: Staff) -> str:
    return (
        f"<Staff>{el('UUID', s.uuid)}{el('Name', s.name)}{el('Email', s.email)}{el('Phone', s.phone)}"
        f"{el('Mobile', s.mobile)}{el('Address', s.address)}{el('PayrollCode', s.payroll_code)}</Staff>"
    )


def named(tag: str, n: Named) -> str:
    return f"<{tag}>{el('UUID', n.uuid)}{el('Name', n.name)}</{tag}>"


def group(g: Group) -> str:
    return f"<Group>{el('UUID', g.uuid)}{el('Name', g.name)}{el('Taxable', yes_no(g.taxable))}</Group>"


def client(p: Practice, c: Client, *, detailed: bool) -> str:
    staff_name = {u: s.name for u, s in p.staff.items()}
    parts = [
        el("UUID", c.uuid),
        el("Name", c.name),
        el("FirstName", c.first_name),
        el("LastName", c.last_name),
        el("Email", c.email),
        el("DateOfBirth", c.date_of_birth) if c.date_of_birth else "",
        el("Address", c.address),
        el("City", c.city),
        el("Region", c.region),
        el("PostCode", c.post_code),
        el("Country", c.country),
        el("PostalAddress", c.address),
        el("PostalCity", c.city),
        el("PostalRegion", c.region),
        el("PostalPostCode", c.post_code),
        el("PostalCountry", c.country),
        el("Phone", c.phone),
        el("Fax", ""),
        el("Website", c.website),
        el("ReferralSource", c.referral_source),
        el("ExportCode", ""),
        el("IsProspect", yes_no(c.is_prospect)),
        el("IsArchived", yes_no(c.is_archived)),
        el("IsDeleted", yes_no(c.is_deleted)),
        ref("AccountManager", c.account_manager_uuid, staff_name.get(c.account_manager_uuid, "")),
        ref("JobManager", c.job_manager_uuid, staff_name.get(c.job_manager_uuid, "")),
        f"<Type>{el('Name', c.client_type)}</Type>" if c.client_type else "",
        el("TaxNumber", c.tax_number),
        el("CompanyNumber", c.company_number),
        el("BusinessNumber", c.business_number),
        el("BusinessStructure", c.business_structure),
        el("BalanceMonth", c.balance_month),
        el("BranchNumber", ""),
        el("GSTRegistered", yes_no(c.gst_registered)),
        el("PrepareGST", yes_no(c.prepare_gst)),
        el("GSTPeriod", c.gst_period),
        el("GSTBasis", c.gst_basis),
        el("ProvisionalTaxBasis", c.provisional_tax_basis),
        el("ProvisionalTaxRatio", c.provisional_tax_ratio),
        el("SignedTaxAuthority", yes_no(c.signed_tax_authority)),
        el("TaxAgent", c.tax_agent),
        el("AgencyStatus", c.agency_status),
        el("ReturnType", c.return_type),
        el("PrepareActivityStatement", yes_no(c.prepare_activity_statement)),
        el("PrepareTaxReturn", yes_no(c.prepare_tax_return)),
        el("ActiveAtoClient", yes_no(c.active_ato_client)),
        el("ClientCode", c.client_code),
        collection("Contacts", map(contact, c.contacts)),
    ]
    if detailed:
        parts.append("<Notes />")
        parts.append(
            collection("Groups", (named("Group", Named(g, p.groups[g].name)) for g in c.group_uuids if g in p.groups))
        )
        parts.append(
            collection(
                "Relationships",
                (
                    f"<Relationship>{el('UUID', r.uuid)}{el('Type', r.type)}"
                    f"{ref('RelatedClient', r.related_uuid, r.related_name)}"
                    f"{el('NumberOfShares', r.number_of_shares)}{el('Percentage', r.percentage)}"
                    f"{el('StartDate', r.start_date)}</Relationship>"
                    for r in c.relationships
                ),
            )
        )
    return f"<Client>{''.join(parts)}</Client>"


def contact(k: Contact) -> str:
    return (
        f"<Contact>{el('UUID', k.uuid)}{el('Name', k.name)}{el('Mobile', k.mobile)}{el('Email', k.email)}"
        f"{el('Phone', k.phone)}{el('Position', k.position)}{el('Salutation', k.salutation)}"
        f"{el('Addressee', k.addressee)}{el('IsPrimary', yes_no(k.is_primary))}</Contact>"
    )


def task(t: Task) -> str:
    return (
        f"<Task>{el('UUID', t.uuid)}{el('Name', t.name)}{el('TaskUUID', t.task_uuid)}"
        f"{el('EstimatedMinutes', t.estimated_minutes)}{el('ActualMinutes', t.actual_minutes)}"
        f"{el('Description', t.description)}{el('Completed', true_false(t.completed))}"
        f"{el('Billable', true_false(t.billable))}{el('Folder', t.folder)}</Task>"
    )


def job(p: Practice, j: Job, *, detailed: bool) -> str:
    staff_name = {u: s.name for u, s in p.staff.items()}
    client_ = p.clients.get(j.client_uuid)
    parts = [
        el("ID", j.number),
        el("UUID", j.uuid),
        el("Name", j.name),
        el("Description", j.description),
        ref("Client", j.client_uuid, client_.name if client_ else ""),
        el("ClientOrderNumber", j.client_order_number),
        el("Budget", j.budget),
        el("State", j.state),
        el("Type", j.job_type),
        el("StartDate", j.start_date),
        el("DueDate", j.due_date),
        el("CompletedDate", j.completed_date) if j.completed_date else "",
        el("InternalID", j.internal_id),
        ref("Manager", j.manager_uuid, staff_name.get(j.manager_uuid, "")),
        ref("Partner", j.partner_uuid, staff_name.get(j.partner_uuid, "")),
        collection(
            "Assigned",
            (
                f"<Staff>{el('UUID', s)}{el('Name', staff_name.get(s, ''))}{el('AllocatedMinutes', m)}</Staff>"
                for s, m in j.assigned
            ),
        ),
    ]
    if detailed:
        parts += [collection("Tasks", map(task, j.tasks)), "<Milestones />", "<Notes />"]
    return f"<Job>{''.join(parts)}</Job>"


def field_definition(d: FieldDefinition) -> str:
    return (
        f"<CustomFieldDefinition>{el('UUID', d.uuid)}{el('Name', d.name)}{el('Type', d.type)}"
        f"{el('LinkURL', d.link_url)}{el('Options', d.options)}"
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
