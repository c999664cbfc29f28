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
    row["_assigned"] = _assignments(kids, kids.get("tasks"))
    return row


def _assignments(kids: Kids, tasks: Any) -> list[Record]:
    """Who is on a job and the minutes allocated to each.

    A job's own `<Assigned><Staff>` names the people only; XPM allocates minutes per task, so a
    person's minutes on the job are the sum over its tasks. Without `<Tasks>` (an answer that is not
    detailed) the minutes are unknown (None), not zero.
    """
    people = [key_of(s, "Job.Assigned.Staff") for s in _items(kids, "assigned")]
    minutes: dict[str, int] | None = None
    if tasks is not None:
        minutes = {}
        for task in tasks:
            for s in _items(_children(task), "assigned"):
                staff_kids = _children(s)
                who = _key(staff_kids, "Job.Task.Assigned.Staff")
                allocated = _opt(staff_kids, "allocatedminutes", as_int) or 0
                minutes[who] = minutes.get(who, 0) + allocated
                if who not in people:
                    people.append(who)
    return [
        {"staff_uuid": who, "allocated_minutes": None if minutes is None else minutes.get(who, 0)}
        for who in dict.fromkeys(people)
    ]


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
