"""An independent baseline for loading XPM's client and job lists: no code of the project's.

It reads the saved answers (`bench/answers.py`) with its own small reader, lxml's `iterparse` turning
each `<Client>` or `<Job>` into plain tuples, and writes them with the database's plain bulk path:
`COPY` through psycopg on PostgreSQL, `executemany` through the standard library's sqlite3 on
SQLite, one transaction, no staging, no conflict handling, no fingerprints. It imports nothing from
`xpm_sync`: the only thing it shares with the project is the database schema it writes into (made by
the project's migrations, so that the two stores can be compared row by row).

Modes:
- `first`: into empty tables;
- `reload`: what a pipeline without change detection does every night: delete the practice's rows
  from these tables and load everything again, in one transaction.

Prints one JSON line: seconds (the load alone, not the interpreter's start), rows per table and
the process's peak RSS.

Run: python bench/independent_load.py first|reload STORE_URL ANSWERS_FOLDER/day1 [--tenant T]
"""

from __future__ import annotations

import argparse
import json
import resource
import sqlite3
import time
from collections.abc import Iterator
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from lxml import etree

# The columns read from each element, as XPM names the element, the column and a kind: s text,
# d date, b boolean, n decimal, i integer. Written here from XPM's documented fields.
CLIENT_FIELDS = """
Name name s; Title title s; Gender gender s; FirstName first_name s; MiddleName middle_name s;
LastName last_name s; OtherName other_name s; Email email s; DateOfBirth date_of_birth d;
DateOfDeath date_of_death d; PlaceOfBirthCity place_of_birth_city s;
PlaceOfBirthCountryCode place_of_birth_country_code s; Address address s; City city s; Region region s;
PostCode post_code s; Country country s; PostalAddress postal_address s; PostalCity postal_city s;
PostalRegion postal_region s; PostalPostCode postal_post_code s; PostalCountry postal_country s;
Phone phone s; Fax fax s; Website website s; ReferralSource referral_source s; ExportCode export_code s;
Industry industry s; IsProspect is_prospect b; IsArchived is_archived b; IsDeleted is_deleted b;
TaxNumber tax_number s; CompanyNumber company_number s; BusinessNumber business_number s;
BusinessStructure business_structure s; BalanceMonth balance_month i; PrepareGST prepare_gst b;
GSTRegistered gst_registered b; GSTPeriod gst_period s; GSTBasis gst_basis s;
ProvisionalTaxBasis provisional_tax_basis s; ProvisionalTaxRatio provisional_tax_ratio n;
SignedTaxAuthority signed_tax_authority b; TaxAgent tax_agent s; AgencyStatus agency_status s;
ReturnType return_type s; PrepareActivityStatement prepare_activity_statement b;
PrepareTaxReturn prepare_tax_return b; BranchNumber branch_number s; BankBSB bank_bsb s;
BankAccountName bank_account_name s; BankAccountNumber bank_account_number s; BankName bank_name s;
ActiveATOClient active_ato_client b; ClientCode client_code s; WebUrl web_url s
"""
CONTACT_FIELDS = "Name name s; Salutation salutation s; Addressee addressee s; Mobile mobile s; Email email s; " \
    "Phone phone s; IsDeleted is_deleted b"  # fmt: skip
JOB_FIELDS = """
Name name s; Description description s; ClientOrderNumber client_order_number s; Budget budget n;
State state s; Type job_type s; StartDate start_date d; DueDate due_date d; CompletedDate completed_date d;
InternalID internal_id s; WebUrl web_url s
"""
CLIENT_REFS = {"accountmanager": "account_manager_uuid", "jobmanager": "job_manager_uuid",
               "billingclient": "billing_client_uuid"}  # fmt: skip
JOB_REFS = {"client": "client_uuid", "contact": "contact_uuid", "manager": "manager_uuid", "partner": "partner_uuid"}


def _fields(spec: str) -> dict[str, tuple[str, str]]:
    out = {}
    for item in spec.replace("\n", " ").split(";"):
        element, column, kind = item.split()
        out[element.lower()] = (column, kind)
    return out


TASK_FIELDS = """
Name name s; Description description s; EstimatedMinutes estimated_minutes i; ActualMinutes actual_minutes i;
Completed completed b; Billable billable b; Folder folder s; StartDate start_date d; DueDate due_date d
"""
CLIENT, CONTACT, JOB = _fields(CLIENT_FIELDS), _fields(CONTACT_FIELDS), _fields(JOB_FIELDS)
TASK = _fields(TASK_FIELDS)
CLIENT_COLUMNS = ["uuid", "legacy_id", *[c for c, _ in CLIENT.values()], *CLIENT_REFS.values(), "client_type"]
CONTACT_COLUMNS = ["uuid", "legacy_id", *[c for c, _ in CONTACT.values()]]
JOB_COLUMNS = ["job_number", "uuid", *[c for c, _ in JOB.values()], *JOB_REFS.values()]
TABLES = {
    "clients": CLIENT_COLUMNS,
    "contacts": CONTACT_COLUMNS,
    "client_contacts": ["client_uuid", "contact_uuid", "is_primary", "position"],
    "client_group_members": ["group_uuid", "client_uuid"],
    "client_relationships": [
        "uuid",
        "client_uuid",
        "relationship_type",
        "related_client_uuid",
        "number_of_shares",
        "percentage",
        "start_date",
        "end_date",
    ],  # fmt: skip
    "jobs": JOB_COLUMNS,
    "job_assignments": ["job_number", "staff_uuid", "allocated_minutes"],
    "job_tasks": ["uuid", "job_number", "position", "task_type_uuid", *[c for c, _ in TASK.values()]],
    "job_task_staff": ["task_uuid", "staff_uuid", "job_number", "allocated_minutes"],
    "job_milestones": ["uuid", "job_number", "milestone_date", "description", "completed", "folder"],
    "client_groups": ["uuid", "name"],
}


def value(text: str | None, kind: str) -> Any:
    text = (text or "").strip()
    if not text:
        return None
    if kind == "s":
        return text
    if kind == "b":
        return text.lower() in ("yes", "true", "1")
    if kind == "i":
        return int(text)
    if kind == "n":
        return Decimal(text)
    day = datetime.fromisoformat(text[:10]).date()
    return None if day == date(1, 1, 1) else day


def _named(elem: Any) -> dict[str, Any]:
    """An element's children by lower-cased name; the first one holding something wins."""
    out: dict[str, Any] = {}
    for child in elem:
        name = child.tag.lower() if isinstance(child.tag, str) else ""
        held = out.get(name)
        if held is None or (_blank(held) and not _blank(child)):
            out[name] = child
    return out


def _blank(elem: Any) -> bool:
    return len(elem) == 0 and not (elem.text or "").strip()


def _text(elem: Any) -> str | None:
    return None if elem is None else ((elem.text or "").strip() or None)


def _key(kids: dict[str, Any]) -> str | None:
    return _text(kids.get("uuid")) or _text(kids.get("id"))


def _scalars(kids: dict[str, Any], fields: dict[str, tuple[str, str]]) -> list[Any]:
    return [value(_text(kids.get(tag)), kind) for tag, (_, kind) in fields.items()]


def _list(kids: dict[str, Any], holder: str) -> list[Any]:
    found = kids.get(holder)
    return [] if found is None else list(found)


class Rows:
    """Rows for each table, first record of a key wins (a current job is also in its year's list)."""

    def __init__(self) -> None:
        self.tables: dict[str, list[tuple[Any, ...]]] = {name: [] for name in TABLES}
        self.seen: dict[str, set[Any]] = {name: set() for name in TABLES}

    def add(self, table: str, key: Any, row: tuple[Any, ...]) -> None:
        if key not in self.seen[table]:
            self.seen[table].add(key)
            self.tables[table].append(row)

    def take(self) -> dict[str, list[tuple[Any, ...]]]:
        out, self.tables = self.tables, {name: [] for name in TABLES}
        return out


def client_rows(elem: Any, rows: Rows) -> None:
    kids = _named(elem)
    uuid = _key(kids)
    legacy = _text(kids.get("id")) if kids.get("uuid") is not None else None
    refs = [_key(_named(kids[t])) if t in kids else None for t in CLIENT_REFS]
    kind = _text(_named(kids["type"]).get("name")) if "type" in kids else None
    rows.add("clients", uuid, (uuid, legacy, *_scalars(kids, CLIENT), *refs, kind))
    for contact in _list(kids, "contacts"):
        c = _named(contact)
        contact_uuid = _key(c)
        contact_legacy = _text(c.get("id")) if c.get("uuid") is not None else None
        rows.add("contacts", contact_uuid, (contact_uuid, contact_legacy, *_scalars(c, CONTACT)))
        link = (uuid, contact_uuid, value(_text(c.get("isprimary")), "b"), _text(c.get("position")))
        rows.add("client_contacts", (uuid, contact_uuid), link)
    for group in _list(kids, "groups"):
        g = _named(group)
        rows.add("client_group_members", (_key(g), uuid), (_key(g), uuid))
        rows.add("client_groups", _key(g), (_key(g), _text(g.get("name"))))
    for relation in _list(kids, "relationships"):
        r = _named(relation)
        related = _key(_named(r["relatedclient"])) if "relatedclient" in r else None
        row = (_key(r), uuid, _text(r.get("type")), related, value(_text(r.get("numberofshares")), "i"),
               value(_text(r.get("percentage")), "n"), value(_text(r.get("startdate")), "d"),
               value(_text(r.get("enddate")), "d"))  # fmt: skip
        rows.add("client_relationships", _key(r), row)


def job_rows(elem: Any, rows: Rows) -> None:
    kids = _named(elem)
    number = _text(kids.get("id"))
    if number in rows.seen["jobs"]:
        return
    refs = [_key(_named(kids[t])) if t in kids else None for t in JOB_REFS]
    rows.add("jobs", number, (number, _text(kids.get("uuid")), *_scalars(kids, JOB), *refs))
    # The job's own <Assigned> list, as XPM sent it (no minutes there); each task's staff with theirs.
    for s in _list(kids, "assigned"):
        staff = _named(s)
        allocated = value(_text(staff.get("allocatedminutes")), "i")
        rows.add("job_assignments", (number, _key(staff)), (number, _key(staff), allocated))
    for position, task in enumerate(_list(kids, "tasks")):
        t = _named(task)
        uuid = _key(t)
        kind = _text(t.get("taskuuid")) or _text(t.get("taskid"))
        rows.add("job_tasks", uuid, (uuid, number, position, kind, *_scalars(t, TASK)))
        for s in _list(t, "assigned"):
            staff = _named(s)
            allocated = value(_text(staff.get("allocatedminutes")), "i")
            rows.add("job_task_staff", (uuid, _key(staff)), (uuid, _key(staff), number, allocated))
    for milestone in _list(kids, "milestones"):
        m = _named(milestone)
        row = (_key(m), number, value(_text(m.get("date")), "d"), _text(m.get("description")),
               value(_text(m.get("completed")), "b"), _text(m.get("folder")))  # fmt: skip
        rows.add("job_milestones", _key(m), row)


def records(path: Path, tag: str) -> Iterator[Any]:
    for _, elem in etree.iterparse(str(path), events=("end",), tag=tag, resolve_entities=False, no_network=True):
        yield elem
        elem.clear(keep_tail=False)
        while elem.getprevious() is not None:
            del elem.getparent()[0]


class Writer:
    def __init__(self, url: str, tenant: str) -> None:
        self.tenant = tenant
        self.now = datetime.now()
        self.postgres = url.startswith("postgresql")
        if self.postgres:
            import psycopg

            self.conn: Any = psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"))
        else:
            self.conn = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
            self.conn.execute("BEGIN")

    def delete(self) -> None:
        for table in TABLES:
            if table != "client_groups":
                self.conn.execute(f"DELETE FROM {table} WHERE tenant_id = {self._mark}", (self.tenant,))  # noqa: S608

    @property
    def _mark(self) -> str:
        return "%s" if self.postgres else "?"

    def write(self, batch: dict[str, list[tuple[Any, ...]]]) -> None:
        for table, rows in batch.items():
            if not rows:
                continue
            columns = ["tenant_id", *TABLES[table], "synced_at"]
            stamped = [(self.tenant, *r, self.now) for r in rows]
            if table == "client_groups":
                self._groups(columns, stamped)
            elif self.postgres:
                with self.conn.cursor().copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                    for row in stamped:
                        copy.write_row(row)
            else:
                marks = ", ".join("?" * len(columns))
                self.conn.executemany(
                    f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})",  # noqa: S608
                    [tuple(_sqlite(v) for v in row) for row in stamped],
                )

    def _groups(self, columns: list[str], rows: list[tuple[Any, ...]]) -> None:
        """Groups named by a client, recorded if the store lacks them (insert-only)."""
        listed = ", ".join(columns)
        if self.postgres:
            marks = ", ".join(["%s"] * len(columns))
            sql = f"INSERT INTO client_groups ({listed}) VALUES ({marks}) ON CONFLICT DO NOTHING"  # noqa: S608
            with self.conn.cursor() as cursor:
                cursor.executemany(sql, rows)
        else:
            marks = ", ".join("?" * len(columns))
            sql = f"INSERT OR IGNORE INTO client_groups ({listed}) VALUES ({marks})"  # noqa: S608
            self.conn.executemany(sql, [tuple(_sqlite(v) for v in row) for row in rows])

    def commit(self) -> None:
        self.conn.commit() if self.postgres else self.conn.execute("COMMIT")
        self.conn.close()


def _sqlite(v: Any) -> Any:
    """SQLite holds dates as ISO text, booleans as 0/1 and decimals as REAL."""
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, datetime):
        return v.isoformat(sep=" ")
    if isinstance(v, date):
        return v.isoformat()
    if isinstance(v, Decimal):
        return float(v)
    return v


def load(url: str, folder: Path, tenant: str, *, replace: bool) -> dict[str, int]:
    listed = json.loads((folder.parent / "answers.json").read_text())
    answers = listed["answers"] if folder.name == "day1" else listed["day2"]
    writer = Writer(url, tenant)
    if replace:
        writer.delete()
    rows, counts = Rows(), dict.fromkeys(TABLES, 0)
    for answer in answers:
        tag, read = ("Client", client_rows) if answer["kind"] == "clients" else ("Job", job_rows)
        for n, elem in enumerate(records(folder / answer["file"], tag), 1):
            read(elem, rows)
            if n % 2000 == 0:
                batch = rows.take()
                writer.write(batch)
                for table, r in batch.items():
                    counts[table] += len(r)
        batch = rows.take()
        writer.write(batch)
        for table, r in batch.items():
            counts[table] += len(r)
    writer.commit()
    return counts


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["first", "reload"])
    parser.add_argument("store_url")
    parser.add_argument("answers", type=Path)
    parser.add_argument("--tenant", default="bench-tenant")
    args = parser.parse_args()
    started, cpu = time.perf_counter(), time.process_time()
    counts = load(args.store_url, args.answers, args.tenant, replace=args.mode == "reload")
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    print(json.dumps({"seconds": round(seconds, 2), "cpu_seconds": round(cpu, 2), "rows": counts, "peak_rss_mb": peak}))


if __name__ == "__main__":
    main()
