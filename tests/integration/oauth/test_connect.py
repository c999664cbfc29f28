"""Connecting XPM through the real OAuth flow against the sandbox, and its failures."""

from __future__ import annotations

import pytest
import requests
from sqlalchemy import select
from sqlalchemy.orm import Session

from tests.integration.conftest import Xpm, conn_env
from xpm_sandbox.browser import SignInRefused, sign_in
from xpm_sandbox.state import USERS
from xpm_sync import activity
from xpm_sync.errors import XpmOAuthError
from xpm_sync.oauth import flow
from xpm_sync.oauth.connection_config import load
from xpm_sync.store.models import ConnectionStatus, OAuthAttempt, XpmGrant


def test_connecting_pins_the_practice_and_stores_encrypted_tokens(xpm: Xpm):
    result = xpm.connect()
    assert (result.tenant_name, result.connected_by) == ("Harbour View Accountants", "Ada Admin")
    row = xpm.row()
    assert row.tenant_id == xpm.srv.sandbox.main.tenant_id
    assert row.status == ConnectionStatus.CONNECTED.value
    assert (row.connected_by, row.connected_by_email) == ("Ada Admin", USERS.admin)
    tokens = xpm.stored_tokens()
    stored = xpm.grant().token_ciphertext or ""
    assert stored
    assert tokens.access_token not in stored
    assert tokens.refresh_token not in stored
    with Session(xpm.engine) as s:
        (entry,) = activity.recent(s, 1)
    assert entry.message == "XPM connected to Harbour View Accountants by Ada Admin"
    assert entry.actor == "tester"


def test_the_hook_reads_the_practice_after_connecting(xpm: Xpm):
    xpm.connect()
    hook = xpm.hook()
    staff = list(hook.staff())
    assert {s["uuid"] for s in staff} == set(xpm.srv.sandbox.main.staff)
    ok, message = hook.test_connection()
    assert ok
    assert "Harbour View Accountants" in message


def test_a_forged_state_is_refused(xpm: Xpm):
    flow.start(xpm.settings, xpm.engine, requested_by="tester")
    forged = "http://localhost:8765/callback?code=abc&state=not-ours"
    with pytest.raises(XpmOAuthError, match="not started here"):
        flow.complete(xpm.settings, xpm.engine, forged)


def test_an_expired_attempt_is_refused(xpm: Xpm):
    url = flow.start(xpm.settings, xpm.engine, requested_by="tester")
    redirect = sign_in(url, USERS.admin)
    with Session(xpm.engine) as s, s.begin():
        attempt = s.scalars(select(OAuthAttempt)).one()
        attempt.expires_at = attempt.created_at
    with pytest.raises(XpmOAuthError, match="expired"):
        flow.complete(xpm.settings, xpm.engine, redirect)


def test_a_redirect_used_twice_is_refused(xpm: Xpm):
    url = flow.start(xpm.settings, xpm.engine, requested_by="tester")
    redirect = sign_in(url, USERS.admin)
    flow.complete(xpm.settings, xpm.engine, redirect)
    with pytest.raises(XpmOAuthError, match="already used"):
        flow.complete(xpm.settings, xpm.engine, redirect)


def test_a_cancelled_sign_in_says_so(xpm: Xpm):
    with pytest.raises(XpmOAuthError, match="not allowed"):
        flow.complete(xpm.settings, xpm.engine, "http://localhost:8765/callback?error=access_denied&state=x")


def test_a_pkce_verifier_that_does_not_match_is_refused(xpm: Xpm):
    url = flow.start(xpm.settings, xpm.engine, requested_by="tester")
    redirect = sign_in(url, USERS.admin)
    with Session(xpm.engine) as s, s.begin():
        attempt = s.scalars(select(OAuthAttempt)).one()
        from xpm_sync.oauth.tokens import fernet

        attempt.verifier_ciphertext = fernet().encrypt(b"a-different-verifier-" + b"x" * 40).decode()
    with pytest.raises(XpmOAuthError, match="invalid_grant"):
        flow.complete(xpm.settings, xpm.engine, redirect)


def test_a_redirect_uri_the_app_does_not_have_is_refused_at_xero(xpm: Xpm, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_XPM_DEFAULT", conn_env(xpm.srv, redirect_uri="http://localhost:9999/other"))
    settings = load("xpm_default")
    url = flow.start(settings, xpm.engine, requested_by="tester")
    assert requests.get(url, timeout=10).status_code == 400
    with pytest.raises(SignInRefused, match="refused the sign-in"):
        sign_in(url, USERS.admin)


def test_a_wrong_client_secret_is_invalid_client(xpm: Xpm, monkeypatch):
    url = flow.start(xpm.settings, xpm.engine, requested_by="tester")
    redirect = sign_in(url, USERS.admin)
    env = conn_env(xpm.srv).replace(xpm.srv.client_secret, "wrong-secret")
    monkeypatch.setenv("AIRFLOW_CONN_XPM_DEFAULT", env)
    with pytest.raises(XpmOAuthError, match="invalid_client"):
        flow.complete(load("xpm_default"), xpm.engine, redirect)


@pytest.mark.parametrize("user", [USERS.no_privilege, USERS.not_admin], ids=["no-privilege", "not-admin"])
def test_a_user_who_cannot_connect_xpm_is_told_what_to_set(xpm: Xpm, user):
    with pytest.raises(XpmOAuthError) as caught:
        xpm.connect(user)
    message = str(caught.value)
    assert "Authorise 3rd Party Full Access" in message
    assert "Business > Settings > Staff" in message


def test_with_two_practices_the_administrator_chooses(xpm: Xpm):
    with pytest.raises(XpmOAuthError, match="several XPM practices") as caught:
        xpm.connect(USERS.two_practices)
    assert "Second Street Partners" in str(caught.value)
    assert "wrong practice" in str(caught.value)

    offered = []

    def choose(found):
        offered.extend(p.name for p in found)
        return found[1].tenant_id

    result = xpm.connect(USERS.two_practices, choose=choose)
    assert sorted(offered) == ["Harbour View Accountants", "Second Street Partners"]
    assert xpm.row().tenant_id == result.tenant_id


def test_a_reconnect_to_another_practice_is_refused_unless_switching(xpm: Xpm):
    xpm.connect(USERS.two_practices, practice="Harbour View Accountants")
    with pytest.raises(XpmOAuthError, match="pinned to 'Harbour View Accountants'") as refused:
        xpm.connect(USERS.two_practices, practice="Second Street Partners")
    assert "Pat Partner signed in and chose the practice 'Second Street Partners'" in str(refused.value)
    assert str(refused.value).endswith("The current connection to Harbour View Accountants still works.")
    assert xpm.row().tenant_name == "Harbour View Accountants"
    with Session(xpm.engine) as s:
        entry = activity.recent(s, 1)[0]
    assert (entry.status, entry.category, entry.actor) == ("Failure", "Connection", "Pat Partner")
    assert entry.message == f"Sign-in refused: {refused.value}"

    result = xpm.connect(USERS.two_practices, practice="Second Street Partners", switch_practice=True)
    assert result.switched
    assert xpm.row().tenant_name == "Second Street Partners"
    with Session(xpm.engine) as s:
        assert activity.recent(s, 1)[0].message.startswith("XPM practice switched from Harbour View Accountants")


def test_a_practice_pinned_in_the_connection_is_enforced_on_first_connect(xpm: Xpm, monkeypatch):
    second = xpm.srv.sandbox.second.tenant_id
    monkeypatch.setenv("AIRFLOW_CONN_XPM_DEFAULT", conn_env(xpm.srv, tenant_id=second))
    xpm.settings = load("xpm_default")
    with pytest.raises(XpmOAuthError, match="pinned"):
        xpm.connect(USERS.admin)


def test_reconnecting_the_same_practice_logs_a_reset_and_revokes_the_old_grant(xpm: Xpm):
    xpm.connect()
    old = xpm.stored_tokens()
    result = xpm.connect()
    assert result.reconnected
    assert xpm.stored_tokens().refresh_token != old.refresh_token
    refused = requests.post(
        f"{xpm.srv.url}/connect/token",
        auth=(xpm.srv.client_id, xpm.srv.client_secret),
        data={"grant_type": "refresh_token", "refresh_token": old.refresh_token},
        timeout=10,
    )
    assert refused.json()["error"] == "invalid_grant"
    with Session(xpm.engine) as s:
        assert activity.recent(s, 1)[0].message == "XPM connection reset by Ada Admin"


def test_disconnect_revokes_and_forgets(xpm: Xpm):
    xpm.connect()
    hook = xpm.hook()
    name = flow.disconnect(xpm.settings, xpm.engine, access_token=hook.tokens.access_token(), requested_by="tester")
    assert name == "Harbour View Accountants"
    row = xpm.row()
    assert (row.status, row.grant_id) == (ConnectionStatus.DISCONNECTED.value, None)
    with Session(xpm.engine) as s:
        assert [g.token_ciphertext for g in s.scalars(select(XpmGrant))] == [None]  # forgotten here too
    grants = xpm.srv.sandbox.identity.grants.values()
    assert all(g.revoked for g in grants)
