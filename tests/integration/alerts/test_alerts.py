"""The failure callback, the one-email-per-outage rule and the reminder, with a real SMTP server."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy.orm import Session

from tests.integration.conftest import Inbox, Xpm
from xpm_sync import activity, alerts
from xpm_sync.errors import XpmAuthError, XpmRateLimitError, XpmReconnectRequired
from xpm_sync.store.models import ConnectionStatus
from xpm_sync.store.types import utcnow


def _failure(error: BaseException, task_id: str = "clients") -> dict:
    class Ti:
        pass

    ti = Ti()
    ti.task_id = task_id  # type: ignore[attr-defined]
    return {"exception": error, "ti": ti}


def _entries(xpm: Xpm) -> list:
    with Session(xpm.engine) as s:
        return list(activity.recent(s, 50))


def test_the_first_auth_failure_marks_logs_and_emails_once(xpm: Xpm, smtp: Inbox):
    xpm.connect()
    error = XpmReconnectRequired("XPM needs to reconnect: Xero refused the refresh token (invalid_grant)")
    alerts.on_failure(_failure(error))
    alerts.on_failure(_failure(error, "jobs"))  # the same outage, a second task

    assert xpm.row().status == ConnectionStatus.NEEDS_RECONNECT.value
    assert len(smtp.messages) == 1
    mail = smtp.messages[0]
    assert mail["Subject"] == "XPM needs to reconnect: Harbour View Accountants"
    assert set(mail["X-Envelope-To"].split(", ")) == {"admin@practice.example", "it@practice.example"}
    body = smtp.body()
    assert "There is a problem with your XPM integration and authentication failed" in body
    assert "invalid_grant" in body  # why
    assert "Ada Admin" in body  # who connected it
    assert "xpm-sync connect" in body  # how to reconnect
    needing = [e for e in _entries(xpm) if e.status == "Action Required"]
    assert len(needing) == 1
    assert needing[0].message.startswith("There is a problem with your XPM integration and authentication failed.")


def test_many_tasks_failing_at_once_send_one_email(xpm: Xpm, smtp: Inbox):
    xpm.connect()
    error = XpmReconnectRequired("XPM needs to reconnect: 403")
    threads = [threading.Thread(target=alerts.on_failure, args=(_failure(error, f"t{i}"),)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(smtp.messages) == 1


def test_a_reminder_goes_out_only_when_configured_and_due(xpm: Xpm, smtp: Inbox, monkeypatch):
    xpm.connect()
    reason = "XPM needs to reconnect: test"
    assert alerts.raise_auth_alert(reason, engine=xpm.engine)
    assert not alerts.raise_auth_alert(reason, engine=xpm.engine, clock=lambda: utcnow() + timedelta(days=3))
    monkeypatch.setenv("AIRFLOW__XPM_SYNC__ALERT_REMINDER_HOURS", "24")
    assert not alerts.raise_auth_alert(reason, engine=xpm.engine, clock=lambda: utcnow() + timedelta(hours=23))
    assert alerts.raise_auth_alert(reason, engine=xpm.engine, clock=lambda: utcnow() + timedelta(hours=25))
    assert [m["Subject"] for m in smtp.messages] == [
        "XPM needs to reconnect: Harbour View Accountants",
        "XPM needs to reconnect: Harbour View Accountants (reminder)",
    ]
    assert len([e for e in _entries(xpm) if e.status == "Action Required"]) == 1  # one entry per outage


def test_a_reconnect_clears_the_alert_so_the_next_outage_alerts_again(xpm: Xpm, smtp: Inbox):
    xpm.connect()
    alerts.raise_auth_alert("XPM needs to reconnect: first", engine=xpm.engine)
    result = xpm.connect()
    assert result.was_broken
    row = xpm.row()
    assert (row.status, row.alert_sent_at) == (ConnectionStatus.CONNECTED.value, None)
    assert _entries(xpm)[0].message == "XPM connection reset by Ada Admin"
    alerts.raise_auth_alert("XPM needs to reconnect: second", engine=xpm.engine)
    assert len(smtp.messages) == 2


def test_other_failures_are_logged_without_email(xpm: Xpm, smtp: Inbox):
    xpm.connect()
    alerts.on_failure(_failure(ValueError("bad row"), "clients"))
    alerts.on_failure(_failure(XpmRateLimitError("429", problem="minute", retry_after=30), "jobs"))
    assert smtp.messages == []
    assert xpm.row().status == ConnectionStatus.CONNECTED.value
    entries = _entries(xpm)
    assert entries[0].message == "(clients) failed: ValueError: bad row"
    assert all("jobs" not in e.message for e in entries)  # XPM errors are logged where they happen


def test_without_recipients_the_alert_is_logged_not_emailed(xpm: Xpm, smtp: Inbox, monkeypatch):
    monkeypatch.setenv("AIRFLOW__XPM_SYNC__ALERT_RECIPIENTS", "")
    xpm.connect()
    assert alerts.raise_auth_alert("XPM needs to reconnect: test", engine=xpm.engine)
    assert smtp.messages == []
    assert xpm.row().alert_sent_at is not None


@pytest.mark.parametrize("broken", ["revoked", "privilege"])
def test_a_real_auth_failure_in_the_hook_then_the_callback(xpm: Xpm, smtp: Inbox, broken):
    from xpm_sandbox.state import USERS

    xpm.connect()
    if broken == "revoked":
        xpm.control("revoke", {})
        xpm.expire_access_token()
    else:
        tenant = xpm.row().tenant_id
        xpm.control("privilege", {"user": USERS.admin, "tenant_id": tenant, "admin": True, "third_party": False})
    with pytest.raises(XpmAuthError) as caught:
        list(xpm.hook().staff())
    assert alerts.is_auth_failure(caught.value)
    alerts.on_failure(_failure(caught.value))
    assert len(smtp.messages) == 1
    assert xpm.row().status == ConnectionStatus.NEEDS_RECONNECT.value
