"""XPM elements into typed records: dicts keyed by the practice database's column names.

Reads both the 3.0 shape (integer `<ID>` plus a trailing `<UUID>`) and the 3.1 shape (`<UUID>`),
`Yes`/`No` and `true`/`false`, and XPM's `2008-08-29T00:00:00` dates. Empty elements become None.
Nested lists (a client's contacts, a job's staff) come back under keys starting with `_`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from xpm_sync.plain_errors import XpmPayloadError

Record = dict[str, Any]
Convert = Callable[[str, str], Any]
_TRUE, _FALSE = {"yes", "true", "1"}, {"no", "false", "0"}
# .NET's minimum date, which XPM uses for "no date".
_NO_DATE = date(1, 1, 1)
_XPM_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}")


def _empty(elem: Any) -> bool:
    return len(elem) == 0 and not (elem.text or "").strip()


Kids = dict[str, Any]


def _children(elem: Any) -> Kids:
    """Children by lower-cased name, read once per element. XPM sometimes names an element twice
    (a populated `<DateOfBirth>` and then an empty one): the first copy that is not empty wins."""
    try:
        # Most elements name each child once: then the last-to-first dict is the answer.
        found: Kids = {child.tag.lower(): child for child in reversed(elem)}
    except AttributeError:  # a child that is not an element
        found = {}
    if len(found) == len(elem):
        return found
    found = {}
    for child in elem:
        tag = child.tag
        name = tag.lower() if isinstance(tag, str) else ""
        held = found.get(name)
        if held is None or (_empty(held) and not _empty(child)):
            found[name] = child
    return found


def _text(elem: Any) -> str | None:
    value = (elem.text or "").strip() if elem is not None else ""
    return value or None


def as_text(value: str, _field: str) -> str:
    return value


def as_bool(value: str, field: str) -> bool:
    lowered = value.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise XpmPayloadError(f"{field}: {value!r} is not Yes/No or true/false")


def as_date(value: str, field: str) -> date | None:
    if _XPM_DATE.fullmatch(value):
        # XPM's own `2008-08-29T00:00:00`, read without strptime (the same ranges are checked).
        try:
            parsed = datetime.fromisoformat(value).date()
        except ValueError:
            pass
        else:
            return None if parsed == _NO_DATE else parsed
    for fmt in ("%Y-%m-%dT%H:%M:%S", "%Y-%m-%d", "%Y-%m-%dT%H:%M:%S.%f", "%Y%m%d"):
        try:
            parsed = datetime.strptime(value, fmt).date()
        except ValueError:
            continue
        return None if parsed == _NO_DATE else parsed
    raise XpmPayloadError(f"{field}: {value!r} is not a date XPM sends")


def as_decimal(value: str, field: str) -> Decimal:
    try:
        number = Decimal(value)
    except InvalidOperation:
        raise XpmPayloadError(f"{field}: {value!r} is not a number") from None
    if not number.is_finite():
        raise XpmPayloadError(f"{field}: {value!r} is not a finite number")
    if number != 0 and number.adjusted() >= 14:
        raise XpmPayloadError(
            f"{field}: {value[:40]!r} has more digits than the practice database holds (14 before the point)"
        )
    return number


def as_int(value: str, field: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise XpmPayloadError(f"{field}: {value!r} is not a whole number") from None


# Each field map as (element, column, converter or None for text, name in errors), made once.
_PLANS: dict[tuple[int, str], list[tuple[str, str, Convert | None, str]]] = {}


def _plan(fields: Mapping[str, tuple[str, Convert]], entity: str) -> list[tuple[str, str, Convert | None, str]]:
    plan = _PLANS.get((id(fields), entity))
    if plan is None:
        plan = [(tag, column, None if convert is as_text else convert, f"{entity}.{tag}")
                for tag, (column, convert) in fields.items()]  # fmt: skip
        _PLANS[(id(fields), entity)] = plan
    return plan


def _scalars(kids: Kids, fields: Mapping[str, tuple[str, Convert]], entity: str) -> Record:
    row: Record = {}
    for tag, column, convert, label in _plan(fields, entity):
        found = kids.get(tag)
        raw = (found.text or "").strip() if found is not None else ""
        if not raw:
            row[column] = None
        elif convert is None:
            row[column] = raw
        else:
            row[column] = convert(raw, label)
    return row


# XPM's keys: a UUID (36 characters) or a 3.0 integer id; the practice database holds no longer one.
KEY_LENGTH = 36
JOB_NUMBER_LENGTH = 50


def _checked_key(key: str, entity: str, most: int = KEY_LENGTH) -> str:
    if len(key) > most:
        raise XpmPayloadError(
            f"{entity}: a key of {len(key):,} characters ({key[:20]}...); XPM's have at most {most}: the answer is "
            "refused as malformed, and nothing of it is stored"
        )
    return key


def _key(kids: Kids, entity: str) -> str:
    key = _text(kids.get("uuid")) or _text(kids.get("id"))
    if not key:
        raise XpmPayloadError(f"{entity}: a record without UUID or ID")
    return _checked_key(key, entity)


def key_of(elem: Any, entity: str) -> str:
    """The record's XPM key: `<UUID>` (3.1, and trailing in 3.0), else the 3.0 `<ID>`."""
    return _key(_children(elem), entity)


def _ref(kids: Kids, tag: str) -> str | None:
    """The key of a nested reference like `<Manager><UUID>..</UUID><Name>..</Name></Manager>`."""
    child = kids.get(tag)
    if child is None:
        return None
    ref = _children(child)
    key = _text(ref.get("uuid")) or _text(ref.get("id"))
    return None if key is None else _checked_key(key, tag)


def _items(kids: Kids, collection: str) -> list[Any]:
    holder = kids.get(collection)
    return list(holder) if holder is not None else []


T, B, D, N, I = as_text, as_bool, as_date, as_decimal, as_int  # noqa: E741

STAFF: dict[str, tuple[str, Convert]] = {
    "name": ("name", T), "email": ("email", T), "phone": ("phone", T), "mobile": ("mobile", T),
    "address": ("address", T), "payrollcode": ("payroll_code", T), "weburl": ("web_url", T),
}  # fmt: skip
CLIENT: dict[str, tuple[str, Convert]] = {
    "name": ("name", T), "title": ("title", T), "gender": ("gender", T), "firstname": ("first_name", T),
    "middlename": ("middle_name", T), "lastname": ("last_name", T), "othername": ("other_name", T),
    "email": ("email", T), "dateofbirth": ("date_of_birth", D), "dateofdeath": ("date_of_death", D),
    "placeofbirthcity": ("place_of_birth_city", T), "placeofbirthcountrycode": ("place_of_birth_country_code", T),
    "address": ("address", T), "city": ("city", T), "region": ("region", T), "postcode": ("post_code", T),
    "country": ("country", T), "postaladdress": ("postal_address", T), "postalcity": ("postal_city", T),
    "postalregion": ("postal_region", T), "postalpostcode": ("postal_post_code", T),
    "postalcountry": ("postal_country", T), "phone": ("phone", T), "fax": ("fax", T), "website": ("website", T),
    "referralsource": ("referral_source", T), "exportcode": ("export_code", T), "industry": ("industry", T),
    "isprospect": ("is_prospect", B), "isarchived": ("is_archived", B), "isdeleted": ("is_deleted", B),
    "taxnumber": ("tax_number", T), "companynumber": ("company_number", T),
    "businessnumber": ("business_number", T), "businessstructure": ("business_structure", T),
    "balancemonth": ("balance_month", I), "preparegst": ("prepare_gst", B), "gstregistered": ("gst_registered", B),
    "gstperiod": ("gst_period", T), "gstbasis": ("gst_basis", T), "provisionaltaxbasis": ("provisional_tax_basis", T),
    "provisionaltaxratio": ("provisional_tax_ratio", N), "signedtaxauthority": ("signed_tax_authority", B),
    "taxagent": ("tax_agent", T), "agencystatus": ("agency_status", T), "returntype": ("return_type", T),
    "prepareactivitystatement": ("prepare_activity_statement", B), "preparetaxreturn": ("prepare_tax_return", B),
    "branchnumber": ("branch_number", T), "bankbsb": ("bank_bsb", T), "bankaccountname": ("bank_account_name", T),
    "bankaccountnumber": ("bank_account_number", T), "bankname": ("bank_name", T),
    "activeatoclient": ("active_ato_client", B), "clientcode": ("client_code", T), "weburl": ("web_url", T),
}  # fmt: skip
CONTACT: dict[str, tuple[str, Convert]] = {
    "name": ("name", T), "salutation": ("salutation", T), "addressee": ("addressee", T), "mobile": ("mobile", T),
    "email": ("email", T), "phone": ("phone", T), "isdeleted": ("is_deleted", B),
}  # fmt: skip
JOB: dict[str, tuple[str, Convert]] = {
    "name": ("name", T), "description": ("description", T), "clientordernumber": ("client_order_number", T),
    "budget": ("budget", N), "state": ("state", T), "type": ("job_type", T), "startdate": ("start_date", D),
    "duedate": ("due_date", D), "completeddate": ("completed_date", D), "internalid": ("internal_id", T),
    "weburl": ("web_url", T),
}  # fmt: skip
DEFINITION: dict[str, tuple[str, Convert]] = {
    "name": ("name", T), "type": ("field_type", T), "valueelement": ("value_element", T),
    "linkurl": ("link_url", T), "options": ("options", T), "useclient": ("use_client", B),
    "usecontact": ("use_contact", B), "usejob": ("use_job", B), "uselead": ("use_lead", B),
    "usesupplier": ("use_supplier", B), "usejobtask": ("use_job_task", B), "usejobcost": ("use_job_cost", B),
    "usejobtime": ("use_job_time", B),
}  # fmt: skip


def staff(elem: Any) -> Record:
    kids = _children(elem)
    return {"uuid": _key(kids, "Staff"), **_scalars(kids, STAFF, "Staff")}


def named(elem: Any) -> Record:
    """A category or job state: key and name."""
    kids = _children(elem)
    return {"uuid": _key(kids, "Named"), "name": _text(kids.get("name"))}


def client_group(elem: Any) -> Record:
    kids = _children(elem)
    taxable = _text(kids.get("taxable"))
    return {
        "uuid": _key(kids, "Group"),
        "name": _text(kids.get("name")),
        "taxable": None if taxable is None else as_bool(taxable, "Group.Taxable"),
        "web_url": _text(kids.get("weburl")),
    }


def client(elem: Any) -> Record:
    kids = _children(elem)
    uuid = _key(kids, "Client")
    legacy = _text(kids.get("id")) if kids.get("uuid") is not None else None
    row: Record = {"uuid": uuid, "legacy_id": legacy, **_scalars(kids, CLIENT, "Client")}
    row["account_manager_uuid"] = _ref(kids, "accountmanager")
    row["job_manager_uuid"] = _ref(kids, "jobmanager")
    row["billing_client_uuid"] = _ref(kids, "billingclient")
    client_type = kids.get("type")
    row["client_type"] = _text(_children(client_type).get("name")) if client_type is not None else None
    contacts = []
    for item in _items(kids, "contacts"):
        contact_kids = _children(item)
        contact = {"uuid": _key(contact_kids, "Contact"), **_scalars(contact_kids, CONTACT, "Contact")}
        contact["legacy_id"] = _text(contact_kids.get("id")) if contact_kids.get("uuid") is not None else None
        primary = _text(contact_kids.get("isprimary"))
        contact["_is_primary"] = None if primary is None else as_bool(primary, "Contact.IsPrimary")
        contact["_position"] = _text(contact_kids.get("position"))
        contacts.append(contact)
    row["_contacts"] = contacts
    detailed = any(kids.get(part) is not None for part in ("groups", "relationships", "notes"))
    row["_detailed"] = detailed
    row["_notes"] = [_note(_children(n), i) for i, n in enumerate(_items(kids, "notes"))]
    groups = [_children(g) for g in _items(kids, "groups")]
    row["_groups"] = [(_key(g, "Group"), _text(g.get("name"))) for g in groups]
    row["_relationships"] = [_relationship(_children(r)) for r in _items(kids, "relationships")]
    return row


def _note(kids: Kids, position: int) -> Record:
    # XPM answers `Folder` empty since August 2025 and names the tag in `Tag` (read `Tags` too).
    tag = kids.get("tag") if kids.get("tag") is not None else kids.get("tags")
    return {
        "position": position,
        "title": _text(kids.get("title")),
        "text": _text(kids.get("text")),
        "folder": _text(kids.get("folder")),
        "tag": _text(tag),
        "note_date": _opt(kids, "date", as_date),
        "created_by": _text(kids.get("createdby")),
    }


def _relationship(kids: Kids) -> Record:
    return {
        "uuid": _key(kids, "Relationship"),
        "relationship_type": _text(kids.get("type")),
        "related_client_uuid": _ref(kids, "relatedclient"),
        "number_of_shares": _opt(kids, "numberofshares", as_int),
        "percentage": _opt(kids, "percentage", as_decimal),
        "start_date": _opt(kids, "startdate", as_date),
        "end_date": _opt(kids, "enddate", as_date),
    }


def _opt(kids: Kids, tag: str, convert: Convert) -> Any:
    raw = _text(kids.get(tag))
    return None if raw is None else convert(raw, tag)


def job(elem: Any) -> Record:
    kids = _children(elem)
    number = _text(kids.get("id"))
    if not number:
        raise XpmPayloadError("Job: a record without its job number (ID)")
    uuid = _text(kids.get("uuid"))
    row: Record = {
        "job_number": _checked_key(number, "Job", JOB_NUMBER_LENGTH),
        "uuid": None if uuid is None else _checked_key(uuid, "Job"),
        **_scalars(kids, JOB, "Job"),
    }
    row["client_uuid"] = _ref(kids, "client")
    row["contact_uuid"] = _ref(kids, "contact")
    row["manager_uuid"] = _ref(kids, "manager")
    row["partner_uuid"] = _ref(kids, "partner")
    row["_assigned"] = [_staff_minutes(_children(st), "Job.Assigned.Staff") for st in _items(kids, "assigned")]
    # Only a detailed answer lists tasks and milestones; the rest leave the stored ones as they are.
    row["_detailed"] = kids.get("tasks") is not None
    row["_tasks"] = [_task(_children(t), i) for i, t in enumerate(_items(kids, "tasks"))]
    row["_milestones"] = [_milestone(_children(m)) for m in _items(kids, "milestones")]
    return row


def _staff_minutes(kids: Kids, entity: str) -> Record:
    """A staff member on a job or a task, and the minutes XPM allocated (None when it sent none:
    a job's own `<Assigned>` never carries them, a task's does)."""
    return {"staff_uuid": _key(kids, entity), "allocated_minutes": _opt(kids, "allocatedminutes", as_int)}


TASK: dict[str, tuple[str, Convert]] = {
    "name": ("name", T), "description": ("description", T), "estimatedminutes": ("estimated_minutes", I),
    "actualminutes": ("actual_minutes", I), "completed": ("completed", B), "billable": ("billable", B),
    "folder": ("folder", T), "startdate": ("start_date", D), "duedate": ("due_date", D),
}  # fmt: skip


def _task(kids: Kids, position: int) -> Record:
    # 3.1 names the task type `TaskUUID`; 3.0 `TaskID`.
    kind = _text(kids.get("taskuuid")) or _text(kids.get("taskid"))
    row: Record = {
        "uuid": _key(kids, "Job.Task"),
        "position": position,
        "task_type_uuid": None if kind is None else _checked_key(kind, "Job.Task.TaskUUID"),
        **_scalars(kids, TASK, "Job.Task"),
    }
    row["_assigned"] = [_staff_minutes(_children(st), "Job.Task.Assigned.Staff") for st in _items(kids, "assigned")]
    return row


def _milestone(kids: Kids) -> Record:
    return {
        "uuid": _key(kids, "Job.Milestone"),
        "milestone_date": _opt(kids, "date", as_date),
        "description": _text(kids.get("description")),
        "completed": _opt(kids, "completed", as_bool),
        "folder": _text(kids.get("folder")),
    }


def field_definition(elem: Any) -> Record:
    kids = _children(elem)
    return {"uuid": _key(kids, "CustomFieldDefinition"), **_scalars(kids, DEFINITION, "CustomFieldDefinition")}


VALUE_COLUMNS = {
    "text": ("text_value", as_text),
    "decimal": ("decimal_value", as_decimal),
    "number": ("number_value", as_decimal),
    "boolean": ("boolean_value", as_bool),
    "date": ("date_value", as_date),
}


def field_value(elem: Any) -> Record:
    """One custom field's value; XPM fills the element its definition's ValueElement names."""
    kids = _children(elem)
    row: Record = {"field_uuid": _key(kids, "CustomField"), "name": _text(kids.get("name"))}
    for tag, (column, convert) in VALUE_COLUMNS.items():
        raw = _text(kids.get(tag))
        row[column] = None if raw is None else convert(raw, f"CustomField.{tag}")
    return row


# --- time, costs, invoices and quotes (read only) -----------------------------------------------


def _number(kids: Kids, entity: str, tag: str = "id") -> str:
    """An invoice's, quote's or job's number (`<ID>`), checked like a job number."""
    number = _text(kids.get(tag))
    if not number:
        raise XpmPayloadError(f"{entity}: a record without its number (ID)")
    return _checked_key(number, entity, JOB_NUMBER_LENGTH)


def _job_ref(kids: Kids, entity: str) -> str | None:
    """The job number of a `<Job><ID>..</ID><Name>..</Name></Job>` reference."""
    job = kids.get("job")
    if job is None:
        return None
    number = _text(_children(job).get("id"))
    return None if number is None else _checked_key(number, f"{entity}.Job", JOB_NUMBER_LENGTH)


TIME: dict[str, tuple[str, Convert]] = {
    "date": ("entry_date", D), "minutes": ("minutes", I), "note": ("note", T), "billable": ("billable", B),
    "start": ("start_time", T), "end": ("end_time", T), "weburl": ("web_url", T),
}  # fmt: skip


def time_entry(elem: Any) -> Record:
    kids = _children(elem)
    invoiced = _text(kids.get("invoicetaskuuid"))
    return {
        "uuid": _key(kids, "Time"),
        "job_number": _job_ref(kids, "Time"),
        "task_uuid": _ref(kids, "task"),
        "staff_uuid": _ref(kids, "staff"),
        "invoice_task_uuid": None if invoiced is None else _checked_key(invoiced, "Time.InvoiceTaskUUID"),
        **_scalars(kids, TIME, "Time"),
    }


COST: dict[str, tuple[str, Convert]] = {
    "date": ("cost_date", D), "description": ("description", T), "code": ("code", T), "note": ("note", T),
    "quantity": ("quantity", N), "unitcost": ("unit_cost", N), "unitprice": ("unit_price", N),
    "billable": ("billable", B),
}  # fmt: skip


def job_cost(elem: Any) -> Record:
    kids = _children(elem)
    supplier = kids.get("supplier")
    return {
        "uuid": _key(kids, "Cost"),
        "job_number": _job_ref(kids, "Cost"),
        **_scalars(kids, COST, "Cost"),
        "supplier_uuid": _ref(kids, "supplier"),
        "supplier_name": _text(_children(supplier).get("name")) if supplier is not None else None,
    }


INVOICE: dict[str, tuple[str, Convert]] = {
    "type": ("invoice_type", T), "status": ("status", T), "jobtext": ("job_text", T),
    "description": ("description", T), "date": ("invoice_date", D), "duedate": ("due_date", D),
    "amount": ("amount", N), "amounttax": ("amount_tax", N), "amountincludingtax": ("amount_including_tax", N),
    "amountpaid": ("amount_paid", N), "amountoutstanding": ("amount_outstanding", N),
}  # fmt: skip


def invoice(elem: Any) -> Record:
    """An invoice; a detailed answer lists the jobs it bills (`_jobs`, else None: unknown)."""
    kids = _children(elem)
    uuid = _text(kids.get("uuid"))
    row: Record = {
        "invoice_number": _number(kids, "Invoice"),
        "uuid": None if uuid is None else _checked_key(uuid, "Invoice"),
        **_scalars(kids, INVOICE, "Invoice"),
        "client_uuid": _ref(kids, "client"),
        "contact_uuid": _ref(kids, "contact"),
    }
    jobs = kids.get("jobs")
    row["_jobs"] = None if jobs is None else [_invoice_job(_children(j)) for j in jobs]
    return row


def _invoice_job(kids: Kids) -> Record:
    return {
        "job_number": _number(kids, "Invoice.Job"),
        "name": _text(kids.get("name")),
        "description": _text(kids.get("description")),
        "client_order_number": _text(kids.get("clientordernumber")),
    }


def payment(elem: Any) -> Record:
    kids = _children(elem)
    return {
        "payment_date": _opt(kids, "date", as_date),
        "amount": _opt(kids, "amount", as_decimal),
        "reference": _text(kids.get("reference")),
    }


QUOTE: dict[str, tuple[str, Convert]] = {
    "type": ("quote_type", T), "state": ("state", T), "name": ("name", T), "description": ("description", T),
    "budget": ("budget", N), "optionexplanation": ("option_explanation", T), "date": ("quote_date", D),
    "validdate": ("valid_date", D), "estimatedcost": ("estimated_cost", N),
    "estimatedcosttax": ("estimated_cost_tax", N), "estimatedcostincludingtax": ("estimated_cost_including_tax", N),
    "amount": ("amount", N), "amounttax": ("amount_tax", N), "amountincludingtax": ("amount_including_tax", N),
}  # fmt: skip


def quote(elem: Any) -> Record:
    kids = _children(elem)
    return {
        "quote_number": _number(kids, "Quote"),
        **_scalars(kids, QUOTE, "Quote"),
        "client_uuid": _ref(kids, "client"),
        "contact_uuid": _ref(kids, "contact"),
    }
