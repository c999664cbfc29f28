"""`docs/schema.md`, generated from the models: every table, its columns and keys, what each holds in
XPM's terms, and example queries a practice runs on its own data.

    python -m xpm_sync.store.schema_doc > docs/schema.md

A test keeps the file equal to what this prints, and runs the example queries on the demo's store
and on both databases, against what the sandbox says (`QUERIES`).
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import Column, Table

from xpm_sync.api import records
from xpm_sync.store.models import Base

# Where each mirrored table's rows come from, in XPM's words.
TABLES = {
    "staff": "Staff members (`staff.api/list`).",
    "categories": "Job categories (`category.api/list`).",
    "job_states": "Job states (`jobstate.api/list`); `code` is the interface code, kept in `job_state_codes`.",
    "client_groups": "Client groups (`clientgroup.api/list`, and groups first seen on a client).",
    "custom_field_definitions": "Custom field definitions (`customfield.api/definition`).",
    "clients": "Clients with their tax settings (`client.api/list?detailed=true`, modified-since each night).",
    "contacts": "Contacts; one contact may be linked to several clients (`client_contacts`).",
    "client_contacts": "Which contacts a client has, and whether each is its primary one.",
    "client_group_members": "Which groups a client belongs to (detailed client answers).",
    "client_relationships": "A client's relationships to other clients (director, shareholder, trustee...).",
    "client_notes": "A client's notes, by their place in the client's list.",
    "jobs": "Jobs (`job.api/list` a year at a time, `job.api/current`, `job.api/get`).",
    "job_assignments": "Staff on a job's own `<Assigned>` list.",
    "job_tasks": "A job's tasks (detailed job answers): estimated and actual minutes, dates, type.",
    "job_task_staff": "Staff allocated to a task, with their allocated minutes.",
    "job_milestones": "A job's milestones (detailed job answers).",
    "job_costs": "Costs recorded on jobs (`job.api/costs?page=N`).",
    "client_custom_field_values": "Custom field values of clients (`client.api/get/{uuid}/customfield`).",
    "job_custom_field_values": "Custom field values of jobs (`job.api/get/{number}/customfield`).",
    "tax_returns": "The tax-return register, derived here from clients' tax settings and tax-return jobs.",
    "time_entries": "Timesheet entries (`time.api/list`, by the entry's date).",
    "invoices": "Invoices (`invoice.api/list` by date, `invoice.api/current`).",
    "invoice_jobs": "The jobs an invoice bills (detailed invoice answers).",
    "invoice_payments": "Payments of an invoice (`invoice.api/payments/{number}`).",
    "quotes": "Quotes (`quote.api/list` by date, `quote.api/current`): their totals, not their lines.",
}
# The reader's field maps: which XPM element fills which column.
FIELD_MAPS: dict[str, Mapping[str, tuple[str, object]]] = {
    "staff": records.STAFF, "clients": records.CLIENT, "contacts": records.CONTACT, "jobs": records.JOB,
    "custom_field_definitions": records.DEFINITION, "job_tasks": records.TASK, "time_entries": records.TIME,
    "job_costs": records.COST, "invoices": records.INVOICE, "quotes": records.QUOTE,
}  # fmt: skip
COMMON = {
    "tenant_id": "The practice (Xero tenant id). Every row carries it; no query should leave it out.",
    "synced_at": "When the sync last wrote the row.",
    "removed_upstream_at": "When XPM stopped listing the row (rows are never deleted here); NULL while XPM has it.",
    "pending_push": "A local change waits to go to XPM (the row is not overwritten meanwhile).",
    "uuid": "XPM's UUID of the record (a 3.0 integer id for records XPM gave no UUID).",
    "web_url": "Where XPM's web app shows the record (`<WebUrl>`).",
    "row_hash": "Fingerprint of XPM's answer for the row (the sync's, to skip unchanged records).",
}
COLUMNS = {
    "job_number": "The job's number (XPM `<ID>`, e.g. J000309).",
    "client_uuid": "The client (XPM `<Client><UUID>`).",
    "contact_uuid": "The contact (XPM `<Contact><UUID>`).",
    "staff_uuid": "The staff member (XPM `<Staff><UUID>`).",
    "manager_uuid": "The job manager (XPM `<Manager><UUID>`).",
    "partner_uuid": "The job partner (XPM `<Partner><UUID>`).",
    "account_manager_uuid": "The client's account manager (XPM `<AccountManager><UUID>`).",
    "job_manager_uuid": "The client's job manager (XPM `<JobManager><UUID>`).",
    "billing_client_uuid": "The client that pays this client's invoices (XPM `<BillingClient><UUID>`).",
    "client_type": "The client's type (XPM `<Type><Name>`).",
    "legacy_id": "The 3.0 integer id XPM sends beside the UUID.",
    "group_uuid": "The client group.",
    "related_client_uuid": "The other client of the relationship (XPM `<RelatedClient><UUID>`).",
    "task_uuid": "The job task (XPM `<Task><UUID>`).",
    "task_type_uuid": "The task's type (XPM `<TaskUUID>`, `<TaskID>` in 3.0).",
    "allocated_minutes": "Minutes XPM allocated (`<AllocatedMinutes>`); NULL when it sent none.",
    "position": "The record's place in its parent's list (XPM gives it no id).",
    "milestone_date": "XPM `<Date>`.",
    "invoice_number": "The invoice's number (XPM `<ID>`).",
    "quote_number": "The quote's number (XPM `<ID>`).",
    "invoice_task_uuid": "The invoice line this time was billed on (XPM `<InvoiceTaskUUID>`); NULL: not invoiced.",
    "supplier_uuid": "The supplier (XPM `<Supplier><UUID>`).",
    "supplier_name": "The supplier's name (XPM `<Supplier><Name>`).",
    "payment_date": "XPM `<Date>`.",
    "is_current": "Whether XPM's current list holds the record (open jobs; invoices owing; quotes open).",
    "field_uuid": "The custom field definition.",
    "tax_year": "The tax year the return is for.",
}
TABLE_COLUMNS = {
    "invoices.payments_read_at_paid": "The amount paid when its payments were last read (the sync's).",
    "jobs.custom_fields_fetched_at": "When its custom fields were last read (the sync's).",
    "jobs.custom_fields_due_at": "When its custom fields are due to be read again (the sync's).",
    "clients.custom_fields_fetched_at": "When its custom fields were last read (the sync's).",
    "clients.custom_fields_due_at": "When its custom fields are due to be read again (the sync's).",
    "job_states.code": "The state's interface code, from `job_state_codes` (XPM's list does not give it).",
    "client_relationships.relationship_type": "XPM `<Type>` (Director, Shareholder, Trustee, ...).",
    "client_notes.note_date": "XPM `<Date>`, the day (XPM sends a time with no zone).",
    "client_notes.folder": "XPM `<Folder>` (empty since August 2025: the tag is in `tag`).",
    "client_contacts.is_primary": "XPM `<IsPrimary>` of the contact on this client.",
    "invoice_payments.amount": "XPM `<Amount>` of the payment.",
    "job_milestones.completed": "XPM `<Completed>`.",
    "tax_returns.return_type": "The client's `<ReturnType>`.",
    "tax_returns.balance_month": "The client's `<BalanceMonth>` (the month its tax year ends).",
    "tax_returns.agency_status": "The client's `<AgencyStatus>`.",
    "tax_returns.job_state": "The state of the client's tax-return job for the year.",
    "tax_returns.due_date": "The tax-return job's due date.",
    "tax_returns.completed_date": "The tax-return job's completed date.",
    "changes.id": "The feed's order: an entity's Asset event names a range of these (`first_id`, `last_id`).",
    "changes.entity": "The entity (and Asset `xpm://practice/<entity>`) whose task wrote the row.",
    "changes.table_name": "The table of the row that changed.",
    "changes.record_key": "The row's key less the practice (XPM's key; a composite key's parts joined with '/').",
    "changes.kind": "inserted, changed (or back after removal) or removed (marked removed upstream).",
    "changes.run_id": "The Airflow run whose load wrote it (`cli-<user>-<pid>` for `xpm-sync sync`).",
    "changes.changed_at": "When the load's transaction wrote it; rows older than `change_feed_days` are pruned.",
    "decisions.kind": "removal (a complete list would mark many rows removed), off_current (XPM's current job "
    "list would drop many open jobs) or conflict (a push met a newer value in XPM).",
    "decisions.table_name": "The table the keys belong to (`outbox` for a conflict).",
    "decisions.keys": "Exactly the keys the decision applies to (outbox entry ids for a conflict).",
    "decisions.stored": "How many rows were stored when it was held back.",
    "decisions.raised_by_run": "The run that held the removal back.",
    "decisions.run_id": "The Airflow run whose Required Action asks it (with `dag_id` and `task_id`).",
    "decisions.outcome": "Empty while waiting; approved, rejected, timed_out (the safe choice taken) or superseded.",
    "decisions.decided_by": "The Airflow user who answered; empty when nobody did in time.",
    "decisions.refreshed_at": "Jobs taken off the current list: when the jobs pull read their final state.",
    **{
        f"{parent}_custom_field_values.{kind.lower()}_value": f"XPM `<{kind}>`, when the ValueElement is {kind}."
        for parent in ("client", "job")
        for kind in ("Text", "Number", "Decimal", "Boolean", "Date")
    },
}


# Hours by staff and week: the same query on both databases but for how each names a week's Monday.
WEEK_START = {
    "sqlite": "date(t.entry_date, 'weekday 0', '-6 days')",
    "postgresql": "CAST(date_trunc('week', t.entry_date) AS date)",
}
HOURS = """SELECT {week} AS week, s.name AS staff,
       SUM(t.minutes) / 60.0 AS hours
FROM time_entries t
JOIN staff s ON s.tenant_id = t.tenant_id AND s.uuid = t.staff_uuid
WHERE t.tenant_id = :tenant_id AND t.removed_upstream_at IS NULL
GROUP BY week, s.name
ORDER BY week, s.name"""


@dataclass(frozen=True)
class Query:
    name: str
    question: str
    sql: str | dict[str, str]  # one for both databases, or one a dialect ("sqlite", "postgresql")

    def for_dialect(self, dialect: str) -> str:
        return self.sql if isinstance(self.sql, str) else self.sql[dialect]


QUERIES = [
    Query(
        "work_in_progress",
        "Work in progress: billable minutes not yet invoiced, by open job.",
        """SELECT j.job_number, j.name, SUM(t.minutes) AS unbilled_minutes
FROM jobs j
JOIN time_entries t ON t.tenant_id = j.tenant_id AND t.job_number = j.job_number
WHERE j.tenant_id = :tenant_id AND j.is_current AND j.removed_upstream_at IS NULL
  AND t.removed_upstream_at IS NULL AND t.billable AND t.invoice_task_uuid IS NULL
GROUP BY j.job_number, j.name
ORDER BY unbilled_minutes DESC, j.job_number""",
    ),
    Query(
        "hours_by_staff_per_week",
        "Hours by staff member and week (weeks start on Monday).",
        {dialect: HOURS.format(week=week) for dialect, week in WEEK_START.items()},
    ),
    Query(
        "invoiced_against_budget",
        "Invoiced against budget, by job (an invoice's amount before tax, counted for each job it bills).",
        """SELECT j.job_number, j.budget, SUM(i.amount) AS invoiced, SUM(i.amount) - j.budget AS over_budget
FROM jobs j
JOIN invoice_jobs ij ON ij.tenant_id = j.tenant_id AND ij.job_number = j.job_number
JOIN invoices i ON i.tenant_id = ij.tenant_id AND i.invoice_number = ij.invoice_number
WHERE j.tenant_id = :tenant_id AND j.budget IS NOT NULL AND j.removed_upstream_at IS NULL
  AND ij.removed_upstream_at IS NULL AND i.removed_upstream_at IS NULL
GROUP BY j.job_number, j.budget
ORDER BY over_budget DESC, j.job_number""",
    ),
]


def _meaning(table: Table, column: Column[object]) -> str:
    special = TABLE_COLUMNS.get(f"{table.name}.{column.name}")
    if special:
        return special
    for tag, (name, _convert) in FIELD_MAPS.get(table.name, {}).items():
        if name == column.name:
            camel = "".join(part.capitalize() for part in column.name.split("_"))
            return f"XPM `<{camel if camel.lower() == tag else tag}>`."
    if column.name in COMMON:
        return COMMON[column.name]
    if column.name in COLUMNS:
        return COLUMNS[column.name]
    if column.info.get("meta"):
        return "Kept by the sync."
    if "removed_upstream_at" in table.c and table.name != "tax_returns":
        # A child record's plain element: `name` is `<Name>`, `client_order_number` `<ClientOrderNumber>`.
        return f"XPM `<{''.join(part.capitalize() for part in column.name.split('_'))}>`."
    return ""


def _table(table: Table) -> list[str]:
    model = next((m.class_ for m in Base.registry.mappers if m.local_table is table), None)
    doc = TABLES.get(table.name) or (" ".join((model.__doc__ or "").split()) if model is not None else "")
    keys = ", ".join(c.name for c in table.primary_key.columns)
    lines = [f"### `{table.name}`", "", doc, "", f"Key: ({keys}).", ""]
    lines += ["| Column | Type | Null | Meaning |", "|---|---|---|---|"]
    for column in table.columns:
        null = "yes" if column.nullable else ""
        lines.append(f"| `{column.name}` | {column.type} | {null} | {_meaning(table, column)} |")
    return [*lines, ""]


def render() -> str:
    mirrored = [t for t in Base.metadata.sorted_tables if "removed_upstream_at" in t.c]
    own = [t for t in Base.metadata.sorted_tables if "removed_upstream_at" not in t.c]
    lines = [
        "# The practice database",
        "",
        "Generated from the models by `python -m xpm_sync.store.schema_doc > docs/schema.md`; do not edit by hand.",
        "",
        "Every table that mirrors XPM is keyed by the practice (`tenant_id`) and XPM's own key, and keeps",
        "rows XPM no longer lists with `removed_upstream_at` set: filter `removed_upstream_at IS NULL` for",
        "what XPM holds today. Nothing here enforces foreign keys (the sync writes parents and children in",
        "one transaction); join on the columns named below, always with `tenant_id`.",
        "",
        "## Example queries",
        "",
        "Each takes the practice's tenant id as `:tenant_id` (`xpm-sync status` shows it). The tests run",
        "them on the demo's database and on PostgreSQL, against what the XPM sandbox says.",
        "",
    ]
    for query in QUERIES:
        lines += [f"### {query.question}", ""]
        if isinstance(query.sql, str):
            lines += ["```sql", query.sql, "```", ""]
        else:
            for dialect, sql in query.sql.items():
                lines += [f"{'SQLite' if dialect == 'sqlite' else 'PostgreSQL'}:", "", "```sql", sql, "```", ""]
    lines += ["## Tables mirrored from XPM", ""]
    for table in mirrored:
        lines += _table(table)
    lines += ["## The pipeline's own tables", ""]
    for table in own:
        lines += _table(table)
    return "\n".join(lines).rstrip() + "\n"


if __name__ == "__main__":
    sys.stdout.write(render())
