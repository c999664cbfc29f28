"""XPM elements into typed records: dicts keyed by the practice database's column names.

Reads both the 3.0 shape (integer `<ID>` plus a trailing `<UUID>`) and the 3.1 shape (`<UUID>`),
`Yes`/`No` and `true`/`false`, and XPM's `2008-08-29T00:00:00` dates. Empty elements become None.
Nested lists (a client's contacts, a job's staff) come back under keys starting with `_`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from xpm_sync.api.xml import local
from xpm_sync.errors import XpmPayloadError

Record = dict[str, Any]
Convert = Callable[[str, str], Any]
_TRUE, _FALSE = {"yes", "true", "1"}, {"no", "false", "0"}
# .NET's minimum date, which XPM uses for "no date".
_NO_DATE = date(1, 1, 1)


def _empty(elem: Any) -> bool:
    return len(elem) == 0 and not (elem.text or "").strip()


def _children(elem: Any) -> dict[str, Any]:
    """Children by lower-cased name. XPM sometimes names an element twice (a populated
    `<DateOfBirth>` and then an empty one): the first copy that is not empty wins."""
    found: dict[str, Any] = {}
    for child in elem:
        name = local(child.tag)
        if name not in found or (_empty(found[name]) and not _empty(child)):
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
    return number


def as_int(value: str, field: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise XpmPayloadError(f"{field}: {value!r} is not a whole number") from None


def _scalars(elem: Any, fields: Mapping[str, tuple[str, Convert]], entity: str) -> Record:
    kids = _children(elem)
    row: Record = {}
    for tag, (column, convert) in fields.items():
        raw = _text(kids.get(tag))
        row[column] = None if raw is None else convert(raw, f"{entity}.{tag}")
    return row


def key_of(elem: Any, entity: str) -> str:
    """The record's XPM key: `<UUID>` (3.1, and trailing in 3.0), else the 3.0 `<ID>`."""
    kids = _children(elem)
    key = _text(kids.get("uuid")) or _text(kids.get("id"))
    if not key:
        raise XpmPayloadError(f"{entity}: a record without UUID or ID")
    return key


def _ref(elem: Any, tag: str) -> str | None:
    """The key of a nested reference like `<Manager><UUID>..</UUID><Name>..</Name></Manager>`."""
    child = _children(elem).get(tag)
    if child is None:
        return None
    kids = _children(child)
    return _text(kids.get("uuid")) or _text(kids.get("id"))


def _items(elem: Any, collection: str) -> list[Any]:
    holder = _children(elem).get(collection)
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
    return {"uuid": key_of(elem, "Staff"), **_scalars(elem, STAFF, "Staff")}


def named(elem: Any) -> Record:
    """A category or job state: key and name."""
    return {"uuid": key_of(elem, "Named"), "name": _text(_children(elem).get("name"))}


def client_group(elem: Any) -> Record:
    kids = _children(elem)
    taxable = _text(kids.get("taxable"))
    return {
        "uuid": key_of(elem, "Group"),
        "name": _text(kids.get("name")),
        "taxable": None if taxable is None else as_bool(taxable, "Group.Taxable"),
        "web_url": _text(kids.get("weburl")),
    }


def client(elem: Any) -> Record:
    kids = _children(elem)
    uuid = key_of(elem, "Client")
    legacy = _text(kids.get("id")) if kids.get("uuid") is not None else None
    row: Record = {"uuid": uuid, "legacy_id": legacy, **_scalars(elem, CLIENT, "Client")}
    row["account_manager_uuid"] = _ref(elem, "accountmanager")
    row["job_manager_uuid"] = _ref(elem, "jobmanager")
    row["billing_client_uuid"] = _ref(elem, "billingclient")
    client_type = kids.get("type")
    row["client_type"] = _text(_children(client_type).get("name")) if client_type is not None else None
    contacts = []
    for item in _items(elem, "contacts"):
        contact_kids = _children(item)
        contact = {"uuid": key_of(item, "Contact"), **_scalars(item, CONTACT, "Contact")}
        contact["legacy_id"] = _text(contact_kids.get("id")) if contact_kids.get("uuid") is not None else None
        primary = _text(contact_kids.get("isprimary"))
        contact["_is_primary"] = None if primary is None else as_bool(primary, "Contact.IsPrimary")
        contact["_position"] = _text(contact_kids.get("position"))
        contacts.append(contact)
    row["_contacts"] = contacts
    detailed = kids.get("groups") is not None or kids.get("relationships") is not None
    row["_detailed"] = detailed
    row["_groups"] = [(key_of(g, "Group"), _text(_children(g).get("name"))) for g in _items(elem, "groups")]
    row["_relationships"] = [
        {
            "uuid": key_of(r, "Relationship"),
            "relationship_type": _text(_children(r).get("type")),
            "related_client_uuid": _ref(r, "relatedclient"),
            "number_of_shares": _opt(r, "numberofshares", as_int),
            "percentage": _opt(r, "percentage", as_decimal),
            "start_date": _opt(r, "startdate", as_date),
            "end_date": _opt(r, "enddate", as_date),
        }
        for r in _items(elem, "relationships")
    ]
    return row


def _opt(elem: Any, tag: str, convert: Convert) -> Any:
    raw = _text(_children(elem).get(tag))
    return None if raw is None else convert(raw, tag)


def job(elem: Any) -> Record:
    kids = _children(elem)
    number = _text(kids.get("id"))
    if not number:
        raise XpmPayloadError("Job: a record without its job number (ID)")
    row: Record = {"job_number": number, "uuid": _text(kids.get("uuid")), **_scalars(elem, JOB, "Job")}
    row["client_uuid"] = _ref(elem, "client")
    row["contact_uuid"] = _ref(elem, "contact")
    row["manager_uuid"] = _ref(elem, "manager")
    row["partner_uuid"] = _ref(elem, "partner")
    row["_assigned"] = _assignments(elem, kids.get("tasks"))
    return row


def _assignments(elem: Any, tasks: Any) -> list[Record]:
    """Who is on a job and the minutes allocated to each.

    A job's own `<Assigned><Staff>` names the people only; XPM allocates minutes per task, so a
    person's minutes on the job are the sum over its tasks. Without `<Tasks>` (an answer that is not
    detailed) the minutes are unknown (None), not zero.
    """
    people = [key_of(s, "Job.Assigned.Staff") for s in _items(elem, "assigned")]
    minutes: dict[str, int] | None = None
    if tasks is not None:
        minutes = {}
        for task in tasks:
            for s in _items(task, "assigned"):
                who = key_of(s, "Job.Task.Assigned.Staff")
                allocated = _opt(s, "allocatedminutes", as_int) or 0
                minutes[who] = minutes.get(who, 0) + allocated
                if who not in people:
                    people.append(who)
    return [
        {"staff_uuid": who, "allocated_minutes": None if minutes is None else minutes.get(who, 0)}
        for who in dict.fromkeys(people)
    ]


def field_definition(elem: Any) -> Record:
    return {"uuid": key_of(elem, "CustomFieldDefinition"), **_scalars(elem, DEFINITION, "CustomFieldDefinition")}


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
    row: Record = {"field_uuid": key_of(elem, "CustomField"), "name": _text(kids.get("name"))}
    for tag, (column, convert) in VALUE_COLUMNS.items():
        raw = _text(kids.get(tag))
        row[column] = None if raw is None else convert(raw, f"CustomField.{tag}")
    return row
