"""XPM 3.1 endpoints the sync uses: handlers over a practice, returning XML bodies.

Business errors come back as HTTP 200 with `<Status>ERROR</Status>`, as XPM does.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import urlencode
from uuid import uuid4

from defusedxml import ElementTree

from xpm_sandbox import render
from xpm_sandbox.model import OPEN_QUOTES, Client, Contact, Job, Named, Practice, Staff, Task

Body = str | Iterator[bytes]


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    body: bytes
    base_url: str
    now: datetime


@dataclass
class Route:
    method: str
    pattern: re.Pattern[str]
    spec_path: str
    handler: Callable[..., Body]
    writes: bool = False


ROUTES: list[Route] = []
# Paths XPM's documentation names that its OpenAPI description leaves out, with the answer they share.
UNLISTED = {
    "/job.api/costs": (
        "/job.api/costs/{jobNumber}",
        "every job's costs, `page=N` from 1, up to 1,000 a page, the end a page holding none (XPM's job API "
        "documentation); each cost names its job as time entries do (`<Job><ID>`)",
    ),
}
_write_lock = threading.Lock()


def route(method: str, spec_path: str, *, writes: bool = False) -> Callable[[Callable[..., Body]], Callable[..., Body]]:
    """Register a handler for a path written as in the OpenAPI description."""
    regex = re.sub(r"\\\{[^}]+\\\}", "([^/]+)", re.escape(spec_path.lstrip("/")))

    def register(fn: Callable[..., Body]) -> Callable[..., Body]:
        ROUTES.append(Route(method, re.compile(f"^{regex}$"), spec_path, fn, writes))
        return fn

    return register


def resolve(method: str, path: str) -> tuple[Route, tuple[str, ...]] | None:
    for r in ROUTES:
        if r.method == method:
            m = r.pattern.match(path)
            if m:
                return r, m.groups()
    return None


def _flag(value: str | None) -> bool:
    return (value or "").lower() in ("true", "yes", "1")


def _parse_xml(body: bytes) -> Any:
    try:
        return ElementTree.fromstring(body)
    except Exception:
        return None


def _send_date(text: str) -> date | None:
    """Dates sent to XPM are `YYYYMMDD`; ISO dates are read too."""
    text = text.strip()
    for fmt in ("%Y%m%d", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d"):
        try:
            return datetime.strptime(text, fmt).date()
        except ValueError:
            continue
    return None


# --- reference data -----------------------------------------------------------------------------


@route("GET", "/staff.api/list")
def staff_list(p: Practice, req: Request) -> Body:
    return render.envelope("List", render.collection("StaffList", map(render.staff, p.staff.values())))


@route("GET", "/staff.api/get/{identifier}")
def staff_get(p: Practice, req: Request, uuid: str) -> Body:
    s = p.staff.get(uuid)
    return render.envelope("Get", render.staff(s)) if s else render.error("Get", "Invalid staff identifier")


@route("GET", "/category.api/list")
def category_list(p: Practice, req: Request) -> Body:
    items = (render.named("Category", c) for c in p.categories.values())
    return render.envelope("List", render.collection("Categories", items))


@route("GET", "/jobstate.api/list")
def jobstate_list(p: Practice, req: Request) -> Body:
    items = (render.named("JobState", s) for s in p.job_states.values())
    return render.envelope("List", render.collection("JobStates", items))


@route("GET", "/clientgroup.api/list")
def group_list(p: Practice, req: Request) -> Body:
    return render.envelope("List", render.collection("Groups", map(render.group, p.groups.values())))


@route("GET", "/clientgroup.api/get/{identifier}")
def group_get(p: Practice, req: Request, uuid: str) -> Body:
    g = p.groups.get(uuid)
    if g is None:
        return render.error("Get", "Invalid group identifier")
    members = render.collection(
        "Clients", (render.named("Client", _client_ref(p, m)) for m in g.members if m in p.clients)
    )
    return render.envelope("Get", render.group(g).replace("</Group>", members + "</Group>"))


def _client_ref(p: Practice, uuid: str) -> Named:
    return Named(uuid, p.clients[uuid].name)


@route("GET", "/customfield.api/definition")
def field_definitions(p: Practice, req: Request) -> Body:
    items = map(render.field_definition, p.field_definitions.values())
    return render.envelope("Definition", render.collection("CustomFieldDefinitions", items))


# --- clients ------------------------------------------------------------------------------------


@route("GET", "/client.api/list")
def client_list(p: Practice, req: Request) -> Body:
    detailed = _flag(req.query.get("detailed"))
    clients: Iterable[Any] = list(p.clients.values())
    since = req.query.get("modifiedsince")
    if since:
        try:
            cutoff = datetime.strptime(since, "%Y-%m-%dT%H:%M:%S")
        except ValueError:
            return render.error("List", "Invalid modifiedsince date. Expected format yyyy-MM-ddTHH:mm:ss")
        clients = [c for c in clients if c.modified_at >= cutoff]
    return render.chunked_list("List", "Clients", (render.client(p, c, detailed=detailed) for c in clients))


@route("GET", "/client.api/paged-list")
def client_paged(p: Practice, req: Request) -> Body:
    try:
        size = max(1, min(1000, int(req.query.get("pageSize", "50"))))
        start = int(req.query.get("pageToken") or 0)
    except ValueError:
        return render.error("PagedList", "Invalid pageSize or pageToken")
    live = [c for c in p.clients.values() if not c.is_archived and not c.is_deleted]
    page = live[start : start + size]
    items = "".join(render.client(p, c, detailed=False, contacts=False) for c in page)
    base = f"{req.base_url}client.api/paged-list"
    links = render.el("First", f"{base}?{urlencode({'pageSize': size})}")
    if start + size < len(live):
        links += render.el("Next", f"{base}?{urlencode({'pageSize': size, 'pageToken': start + size})}")
    body = f"<Clients>{items}</Clients><Pagination><Links>{links}</Links></Pagination>"
    return render.envelope("PagedList", body)


@route("GET", "/client.api/get/{identifier}")
def client_get(p: Practice, req: Request, uuid: str) -> Body:
    c = p.clients.get(uuid)
    return (
        render.envelope("Get", render.client(p, c, detailed=True, web=False), web=render.web_url("client", c.uuid))
        if c
        else render.error("Get", "Invalid client identifier")
    )


@route("GET", "/client.api/get/{identifier}/customfield")
def client_fields(p: Practice, req: Request, uuid: str) -> Body:
    c = p.clients.get(uuid)
    return (
        render.envelope("Get", render.field_values(p, c.custom_fields))
        if c
        else render.error("Get", "Invalid client identifier")
    )


@route("PUT", "/client.api/update/{identifier}/customfield", writes=True)
def client_fields_update(p: Practice, req: Request, uuid: str) -> Body:
    c = p.clients.get(uuid)
    if c is None:
        return render.error("Update", "Invalid client identifier")
    problem = _apply_fields(p, c.custom_fields, req.body, want="use_client")
    if problem:
        return render.error("Update", problem)
    c.modified_at = req.now
    return render.envelope("Update", "")


def _apply_fields(p: Practice, values: dict[str, object], body: bytes, *, want: str) -> str:
    root = _parse_xml(body)
    if root is None or root.tag != "CustomFields":
        return "The request body must be a CustomFields element"
    changes: dict[str, object] = {}
    for item in root.findall("CustomField"):
        uuid = (item.findtext("UUID") or "").strip()
        d = p.field_definitions.get(uuid) or next(
            (f for f in p.field_definitions.values() if f.name == (item.findtext("Name") or "").strip()), None
        )
        if d is None or not getattr(d, want):
            return f"Invalid custom field {uuid or item.findtext('Name')}"
        raw = item.findtext(d.value_element)
        if raw is None or raw.strip() == "":
            changes[d.uuid] = None
            continue
        raw = raw.strip()
        value: object
        if d.value_element == "Boolean":
            value = raw.lower() == "true"
        elif d.value_element == "Date":
            value = _send_date(raw)
            if value is None:
                return f"Invalid date for custom field {d.name}"
        elif d.value_element in ("Decimal", "Number"):
            try:
                value = Decimal(raw) if d.value_element == "Decimal" else int(raw)
            except (InvalidOperation, ValueError):
                return f"Invalid number for custom field {d.name}"
        else:
            value = raw
        changes[d.uuid] = value
    with _write_lock:
        for key, value in changes.items():
            if value is None or value is False:
                values.pop(key, None)
            else:
                values[key] = value
    return ""


def _window(req: Request, method: str) -> tuple[date, date] | str:
    """`from` and `to` (yyyyMMdd, at most a year apart), or the error XPM answers."""
    start, end = _send_date(req.query.get("from", "")), _send_date(req.query.get("to", ""))
    if start is None or end is None:
        return render.error(method, "from and to are required, formatted yyyyMMdd")
    if end < start:
        return render.error(method, "to must not be before from")
    if end - start > timedelta(days=366):
        return render.error(method, "The date range cannot be more than one year")
    return start, end


# --- jobs ---------------------------------------------------------------------------------------


@route("GET", "/job.api/current")
def job_current(p: Practice, req: Request) -> Body:
    detailed = _flag(req.query.get("detailed"))
    jobs = [j for j in p.jobs.values() if p.is_current(j)]
    return render.chunked_list("Current", "Jobs", (render.job(p, j, detailed=detailed) for j in jobs))


@route("GET", "/job.api/list")
def job_list(p: Practice, req: Request) -> Body:
    window = _window(req, "List")
    if isinstance(window, str):
        return window
    start, end = window
    detailed = _flag(req.query.get("detailed"))
    jobs = [j for j in p.jobs.values() if start <= j.created_on <= end]
    return render.chunked_list("List", "Jobs", (render.job(p, j, detailed=detailed) for j in jobs))


@route("GET", "/job.api/get/{jobNumber}")
def job_get(p: Practice, req: Request, number: str) -> Body:
    j = p.jobs.get(number)
    return (
        render.envelope("Get", render.job(p, j, detailed=True, web=False), web=render.web_url("job", j.number))
        if j
        else render.error("Get", "Invalid job identifier")
    )


@route("GET", "/job.api/get/{jobNumber}/customfield")
def job_fields(p: Practice, req: Request, number: str) -> Body:
    j = p.jobs.get(number)
    return (
        render.envelope("Get", render.field_values(p, j.custom_fields))
        if j
        else render.error("Get", "Invalid job identifier")
    )


@route("PUT", "/job.api/update/{jobNumber}/customfield", writes=True)
def job_fields_update(p: Practice, req: Request, number: str) -> Body:
    j = p.jobs.get(number)
    if j is None:
        return render.error("Update", "Invalid job identifier")
    problem = _apply_fields(p, j.custom_fields, req.body, want="use_job")
    return render.error("Update", problem) if problem else render.envelope("Update", "")


@route("PUT", "/job.api/state", writes=True)
def job_state(p: Practice, req: Request) -> Body:
    root = _parse_xml(req.body)
    if root is None or root.tag != "Job":
        return render.error("State", "The request body must be a Job element")
    j = p.jobs.get((root.findtext("ID") or "").strip())
    if j is None:
        return render.error("State", "Invalid job identifier")
    state = p.state_by_code((root.findtext("State") or "").strip())
    if state is None:
        return render.error("State", "Invalid state code")
    with _write_lock:
        j.state = state.name
        j.completed_date = req.now.date() if state.name == "Completed" else None
    return render.envelope("State", "")


@route("PUT", "/job.api/update", writes=True)
def job_update(p: Practice, req: Request) -> Body:
    root = _parse_xml(req.body)
    if root is None or root.tag != "Job":
        return render.error("Update", "The request body must be a Job element")
    j = p.jobs.get((root.findtext("ID") or "").strip())
    if j is None:
        return render.error("Update", "Invalid job identifier")
    name = (root.findtext("Name") or "").strip()
    start, due = _send_date(root.findtext("StartDate") or ""), _send_date(root.findtext("DueDate") or "")
    if not name or start is None or due is None:
        return render.error("Update", "Name, StartDate and DueDate are required")
    budget_text = (root.findtext("Budget") or "").strip()
    try:
        budget = Decimal(budget_text) if budget_text else None
    except InvalidOperation:
        return render.error("Update", "Invalid budget")
    client_uuid = (root.findtext("ClientUUID") or root.findtext("ClientID") or "").strip()
    if client_uuid and client_uuid not in p.clients:
        return render.error("Update", "Invalid client identifier")
    with _write_lock:
        # Fields left out are blanked, as XPM does: callers must send the whole job.
        j.name, j.start_date, j.due_date, j.budget = name, start, due, budget
        j.description = root.findtext("Description") or ""
        j.client_order_number = root.findtext("ClientNumber") or ""
        if client_uuid:
            j.client_uuid = client_uuid
        category = (root.findtext("CategoryUUID") or root.findtext("CategoryID") or "").strip()
        if category in p.categories:
            j.category_uuid = category
    return render.envelope("Update", render.job(p, j, detailed=True))


# --- time, costs, invoices and quotes (read only) ----------------------------------------------


@route("GET", "/time.api/list")
def time_list(p: Practice, req: Request) -> Body:
    window = _window(req, "List")
    if isinstance(window, str):
        return window
    start, end = window
    entries = [t for t in p.times.values() if start <= t.date <= end]
    return render.chunked_list("List", "Times", (render.time_entry(p, t) for t in entries))


@route("GET", "/time.api/job/{jobNumber}")
def time_of_job(p: Practice, req: Request, number: str) -> Body:
    if number not in p.jobs:
        return render.error("Job", "Invalid job identifier")
    entries = [t for t in p.times.values() if t.job_number == number]
    return render.envelope("Job", render.collection("Times", (render.time_entry(p, t) for t in entries)))


@route("GET", "/time.api/get/{identifier}")
def time_get(p: Practice, req: Request, uuid: str) -> Body:
    entry = p.times.get(uuid)
    return render.envelope("Get", render.time_entry(p, entry)) if entry else render.error("Get", "Invalid time entry")


PAGE = 1000  # costs a page of `job.api/costs`


@route("GET", "/job.api/costs")
def costs_paged(p: Practice, req: Request) -> Body:
    """Every job's costs, a thousand a page (`page`, from 1); a page with none is the end."""
    try:
        page = int(req.query.get("page", ""))
    except ValueError:
        return render.error("Costs", "page is required, a whole number from 1")
    if page < 1:
        return render.error("Costs", "page is required, a whole number from 1")
    costs = list(p.costs.values())[(page - 1) * PAGE : page * PAGE]
    return render.envelope("Costs", render.collection("Costs", (render.cost(p, c, with_job=True) for c in costs)))


@route("GET", "/job.api/costs/{jobNumber}")
def costs_of_job(p: Practice, req: Request, number: str) -> Body:
    if number not in p.jobs:
        return render.error("Costs", "Invalid job identifier")
    costs = p.costs_by_job.get(number, [])
    return render.envelope("Costs", render.collection("Costs", (render.cost(p, c, with_job=False) for c in costs)))


def _invoices(method: str, p: Practice, req: Request, chosen: Iterable[Any]) -> Body:
    detailed = _flag(req.query.get("detailed"))
    return render.chunked_list(method, "Invoices", (render.invoice(p, i, detailed=detailed) for i in chosen))


@route("GET", "/invoice.api/current")
def invoice_current(p: Practice, req: Request) -> Body:
    return _invoices("Current", p, req, (i for i in p.invoices.values() if p.invoice_is_current(i)))


@route("GET", "/invoice.api/draft")
def invoice_draft(p: Practice, req: Request) -> Body:
    return _invoices("Draft", p, req, (i for i in p.invoices.values() if i.status == "Draft"))


@route("GET", "/invoice.api/list")
def invoice_list(p: Practice, req: Request) -> Body:
    window = _window(req, "List")
    if isinstance(window, str):
        return window
    start, end = window
    return _invoices("List", p, req, (i for i in p.invoices.values() if start <= i.date <= end))


@route("GET", "/invoice.api/job/{jobNumber}")
def invoice_of_job(p: Practice, req: Request, number: str) -> Body:
    if number not in p.jobs:
        return render.error("Job", "Invalid job identifier")
    return _invoices("Job", p, req, (i for i in p.invoices.values() if number in i.job_numbers))


@route("GET", "/invoice.api/get/{invoiceNumber}")
def invoice_get(p: Practice, req: Request, number: str) -> Body:
    inv = p.invoices.get(number)
    if inv is None:
        return render.error("Get", "Invalid invoice")
    return render.envelope("Get", render.invoice(p, inv, detailed=True))


@route("GET", "/invoice.api/payments/{invoiceNumber}")
def invoice_payments(p: Practice, req: Request, number: str) -> Body:
    inv = p.invoices.get(number)
    if inv is None:
        return render.error("Payments", "Invalid invoice")
    return render.envelope("Payments", render.collection("Payments", map(render.payment, inv.payments)))


def _quotes(method: str, p: Practice, req: Request, chosen: Iterable[Any]) -> Body:
    detailed = _flag(req.query.get("detailed"))
    return render.chunked_list(method, "Quotes", (render.quote(p, q, detailed=detailed) for q in chosen))


@route("GET", "/quote.api/current")
def quote_current(p: Practice, req: Request) -> Body:
    return _quotes("Current", p, req, (q for q in p.quotes.values() if q.state in OPEN_QUOTES))


@route("GET", "/quote.api/draft")
def quote_draft(p: Practice, req: Request) -> Body:
    return _quotes("Draft", p, req, (q for q in p.quotes.values() if q.state == "Draft"))


@route("GET", "/quote.api/list")
def quote_list(p: Practice, req: Request) -> Body:
    window = _window(req, "List")
    if isinstance(window, str):
        return window
    start, end = window
    return _quotes("List", p, req, (q for q in p.quotes.values() if start <= q.date <= end))


@route("GET", "/quote.api/get/{quoteNumber}")
def quote_get(p: Practice, req: Request, number: str) -> Body:
    q = p.quotes.get(number)
    return render.envelope("Get", render.quote(p, q, detailed=True)) if q else render.error("Get", "Invalid quote")


# --- writes the sync does not use, kept so the sandbox answers every recorded call ---------------


def _find_client(p: Practice, node: Any) -> Client | None:
    if node is None:
        return None
    key = (node.findtext("UUID") or node.findtext("ID") or node.text or "").strip()
    return p.clients.get(key)


def _apply_text(target: Any, root: Any, fields: dict[str, str]) -> None:
    for tag, attr in fields.items():
        value = root.findtext(tag)
        if value is not None:
            setattr(target, attr, value.strip())


CLIENT_FIELDS = {
    "Name": "name", "Email": "email", "Address": "address", "City": "city", "Region": "region",
    "PostCode": "post_code", "Country": "country", "Phone": "phone", "Website": "website",
}  # fmt: skip
CONTACT_FIELDS = {
    "Name": "name", "Mobile": "mobile", "Email": "email", "Phone": "phone", "Position": "position",
    "Salutation": "salutation", "Addressee": "addressee",
}  # fmt: skip
STAFF_FIELDS = {
    "Name": "name", "Email": "email", "Phone": "phone", "Mobile": "mobile", "Address": "address",
    "PayrollCode": "payroll_code",
}  # fmt: skip


@route("POST", "/client.api/add", writes=True)
def client_add(p: Practice, req: Request) -> Body:
    root = _parse_xml(req.body)
    if root is None or root.tag != "Client" or not (root.findtext("Name") or "").strip():
        return render.error("Add", "A client needs a Name")
    client = Client(uuid=str(uuid4()), name="", modified_at=req.now)
    _apply_text(client, root, CLIENT_FIELDS)
    with _write_lock:
        p.clients[client.uuid] = client
    return render.envelope("Add", render.client(p, client, detailed=True))


@route("PUT", "/client.api/update", writes=True)
def client_update(p: Practice, req: Request) -> Body:
    root = _parse_xml(req.body)
    client = _find_client(p, root)
    if client is None:
        return render.error("Update", "Invalid client identifier")
    with _write_lock:
        _apply_text(client, root, CLIENT_FIELDS)
        client.modified_at = req.now
    return render.envelope("Update", render.client(p, client, detailed=True))


@route("GET", "/client.api/search")
def client_search(p: Practice, req: Request) -> Body:
    query = (req.query.get("query") or "").lower()
    detailed = _flag(req.query.get("detailed"))
    found = [c for c in p.clients.values() if query and query in c.name.lower()]
    return render.envelope(
        "Search", render.collection("Clients", (render.client(p, c, detailed=detailed) for c in found))
    )


def _contact_owner(p: Practice, contact_uuid: str) -> tuple[Client, Contact] | None:
    for client in p.clients.values():
        for contact in client.contacts:
            if contact.uuid == contact_uuid:
                return client, contact
    return None


@route("POST", "/client.api/contact", writes=True)
def contact_add(p: Practice, req: Request) -> Body:
    root = _parse_xml(req.body)
    client = _find_client(p, root.find("Client") if root is not None else None)
    if client is None:
        return render.error("Contact", "Invalid client identifier")
    contact = Contact(uuid=str(uuid4()), name="")
    _apply_text(contact, root, CONTACT_FIELDS)
    with _write_lock:
        client.contacts.append(contact)
        client.modified_at = req.now
    return render.envelope("Contact", render.contact(contact))


@route("PUT", "/client.api/contact/{identifier}", writes=True)
def contact_update(p: Practice, req: Request, contact_uuid: str) -> Body:
    root, found = _parse_xml(req.body), _contact_owner(p, contact_uuid)
    if root is None or found is None:
        return render.error("Contact", "Invalid contact identifier")
    with _write_lock:
        _apply_text(found[1], root, CONTACT_FIELDS)
        found[0].modified_at = req.now
    return render.envelope("Contact", render.contact(found[1]))


@route("DELETE", "/client.api/contact/{identifier}", writes=True)
def contact_delete(p: Practice, req: Request, contact_uuid: str) -> Body:
    found = _contact_owner(p, contact_uuid)
    if found is None:
        return render.error("Contact", "Invalid contact identifier")
    with _write_lock:
        found[0].contacts.remove(found[1])
        found[0].modified_at = req.now
    return render.envelope("Contact", render.contact(found[1]))


@route("POST", "/job.api/add", writes=True)
def job_add(p: Practice, req: Request) -> Body:
    root = _parse_xml(req.body)
    if root is None or root.tag != "Job":
        return render.error("Add", "The request body must be a Job element")
    client = p.clients.get((root.findtext("ClientUUID") or root.findtext("ClientID") or "").strip())
    start, due = _send_date(root.findtext("StartDate") or ""), _send_date(root.findtext("DueDate") or "")
    name = (root.findtext("Name") or "").strip()
    if client is None:
        return render.error("Add", "Invalid client identifier")
    if not name or start is None or due is None:
        return render.error("Add", "Name, StartDate and DueDate are required")
    with _write_lock:
        number = f"J{len(p.jobs) + 1:06d}"
        job = Job(number, str(uuid4()), name, client.uuid, "Planned", req.now.date(), start, due)
        job.description = root.findtext("Description") or ""
        job.internal_id = str(40_000_000 + len(p.jobs) + 1)
        p.jobs[number] = job
    return render.envelope("Add", render.job(p, job, detailed=True))


@route("PUT", "/job.api/assign", writes=True)
def job_assign(p: Practice, req: Request) -> Body:
    root = _parse_xml(req.body)
    job = p.jobs.get((root.findtext("ID") or "").strip()) if root is not None else None
    if job is None:
        return render.error("Assign", "Invalid job identifier")
    with _write_lock:
        for op in root:
            if op.tag == "ID":
                continue
            staff_uuid = op.get("uuid") or op.get("id") or ""
            if op.tag.startswith("add") and staff_uuid not in p.staff:
                return render.error("Assign", f"Invalid staff identifier for {op.tag} request")
            if op.tag == "add" and staff_uuid not in job.assigned:
                job.assigned.append(staff_uuid)
            elif op.tag == "remove":
                job.assigned = [s for s in job.assigned if s != staff_uuid]
            elif op.tag in ("add-manager", "add-partner"):
                setattr(job, f"{op.tag[4:]}_uuid", staff_uuid)
            elif op.tag in ("remove-manager", "remove-partner"):
                setattr(job, f"{op.tag[7:]}_uuid", "")
    return render.envelope("Assign", render.job(p, job, detailed=True))


@route("POST", "/job.api/delete", writes=True)
def job_delete(p: Practice, req: Request) -> Body:
    root = _parse_xml(req.body)
    number = (root.findtext("ID") or "").strip() if root is not None else ""
    with _write_lock:
        if p.jobs.pop(number, None) is None:
            return render.error("Delete", "Invalid job identifier")
    return render.envelope("Delete", "")


@route("POST", "/job.api/applytemplate", writes=True)
def job_apply_template(p: Practice, req: Request) -> Body:
    root = _parse_xml(req.body)
    job = p.jobs.get((root.findtext("ID") or "").strip()) if root is not None else None
    if job is None:
        return render.error("ApplyTemplate", "Invalid job identifier")
    template = p.templates.get((root.findtext("TemplateUUID") or root.findtext("TemplateID") or "").strip())
    if template is None:
        return render.error("ApplyTemplate", "Invalid job template identifier")
    with _write_lock:
        if (root.findtext("TaskMode") or "AddNew") == "Replace":
            job.tasks.clear()
        job.tasks.extend(Task(str(uuid4()), name, task_uuid) for task_uuid, name in template.tasks)
    return render.envelope("ApplyTemplate", render.job(p, job, detailed=True))


@route("GET", "/template.api/list")
def template_list(p: Practice, req: Request) -> Body:
    items = (render.named("Template", Named(t.uuid, t.name)) for t in p.templates.values())
    return render.envelope("List", render.collection("Templates", items))


@route("POST", "/staff.api/add", writes=True)
def staff_add(p: Practice, req: Request) -> Body:
    root = _parse_xml(req.body)
    if root is None or root.tag != "Staff" or not (root.findtext("Name") or "").strip():
        return render.error("Add", "A staff member needs a Name")
    member = Staff(uuid=str(uuid4()), name="", email="")
    _apply_text(member, root, STAFF_FIELDS)
    with _write_lock:
        p.staff[member.uuid] = member
    # XPM names this reply "Get", not "Add".
    return render.envelope("Get", render.staff(member))


@route("PUT", "/staff.api/update", writes=True)
def staff_update(p: Practice, req: Request) -> Body:
    root = _parse_xml(req.body)
    member = p.staff.get((root.findtext("UUID") or root.findtext("ID") or "").strip()) if root is not None else None
    if member is None:
        return render.error("Update", "Invalid staff identifier")
    with _write_lock:
        _apply_text(member, root, STAFF_FIELDS)
    return render.envelope("Update", render.staff(member))


@route("POST", "/staff.api/delete", writes=True)
def staff_delete(p: Practice, req: Request) -> Body:
    root = _parse_xml(req.body)
    key = (root.findtext("UUID") or root.findtext("ID") or "").strip() if root is not None else ""
    with _write_lock:
        if p.staff.pop(key, None) is None:
            return render.error("Delete", "Invalid staff identifier")
    return render.envelope("Delete", "")
