"""One sign-in, two practices: the partner signs in once on the default practice's page and connects
Harbour View there and Second Street to `xpm_north`; the third practice, `xpm_south`, is Third Avenue,
connected by its own owner. The two on the partner's consent share one token set (one grant): it is
refreshed once for both, revoking it stops exactly those two (one email each), and the third goes on."""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from tests.integration.conftest import Inbox, Xpm, conn_env
from tests.integration.web.conftest import Page
from xpm_sandbox.browser import sign_in
from xpm_sandbox.server import free_port
from xpm_sandbox.state import USERS
from xpm_sync import activity, practices
from xpm_sync.hooks.xpm import XpmHook
from xpm_sync.oauth import flow
from xpm_sync.oauth.connection_config import load
from xpm_sync.store import models as m

CALLBACK = "http://testserver/xpm/oauth/callback"


@dataclass
class Three:
    xpm: Xpm
    page: Page

    def rows(self) -> dict[str, m.XpmConnection]:
        with Session(self.xpm.engine) as session:
            found = session.scalars(select(m.XpmConnection).where(m.XpmConnection.active.is_(True))).all()
            return {r.conn_id: r for r in found}

    def hook(self, conn_id: str) -> XpmHook:
        from tenacity import wait_none

        return XpmHook(conn_id, store_url=self.xpm.store_url, backoff=wait_none(), sleep=self.xpm.sleep)


@pytest.fixture
def three(xpm: Xpm, page: Page, smtp: Inbox, monkeypatch: pytest.MonkeyPatch) -> Three:
    monkeypatch.setenv("AIRFLOW_CONN_XPM_NORTH", conn_env(xpm.srv, alert_recipients="north@practice.example"))
    monkeypatch.setenv("AIRFLOW_CONN_XPM_SOUTH", conn_env(xpm.srv, alert_recipients="south@practice.example"))
    monkeypatch.setenv("AIRFLOW__XPM_SYNC__PRACTICES", "xpm_default, xpm_north, xpm_south")
    monkeypatch.setenv("AIRFLOW__XPM_SYNC__AIRFLOW_API_URL", f"http://127.0.0.1:{free_port()}")  # no runs here
    xpm.srv.sandbox.identity.apps[xpm.srv.client_id].redirect_uris.append(CALLBACK)
    xpm.control("identity", {"access_lifetime_seconds": 30 * 86_400})
    sandbox = xpm.srv.sandbox

    # The partner, once, on the default practice's page: Harbour View here, Second Street as north.
    to_xero = page.post("/xpm/connect")
    callback = sign_in(to_xero.headers["location"], USERS.two_practices)
    chooser = page.get(callback.replace("http://testserver", ""), follow_redirects=False)
    assert chooser.status_code == 200, chooser.text[-500:]
    assert f'name="also:{sandbox.second.tenant_id}"' in chooser.text
    assert '<option value="xpm_north">connect as north</option>' in chooser.text
    state = re.search(r'name="state" value="([^"]+)"', chooser.text).group(1)  # type: ignore[union-attr]
    form = {"state": state, "tenant_id": sandbox.main.tenant_id, f"also:{sandbox.second.tenant_id}": "xpm_north"}
    done = page.post("/xpm/oauth/choose", form)
    assert done.status_code == 303, done.text[-500:]
    assert "notice=connected" in done.headers["location"]

    # The third practice's own owner, from the command line's flow, acting for south.
    with practices.using("south"):
        south = load("xpm_south")
        url = flow.start(south, xpm.engine, requested_by="tester")
        flow.complete(south, xpm.engine, sign_in(url, USERS.third_practice))
    return Three(xpm, page)


def test_one_sign_in_connects_two_practices_to_one_grant(three: Three) -> None:
    rows = three.rows()
    sandbox = three.xpm.srv.sandbox
    assert {c: r.tenant_id for c, r in rows.items()} == {
        "xpm_default": sandbox.main.tenant_id,
        "xpm_north": sandbox.second.tenant_id,
        "xpm_south": sandbox.third.tenant_id,
    }
    assert rows["xpm_default"].grant_id == rows["xpm_north"].grant_id != rows["xpm_south"].grant_id
    with Session(three.xpm.engine) as session:
        assert len(session.scalars(select(m.XpmGrant).where(m.XpmGrant.token_ciphertext.is_not(None))).all()) == 2
    # Each practice reads its own XPM practice through the shared token set.
    assert {s["uuid"] for s in three.hook("xpm_north").staff()} == set(sandbox.second.staff)
    assert {s["uuid"] for s in three.hook("xpm_default").staff()} == set(sandbox.main.staff)
    assert {s["uuid"] for s in three.hook("xpm_south").staff()} == set(sandbox.third.staff)
    # Each practice's Practice Activity says it was connected.
    for name, practice in (("default", sandbox.main), ("north", sandbox.second), ("south", sandbox.third)):
        with practices.using(name), Session(three.xpm.engine) as session:
            assert any(f"XPM connected to {practice.name}" in e.message for e in activity.recent(session, 10))


def test_the_shared_token_is_refreshed_once_for_both_practices(three: Three) -> None:
    rows = three.rows()
    with Session(three.xpm.engine) as session:
        grant = session.get(m.XpmGrant, rows["xpm_default"].grant_id)
        assert grant is not None
        from xpm_sync.oauth.tokens import TokenSet, decrypt_tokens, encrypt_tokens

        tokens = decrypt_tokens(grant.token_ciphertext or "")
    expired = TokenSet(tokens.access_token, tokens.refresh_token, tokens.expires_at.replace(year=2000), tokens.scope)
    with Session(three.xpm.engine) as session, session.begin():
        stored = session.get(m.XpmGrant, rows["xpm_default"].grant_id)
        assert stored is not None
        stored.token_ciphertext = encrypt_tokens(expired)
    before = three.xpm.refreshes
    errors: list[BaseException] = []

    def read(conn_id: str) -> None:
        try:
            list(three.hook(conn_id).staff())
        except BaseException as exc:  # noqa: BLE001 - kept for the assertion below
            errors.append(exc)

    workers = [threading.Thread(target=read, args=(c,)) for c in ("xpm_default", "xpm_north") * 3]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    assert errors == []
    assert three.xpm.refreshes == before + 1  # six workers, two practices, one grant: one refresh


def test_revoking_the_shared_grant_stops_exactly_its_practices_one_email_each(three: Three, smtp: Inbox) -> None:
    from xpm_sync.errors import XpmReconnectRequired

    three.xpm.control("revoke", {"user": USERS.two_practices})
    three.xpm.control("clock", {"advance_seconds": 31 * 86_400})  # the access token is gone too
    with pytest.raises(XpmReconnectRequired):
        list(three.hook("xpm_north").staff())
    rows = three.rows()
    assert {c: r.status for c, r in rows.items()} == {
        "xpm_default": "needs_reconnect",
        "xpm_north": "needs_reconnect",
        "xpm_south": "connected",
    }
    sent = sorted(message["X-Envelope-To"] for message in smtp.messages)
    assert sent == ["admin@practice.example, it@practice.example", "north@practice.example"]
    assert all(message["Subject"].startswith("XPM needs to reconnect") for message in smtp.messages)
    # The third practice goes on: its own grant, refreshed as it needs.
    assert {s["uuid"] for s in three.hook("xpm_south").staff()} == set(three.xpm.srv.sandbox.third.staff)
    # A second failure sends nothing more.
    with pytest.raises(XpmReconnectRequired):
        list(three.hook("xpm_default").staff())
    assert len(smtp.messages) == 2
    for name in ("north", "default"):
        with practices.using(name), Session(three.xpm.engine) as session:
            needed = activity.recent(session, 10, status="Action Required")
        # The outage's entry, newest, over the connect's (Airflow was out of reach for its full sync).
        assert needed[0].message.startswith("There is a problem with your XPM integration and authentication failed")
        assert needed[1].message.startswith("XPM was connected, but Airflow did not start the full sync"), name


def test_disconnecting_one_practice_on_a_shared_grant_leaves_the_other_connected(three: Three) -> None:
    north = load("xpm_north")
    with practices.using("north"):
        hook = three.hook("xpm_north")
        assert flow.disconnect(north, three.xpm.engine, access_token=hook.tokens.access_token(), requested_by="t")
    rows = three.rows()
    assert "xpm_north" not in rows or rows["xpm_north"].status == "disconnected"
    assert {s["uuid"] for s in three.hook("xpm_default").staff()} == set(three.xpm.srv.sandbox.main.staff)
    partner_grants = [g for g in three.xpm.srv.sandbox.identity.grants.values() if g.user.email == USERS.two_practices]
    assert partner_grants
    assert not any(g.revoked for g in partner_grants)
