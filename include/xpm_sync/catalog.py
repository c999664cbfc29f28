"""The names of the entities and how they depend on each other, with no heavy imports: the DAG
files read this at parse time. `xpm_sync.sync.entities.ENTITIES` implements each of them."""

from __future__ import annotations

REFERENCE = ("staff", "categories", "job_states", "client_groups", "custom_field_definitions")
CUSTOM_FIELD_VALUES = ("client_custom_fields", "job_custom_fields")
# Read-only lists beside the jobs: time, costs, invoices (with payments) and quotes.
WORK = ("time_entries", "costs", "invoices", "quotes")
ALL = (*REFERENCE, "clients", "jobs", *CUSTOM_FIELD_VALUES, "tax_returns", *WORK)
# What people read: the Trigger form, the XPM page, Practice Activity.
LABELS = {
    "staff": "Staff",
    "categories": "Job categories",
    "job_states": "Job states",
    "client_groups": "Client groups",
    "custom_field_definitions": "Custom field definitions",
    "clients": "Clients",
    "jobs": "Jobs",
    "client_custom_fields": "Client custom fields",
    "job_custom_fields": "Job custom fields",
    "tax_returns": "Tax returns",
    "time_entries": "Time entries",
    "costs": "Costs",
    "invoices": "Invoices",
    "quotes": "Quotes",
}
# What must have run first, within one run.
UPSTREAM = {
    "clients": REFERENCE,
    "jobs": ("clients",),
    "client_custom_fields": ("clients", "custom_field_definitions"),
    "job_custom_fields": ("jobs", "custom_field_definitions"),
    "tax_returns": ("clients", "jobs"),
    # Not needed to store them (no keys are enforced), but read after the jobs they belong to.
    "time_entries": ("jobs",),
    "costs": ("jobs",),
    "invoices": ("jobs",),
    "quotes": ("clients",),
}
# Entities that call XPM (and so take a slot of the xpm_api pool).
CALLS_XPM = frozenset(ALL) - {"tax_returns"}
# The kinds of DAG each practice has (`practices.Practice.dag_id` names them).
DAG_KINDS = ("overnight_sync", "manual_sync", "push", "push_decisions", "connection_health", "morning_check")
# What a reconnect syncs: Clients, Jobs, Staff, Tax Returns and custom fields.
AFTER_RECONNECT = ("staff", "custom_field_definitions", "clients", "jobs", *CUSTOM_FIELD_VALUES, "tax_returns")


def asset_uri(entity: str) -> str:
    """The Airflow Asset each entity of the practice the code acts for publishes when its rows are updated."""
    from xpm_sync import practices

    return practices.current().asset_uri(entity)


def dag_id(kind: str) -> str:
    """The DAG of this kind of the practice the code acts for ("manual_sync": the one a person, or a
    connect, starts a sync with)."""
    from xpm_sync import practices

    return practices.current().dag_id(kind)
