"""What the XPM page shows: read from the practice database, and from Airflow's for the runs."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from xpm_sync import activity, catalog, config, display, settings, status
from xpm_sync.airflow_runs import RestApi
from xpm_sync.plain_errors import XpmError
from xpm_sync.store import models as m
from xpm_sync.store.engine import get_engine
from xpm_sync.store.models import ActivityStatus
from xpm_sync.sync import policy

log = logging.getLogger(__name__)

ACTIVITY_PAGE = 25


@dataclass(frozen=True)
class SyncGroup:
    key: str
    label: str
    entities: tuple[str, ...]


SYNC_GROUPS = (
    SyncGroup("jobs", "Jobs", ("jobs",)),
    SyncGroup("clients", "Clients", ("clients",)),
    SyncGroup("staff", "Staff", ("staff",)),
    SyncGroup("tax_returns", "Tax Returns", ("tax_returns",)),
    SyncGroup("custom_fields", "Custom fields", ("custom_field_definitions", *catalog.CUSTOM_FIELD_VALUES)),
    SyncGroup("work", "Time, costs, invoices, quotes", catalog.WORK),
    SyncGroup("all", "All", catalog.ALL),
)
GROUPS = {g.key: g for g in SYNC_GROUPS}
# What the synced-data card counts: live rows of each table.
COUNTED: tuple[tuple[str, str, Any], ...] = (
    ("Staff", "staff", m.Staff),
    ("Clients", "clients", m.Client),
    ("Contacts", "clients", m.Contact),
    ("Jobs", "jobs", m.Job),
    ("Client custom field values", "client_custom_fields", m.ClientCustomFieldValue),
    ("Job custom field values", "job_custom_fields", m.JobCustomFieldValue),
    ("Tax returns", "tax_returns", m.TaxReturn),
    ("Job tasks", "jobs", m.JobTask),
    ("Time entries", "time_entries", m.TimeEntry),
    ("Costs", "costs", m.JobCost),
    ("Invoices", "invoices", m.Invoice),
    ("Quotes", "quotes", m.Quote),
)


@dataclass
class Button:
    group: SyncGroup
    estimate_incremental: int
    estimate_full: int
    refused: str | None = None
    short: str | None = None  # the refusal in a few words, under the button


@dataclass
class Alerts:
    """Where the "XPM needs to reconnect" email goes, and the emails sent lately."""

    recipients: list[str]
    smtp_conn_id: str
    smtp: str | None  # host:port of the SMTP connection, None when it is not set up
    sent: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Page:
    connection: status.Status
    practice: settings.PracticeSettings
    synced: list[dict[str, Any]] = field(default_factory=list)
    buttons: list[Button] = field(default_factory=list)
    problem: str | None = None
    waiting: list[dict[str, Any]] = field(default_factory=list)
    state_codes: list[tuple[str, str | None]] = field(default_factory=list)
    custom_fields: str | None = None  # how far the stored custom field values reach
    alerts: Alerts | None = None
    # A setting whose change would need a scope the connection lacks: what the page says before saving.
    scope_warnings: dict[str, str] = field(default_factory=dict)
    decisions: list[dict[str, Any]] = field(default_factory=list)  # questions waiting in Required Actions


def synced(engine: Engine, tenant_id: str | None) -> list[dict[str, Any]]:
    """Rows held per table, and when each entity last synced."""
    if tenant_id is None:
        return []
    with Session(engine) as session:
        states = {s.entity: s for s in session.scalars(select(m.SyncState).where(m.SyncState.tenant_id == tenant_id))}
        rows = []
        for label, entity, model in COUNTED:
            count = session.scalar(
                select(func.count())
                .select_from(model)
                .where(model.tenant_id == tenant_id, model.removed_upstream_at.is_(None))
            )
            state = states.get(entity)
            rows.append(
                {
                    "label": label,
                    "rows": count or 0,
                    "last_success": display.when(state.last_success_at) if state else None,
                    "last_status": state.last_status if state else None,
                }
            )
    return rows


def buttons(practice: settings.PracticeSettings, problem: str | None) -> list[Button]:
    from xpm_sync.sync.estimate import estimate

    found = []
    jobs_refused = policy.refusal("jobs", policy.Request(manual=True), practice)
    waiting_jobs = policy.jobs_waiting(get_engine()) if jobs_refused else 0
    for group in SYNC_GROUPS:
        names = list(group.entities)
        refused = problem or (jobs_refused if group.key == "jobs" else None)
        short = None
        if refused and not problem:
            short = f"Refused until {waiting_jobs} local job change(s) reach XPM (Push now sends them)."
        found.append(
            Button(
                group,
                estimate(names, policy.Request(manual=True)),
                estimate(names, policy.Request(manual=True, full=True)),
                refused,
                short,
            )
        )
    return found


def waiting(engine: Engine) -> list[dict[str, Any]]:
    """Local changes not yet in XPM, as the page lists them."""
    from xpm_sync import changes

    shown = []
    for entry in changes.open_changes(engine):
        fields = [
            {"name": f.get("name", name.replace("_", " ")), "before": f["before"], "after": f["after"]}
            for name, f in entry.payload["fields"].items()
        ]
        record = "Job" if entry.entity == "job" else entry.entity.replace("_", " ").capitalize()
        shown.append(
            {
                "id": entry.id,
                "record": f"{record} {entry.entity_key}",
                "fields": fields,
                "who": entry.created_by,
                "when": display.when(entry.created_at),
                "status": entry.status,
                "error": entry.last_error,
            }
        )
    return shown


def alert_email(engine: Engine) -> Alerts:
    from xpm_sync import alerts

    conn_id = config.get("alert_smtp_conn_id")
    try:
        from airflow.sdk import BaseHook

        found = BaseHook.get_connection(conn_id)
        smtp: str | None = f"{found.host}:{found.port}" if found.host else None
    except Exception:  # not defined anywhere Airflow looks
        smtp = None
    with Session(engine) as session:
        sent = [
            {"when": display.when(e.occurred_at), "status": e.status, "message": e.message, "actor": e.actor}
            for e in activity.recent(session, 5, category="Email")
        ]
    return Alerts(alerts.recipients(), conn_id, smtp, sent)


def overview(engine: Engine) -> list[dict[str, Any]]:
    """Every practice at a glance, for the switcher: its status, XPM practice, last sync and calls left.
    Each row is read acting for its own practice."""
    from xpm_sync import practices

    rows = []
    for practice in practices.all_practices():
        with practices.using(practice):
            found = status.read(engine)
            last = None
            if found.tenant_id:
                with Session(engine) as session:
                    last = session.scalar(
                        select(func.max(m.SyncState.last_success_at)).where(m.SyncState.tenant_id == found.tenant_id)
                    )
            rows.append({"practice": practice, "status": found, "last_sync": display.when(last) if last else None})
    return rows


def page(engine: Engine) -> Page:
    from xpm_sync import changes

    conn = status.read(engine)
    with Session(engine) as session:
        practice = settings.load(session)
    problem = policy.connection_problem(engine, config.get("conn_id"))
    found = Page(conn, practice, synced(engine, conn.tenant_id), buttons(practice, problem), problem)
    found.waiting = waiting(engine)
    found.alerts = alert_email(engine)
    found.decisions = awaiting_decisions(engine, conn.tenant_id)
    if conn.tenant_id:
        found.state_codes = changes.state_codes(engine)
        found.custom_fields = conn.custom_fields
        found.scope_warnings = scope_warnings(" ".join(conn.scopes), practice)
    return found


def awaiting_decisions(engine: Engine, tenant_id: str | None) -> list[dict[str, Any]]:
    """The questions waiting for a person, each with where Airflow asks it (its Required Action)."""
    from xpm_sync import decisions

    found = decisions.awaiting(engine, tenant_id)
    for d in found:
        d["when"] = display.when(d.pop("raised_at"))
        d["where"] = (
            f"/dags/{quote(d['dag_id'], safe='')}/runs/{quote(d['run_id'], safe='')}/tasks/"
            f"{quote(d['task_id'], safe='')}/required_actions"
            if d["dag_id"] and d["run_id"] and d["task_id"]
            else None
        )
    return found


def scope_warnings(granted: str, practice: settings.PracticeSettings) -> dict[str, str]:
    from xpm_sync.oauth import scopes

    found = {}
    for name in scopes.PUSHED_BY:
        turned = not getattr(practice, name)
        lacking = scopes.missing_for_setting(granted, name, turned)
        if lacking:
            found[name] = (
                f"Turning this {'on' if turned else 'off'} pushes changes to XPM, which needs the access "
                f"{' and '.join(lacking)} that this connection was not granted: after saving it, reconnect XPM "
                "to grant it."
            )
    return found


def egress_line(conn: status.Status) -> str:
    """The month's bytes from XPM against the tier's allowance, in a sentence."""
    today, month = display.size(conn.egress_today), display.size(conn.egress_month)
    if not conn.egress_allowance:
        return f"{today} today, {month} this month"
    return (
        f"{today} today, {month} this month: "
        f"{conn.egress_share * 100:.2f}% of the {conn.egress_allowance / status.GB:,g} GB a month "
        "the Xero tier allows"
    )


def activity_entries(
    engine: Engine, status: str | None, number: int, airflow: RestApi
) -> tuple[list[dict[str, Any]], bool]:
    """One page of Practice Activity, newest first, and whether an older page exists."""
    wanted = status if status in {s.value for s in ActivityStatus} else None
    with Session(engine) as session:
        found = activity.recent(session, ACTIVITY_PAGE + 1, status=wanted, offset=(max(number, 1) - 1) * ACTIVITY_PAGE)
        entries = [
            {
                "when": display.when(e.occurred_at),
                "status": e.status,
                "category": e.category,
                "actor": e.actor,
                "message": e.message,
                "run_id": (e.details or {}).get("run_id"),
            }
            for e in found[:ACTIVITY_PAGE]
        ]
    _link_runs(entries, airflow)
    return entries, len(found) > ACTIVITY_PAGE


def _link_runs(entries: list[dict[str, Any]], airflow: RestApi) -> None:
    """Give each entry written by a DAG run the run's DAG (one of the practice's own), so the page can
    link to it. Without an answer from Airflow the entries are shown unlinked."""
    run_ids = {e["run_id"] for e in entries if e["run_id"]}
    found: dict[str, str] = {}
    if run_ids:
        try:
            found = airflow.dags_of(run_ids, {catalog.dag_id(kind) for kind in catalog.DAG_KINDS})
        except XpmError as exc:
            log.warning("Practice Activity is shown without links to its runs: %s", exc)
    for entry in entries:
        entry["dag_id"] = found.get(entry["run_id"])


def run_state(airflow: RestApi, dag_id: str, run_id: str) -> str | None:
    """The state of one of the XPM DAGs' runs, as Airflow's API tells the person; None when unknown
    or Airflow did not answer."""
    try:
        return airflow.run_state(dag_id, run_id)
    except XpmError as exc:
        log.warning("The state of %s was not read: %s", run_id, exc)
        return None
