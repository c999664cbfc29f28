"""Airflow provider metadata: the `xpm` connection type and the `[xpm_sync]` configuration section.

Airflow finds this through the `apache_airflow_provider` entry point. The configuration section
declared here is the one home of xpm-sync's settings and their defaults; `xpm_sync.config` is
their one reader.
"""

from __future__ import annotations

from typing import Any

from xpm_sync import __version__

XERO_IDENTITY_URL = "https://identity.xero.com"
XERO_LOGIN_URL = "https://login.xero.com/identity/connect/authorize"
XERO_CONNECTIONS_URL = "https://api.xero.com/connections"
XPM_API_URL = "https://api.xero.com/practicemanager/3.1/"


def _option(description: str, default: str, example: str | None = None, kind: str = "string") -> dict[str, Any]:
    return {
        "description": description,
        "version_added": None,
        "type": kind,
        "example": example,
        "default": default,
    }


CONFIG_OPTIONS: dict[str, dict[str, Any]] = {
    "conn_id": _option("Airflow connection holding the XPM app's OAuth client.", "xpm_default"),
    "practices": _option(
        "The practices this deployment keeps in step, as their `xpm` connection ids (comma separated). Empty "
        "means the one practice of `conn_id`. Each other practice has DAGs, a pool and a page of its own; "
        "its connection's extra may set its own timezone, overnight_cron, overnight_deadline, push_cron, "
        "health_cron, alert_recipients, daily_call_limit and practice_name.",
        "",
        "xpm_default, xpm_north, xpm_south",
    ),
    "store_conn_id": _option(
        "Airflow connection (postgres or sqlite) for the practice database. Used when it exists.",
        "xpm_store",
    ),
    "store_url": _option(
        "SQLAlchemy URL of the practice database when no store connection exists. Empty means a "
        "SQLite file named xpm_practice.db beside Airflow's own database, in AIRFLOW_HOME.",
        "",
        "postgresql+psycopg://xpm@db/practice",
    ),
    "api_pool": _option("Airflow pool that bounds calls in flight to XPM (5 per practice).", "xpm_api"),
    "api_pool_slots": _option("Slots of the XPM pool; XPM allows 5 calls in flight.", "5", kind="integer"),
    "overnight_cron": _option("When the overnight sync runs (cron, in `timezone`).", "0 19 * * *"),
    "timezone": _option(
        "The practice's time zone: the DAGs' crons, the overnight deadline and the times shown are in it. "
        "Empty means Airflow's `[core] default_timezone` (UTC unless set; 'system' is read as UTC).",
        "",
        "Australia/Sydney",
    ),
    "job_start_year": _option(
        "First year a full sync reads jobs, time entries, invoices and quotes from (XPM lists them a year a call).",
        "2015",
        kind="integer",
    ),
    "time_recent_days": _option(
        "Every night the time entries dated in the last this many days are read again (one call): entries are "
        "often added and corrected days after the work.",
        "35",
        kind="integer",
    ),
    "invoice_recent_days": _option(
        "Every night the invoices and quotes dated in the last this many days are read again (one call each), "
        "beside XPM's current invoice and quote lists.",
        "45",
        kind="integer",
    ),
    "history_reconcile_days": _option(
        "A year of time entries, invoices or quotes not read for this many days is read again, up to "
        "`history_years_per_night` years a night, oldest first: an entry corrected long after (XPM has no "
        "modified-since filter for them) is found within a cycle, and one deleted in XPM is marked removed.",
        "7",
        kind="integer",
    ),
    "history_years_per_night": _option(
        "How many older years of each of time entries, invoices and quotes a night may read again.",
        "1",
        kind="integer",
    ),
    "payment_calls_per_night": _option(
        "At most this many invoices a night have their payments read (one call each, only for an invoice "
        "whose amount paid changed since its payments were last read); the rest wait for the next night.",
        "200",
        kind="integer",
    ),
    "client_overlap_minutes": _option(
        "An incremental client sync asks for clients modified since the last sync less this many minutes.",
        "10",
        kind="integer",
    ),
    "client_reconcile_days": _option(
        "Every this many days the overnight client sync reads XPM's whole client list instead of the clients "
        "modified since the last run (one call either way): a change any earlier answer left out is fetched, "
        "and a client XPM no longer lists is marked removed (held back, with an Alert, if too many).",
        "7",
        kind="integer",
    ),
    "alert_recipients": _option(
        "Who is emailed when XPM needs to reconnect (comma separated). Empty sends no email.",
        "",
        "admin@practice.example, it@practice.example",
    ),
    "alert_from": _option("Sender of the alert email; empty uses the SMTP connection's from_email.", ""),
    "alert_smtp_conn_id": _option("Airflow SMTP connection the alert email goes through.", "smtp_default"),
    "overnight_deadline": _option(
        "By when (HH:MM, in `timezone`) the overnight sync should have finished: xpm_morning_check runs then "
        "and sends one email (and an Alert) for a night not finished. Empty switches the check off.",
        "07:00",
    ),
    "failures_before_email": _option(
        "Email once when the overnight sync has failed this many nights in a row; 0 means never.", "3", kind="integer"
    ),
    "change_feed_days": _option(
        "How many days the change feed (the `changes` table: what each load inserted, changed or marked "
        "removed) keeps its rows; 0 keeps them for ever.",
        "30",
        kind="integer",
    ),
    "airflow_api_url": _option(
        "Where the API server reaches Airflow's own REST API to start runs for the XPM page (as the signed-in "
        "person). Empty uses `[api] base_url`, else http://127.0.0.1 on `[api] port`; set it when `base_url` "
        "is a public address the API server cannot reach itself on.",
        "",
        "http://127.0.0.1:8080",
    ),
    "decision_timeout_hours": _option(
        "How long a question in Airflow's Required Actions (a held-back mass removal, a push conflict) waits "
        "for an answer; then the safe choice is taken (keep the rows; keep XPM's value). An overnight run "
        "waiting on one holds the next night back, so keep it under a day.",
        "12",
        kind="integer",
    ),
    "alert_reminder_hours": _option(
        "While XPM still needs reconnecting, email again after this many hours; 0 means never.", "0", kind="integer"
    ),
    "unanswered_write_settle_minutes": _option(
        "A write XPM did not answer may still be applied late: for this many minutes nothing more is sent for "
        "that record; then XPM is read, the record's newest value sent if XPM lacks it, and XPM read once more "
        "after as long again, in case the unanswered write landed over it.",
        "30",
        kind="integer",
    ),
    "push_cron": _option(
        "When xpm_push sends the practice's own changes to XPM (cron, in `timezone`); it also runs as soon as "
        "a change is recorded on the XPM page, or with `xpm-sync` on a machine whose Airflow command line works.",
        "*/15 * * * *",
    ),
    "health_cron": _option("When xpm_connection_health runs (cron, in `timezone`).", "0 6 * * *"),
    "health_refresh_after_days": _option(
        "xpm_connection_health refreshes the token when it is older than this (Xero expires it after 60 idle days).",
        "7",
        kind="integer",
    ),
    "custom_field_refresh_days": _option(
        "Custom field values with no sign of change are read again by the nightly sweep once they are this "
        "many days old.",
        "90",
        kind="integer",
    ),
    "custom_field_sweep_calls": _option(
        "Calls a night the overnight sync spends on custom field values with no sign of change: first those "
        "never read (closed jobs, mostly), then those older than `custom_field_refresh_days`.",
        "200",
        kind="integer",
    ),
    "daily_call_limit": _option("XPM's calls a day per practice.", "5000", kind="integer"),
    "app_calls_per_minute": _option(
        "XPM's calls a minute per app, over every practice of the deployment: every worker counts its calls "
        "in the practice database and waits for the next minute when the app's are nearly spent.",
        "10000",
        kind="integer",
    ),
    "monthly_egress_gb": _option(
        "The app's monthly data-egress allowance on Xero's pricing tier, in GB (Core 10, Plus 50, Advanced 250; "
        "the XPM API is on Advanced). An Alert is recorded at 80% and at 100% of it in a calendar month.",
        "250",
        kind="float",
    ),
    "max_answer_mb": _option(
        "Largest answer accepted from XPM, in MB; a bigger one is refused as implausible. (A 20,000-client "
        "practice's detailed client list is about 55 MB.)",
        "512",
        kind="integer",
    ),
    "max_answer_rows": _option(
        "Most records accepted in one answer from XPM; more are refused as implausible.", "200000", kind="integer"
    ),
    "mass_removal_share": _option(
        "A full list that would mark more than this share of stored rows removed (or an empty list while rows "
        "exist) marks nothing and raises an Alert; a full sync with removals confirmed applies it.",
        "0.2",
        kind="float",
    ),
    "mass_removal_min_rows": _option(
        "The share above applies once at least this many rows would be marked removed.", "3", kind="integer"
    ),
    "job_backdate_days": _option(
        "The overnight job list reaches this many days before the last run, so jobs created back-dated "
        "(and already closed) still arrive.",
        "30",
        kind="integer",
    ),
    "job_reconcile_days": _option(
        "Every this many days the overnight job pull also reads the jobs created in the last "
        "`job_reconcile_window_days` (one call), to catch any job created back-dated further than the nightly "
        "window reaches. Gaps in the stored job numbers are checked every night.",
        "7",
        kind="integer",
    ),
    "job_reconcile_window_days": _option(
        "How far back the periodic job reconciliation reads by created date.", "120", kind="integer"
    ),
    "task_retry_delay_seconds": _option(
        "Seconds before a failed overnight sync task is tried again (doubling each try, at most 30 minutes). "
        "A task whose worker died is retried the same way, on another worker.",
        "120",
        kind="integer",
    ),
    "token_timeout_seconds": _option(
        "How long a call to Xero's token endpoint may take before it is retried.", "30", kind="integer"
    ),
    "custom_field_budget_share": _option(
        "Share of the day's calls custom-field values may use; the rest is kept for pushes and manual work.",
        "0.8",
        kind="float",
    ),
}


def get_provider_info() -> dict[str, Any]:
    """Describe xpm-sync to Airflow's providers manager."""
    return {
        "package-name": "xpm-sync",
        "name": "Xero Practice Manager sync",
        "description": "Keeps a practice database in step with Xero Practice Manager.",
        "versions": [__version__],
        "connection-types": [
            {
                "connection-type": "xpm",
                "hook-class-name": "xpm_sync.hooks.xpm.XpmHook",
                "hook-name": "Xero Practice Manager",
                "ui-field-behaviour": {
                    "hidden-fields": ["host", "schema", "port", "extra"],
                    "relabeling": {"login": "Client ID", "password": "Client secret"},
                    "placeholders": {
                        "login": "The Xero app's client id (developer.xero.com > My Apps)",
                        "password": "The Xero app's client secret",
                    },
                },
                "conn-fields": {
                    "scope_style": {
                        "label": "Scope style",
                        "description": "least: read access, and write access only where the practice's settings "
                        "push (the default); granular: granular scopes only (job categories and custom fields "
                        "are then not synced); broad: practicemanager, for apps registered before granular scopes.",
                        "schema": {"type": ["string", "null"], "enum": ["least", "granular", "broad", None]},
                    },
                    "scopes": {
                        "label": "Scopes (exact)",
                        "description": "Space separated; overrides the scope style. Empty: chosen from the style "
                        "and the practice's settings.",
                        "schema": {"type": ["string", "null"]},
                    },
                    "redirect_uri": {
                        "label": "Redirect URI",
                        "description": "Exactly as registered on the Xero app.",
                        "schema": {"type": ["string", "null"], "default": "http://localhost:8765/callback"},
                    },
                    "tenant_id": {
                        "label": "Practice (tenant) id",
                        "description": "Pinned on first connect; leave empty to choose when connecting.",
                        "schema": {"type": ["string", "null"]},
                    },
                    "identity_url": {
                        "label": "Identity base URL",
                        "schema": {"type": ["string", "null"], "default": XERO_IDENTITY_URL},
                    },
                    "authorize_url": {
                        "label": "Authorize URL",
                        "schema": {"type": ["string", "null"], "default": XERO_LOGIN_URL},
                    },
                    "connections_url": {
                        "label": "Connections URL",
                        "schema": {"type": ["string", "null"], "default": XERO_CONNECTIONS_URL},
                    },
                    "api_url": {
                        "label": "XPM API base URL",
                        "schema": {"type": ["string", "null"], "default": XPM_API_URL},
                    },
                },
            }
        ],
        "config": {
            "xpm_sync": {
                "description": "Settings of the xpm-sync pipeline.",
                "options": CONFIG_OPTIONS,
            }
        },
    }
