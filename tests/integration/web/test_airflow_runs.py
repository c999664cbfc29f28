"""The XPM page asks Airflow through its public REST API, as the signed-in person: "Sync now" and
"Push now" start runs, the page and the JSON API read their states, Practice Activity links the
runs, and a recorded change tells xpm_push. Airflow's own app serves that API over real HTTP from
the test process (`airflow_server`); what each role may do is Airflow's rule, not the page's."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from sqlalchemy.orm import Session

from tests.integration.conftest import AirflowServer
from tests.integration.web.conftest import Page
from tests.integration.web.test_json_api import _planned, call, practice  # noqa: F401 - the fixture
from xpm_sandbox.browser import sign_in
from xpm_sandbox.server import free_port
from xpm_sandbox.state import USERS
from xpm_sync import activity, airflow_runs
from xpm_sync.errors import XpmConfigError
from xpm_sync.store.models import ActivityStatus


def rest(server: AirflowServer, method: str, path: str, *, user: str = "admin", **kwargs: Any) -> Any:
    """Airflow's REST API, asked directly (as the test's own eyes on Airflow)."""
    reply = requests.request(
        method,
        f"{server.url}/api/v2/{path}",
        headers={"Authorization": f"Bearer {server.token(user)}"},
        timeout=30,
        **kwargs,
    )
    reply.raise_for_status()
    return reply.json()


def paused(server: AirflowServer, dag_id: str, value: bool | None = None) -> bool:
    if value is not None:
        rest(server, "PATCH", f"dags/{dag_id}", json={"is_paused": value})
    return bool(rest(server, "GET", f"dags/{dag_id}")["is_paused"])


def runs(server: AirflowServer, dag_id: str) -> list[dict[str, Any]]:
    return list(rest(server, "GET", f"dags/{dag_id}/dagRuns", params={"order_by": "-id", "limit": 100})["dag_runs"])


@pytest.fixture
def airflow(airflow_server: AirflowServer, airflow_dags: None) -> Iterator[AirflowServer]:
    """Airflow knows the XPM DAGs, all unpaused, as an installation leaves them."""
    for dag_id in ("xpm_push", "xpm_manual_sync"):
        paused(airflow_server, dag_id, False)
    yield airflow_server
    for dag_id in ("xpm_push", "xpm_manual_sync"):
        paused(airflow_server, dag_id, False)


def test_sync_now_starts_a_run_as_the_person_and_unpauses_a_paused_manual_sync(page: Page, airflow: AirflowServer):
    page.xpm.connect()
    assert paused(airflow, "xpm_manual_sync", True) is True
    reply = call(page, "POST", "/syncs", user="user", json={"entities": ["clients", "staff"], "full": True})
    assert reply.status_code == 202, reply.text
    started = reply.json()
    assert (started["dag_id"], started["state"]) == ("xpm_manual_sync", "queued")

    run = rest(airflow, "GET", f"dags/xpm_manual_sync/dagRuns/{started['run_id']}")
    assert run["conf"] == {"entities": ["staff", "clients"], "full": True}  # the catalog's order
    assert run["note"] == "Staff, Clients: full sync by user"
    assert (run["triggering_user_name"], run["triggered_by"]) == ("user", "rest_api")
    assert paused(airflow, "xpm_manual_sync") is False  # a person asked for a sync: it may run

    # Its state, read through the JSON API by someone who may only read.
    state = call(page, "GET", f"/syncs/{started['run_id']}", user="viewer")
    assert state.status_code == 200, state.text
    assert state.json()["state"] == "queued"
    assert state.json()["url"].endswith(f"/dags/xpm_manual_sync/runs/{started['run_id']}")


def test_push_now_refuses_a_paused_push_and_starts_nothing(page: Page, airflow: AirflowServer):
    page.xpm.connect()
    paused(airflow, "xpm_push", True)
    before = runs(airflow, "xpm_push")
    reply = call(page, "POST", "/pushes", user="op")
    assert reply.status_code == 409
    assert reply.json()["detail"].startswith("xpm_push is paused in Airflow, so nothing was started")
    assert runs(airflow, "xpm_push") == before
    assert paused(airflow, "xpm_push") is True  # a person paused it; the page leaves it so

    paused(airflow, "xpm_push", False)
    reply = call(page, "POST", "/pushes", user="op")
    assert reply.status_code == 202, reply.text
    newest = runs(airflow, "xpm_push")[0]
    assert (newest["dag_run_id"], newest["note"], newest["triggering_user_name"]) == (
        reply.json()["run_id"],
        "Push by op",
        "op",
    )


def test_a_change_tells_xpm_push_as_the_person_who_made_it(practice: Page, airflow: AirflowServer):  # noqa: F811
    def record(user: str, state: str) -> Any:
        job = _planned(practice)
        reply = call(practice, "POST", "/changes/job-state", user=user, json={"job_number": job.number, "state": state})
        assert reply.status_code == 201, reply.text
        return reply.json()["push"]

    def events() -> list[dict[str, Any]]:
        found = rest(airflow, "GET", "assets/events", params={"order_by": "-timestamp", "limit": 100})["asset_events"]
        return [e for e in found if e["uri"] == "xpm://practice/outbox"]

    # An operator may post asset events: the outbox Asset gets one, saying who.
    before_events, before_runs = len(events()), len(runs(airflow, "xpm_push"))
    assert record("op", "Review") == airflow_runs.TOLD
    assert len(events()) == before_events + 1
    assert events()[0]["extra"] == {"from": "op", "from_rest_api": True}  # Airflow marks what its API posted
    assert len(runs(airflow, "xpm_push")) == before_runs

    # A "user" may start runs but not post asset events (Airflow's rule): xpm_push is started instead.
    assert record("user", "In Progress") == airflow_runs.TOLD
    assert len(events()) == before_events + 1
    newest = runs(airflow, "xpm_push")[0]
    assert (newest["note"], newest["triggering_user_name"]) == ("A change recorded by user", "user")

    # xpm_push paused: nothing is told or started, and the answer says why the change waits.
    paused(airflow, "xpm_push", True)
    count = len(runs(airflow, "xpm_push"))
    assert record("op", "Planned") == airflow_runs.PUSH_PAUSED
    assert (len(events()), len(runs(airflow, "xpm_push"))) == (before_events + 1, count)


def test_activity_links_the_runs_airflow_knows_and_shows_them_plainly_when_it_does_not_answer(
    page: Page, airflow: AirflowServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
):
    run_id = airflow.api("admin").trigger("xpm_manual_sync", {"entities": ["staff"]}, "a test run")
    with Session(page.xpm.engine) as s, s.begin():
        activity.record(s, ActivityStatus.SUCCESS, "Sync", "A sync Airflow ran", details={"run_id": run_id})
        activity.record(s, ActivityStatus.SUCCESS, "Sync", "A sync from a shell", details={"run_id": "cli__shell-1"})
    link = f"/dags/xpm_manual_sync/runs/{run_id}"
    shown = page.get("/xpm/", user="viewer")
    assert shown.status_code == 200
    assert link in shown.text
    assert "/runs/cli__shell-1" not in shown.text  # Airflow does not know it: no link to nowhere

    # Airflow's API out of reach: the page still shows the activity, unlinked, and says why in the log.
    monkeypatch.setenv("AIRFLOW__XPM_SYNC__AIRFLOW_API_URL", f"http://127.0.0.1:{free_port()}")
    with caplog.at_level(logging.WARNING, logger="xpm_sync.web.views"):
        shown = page.get("/xpm/", user="viewer")
    assert shown.status_code == 200
    assert "A sync Airflow ran" in shown.text
    assert link not in shown.text
    assert "Practice Activity is shown without links to its runs: Airflow's API at http://127.0.0.1:" in caplog.text
    assert page.token("viewer") not in caplog.text
    state = call(page, "GET", f"/syncs/{run_id}", user="viewer")
    assert state.status_code == 502
    assert "set [xpm_sync] airflow_api_url" in state.json()["detail"]


def test_the_command_line_starts_runs_through_airflows_own_command_line(airflow: AirflowServer):
    """`xpm-sync` in a shell has no signed-in person: Airflow's command line starts the run."""
    shell = airflow_runs.CommandLine()
    paused(airflow, "xpm_manual_sync", True)
    run_id = airflow_runs.start(shell, "xpm_manual_sync", {"entities": ["clients"], "full": True}, note="unused")
    run = rest(airflow, "GET", f"dags/xpm_manual_sync/dagRuns/{run_id}")
    assert (run["conf"], run["state"], run["run_type"]) == ({"entities": ["clients"], "full": True}, "queued", "manual")
    assert paused(airflow, "xpm_manual_sync") is False

    before = len(runs(airflow, "xpm_push"))
    assert airflow_runs.notify_push(shell, "xpm-sync") == airflow_runs.TOLD
    assert len(runs(airflow, "xpm_push")) == before + 1
    paused(airflow, "xpm_push", True)
    assert airflow_runs.notify_push(shell, "xpm-sync") == airflow_runs.PUSH_PAUSED
    with pytest.raises(XpmConfigError, match="xpm_push is paused in Airflow"):
        airflow_runs.start(shell, "xpm_push", {}, note="Push now", unpause=False)
    assert len(runs(airflow, "xpm_push")) == before + 1
    with pytest.raises(XpmConfigError, match="Airflow has not loaded the DAG xpm_nothing"):
        airflow_runs.start(shell, "xpm_nothing", {}, note="")


def test_a_connect_whose_full_sync_airflow_does_not_start_is_connected_and_says_why(
    page: Page, airflow: AirflowServer, monkeypatch: pytest.MonkeyPatch
):
    srv = page.xpm.srv
    srv.sandbox.identity.apps[srv.client_id].redirect_uris.append("http://testserver/xpm/oauth/callback")
    monkeypatch.setenv("AIRFLOW__XPM_SYNC__AIRFLOW_API_URL", f"http://127.0.0.1:{free_port()}")
    before = len(runs(airflow, "xpm_manual_sync"))
    to_xero = page.post("/xpm/connect")
    assert to_xero.status_code == 303, to_xero.text[-500:]
    callback = sign_in(to_xero.headers["location"], USERS.admin)
    back = page.get(callback.replace("http://testserver", ""), follow_redirects=False)
    assert back.status_code == 303, back.text[-500:]
    assert "notice=connected-no-sync" in back.headers["location"]
    assert "run_id" not in back.headers["location"]

    assert page.xpm.row().status == "connected"
    with Session(page.xpm.engine) as s:
        entry = activity.recent(s, 1)[0]
    assert (entry.status, entry.actor) == ("Action Required", "admin")
    assert entry.message.startswith("XPM was connected, but Airflow did not start the full sync of ")
    assert "Airflow's API at http://127.0.0.1:" in entry.message
    assert entry.message.endswith("start it with Sync now, All, full.")
    assert len(runs(airflow, "xpm_manual_sync")) == before
    shown = page.get("/xpm/?notice=connected-no-sync")
    assert "XPM is connected, but Airflow did not start the full sync: Practice Activity says why." in shown.text


def test_an_address_that_is_not_airflows_api_is_named_not_a_crash(page: Page, monkeypatch: pytest.MonkeyPatch):
    """A proxy's sign-in page where Airflow's API should be: a clear error, and the page still shows."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class NotAirflow(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the standard library's name
            body = b"<html><body>Sign in to the proxy</body></html>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), NotAirflow)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        proxy = f"http://127.0.0.1:{server.server_address[1]}"
        with pytest.raises(airflow_runs.AirflowUnreachable, match=f"{proxy} did not answer as Airflow's API does"):
            airflow_runs.RestApi("a-token", base=proxy).run_state("xpm_manual_sync", "manual__1")
        monkeypatch.setenv("AIRFLOW__XPM_SYNC__AIRFLOW_API_URL", proxy)
        assert page.get("/xpm/", user="viewer").status_code == 200
        state = call(page, "GET", "/syncs/manual__1", user="viewer")
        assert state.status_code == 502
        assert "did not answer as Airflow's API does" in state.json()["detail"]
        assert airflow_runs.notify_push(airflow_runs.RestApi("a-token", base=proxy)) == airflow_runs.NOT_TOLD
    finally:
        server.shutdown()
