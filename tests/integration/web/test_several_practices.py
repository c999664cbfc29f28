"""Several practices on one deployment: two `xpm` connections, `xpm_default` (the sandbox's Harbour View)
and `xpm_north` (its Second Street), both connected by the partner who may sign in to both. Each has its
own DAGs, pool, Assets, settings and Practice Activity, syncs into its own rows, and nothing one
practice's page, JSON API or command line shows comes from the other."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from tests.conftest import dag_of
from tests.integration.conftest import Xpm, conn_env
from tests.integration.web.conftest import Page
from xpm_sandbox.browser import sign_in
from xpm_sandbox.state import USERS
from xpm_sync import activity, practices, settings
from xpm_sync.errors import XpmOAuthError
from xpm_sync.oauth import flow
from xpm_sync.oauth.connection_config import load
from xpm_sync.store import models as m
from xpm_sync.store.engine import session_scope

NORTH = {"practice_name": "North branch", "overnight_cron": "30 21 * * *", "timezone": "Pacific/Auckland"}


@dataclass
class Two:
    xpm: Xpm
    north: Any  # the north practice's XpmSettings

    @property
    def main(self) -> Any:
        return self.xpm.srv.sandbox.main

    @property
    def second(self) -> Any:
        return self.xpm.srv.sandbox.second


def _connect(xpm: Xpm, conn_settings: Any, tenant_id: str) -> flow.ConnectResult:
    url = flow.start(conn_settings, xpm.engine, requested_by="tester")
    return flow.complete(conn_settings, xpm.engine, sign_in(url, USERS.two_practices), practice=tenant_id)


@pytest.fixture
def two(xpm: Xpm, airflow_db: Any, monkeypatch: pytest.MonkeyPatch) -> Two:
    monkeypatch.setenv("AIRFLOW_CONN_XPM_NORTH", conn_env(xpm.srv, **NORTH))
    monkeypatch.setenv("AIRFLOW__XPM_SYNC__PRACTICES", "xpm_default, xpm_north")
    xpm.control("identity", {"access_lifetime_seconds": 30 * 86_400})
    north = load("xpm_north")
    _connect(xpm, xpm.settings, xpm.srv.sandbox.main.tenant_id)
    with practices.using("north"):
        _connect(xpm, north, xpm.srv.sandbox.second.tenant_id)
    return Two(xpm, north)


def test_each_practice_has_its_own_dags_pool_assets_and_schedule(two: Two) -> None:
    overnight = dag_of("xpm_overnight_sync")
    north = dag_of("xpm_overnight_sync", "xpm_north_overnight_sync")
    assert overnight.dag_id == "xpm_overnight_sync"  # a single-practice install's id stays
    assert north.task_dict["clients"].pool == "xpm_api_north"
    assert overnight.task_dict["clients"].pool == "xpm_api"
    assert [o.uri for o in north.task_dict["clients"].outlets] == ["xpm://north/clients"]
    assert [o.uri for o in overnight.task_dict["clients"].outlets] == ["xpm://practice/clients"]
    # The north practice's own time and zone, from its connection's extra.
    assert north.timetable.expression == "30 21 * * *"
    assert str(north.timetable.timezone) == "Pacific/Auckland"
    assert overnight.timetable.expression == "0 19 * * *"
    assert "practice:north" in north.tags
    for name in ("xpm_manual_sync", "xpm_push", "xpm_push_decisions", "xpm_connection_health", "xpm_morning_check"):
        built = load_all(name)
        assert set(built) == {name, name.replace("xpm_", "xpm_north_", 1)}, name


def load_all(name: str) -> dict[str, Any]:
    from tests.conftest import REPO, load_dag_file

    return dict(load_dag_file(REPO / "dags" / f"{name}.py", name).DAGS)


def test_each_manual_sync_fills_only_its_own_practice(two: Two) -> None:
    conf = {"entities": ["staff", "clients", "jobs"], "full": True}
    assert dag_of("xpm_manual_sync", "xpm_north_manual_sync").test(run_conf=conf).state == "success"
    with Session(two.xpm.engine) as session:
        tenants = set(session.scalars(select(m.Client.tenant_id)))
        north_clients = set(session.scalars(select(m.Client.uuid)))
    assert tenants == {two.second.tenant_id}  # the north run wrote the north practice's rows only
    assert north_clients == set(two.second.clients)
    assert dag_of("xpm_manual_sync").test(run_conf=conf).state == "success"
    with Session(two.xpm.engine) as session:
        for practice in (two.main, two.second):
            stored = set(session.scalars(select(m.Client.uuid).where(m.Client.tenant_id == practice.tenant_id)))
            assert stored == set(practice.clients), practice.name
        entries = session.scalars(select(m.PracticeActivity)).all()
        logs = {name: [e.message for e in entries if e.conn_id == name] for name in ("xpm_default", "xpm_north")}
    assert any("Manual full sync" in line for line in logs["xpm_north"])
    assert any("Manual full sync" in line for line in logs["xpm_default"])
    assert all("Second Street" not in line for line in logs["xpm_default"])
    assert all("Harbour View" not in line for line in logs["xpm_north"])


def test_a_practice_connected_here_is_refused_to_another_entry(two: Two) -> None:
    """The wrong-practice pick: Harbour View is xpm_default's; connecting it to a third entry is refused."""
    import os

    os.environ["AIRFLOW_CONN_XPM_SOUTH"] = conn_env(two.xpm.srv)
    try:
        south = load("xpm_south")
        taken = "already connected here as the practice of the connection 'xpm_default'"
        with pytest.raises(XpmOAuthError, match=taken), practices.using(practices.for_connection("xpm_south")):
            _connect(two.xpm, south, two.main.tenant_id)
    finally:
        del os.environ["AIRFLOW_CONN_XPM_SOUTH"]
    with Session(two.xpm.engine) as session:
        rows = session.scalars(select(m.XpmConnection).where(m.XpmConnection.conn_id == "xpm_south")).all()
    assert rows == []  # nothing stored for the refused pick


def test_settings_and_activity_belong_to_their_practice(two: Two) -> None:
    with practices.using("north"), session_scope(two.xpm.engine) as session:
        settings.change(session, "maintain_jobs_locally", "on", actor="tester")
    with session_scope(two.xpm.engine) as session:
        with practices.using("north"):
            assert settings.load(session).maintain_jobs_locally is True
            north_log = [e.message for e in activity.recent(session, 50)]
        with practices.using(None):
            assert settings.load(session).maintain_jobs_locally is False
            default_log = [e.message for e in activity.recent(session, 50)]
    assert "Maintain jobs locally turned on" in north_log
    assert "Maintain jobs locally turned on" not in default_log


def test_no_row_of_one_practice_shows_on_the_others_page_api_or_command_line(two: Two, page: Page) -> None:
    conf = {"entities": ["clients", "jobs"], "full": True}
    assert dag_of("xpm_manual_sync").test(run_conf=conf).state == "success"
    assert dag_of("xpm_manual_sync", "xpm_north_manual_sync").test(run_conf=conf).state == "success"
    # XPM numbers each practice's jobs on its own: J000001 is in both, with different clients.
    shared = next(n for n in two.second.jobs if n in two.main.jobs)
    only_main = next(n for n in two.main.jobs if n not in two.second.jobs)
    second_client = two.second.clients[two.second.jobs[shared].client_uuid].name
    main_client = two.main.clients[two.main.jobs[shared].client_uuid].name
    assert second_client != main_client

    # The page: each practice's own, with the switcher naming both.
    home = page.get("/xpm/")
    north = page.get("/xpm/practices/north/")
    assert home.status_code == north.status_code == 200
    assert "Harbour View Accountants" in home.text
    assert "North branch" in home.text
    assert 'href="/xpm/practices/north/"' in home.text  # the switcher's link
    assert "North branch: Second Street Partners" in north.text
    assert "Harbour View Accountants: " not in north.text
    # Forms and the JSON API on north's page stay with north.
    assert 'action="http://testserver/xpm/practices/north/settings"' in north.text
    assert 'data-api-base="http://testserver/xpm/practices/north/api/v1"' in north.text

    # The JSON API: jobs and activity of the practice in the path only.
    mine = page.get(f"/xpm/practices/north/api/v1/jobs/{shared}")
    assert mine.status_code == 200
    assert mine.json()["client_name"] == second_client
    assert page.get(f"/xpm/api/v1/jobs/{shared}").json()["client_name"] == main_client
    assert page.get(f"/xpm/practices/north/api/v1/jobs/{only_main}").status_code == 404
    found = page.get("/xpm/practices/north/api/v1/jobs", params={"limit": 200}).json()["jobs"]
    assert len(found) == len(two.second.jobs)
    assert {j["client_name"] for j in found} <= {c.name for c in two.second.clients.values()}
    status = page.get("/xpm/practices/north/api/v1/status").json()
    assert status["practice"] == "Second Street Partners"
    north_activity = page.get("/xpm/practices/north/api/v1/activity").json()["entries"]
    assert north_activity
    assert all("Harbour View" not in e["message"] for e in north_activity)
    unknown = page.get("/xpm/practices/west/")
    assert unknown.status_code == 404
    assert "Practices: default, north" in unknown.json()["detail"]

    # The command line: `--practice north` reads north's only.
    def cli(*args: str) -> Any:
        done = subprocess.run(
            [sys.executable, "-m", "xpm_sync.cli", *args], capture_output=True, text=True, timeout=120, check=False
        )
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    assert cli("--practice", "north", "status", "--json")["practice"] == "Second Street Partners"
    assert cli("status", "--json")["practice"] == "Harbour View Accountants"
    lines = [e["message"] for e in cli("--practice", "north", "activity", "--json", "--limit", "200")]
    assert lines
    assert all("Harbour View" not in line for line in lines)
    west = [sys.executable, "-m", "xpm_sync.cli", "--practice", "west", "status"]
    refused = subprocess.run(west, capture_output=True, text=True, timeout=120, check=False)
    assert refused.returncode != 0
    assert "There is no practice 'west'. Practices: default, north." in refused.stderr


def test_a_single_practice_database_upgrades_in_place(xpm: Xpm) -> None:
    """Settings and Practice Activity written before practices existed belong to the one practice after."""
    from xpm_sync.store import migrate

    migrate.downgrade(xpm.engine, "0011")
    with xpm.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO practice_settings (name, value, updated_at) "
                "VALUES ('read_costs', 'false', CURRENT_TIMESTAMP)"
            )
        )
        conn.execute(
            text(
                "INSERT INTO practice_activity (occurred_at, status, category, message) "
                "VALUES (CURRENT_TIMESTAMP, 'Success', 'Settings', 'Read costs from XPM turned off')"
            )
        )
    migrate.upgrade(xpm.engine)
    with session_scope(xpm.engine) as session:
        assert settings.load(session).read_costs is False
        assert [e.message for e in activity.recent(session, 5)] == ["Read costs from XPM turned off"]
        assert session.scalar(select(m.PracticeSetting.conn_id)) == "xpm_default"


def test_an_outage_in_one_practice_leaves_the_other_running(two: Two) -> None:
    """North's XPM needs reconnecting (as after an `invalid_grant`): its runs are red and call nothing;
    the default practice's run goes on, green."""
    from xpm_sync.store.models import ConnectionStatus

    with session_scope(two.xpm.engine) as session:
        row = session.scalars(
            select(m.XpmConnection).where(m.XpmConnection.conn_id == "xpm_north", m.XpmConnection.active.is_(True))
        ).one()
        row.status = ConnectionStatus.NEEDS_RECONNECT.value
        row.last_error = "invalid_grant"
    before = len(two.xpm.srv.sandbox.gateway.calls)
    conf = {"entities": ["clients"], "full": True}
    assert dag_of("xpm_manual_sync", "xpm_north_manual_sync").test(run_conf=conf).state == "failed"
    assert len(two.xpm.srv.sandbox.gateway.calls) == before  # north's run called nothing
    assert dag_of("xpm_manual_sync").test(run_conf=conf).state == "success"
    with session_scope(two.xpm.engine) as session, practices.using("north"):
        assert any(e.status == "Action Required" for e in activity.recent(session, 10))
    with session_scope(two.xpm.engine) as session:
        assert [e for e in activity.recent(session, 50) if e.status == "Action Required"] == []


def test_a_new_practice_is_connected_from_its_own_page_and_a_wrong_pick_is_refused(
    xpm: Xpm, page: Page, monkeypatch: pytest.MonkeyPatch
) -> None:
    """North's page: Connect XPM, the partner's sign-in reaches two XPM practices, the chooser (on north's
    address) takes Second Street for north. The default entry then picking Second Street is refused."""
    from xpm_sandbox.server import free_port

    monkeypatch.setenv("AIRFLOW_CONN_XPM_NORTH", conn_env(xpm.srv, **NORTH))
    monkeypatch.setenv("AIRFLOW__XPM_SYNC__PRACTICES", "xpm_default, xpm_north")
    monkeypatch.setenv("AIRFLOW__XPM_SYNC__AIRFLOW_API_URL", f"http://127.0.0.1:{free_port()}")  # no run here
    xpm.srv.sandbox.identity.apps[xpm.srv.client_id].redirect_uris.append("http://testserver/xpm/oauth/callback")
    second = xpm.srv.sandbox.second

    def signed_in(practice_path: str) -> Any:
        to_xero = page.post(f"{practice_path}/connect")
        assert to_xero.status_code == 303, to_xero.text[-500:]
        assert "redirect_uri=http%3A%2F%2Ftestserver%2Fxpm%2Foauth%2Fcallback" in to_xero.headers["location"]
        callback = sign_in(to_xero.headers["location"], USERS.two_practices)
        return page.get(callback.replace("http://testserver", ""), follow_redirects=False)

    chooser = signed_in("/xpm/practices/north")
    assert chooser.status_code == 200, chooser.text[-500:]
    assert 'action="http://testserver/xpm/practices/north/oauth/choose"' in chooser.text
    assert "Second Street Partners" in chooser.text
    assert "Harbour View Accountants" in chooser.text
    state = re.search(r'name="state" value="([^"]+)"', chooser.text).group(1)  # type: ignore[union-attr]
    chosen = page.post("/xpm/practices/north/oauth/choose", {"state": state, "tenant_id": second.tenant_id})
    assert chosen.status_code == 303, chosen.text[-500:]
    assert chosen.headers["location"].startswith("/plugin/xpm/xpm/practices/north/?notice=connected-no-sync")
    with Session(xpm.engine) as session:
        rows = session.scalars(select(m.XpmConnection).where(m.XpmConnection.active.is_(True))).all()
    assert [(r.conn_id, r.tenant_id) for r in rows] == [("xpm_north", second.tenant_id)]
    assert "North branch: Second Street Partners" in page.get("/xpm/practices/north/").text

    # The default entry: the same partner picks Second Street again, which north holds.
    chooser = signed_in("/xpm")
    state = re.search(r'name="state" value="([^"]+)"', chooser.text).group(1)  # type: ignore[union-attr]
    refused = page.post("/xpm/oauth/choose", {"state": state, "tenant_id": second.tenant_id})
    assert refused.status_code == 400
    assert "already connected here as the practice of the connection &#39;xpm_north&#39;" in refused.text
    with Session(xpm.engine) as session:
        assert session.scalars(select(m.XpmConnection).where(m.XpmConnection.conn_id == "xpm_default")).all() == []


def test_the_apps_calls_a_minute_are_counted_over_every_practice(two: Two, monkeypatch: pytest.MonkeyPatch) -> None:
    """XPM's limit per app (10,000 calls a minute; 10 here): the default practice's calls, written to the
    practice database, make the north practice's worker wait for the next minute once ten are made."""
    monkeypatch.setenv("AIRFLOW__XPM_SYNC__APP_CALLS_PER_MINUTE", "10")
    xpm = two.xpm
    xpm.control("clock", {"advance_seconds": 60 - xpm.now() % 60 + 1})  # a fresh minute, just begun
    default = xpm.hook()
    for _ in range(6):
        assert list(default.staff())
    default.flush_usage()
    north = xpm.hook(xpm_conn_id="xpm_north")
    xpm.slept.clear()
    for _ in range(4):
        assert list(north.staff())
    assert xpm.slept == []  # ten calls in the minute over both practices, none waited
    assert list(north.staff())
    assert len(xpm.slept) == 1  # the eleventh waited for the next minute
    assert 1 < xpm.slept[0] <= 61
    north.flush_usage()
    with Session(xpm.engine) as session:
        assert sum(session.scalars(select(m.AppMinute.calls))) == 11
