"""What the practice is told when XPM access breaks, and how often.

The first authentication failure of an outage marks the connection `needs_reconnect`, writes
"There is a problem with your XPM integration and authentication failed" to Practice Activity
and emails the alert recipients "XPM needs to reconnect", once: the row lock and `alert_sent_at`
make sure many failing tasks send one email. A reconnect clears it. An optional reminder repeats
the email every `alert_reminder_hours` while the outage lasts.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Callable
from contextlib import nullcontext
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine

from xpm_sync import activity, config
from xpm_sync.errors import RECONNECT_HINT, XpmAuthError, XpmError
from xpm_sync.store.engine import get_engine, writing
from xpm_sync.store.locks import locked_connection
from xpm_sync.store.models import ActivityStatus, ConnectionStatus, XpmConnection
from xpm_sync.store.types import utcnow

log = logging.getLogger(__name__)

AUTH_FAILED = "There is a problem with your XPM integration and authentication failed"
NEEDS_RECONNECT = "XPM needs to reconnect"
WHAT_TO_DO = (
    "xpm-sync has stopped calling XPM. An XPM Administrator with the staff privilege 'Authorise 3rd Party "
    "Full Access' must reconnect: run `xpm-sync connect` (or use the XPM integration page). A full sync of "
    "clients, jobs, staff, tax returns and custom fields runs after the reconnect."
)


def is_auth_failure(error: BaseException | None) -> bool:
    """invalid_grant, a 401 after a fresh token, or 403 AuthenticationUnsuccessful."""
    return isinstance(error, XpmAuthError)


def recipients() -> list[str]:
    """Who the alert email goes to."""
    return [r.strip() for r in config.get("alert_recipients").split(",") if r.strip()]


def _email_body(row: XpmConnection, reason: str) -> str:
    def e(value: object) -> str:
        return html.escape(str(value)) if value not in (None, "") else "unknown"

    connected = row.connected_at.strftime("%d %b %Y %H:%M UTC") if row.connected_at else "unknown"
    return (
        f"<p><b>{NEEDS_RECONNECT}.</b> {AUTH_FAILED}, so xpm-sync has stopped calling XPM for the practice "
        f"<b>{e(row.tenant_name)}</b>.</p>"
        f"<p><b>Why:</b> {e(reason)}</p>"
        f"<p><b>Connected by:</b> {e(row.connected_by)} ({e(row.connected_by_email)}) on {connected}.</p>"
        "<p><b>How to reconnect:</b> an XPM Administrator with the staff privilege "
        "&ldquo;Authorise 3rd Party Full Access&rdquo; (XPM &gt; Business &gt; Settings &gt; Staff) runs "
        "<code>xpm-sync connect</code> on the Airflow server, or uses the XPM integration page, and signs in "
        "to the same practice. A full sync of clients, jobs, staff, tax returns and custom fields follows.</p>"
    )


NO_RECIPIENTS = "No alert recipients are set ([xpm_sync] alert_recipients): the alert is recorded here but not emailed."


def send_email(
    subject: str, html_content: str, *, context: dict[str, Any] | None = None, actor: str | None = None
) -> bool:
    """Email the alert recipients through the Airflow SMTP provider's notifier; each email sent is
    recorded in Practice Activity ("Email"), so the XPM page can show when it went and to whom."""
    to = recipients()
    if not to:
        log.warning("%s", NO_RECIPIENTS)
        return False
    from airflow.providers.smtp.notifications.smtp import SmtpNotifier

    notifier = SmtpNotifier(
        to=to,
        from_email=config.get("alert_from") or None,
        subject=subject,
        html_content=html_content,
        smtp_conn_id=config.get("alert_smtp_conn_id"),
    )
    notifier.notify(context or {})  # type: ignore[arg-type]
    _record_email(ActivityStatus.SUCCESS, f"Email sent to {', '.join(to)}: {subject}", to, subject, actor)
    return True


def _record_email(status: ActivityStatus, message: str, to: list[str], subject: str, actor: str | None = None) -> None:
    from sqlalchemy.orm import Session

    try:
        with Session(writing(get_engine())) as session, session.begin():
            activity.record(session, status, "Email", message, details={"to": to, "subject": subject}, actor=actor)
    except Exception:  # the email went (or not) either way; its record is not worth a failure
        log.warning("The email could not be recorded in Practice Activity", exc_info=True)


def send_test_email(actor: str) -> str:
    """Send a test email to the alert recipients now; a sentence saying what happened (also in
    Practice Activity). Raises nothing: a failure to send is the answer."""
    to = recipients()
    if not to:
        return NO_RECIPIENTS
    subject = "xpm-sync test email"
    body = (
        "<p>This is a test of the email xpm-sync sends when XPM needs to reconnect. It reached you, so the "
        f"alert will too.</p><p>Sent from the XPM page by {html.escape(actor)}.</p>"
    )
    try:
        send_email(subject, body, actor=actor)
    except Exception as exc:
        problem = f"The test email to {', '.join(to)} could not be sent through the Airflow connection "
        problem += f"{config.get('alert_smtp_conn_id')}: {type(exc).__name__}: {str(exc)[:200]}"
        _record_email(ActivityStatus.FAILURE, problem, to, subject, actor)
        return problem
    return f"The test email was sent to {', '.join(to)}."


def raise_auth_alert(
    reason: str,
    *,
    engine: Engine | None = None,
    conn_id: str | None = None,
    actor: str | None = None,
    run_id: str | None = None,
    clock: Callable[[], datetime] = utcnow,
) -> bool:
    """Handle an authentication failure of the practice `conn_id` names (the one the running code acts
    for by default), acting for that practice (its Practice Activity, its alert recipients); True when
    it raised the alert or sent a reminder.

    The first failure of an outage marks the connection and writes the Practice Activity entry.
    The email is claimed in the same transaction (so many failing workers send one) and sent after
    it commits, never with the database locked; a send that fails gives the claim back, so the
    next failure or the morning health check tries again.
    """
    from xpm_sync import practices

    own = config.get("conn_id")
    with nullcontext() if conn_id in (None, own) else practices.using(practices.for_connection(conn_id or own)):
        engine = engine or get_engine()
        conn_id = conn_id or own
        with locked_connection(engine, conn_id) as (session, row):
            if row is None or row.status == ConnectionStatus.DISCONNECTED.value:
                return False
            now = clock()
            newly = row.status != ConnectionStatus.NEEDS_RECONNECT.value
            if newly:
                row.status = ConnectionStatus.NEEDS_RECONNECT.value
                row.last_error, row.last_error_at = reason, now
                row.version += 1
                met = f" It was met by {actor or 'xpm-sync'}" + (f" in run {run_id}." if run_id else ".")
                activity.record(
                    session,
                    ActivityStatus.ACTION_REQUIRED,  # the one entry that needs a person
                    "Connection",
                    f"{AUTH_FAILED}. {WHAT_TO_DO}{met}",
                    details={"reason": reason, "run_id": run_id, "practice": row.tenant_name},
                    actor=actor or "xpm-sync",
                    tenant_id=row.tenant_id,
                )
            hours = config.get_int("alert_reminder_hours")
            remind = row.alert_sent_at is not None and hours > 0 and now - row.alert_sent_at >= timedelta(hours=hours)
            if row.alert_sent_at is not None and not remind:
                return newly
            why = row.last_error or reason
            subject = f"{NEEDS_RECONNECT}: {row.tenant_name}" + (" (reminder)" if remind else "")
            body = _email_body(row, why)
            previous, row.alert_sent_at = row.alert_sent_at, now
        try:
            sent = send_email(subject, body)
        except Exception as exc:
            log.warning("The XPM alert email could not be sent (%s); it will be tried again", type(exc).__name__)
            with locked_connection(engine, conn_id) as (_session, row):
                if row is not None and row.alert_sent_at == now:
                    row.alert_sent_at = previous
            return newly
        log.warning("%s (%s); alert %s", NEEDS_RECONNECT, why, "emailed" if sent else "logged only")
        return True


def on_failure(context: dict[str, Any]) -> None:
    """Airflow failure callback for tasks and DAGs: tell auth failures from the rest."""
    from xpm_sync.wiring import run_actor

    error = context.get("exception")
    ti = context.get("ti") or context.get("task_instance")
    task_id = getattr(ti, "task_id", None) or "the run"
    run_id = getattr(context.get("dag_run"), "run_id", None)
    actor = run_actor(context)
    try:
        if is_auth_failure(error):
            raise_auth_alert(str(error) or RECONNECT_HINT, actor=actor, run_id=run_id)
        elif error is not None and not isinstance(error, XpmError):
            # Errors about XPM were logged where they happened; this is anything else.
            from sqlalchemy.orm import Session

            with Session(writing(get_engine())) as session, session.begin():
                activity.record(
                    session,
                    ActivityStatus.FAILURE,
                    "Sync",
                    f"({task_id}) failed: {type(error).__name__}: {str(error)[:300]}",
                    details={"run_id": run_id, "task_id": task_id},
                    actor=actor,
                )
    except Exception:  # a callback must never hide the task's own failure
        log.exception("The xpm-sync failure callback could not record the failure")


NEEDS_MORE_ACCESS = "XPM needs more access"


def raise_scope_alert(
    scope: str,
    why: str,
    *,
    engine: Engine | None = None,
    conn_id: str | None = None,
    actor: str | None = None,
    run_id: str | None = None,
) -> bool:
    """The connection lacks `scope`: one Alert entry and one email per scope until a reconnect grants
    it. The connection goes on working for what it may do. True when this call raised the alert."""
    engine = engine or get_engine()
    conn_id = conn_id or config.get("conn_id")
    with locked_connection(engine, conn_id) as (session, row):
        if row is None or row.status == ConnectionStatus.DISCONNECTED.value:
            return False
        known = dict(row.missing_scopes or {})
        if scope in known:
            return False
        known[scope] = why
        row.missing_scopes = known
        message = (
            f"{NEEDS_MORE_ACCESS}: the connection was not granted {scope}, needed {why}. An XPM administrator "
            "reconnects XPM (the XPM page's Reconnect, or `xpm-sync connect`) to grant it; until then what needs "
            "it waits."
        )
        activity.record(
            session,
            ActivityStatus.ALERT,
            "Connection",
            message,
            details={"scope": scope, "why": why, "run_id": run_id, "practice": row.tenant_name},
            actor=actor or "xpm-sync",
            tenant_id=row.tenant_id,
        )
        practice = row.tenant_name
    body = (
        f"<p><b>{NEEDS_MORE_ACCESS}</b> for the practice <b>{html.escape(str(practice))}</b>: the XPM connection "
        f"was not granted the scope <code>{html.escape(scope)}</code>, needed {html.escape(why)}.</p>"
        "<p>Everything else goes on. An XPM Administrator reconnects XPM on the XPM page in Airflow (or runs "
        "<code>xpm-sync connect</code>) and allows the access Xero asks for.</p>"
    )
    try:
        send_email(f"{NEEDS_MORE_ACCESS}: {practice}", body)
    except Exception as exc:  # recorded above; the email is a courtesy
        log.warning("The 'needs more access' email could not be sent (%s)", type(exc).__name__)
    return True


EGRESS_STEPS = (80, 100)


def check_egress(engine: Engine, tenant_id: str, *, actor: str | None = None) -> list[int]:
    """An Alert entry the first time this calendar month's bytes from XPM pass 80% and 100% of
    `[xpm_sync] monthly_egress_gb`; the steps newly passed."""
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from xpm_sync.api import usage
    from xpm_sync.status import GB
    from xpm_sync.store.models import PracticeActivity

    allowance = int(config.get_float("monthly_egress_gb") * GB)
    if allowance <= 0:
        return []
    _today, month = usage.egress(engine, tenant_id)
    share = month * 100 / allowance
    passed = [step for step in EGRESS_STEPS if share >= step]
    if not passed:
        return []
    key = utcnow().strftime("%Y-%m")
    raised = []
    with Session(writing(engine)) as session, session.begin():
        told = {
            (e.details or {}).get("step")
            for e in session.scalars(
                select(PracticeActivity).where(
                    PracticeActivity.category == "Egress", PracticeActivity.tenant_id == tenant_id
                )
            )
            if (e.details or {}).get("month") == key
        }
        for step in passed:
            if step in told:
                continue
            activity.record(
                session,
                ActivityStatus.ALERT,
                "Egress",
                f"XPM's answers this month are {month / GB:,.2f} GB, {share:.0f}% of the {allowance / GB:,g} GB "
                "a month the app's Xero tier allows ([xpm_sync] monthly_egress_gb); past it Xero charges per GB.",
                details={"month": key, "step": step, "bytes": month, "allowance": allowance},
                actor=actor or "xpm-sync",
                tenant_id=tenant_id,
            )
            raised.append(step)
    return raised
