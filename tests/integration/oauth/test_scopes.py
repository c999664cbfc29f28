"""The scopes the connection asks for, what a token without one can and cannot do, and the bytes of
XPM's answers: against the sandbox over HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tests.integration.conftest import Inbox, Xpm, conn_env, smtp  # noqa: F401 - the fixture
from tests.integration.sync.test_pull import sync
from tests.integration.sync.test_push import CODES, pushed, writes
from tests.integration.sync.truth import differences
from xpm_sandbox.browser import sign_in
from xpm_sandbox.state import USERS
from xpm_sync import activity, alerts, changes, settings, status
from xpm_sync.errors import XpmScopeError
from xpm_sync.oauth import flow
from xpm_sync.oauth.connection_config import load
from xpm_sync.store import models as m

IDENTITY = "offline_access openid profile email"
NO_STAFF = f"{IDENTITY} practicemanager.client.read practicemanager.job.read"


def asked(xpm: Xpm) -> str:
    """The scopes the next sign-in asks Xero for."""
    url = flow.start(xpm.settings, xpm.engine, requested_by="tester")
    return parse_qs(urlsplit(url).query)["scope"][0]


def alerts_of(xpm: Xpm) -> list[str]:
    with Session(xpm.engine) as s:
        return [e.message for e in activity.recent(s, 50, status="Alert") if "needs more access" in e.message]


@pytest.fixture
def read_only(xpm: Xpm) -> Xpm:
    xpm.control("identity", {"access_lifetime_seconds": 30 * 86_400})
    assert asked(xpm) == f"{IDENTITY} practicemanager.read"  # nothing is pushed: read access only
    xpm.connect()
    return xpm


def test_a_read_only_connection_syncs_everything_and_cannot_push(read_only: Xpm, smtp: Inbox):  # noqa: F811
    xpm = read_only
    assert xpm.row().scopes == f"{IDENTITY} practicemanager.read"
    sync(xpm, full=True)
    assert differences(xpm.engine, xpm.srv.sandbox.main) == []

    with Session(xpm.engine) as s, s.begin():
        settings.change(s, "maintain_jobs_locally", True, actor="admin")
    now = status.read(xpm.engine)
    assert now.needs_more_access
    assert now.missing_scopes == [
        {"scope": "practicemanager.job", "why": "to push changes to XPM while 'Maintain jobs locally' is on"}
    ]
    for name, code in CODES.items():
        changes.set_state_code(xpm.engine, name, code, actor="admin")
    job = next(j for j in xpm.srv.sandbox.main.jobs.values() if j.state == "Planned")
    recorded = changes.set_job_state(xpm.engine, job.number, "Review", actor="ada")
    xpm.srv.sandbox.gateway.reset_counts()
    for _night in range(2):
        with pytest.raises(XpmScopeError) as caught:
            pushed(xpm)
        assert "needs the scope practicemanager.job" in str(caught.value)
        assert "reconnects XPM" in str(caught.value)
    assert writes(xpm) == []
    assert xpm.srv.sandbox.gateway.calls == []  # refused before any call
    assert job.state == "Planned"
    with Session(xpm.engine) as s:
        assert s.get(m.OutboxEntry, recorded.entry_id).status == "pending"  # the change waits
    assert len(alerts_of(xpm)) == 1  # one alert for the cause, however often it is met
    assert [msg["Subject"] for msg in smtp.messages] == [f"{alerts.NEEDS_MORE_ACCESS}: {xpm.row().tenant_name}"]


def test_turning_jobs_kept_here_on_leads_to_a_reconnect_with_practicemanager_job(read_only: Xpm):
    xpm = read_only
    sync(xpm, ["staff", "job_states", "clients", "jobs"], full=True)
    with Session(xpm.engine) as s, s.begin():
        settings.change(s, "maintain_jobs_locally", True, actor="admin")
    assert asked(xpm) == f"{IDENTITY} practicemanager.read practicemanager.job"
    xpm.connect()
    assert xpm.row().scopes == f"{IDENTITY} practicemanager.read practicemanager.job"
    assert status.read(xpm.engine).missing_scopes == []
    for name, code in CODES.items():
        changes.set_state_code(xpm.engine, name, code, actor="admin")
    job = next(j for j in xpm.srv.sandbox.main.jobs.values() if j.state == "Planned")
    changes.set_job_state(xpm.engine, job.number, "Review", actor="ada")
    assert pushed(xpm)["job"].written == 1
    assert job.state == "Review"
    # Custom fields kept here too: client and job write access.
    with Session(xpm.engine) as s, s.begin():
        settings.change(s, "sync_custom_fields_from_xpm", False, actor="admin")
    assert asked(xpm) == f"{IDENTITY} practicemanager.read practicemanager.client practicemanager.job"


def test_a_token_without_staff_gets_insufficient_scope_and_needs_more_access_with_no_refresh(
    xpm: Xpm, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("AIRFLOW_CONN_XPM_DEFAULT", conn_env(xpm.srv, scopes=NO_STAFF))
    xpm.settings = load("xpm_default")
    xpm.connect()
    refreshes, tokens = xpm.refreshes, xpm.srv.sandbox.identity.token_requests
    with pytest.raises(XpmScopeError) as caught:
        list(xpm.hook().staff())  # a call XPM answers 401 insufficient_scope
    assert caught.value.scope == "practicemanager.staff.read"
    assert (xpm.refreshes, xpm.srv.sandbox.identity.token_requests) == (refreshes, tokens)  # no refresh
    assert [c.status for c in xpm.srv.sandbox.gateway.calls] == [401]
    now = status.read(xpm.engine)
    assert now.status == "connected"  # what it may do goes on
    assert now.needs_more_access
    assert now.missing_scopes[0]["scope"] == "practicemanager.staff.read"
    assert len(alerts_of(xpm)) == 1

    # A sync: staff is refused before any call, what the scopes reach is synced.
    xpm.srv.sandbox.gateway.reset_counts()
    with pytest.raises(XpmScopeError):
        sync(xpm, ["staff"])
    assert xpm.srv.sandbox.gateway.calls == []
    results = sync(xpm, ["categories", "client_groups", "clients"])
    assert results["categories"].mode == "skipped"  # XPM lets only practicemanager(.read) list them
    assert results["clients"].fetched == len(xpm.srv.sandbox.main.clients)
    assert xpm.refreshes == refreshes
    assert len(alerts_of(xpm)) == 1


def test_the_bytes_of_xpms_answers_equal_what_the_sandbox_served(read_only: Xpm):
    xpm = read_only
    xpm.srv.sandbox.gateway.reset_counts()
    sync(xpm, full=True)
    xpm.control("next-day", {})
    sync(xpm)
    tenant = xpm.row().tenant_id
    served = xpm.srv.sandbox.gateway.egress[tenant]
    assert served > 100_000
    with Session(xpm.engine) as s:
        counted = s.scalar(select(func.sum(m.ApiUsage.bytes)).where(m.ApiUsage.tenant_id == tenant))
    assert counted == served
    now = status.read(xpm.engine)
    assert now.egress_month == served


def test_an_alert_at_80_and_at_100_percent_of_the_months_allowance_once_each(
    read_only: Xpm, monkeypatch: pytest.MonkeyPatch
):
    xpm = read_only
    sync(xpm, ["staff"])
    tenant = xpm.row().tenant_id
    with Session(xpm.engine) as s:
        month = int(s.scalar(select(func.sum(m.ApiUsage.bytes)).where(m.ApiUsage.tenant_id == tenant)) or 0)
    monkeypatch.setenv("AIRFLOW__XPM_SYNC__MONTHLY_EGRESS_GB", str(month / 0.9 / 1e9))  # 90% used
    assert alerts.check_egress(xpm.engine, tenant) == [80]
    assert alerts.check_egress(xpm.engine, tenant) == []
    monkeypatch.setenv("AIRFLOW__XPM_SYNC__MONTHLY_EGRESS_GB", str(month / 1.2 / 1e9))  # 120%
    assert alerts.check_egress(xpm.engine, tenant) == [100]
    sync(xpm, ["staff"])  # each sync checks; nothing new to say
    with Session(xpm.engine) as s:
        entries = activity.recent(s, 10, category="Egress")
    assert [e.details["step"] for e in entries] == [100, 80]
    assert "of the app's Xero tier" not in entries[0].message
    assert "% of the" in entries[0].message


def test_consent_to_a_scope_the_app_may_not_have_is_refused_before_anything_is_stored(xpm: Xpm):
    from xpm_sandbox.browser import SignInRefused

    xpm.control("apps", {"client_id": xpm.srv.client_id, "client_secret": xpm.srv.client_secret,
                         "redirect_uris": ["http://localhost:8765/callback"],
                         "allowed_scopes": ["practicemanager.client.read", "practicemanager.job.read"]})  # fmt: skip
    url = flow.start(xpm.settings, xpm.engine, requested_by="tester")
    with pytest.raises(SignInRefused, match="invalid_scope"):
        sign_in(url, USERS.admin)
    with Session(xpm.engine) as s:
        assert s.scalars(select(m.XpmConnection)).all() == []


def test_bytes_counted_after_their_calls_were_written_are_written_too(xpm: Xpm):
    """An answer's bytes arrive after its call's count may have been written: they must reach the
    table on their own (a row needs its updated_at), not wait for an exit that may never write them."""
    from xpm_sync.api.usage import Usage

    usage = Usage(xpm.engine, "tenant-bytes-only")
    usage.add_bytes(1234)
    with Session(xpm.engine) as s:
        assert s.scalar(select(func.sum(m.ApiUsage.bytes)).where(m.ApiUsage.tenant_id == "tenant-bytes-only")) == 1234
