"""The JSON API at /xpm/api/v1 inside Airflow's own API app (simple auth manager, each role's bearer
token), against the sandbox and a real practice database on SQLite and PostgreSQL. A real api-server
and the browser are in tests/e2e/test_xpm_api.py."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tests.integration.conftest import Xpm
from tests.integration.sync.test_pull import sync
from tests.integration.sync.test_push import CODES, pushed, writes
from tests.integration.web.conftest import Page, csrf_of
from xpm_sync import changes, settings
from xpm_sync.store import models as m

API = "/xpm/api/v1"


def call(page: Page, method: str, path: str, *, user: str | None = "admin", key: str | None = None, **kw: Any) -> Any:
    headers = {"Authorization": f"Bearer {page.token(user)}"} if user else {}
    if key:
        headers["Idempotency-Key"] = key
    return page.client.request(method, f"{API}{path}", headers={**headers, **kw.pop("headers", {})}, **kw)


def outbox(xpm: Xpm) -> int:
    with Session(xpm.engine) as s:
        return int(s.scalar(select(func.count()).select_from(m.OutboxEntry)) or 0)


@pytest.fixture
def practice(page: Page) -> Page:
    """A synced practice that keeps jobs and custom fields here, with its job state codes set."""
    xpm = page.xpm
    xpm.control("identity", {"access_lifetime_seconds": 30 * 86_400})
    xpm.connect()
    sync(xpm, full=True)
    with Session(xpm.engine) as s, s.begin():
        settings.change(s, "maintain_jobs_locally", True, actor="admin")
        settings.change(s, "sync_custom_fields_from_xpm", False, actor="admin")
    xpm.connect()  # the reconnect that grants what these settings push
    for name, code in CODES.items():
        changes.set_state_code(xpm.engine, name, code, actor="admin")
    xpm.srv.sandbox.gateway.reset_counts()
    return page


def _planned(page: Page) -> Any:
    return next(j for j in page.xpm.srv.sandbox.main.jobs.values() if j.state == "Planned")


def test_anonymous_gets_401_as_a_problem_document(page: Page):
    for method, path in (("GET", "/status"), ("GET", "/jobs"), ("POST", "/changes/job-state"), ("POST", "/syncs")):
        reply = call(page, method, path, user=None, json={})
        assert reply.status_code == 401, path
        assert reply.headers["content-type"] == "application/problem+json"
        assert reply.headers["www-authenticate"] == "Bearer"
        assert reply.json()["status"] == 401
        assert "/auth/token" in reply.json()["detail"]


def test_a_viewer_reads_and_may_not_write(practice: Page):
    job = _planned(practice)
    assert call(practice, "GET", "/status", user="viewer").json()["status"] == "connected"
    found = call(practice, "GET", f"/jobs?q={job.number}", user="viewer").json()["jobs"]
    assert [j["job_number"] for j in found] == [job.number]
    assert call(practice, "GET", f"/jobs/{job.number}", user="viewer").json()["state"] == "Planned"
    assert call(practice, "GET", "/activity", user="viewer").json()["entries"]
    for path, body in (
        ("/changes/job-state", {"job_number": job.number, "state": "Review"}),
        ("/changes/job-update", {"job_number": job.number, "due_date": "2027-01-31"}),
        ("/syncs", {"entities": ["clients"]}),
        ("/pushes", None),
    ):
        reply = call(practice, "POST", path, user="viewer", json=body)
        assert reply.status_code == 403, path
        assert reply.json()["detail"] == "Your Airflow role may not start runs of xpm_manual_sync."
    assert outbox(practice.xpm) == 0


def test_a_state_change_sent_twice_with_one_key_is_recorded_and_pushed_once(practice: Page):
    xpm, job, key = practice.xpm, _planned(practice), str(uuid.uuid4())
    body = {"job_number": job.number, "state": "review"}
    first = call(practice, "POST", "/changes/job-state", user="user", key=key, json=body)
    assert first.status_code == 201, first.text
    change = first.json()["change"]
    assert change["record"] == "job"
    assert change["key"] == job.number
    assert change["status"] == "pending"
    assert change["fields"] == [{"name": "state", "before": "Planned", "after": "Review", "xpm": None}]
    assert change["created_by"] == "user"
    again = call(practice, "POST", "/changes/job-state", user="user", key=key, json=body)
    assert again.status_code == 201
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()
    assert outbox(xpm) == 1
    shown = call(practice, "GET", f"/jobs/{job.number}", user="viewer").json()
    assert (shown["state"], shown["pending_push"]) == ("Review", True)
    assert [c["id"] for c in shown["changes"]] == [change["id"]]

    assert pushed(xpm)["job"].written == 1
    assert writes(xpm) == [("PUT", "job.api/state")]
    assert job.state == "Review"  # in the sandbox
    late = call(practice, "POST", "/changes/job-state", user="user", key=key, json=body)  # a retry after the push
    assert late.headers["idempotent-replayed"] == "true"
    assert outbox(xpm) == 1
    assert "job" not in pushed(xpm)  # the next push finds nothing to send
    assert writes(xpm) == [("PUT", "job.api/state")]
    assert call(practice, "GET", f"/changes/{change['id']}").json()["status"] == "done"


def test_one_key_for_another_request_is_refused_and_records_nothing(practice: Page):
    job, key = _planned(practice), "reused-key"
    assert call(practice, "POST", "/changes/job-state", key=key, json={"job_number": job.number, "state": "Review"})
    other = call(practice, "POST", "/changes/job-state", key=key, json={"job_number": job.number, "state": "Planned"})
    assert other.status_code == 422
    assert other.json()["errors"] == [{"field": "Idempotency-Key", "message": "already used for a different request"}]
    assert outbox(practice.xpm) == 1
    # Keys are each user's own: another user's same key is a new request.
    mine = call(practice, "POST", "/changes/job-update", user="user", key=key,
                json={"job_number": job.number, "due_date": "2027-02-28"})  # fmt: skip
    assert mine.status_code == 201
    assert "idempotent-replayed" not in mine.headers
    assert outbox(practice.xpm) == 2


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        pytest.param({"state": "Sleeping"}, "state", "is not one of the practice's job states", id="unknown-state"),
        pytest.param({"job_number": "J/../1"}, "job_number", "String should match pattern", id="malformed-number"),
        pytest.param({"job_number": "J999999"}, "job_number", "There is no job J999999", id="unknown-number"),
        pytest.param({"job_number": None}, "job_number", "Input should be a valid string", id="no-number"),
        pytest.param({"colour": "red"}, "colour", "Extra inputs are not permitted", id="unknown-field"),
    ],
)
def test_a_bad_state_change_is_a_422_naming_the_field_and_records_nothing(
    practice: Page, body: dict[str, Any], field: str, words: str
):
    sent = {"job_number": _planned(practice).number, "state": "Review", **body}
    reply = call(practice, "POST", "/changes/job-state", key=str(uuid.uuid4()), json=sent)
    assert reply.status_code == 422, reply.text
    problem = reply.json()
    assert reply.headers["content-type"] == "application/problem+json"
    assert problem["errors"][0]["field"] == field
    assert words in problem["detail"]
    assert outbox(practice.xpm) == 0


def test_a_job_update_and_a_custom_field_are_recorded_for_the_push(practice: Page):
    xpm, job = practice.xpm, _planned(practice)
    client = next(iter(xpm.srv.sandbox.main.clients.values()))
    due = call(practice, "POST", "/changes/job-update", json={"job_number": job.number, "due_date": "2027-01-31"})
    assert due.status_code == 201, due.text
    assert due.json()["change"]["fields"][0]["after"] == "2027-01-31"
    fee = {"record": "client", "key": client.uuid, "field": "Fee Estimate", "value": "1234.50"}
    field = call(practice, "POST", "/changes/custom-field", json=fee)
    assert field.status_code == 201, field.text
    shown = call(practice, "GET", f"/clients/{client.uuid}").json()
    assert {"name": "Fee Estimate", "value": "1234.5", "editable": True}.items() <= next(
        v for v in shown["custom_fields"] if v["name"] == "Fee Estimate"
    ).items()
    bad = call(practice, "POST", "/changes/custom-field",
               json={"record": "client", "key": client.uuid, "field": "Fee Estimate", "value": "lots"})  # fmt: skip
    assert (bad.status_code, bad.json()["errors"][0]["field"]) == (422, "value")
    nothing = call(practice, "POST", "/changes/job-update", json={"job_number": job.number})
    assert nothing.status_code == 422
    same = call(practice, "POST", "/changes/job-update", json={"job_number": job.number, "due_date": "2027-01-31"})
    assert (same.status_code, same.json()["change"]) == (201, None)
    assert same.json()["message"] == f"Job {job.number} already holds those values."
    waiting = call(practice, "GET", "/changes").json()
    assert [(c["record"], c["status"]) for c in waiting] == [("job", "pending"), ("client_custom_field", "pending")]
    assert pushed(xpm)["job"].written == 1
    assert str(job.due_date) == "2027-01-31"


def test_a_change_the_settings_refuse_is_a_409_saying_which_setting(practice: Page):
    with Session(practice.xpm.engine) as s, s.begin():
        settings.change(s, "maintain_jobs_locally", False, actor="admin")
    body = {"job_number": _planned(practice).number, "state": "Review"}
    reply = call(practice, "POST", "/changes/job-state", json=body)
    assert reply.status_code == 409
    assert "'Maintain jobs locally' is off" in reply.json()["detail"]
    assert call(practice, "GET", f"/jobs/{_planned(practice).number}").json()["editable"] is False
    assert outbox(practice.xpm) == 0


def test_a_refused_change_is_retried_once(practice: Page):
    xpm, job = practice.xpm, _planned(practice)
    from xpm_sandbox.gateway import Fault

    made = call(practice, "POST", "/changes/job-state", json={"job_number": job.number, "state": "Review"}).json()
    xpm.srv.sandbox.gateway.faults.append(Fault("business_error", "job.api/state", description="Job is locked"))
    pushed(xpm)
    failed = call(practice, "GET", f"/changes/{made['change']['id']}").json()
    assert (failed["status"], failed["error"]) == ("failed", "Job is locked")
    key = str(uuid.uuid4())
    first = call(practice, "POST", f"/changes/{failed['id']}/retry", key=key)
    again = call(practice, "POST", f"/changes/{failed['id']}/retry", key=key)
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.headers["idempotent-replayed"] == "true"
    unkeyed = call(practice, "POST", f"/changes/{failed['id']}/retry")
    assert unkeyed.status_code == 409  # it is waiting again, so there is nothing to retry
    assert pushed(xpm)["job"].written == 1
    assert job.state == "Review"


def test_a_change_number_that_is_not_one_is_refused_and_an_unknown_one_not_found(practice: Page):
    huge = call(practice, "GET", "/changes/99999999999999999999")
    assert huge.status_code == 422
    assert huge.json()["errors"][0]["field"] == "path.change_id"
    assert call(practice, "POST", "/changes/99999999999999999999/retry").status_code == 422
    unknown = call(practice, "GET", "/changes/4242")
    assert (unknown.status_code, unknown.json()["detail"]) == (404, "There is no change 4242.")
    nowhere = call(practice, "GET", "/nowhere")
    assert (nowhere.status_code, nowhere.headers["content-type"]) == (404, "application/problem+json")


def test_a_job_search_takes_its_words_literally(practice: Page):
    job = _planned(practice)
    assert [j["job_number"] for j in call(practice, "GET", f"/jobs?q={job.number.lower()}").json()["jobs"]] == [
        job.number
    ]
    assert call(practice, "GET", "/jobs?q=%25").json()["jobs"] == []  # a '%' is a '%', not "anything"
    assert call(practice, "GET", "/jobs?q=_").json()["jobs"] == []
    by_state = call(practice, "GET", "/jobs?state=planned&limit=200").json()["jobs"]
    assert by_state
    assert {j["state"] for j in by_state} == {"Planned"}


def test_activity_is_paged_and_filtered(practice: Page):
    one = call(practice, "GET", "/activity?per_page=2").json()
    assert len(one["entries"]) == 2
    assert one["more"] is True
    two = call(practice, "GET", "/activity?per_page=2&page=2").json()
    assert {e["id"] for e in one["entries"]}.isdisjoint(e["id"] for e in two["entries"])
    settings_only = call(practice, "GET", "/activity?category=Settings&per_page=200").json()["entries"]
    assert settings_only
    assert {e["category"] for e in settings_only} == {"Settings"}
    assert call(practice, "GET", "/activity?status=Nope").status_code == 422
    assert call(practice, "GET", "/activity?page=0").status_code == 422


def test_a_sync_of_nothing_known_or_while_xpm_is_not_connected_is_refused(page: Page):
    unknown = call(page, "POST", "/syncs", json={"entities": ["clients", "payroll"]})
    assert unknown.status_code == 422
    assert unknown.json()["errors"][0]["field"] == "entities.1"
    offline = call(page, "POST", "/syncs", json={"entities": ["clients"]}, key="sync-1")
    assert offline.status_code == 409
    assert "XPM is not connected" in offline.json()["detail"]
    # Nothing started, so the key is free for the same request once XPM is connected.
    with Session(page.xpm.engine) as s:
        assert s.get(m.ApiRequest, ("admin", "sync-1")) is None


def test_a_browser_session_writes_only_with_the_pages_token(practice: Page):
    job = _planned(practice)
    body = {"job_number": job.number, "state": "Review"}
    practice.client.cookies.set("_token", practice.token("admin"))
    try:
        bare = practice.client.post(f"{API}/changes/job-state", json=body)
        assert bare.status_code == 403
        token = csrf_of(practice.client.get("/xpm/").text)
        other_site = practice.client.post(
            f"{API}/changes/job-state", json=body, headers={"X-XPM-CSRF": token, "Origin": "https://elsewhere.example"}
        )
        assert other_site.status_code == 403
        assert outbox(practice.xpm) == 0
        ok = practice.client.post(f"{API}/changes/job-state", json=body, headers={"X-XPM-CSRF": token})
        assert ok.status_code == 201, ok.text
    finally:
        practice.client.cookies.clear()


def test_the_openapi_document_validates_and_lists_every_route(page: Page):
    from openapi_spec_validator import validate

    from xpm_sync.web.api import create_api

    reply = page.client.get(f"{API}/openapi.json")
    assert reply.status_code == 200
    spec = reply.json()
    validate(spec)
    listed = {(method.upper(), path) for path, ops in spec["paths"].items() for method in ops}
    served = {
        (method, route.path)
        for route in create_api().routes
        if getattr(route, "include_in_schema", False)
        for method in route.methods
    }
    assert listed == served
    assert len(listed) >= 15
    assert spec["servers"] == [{"url": API}]
    docs = call(page, "GET", "/docs")
    assert docs.status_code == 200
    for method, path in listed:
        assert f"{method} {path}" in docs.text


def test_the_change_feed_is_read_page_by_page_after_the_last_id_read(practice: Page):
    clients = set(practice.xpm.srv.sandbox.main.clients)
    read: list[dict[str, Any]] = []
    after, more = 0, True
    while more:
        page = call(practice, "GET", f"/feed?entity=clients&limit=15&after_id={after}", user="viewer").json()
        assert len(page["rows"]) <= 15
        read += page["rows"]
        after, more = page["after_id"], page["more"]
    assert {r["key"] for r in read} == clients
    assert {(r["entity"], r["table"], r["kind"]) for r in read} == {("clients", "clients", "inserted")}
    assert [r["id"] for r in read] == sorted(r["id"] for r in read)
    assert call(practice, "GET", f"/feed?after_id={after}&entity=clients").json() == {
        "rows": [], "after_id": after, "more": False
    }  # fmt: skip
    everything = call(practice, "GET", "/feed?limit=1000").json()["rows"]
    assert {r["entity"] for r in everything} >= {"staff", "clients", "jobs"}
    unknown = call(practice, "GET", "/feed?entity=payroll")
    assert unknown.status_code == 422
    assert "'payroll' is not one of" in unknown.json()["detail"]
