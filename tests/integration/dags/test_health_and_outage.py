"""The health DAG, and an outage seen through the overnight DAG (`dag.test()`, real SMTP server)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy.orm import Session

from tests.conftest import dag_of
from tests.integration.conftest import Inbox, Xpm
from xpm_sandbox.state import USERS
from xpm_sync import activity
from xpm_sync.store.models import ConnectionStatus, XpmConnection, XpmGrant
from xpm_sync.store.types import utcnow


@pytest.fixture
def ready(xpm: Xpm, airflow_db: Any, smtp: Inbox) -> Xpm:
    xpm.connect()
    xpm.control("limits", {"per_minute": 100_000})
    return xpm


def _run(name: str) -> Any:
    return dag_of(name).test()


def _entries(xpm: Xpm) -> list[Any]:
    with Session(xpm.engine) as s:
        return list(activity.recent(s, 40))


def _age_token(xpm: Xpm, days: int) -> None:
    with Session(xpm.engine) as s, s.begin():
        row = s.query(XpmConnection).filter(XpmConnection.active.is_(True)).one()
        grant = s.get(XpmGrant, row.grant_id)
        grant.refresh_issued_at = utcnow() - timedelta(days=days)


def test_health_refreshes_an_ageing_token_and_reports_healthy(ready: Xpm):
    _age_token(ready, 8)
    run = _run("xpm_connection_health")
    assert run.state == "success"
    assert ready.refreshes == 1
    assert _entries(ready)[0].message == "XPM connection to Harbour View Accountants is healthy (token refreshed)"
    assert _run("xpm_connection_health").state == "success"
    assert ready.refreshes == 1  # a fresh token is left alone


def test_health_alerts_before_it_breaks_when_the_connector_left_the_staff(ready: Xpm, smtp: Inbox):
    practice = ready.srv.sandbox.main
    admin = ready.srv.sandbox.identity.users[USERS.admin]
    del practice.staff[admin.staff_uuid]
    assert _run("xpm_connection_health").state == "success"
    entry = _entries(ready)[0]
    assert entry.status == "Alert"
    assert entry.message.startswith(
        "Ada Admin, who connected XPM, is no longer active staff in Harbour View Accountants"
    )
    assert smtp.messages == []  # access still works: an alert, not an outage


def test_health_raises_the_reconnect_alert_early_when_access_is_gone(ready: Xpm, smtp: Inbox):
    ready.control("revoke", {})
    _age_token(ready, 30)
    run = _run("xpm_connection_health")
    assert run.state == "failed"
    assert ready.row().status == ConnectionStatus.NEEDS_RECONNECT.value
    assert [m["Subject"] for m in smtp.messages] == ["XPM needs to reconnect: Harbour View Accountants"]


def test_an_outage_fails_every_overnight_run_emails_once_and_calls_nothing_after(ready: Xpm, smtp: Inbox):
    assert _run("xpm_overnight_sync").state == "success"
    ready.control("revoke", {})
    ready.expire_access_token()

    failed = _run("xpm_overnight_sync")
    assert failed.state == "failed"
    assert len(smtp.messages) == 1
    messages = [e.message for e in _entries(ready)]
    assert any(m.startswith("There is a problem with your XPM integration and authentication failed") for m in messages)

    calls = len(ready.srv.sandbox.gateway.calls)
    skipped = _run("xpm_overnight_sync")
    assert skipped.state == "failed"  # the next night of the outage is red too, not a green tick
    assert len(ready.srv.sandbox.gateway.calls) == calls  # XPM not called
    assert _entries(ready)[0].message.startswith("Overnight sync skipped: XPM needs to reconnect")
    assert len(smtp.messages) == 1
