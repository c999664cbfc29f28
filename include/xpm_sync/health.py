"""Keeping the XPM connection alive and noticing early when it is about to break."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from sqlalchemy.orm import Session

from xpm_sync import activity, alerts, config
from xpm_sync.errors import XpmReconnectRequired
from xpm_sync.store.engine import get_engine, writing
from xpm_sync.store.models import ActivityStatus, XpmGrant
from xpm_sync.store.types import utcnow

log = logging.getLogger(__name__)


def check(*, hook: Any = None) -> dict[str, Any]:
    """Refresh an ageing token, reach the practice, and check the connecting user is still staff."""
    from airflow.sdk.exceptions import AirflowSkipException

    from xpm_sync.hooks.xpm import XpmHook
    from xpm_sync.sync.policy import NOT_CONNECTED, connection_problem

    engine = get_engine()
    conn_id = config.get("conn_id")
    problem = connection_problem(engine, conn_id)
    if problem and problem.startswith(NOT_CONNECTED):
        raise AirflowSkipException(problem)
    if problem:
        # Raise the alert now, not at tonight's sync.
        alerts.raise_auth_alert(problem, engine=engine, conn_id=conn_id, actor="health check")
        raise XpmReconnectRequired(problem)
    hook = hook or XpmHook(conn_id)
    with Session(engine) as session:
        row = hook.tokens.connection(session)
        grant = session.get(XpmGrant, row.grant_id)
        issued = grant.refresh_issued_at if grant is not None else None  # one refresh serves the whole grant
        who, email, practice = row.connected_by, row.connected_by_email, row.tenant_name
    result: dict[str, Any] = {"practice": practice, "refreshed": False}
    limit = timedelta(days=config.get_int("health_refresh_after_days"))
    if issued is None or utcnow() - issued >= limit:
        hook.tokens.access_token(force_refresh=True)
        result["refreshed"] = True
    result["categories"] = len(list(hook.categories()))  # the practice is still reachable
    staff = {(s.get("email") or "").lower() for s in hook.staff()}
    result["connector_active"] = bool(email) and email.lower() in staff
    hook.flush_usage()
    with Session(writing(engine)) as session, session.begin():
        if email and not result["connector_active"]:
            activity.record(
                session,
                ActivityStatus.ALERT,
                "Connection",
                f"{who or email}, who connected XPM, is no longer active staff in {practice}. XPM access will "
                "stop working: an XPM Administrator with 'Authorise 3rd Party Full Access' should reconnect "
                "now with `xpm-sync connect`.",
                details={"connected_by": who, "email": email},
                actor="health check",
                tenant_id=hook.tenant_id,
            )
        else:
            note = " (token refreshed)" if result["refreshed"] else ""
            activity.record(
                session,
                ActivityStatus.SUCCESS,
                "Connection",
                f"XPM connection to {practice} is healthy{note}",
                details=result,
                actor="health check",
                tenant_id=hook.tenant_id,
            )
    return result
