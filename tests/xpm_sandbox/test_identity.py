"""Xero identity rules, over real HTTP against the sandbox."""

from __future__ import annotations

import secrets

import pytest
import requests

from tests.xpm_sandbox.conftest import REDIRECT, Connected, authorize_url, connect, consent, control, token
from xpm_sandbox.server import SandboxServer
from xpm_sandbox.state import USERS


def _code(srv: SandboxServer, verifier: str, user: str = USERS.admin) -> str:
    return consent(srv, authorize_url(srv, verifier=verifier), user)["code"]


def _exchange(srv: SandboxServer, code: str, verifier: str | None, redirect: str = REDIRECT) -> requests.Response:
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect}
    if verifier is not None:
        form["code_verifier"] = verifier
    return token(srv, **form)


def _refresh(srv: SandboxServer, refresh_token: str) -> requests.Response:
    return token(srv, grant_type="refresh_token", refresh_token=refresh_token)


def _error(reply: requests.Response) -> tuple[int, str]:
    return reply.status_code, reply.json()["error"]


def test_the_code_flow_returns_xeros_token_set_and_the_state(srv):
    verifier = secrets.token_urlsafe(48)
    params = consent(srv, authorize_url(srv, verifier=verifier, state="abc123"))
    assert params["state"] == "abc123"
    reply = _exchange(srv, params["code"], verifier)
    assert reply.status_code == 200
    body = reply.json()
    assert set(body) == {"access_token", "refresh_token", "id_token", "expires_in", "token_type", "scope"}
    assert (body["expires_in"], body["token_type"]) == (1800, "Bearer")


def test_the_authorize_page_offers_consent(srv):
    reply = requests.get(authorize_url(srv, verifier="v" * 43), timeout=10)
    assert reply.status_code == 200
    assert "Authorise 3rd Party Full Access" in reply.text


@pytest.mark.parametrize(
    ("verifier", "why"),
    [
        pytest.param("wrong-verifier-" + "x" * 40, "mismatch", id="pkce-mismatch"),
        pytest.param(None, "missing", id="pkce-missing"),
    ],
)
def test_pkce_is_checked(srv, verifier, why):
    code = _code(srv, secrets.token_urlsafe(48))
    assert _error(_exchange(srv, code, verifier)) == (400, "invalid_grant")


def test_a_code_works_once(srv):
    verifier = secrets.token_urlsafe(48)
    code = _code(srv, verifier)
    assert _exchange(srv, code, verifier).status_code == 200
    assert _error(_exchange(srv, code, verifier)) == (400, "invalid_grant")


def test_a_code_expires_after_five_minutes(srv):
    verifier = secrets.token_urlsafe(48)
    code = _code(srv, verifier)
    control(srv, "clock", {"advance_seconds": 301})
    assert _error(_exchange(srv, code, verifier)) == (400, "invalid_grant")


def test_the_redirect_uri_must_match_exactly(srv):
    bad = authorize_url(srv, verifier="v" * 43, redirect=REDIRECT + "/")
    page = requests.get(bad, timeout=10)
    assert page.status_code == 400
    assert "redirect_uri" in page.text

    verifier = secrets.token_urlsafe(48)
    code = _code(srv, verifier)
    assert _error(_exchange(srv, code, verifier, redirect="http://127.0.0.1:8765/callback")) == (400, "invalid_grant")


def test_the_client_is_authenticated_by_basic_auth(srv):
    verifier = secrets.token_urlsafe(48)
    code = _code(srv, verifier)
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT, "code_verifier": verifier}
    assert _error(token(srv, secret="wrong", **form)) == (400, "invalid_client")
    assert _error(requests.post(f"{srv.url}/connect/token", data=form, timeout=10)) == (400, "invalid_client")
    assert _error(token(srv, grant_type="password")) == (400, "unsupported_grant_type")


def test_every_refresh_rotates_the_refresh_token(conn: Connected):
    first = _refresh(conn.srv, conn.tokens["refresh_token"]).json()
    second = _refresh(conn.srv, first["refresh_token"]).json()
    assert len({conn.tokens["refresh_token"], first["refresh_token"], second["refresh_token"]}) == 3
    assert conn.get("staff.api/list").status_code == 200


def test_a_rotated_token_may_be_replayed_once_within_the_grace(conn: Connected):
    old = conn.tokens["refresh_token"]
    lost_reply = _refresh(conn.srv, old).json()
    replay = _refresh(conn.srv, old)
    assert replay.status_code == 200
    # The pair from the lost reply is given up for the replayed one.
    assert _error(_refresh(conn.srv, lost_reply["refresh_token"])) == (400, "invalid_grant")
    assert _refresh(conn.srv, replay.json()["refresh_token"]).status_code == 200
    assert _error(_refresh(conn.srv, old)) == (400, "invalid_grant")


def test_a_rotated_token_is_dead_after_the_grace(conn: Connected):
    old = conn.tokens["refresh_token"]
    assert _refresh(conn.srv, old).status_code == 200
    control(conn.srv, "clock", {"advance_seconds": 31 * 60})
    assert _error(_refresh(conn.srv, old)) == (400, "invalid_grant")


def test_a_refresh_token_unused_for_sixty_days_expires(conn: Connected):
    control(conn.srv, "clock", {"advance_seconds": 59 * 86_400})
    still = _refresh(conn.srv, conn.tokens["refresh_token"])
    assert still.status_code == 200
    control(conn.srv, "clock", {"advance_seconds": 61 * 86_400})
    assert _error(_refresh(conn.srv, still.json()["refresh_token"])) == (400, "invalid_grant")


def test_idle_expiry_and_token_lifetime_are_configurable(conn: Connected):
    control(conn.srv, "identity", {"access_lifetime_seconds": 60, "refresh_idle_days": 1})
    fresh = _refresh(conn.srv, conn.tokens["refresh_token"]).json()
    assert fresh["expires_in"] == 60
    control(conn.srv, "clock", {"advance_seconds": 2 * 86_400})
    assert _error(_refresh(conn.srv, fresh["refresh_token"])) == (400, "invalid_grant")


def test_an_expired_access_token_gets_401_token_expired(conn: Connected):
    control(conn.srv, "clock", {"advance_seconds": 1801})
    reply = conn.get("staff.api/list")
    assert reply.status_code == 401
    assert reply.json()["Detail"].startswith("TokenExpired: token expired at ")
    assert reply.headers["www-authenticate"] == "Bearer error=invalid_token"


def test_revocation_ends_the_grant(conn: Connected):
    reply = requests.post(
        f"{conn.srv.url}/connect/revocation",
        auth=(conn.srv.client_id, conn.srv.client_secret),
        data={"token": conn.tokens["refresh_token"]},
        timeout=10,
    )
    assert reply.status_code == 200
    assert _error(_refresh(conn.srv, conn.tokens["refresh_token"])) == (400, "invalid_grant")
    assert conn.get("staff.api/list").status_code == 401


@pytest.mark.parametrize("user", [USERS.no_privilege, USERS.not_admin], ids=["no-3rd-party-privilege", "not-admin"])
def test_a_user_who_may_not_connect_gets_no_practice(srv, user):
    conn = connect(srv, user)
    assert conn.tenant_id == ""


def test_a_user_of_two_practices_sees_both_and_the_auth_event(srv):
    conn = connect(srv, USERS.two_practices)
    bearer = {"Authorization": f"Bearer {conn.tokens['access_token']}"}
    rows = requests.get(f"{srv.url}/connections", headers=bearer, timeout=10).json()
    assert {r["tenantName"] for r in rows} == {"Harbour View Accountants", "Second Street Partners"}
    assert {r["tenantType"] for r in rows} == {"PRACTICEMANAGER"}
    event = rows[0]["authEventId"]
    filtered = requests.get(f"{srv.url}/connections", params={"authEventId": event}, headers=bearer, timeout=10).json()
    assert len(filtered) == 2
    assert (
        requests.get(f"{srv.url}/connections", params={"authEventId": "other"}, headers=bearer, timeout=10).json() == []
    )

    second = next(r for r in rows if r["tenantName"] == "Second Street Partners")
    assert requests.delete(f"{srv.url}/connections/{second['id']}", headers=bearer, timeout=10).status_code == 204
    assert len(requests.get(f"{srv.url}/connections", headers=bearer, timeout=10).json()) == 1
    reply = requests.get(conn.api + "staff.api/list", headers=conn.headers(second["tenantId"]), timeout=10)
    assert reply.status_code == 403


def test_consent_can_pick_one_practice(srv):
    verifier = secrets.token_urlsafe(48)
    second = srv.sandbox.second.tenant_id
    code = consent(srv, authorize_url(srv, verifier=verifier), USERS.two_practices, [second])["code"]
    access = _exchange(srv, code, verifier).json()["access_token"]
    rows = requests.get(f"{srv.url}/connections", headers={"Authorization": f"Bearer {access}"}, timeout=10).json()
    assert [r["tenantId"] for r in rows] == [second]
