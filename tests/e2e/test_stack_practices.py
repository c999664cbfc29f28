"""Three practices on the production stack (CeleryExecutor, two workers, Redis, PostgreSQL): the
partner connects Harbour View (`xpm_default`) and Second Street (`xpm_north`) with one sign-in, so they
share one token set; Third Avenue (`xpm_south`) is connected by its own owner. Their overnight syncs
run at once; the shared token is refreshed once; revoking the partner's grant stops exactly the two
practices on it, one email each, while the third runs on, green."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from sqlalchemy import select
from sqlalchemy.orm import Session

from tests.e2e.conftest import Airflow, loopback_inbox
from tests.e2e.test_stack import celery_stack
from tests.integration.conftest import Inbox
from tests.integration.sync.truth import differences
from xpm_devtools.stack import Stack
from xpm_sandbox.browser import sign_in
from xpm_sandbox.state import USERS
from xpm_sync.oauth.tokens import TokenSet, decrypt_tokens, encrypt_tokens
from xpm_sync.store.engine import get_engine
from xpm_sync.store.models import XpmConnection, XpmGrant

PRACTICES = {
    "xpm_north": {"alert_recipients": "north@practice.example"},
    "xpm_south": {"alert_recipients": "south@practice.example"},
}
OVERNIGHT = {
    "xpm_default": "xpm_overnight_sync",
    "xpm_north": "xpm_north_overnight_sync",
    "xpm_south": "xpm_south_overnight_sync",
}


@pytest.fixture(scope="module")
def inbox() -> Iterator[tuple[Inbox, int]]:
    yield from loopback_inbox()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, inbox: tuple[Inbox, int]) -> Iterator[tuple[Stack, Airflow]]:
    with celery_stack(
        tmp_path_factory.mktemp("stack-practices"), inbox[1], clients=30, jobs=80, practices=PRACTICES
    ) as (st, af):
        box = af.srv.sandbox
        _partner_connects_two(af, box.main.tenant_id, box.second.tenant_id)
        south = af.connect(USERS.third_practice, "--conn-id", "xpm_south", "--by", "tui", "--no-sync")
        assert south.returncode == 0, south.stderr
        for dag_id in OVERNIGHT.values():  # the scheduler's own runs of the day (before XPM was connected) end first
            _wait_idle(af, dag_id)
        yield st, af


def _partner_connects_two(af: Airflow, main: str, second: str) -> None:
    """The page's sign-in with its chooser, from this process against the stack's practice database: one
    consent, Harbour View for the default practice and Second Street connected as north."""
    from xpm_sync import practices
    from xpm_sync.oauth import flow
    from xpm_sync.oauth.connection_config import load

    keys = ("AIRFLOW_CONN_XPM_DEFAULT", "AIRFLOW_CONN_XPM_NORTH", "AIRFLOW__XPM_SYNC__PRACTICES")
    saved = {k: os.environ.get(k) for k in keys}
    os.environ.update({k: af.env[k] for k in keys})
    try:
        engine = get_engine(af.store_url)
        settings = load("xpm_default")
        with practices.using("xpm_default"):
            url = flow.start(settings, engine, requested_by="pat")
            with pytest.raises(flow.ChoiceNeeded) as held:
                flow.complete(settings, engine, sign_in(url, USERS.two_practices), hold_for_choice=True)
            result = flow.choose(settings, engine, held.value.state, main, acting_user=None, also={second: "xpm_north"})
        assert [conn_id for conn_id, _r in result.also] == ["xpm_north"], result.also_refused
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _wait_idle(af: Airflow, dag_id: str) -> None:
    import time

    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        runs = af.api("GET", f"/dags/{dag_id}/dagRuns").json().get("dag_runs", [])
        if all(r["state"] in ("success", "failed") for r in runs):
            return
        time.sleep(2)
    raise AssertionError(f"{dag_id} still has runs going")


def _rows(af: Airflow) -> dict[str, XpmConnection]:
    with Session(get_engine(af.store_url)) as session:
        found = session.scalars(select(XpmConnection).where(XpmConnection.active.is_(True))).all()
        return {r.conn_id: r for r in found}


def _expire(af: Airflow, grant_id: int) -> None:
    with Session(get_engine(af.store_url)) as session, session.begin():
        grant = session.get(XpmGrant, grant_id)
        assert grant is not None
        tokens = decrypt_tokens(grant.token_ciphertext or "")
        expired = TokenSet(
            tokens.access_token, tokens.refresh_token, tokens.expires_at.replace(year=2000), tokens.scope
        )
        grant.token_ciphertext = encrypt_tokens(expired)


def _all_at_once(af: Airflow) -> dict[str, str]:
    runs = {conn_id: af.trigger(dag_id) for conn_id, dag_id in OVERNIGHT.items()}
    return {conn_id: af.wait(OVERNIGHT[conn_id], run, timeout=420) for conn_id, run in runs.items()}


def test_three_overnight_syncs_at_once_each_fill_their_own_practice_with_one_refresh(
    stack: tuple[Stack, Airflow],
) -> None:
    _st, af = stack
    box = af.srv.sandbox
    rows = _rows(af)
    assert rows["xpm_default"].grant_id == rows["xpm_north"].grant_id != rows["xpm_south"].grant_id
    _expire(af, rows["xpm_default"].grant_id or 0)  # the shared token, expired as all three start
    refreshes = box.identity.refreshes
    requests.delete(f"{af.srv.url}/_sandbox/calls", timeout=10)
    assert _all_at_once(af) == {"xpm_default": "success", "xpm_north": "success", "xpm_south": "success"}

    engine = get_engine(af.store_url)
    assert differences(engine, box.main) == []
    assert differences(engine, box.second) == []
    assert differences(engine, box.third) == []
    assert box.identity.refreshes - refreshes == 1  # the shared grant's, once for both practices on it
    peaks = {t: box.gateway.peak_in_flight[t] for t in (box.main.tenant_id, box.second.tenant_id, box.third.tenant_id)}
    assert all(1 <= peak <= 5 for peak in peaks.values()), peaks
    calls = requests.get(f"{af.srv.url}/_sandbox/calls", timeout=10).json()
    assert "429" not in calls["by_status"], calls["by_status"]


def test_revoking_the_shared_grant_stops_exactly_its_practices_one_email_each(
    stack: tuple[Stack, Airflow], inbox: tuple[Inbox, int]
) -> None:
    _st, af = stack
    box = af.srv.sandbox
    box.identity.revoke_all(USERS.two_practices)
    rows = _rows(af)
    _expire(af, rows["xpm_default"].grant_id or 0)  # the next call refreshes, and meets invalid_grant
    before = len(inbox[0].messages)
    outcome = _all_at_once(af)
    assert outcome == {"xpm_default": "failed", "xpm_north": "failed", "xpm_south": "success"}
    assert {c: r.status for c, r in _rows(af).items()} == {
        "xpm_default": "needs_reconnect",
        "xpm_north": "needs_reconnect",
        "xpm_south": "connected",
    }
    sent: list[Any] = inbox[0].messages[before:]
    assert sorted(m["X-Envelope-To"] for m in sent) == ["admin@practice.example", "north@practice.example"]
    assert all(m["Subject"].startswith("XPM needs to reconnect") for m in sent)
