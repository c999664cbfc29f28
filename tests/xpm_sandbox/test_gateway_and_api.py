"""Gateway limits and faults, and the API's data behaviour, over real HTTP."""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass
from xml.etree.ElementTree import ParseError

import pytest
import requests
from defusedxml import ElementTree

from tests.xpm_sandbox.conftest import Connected, connect, control
from xpm_sandbox.state import SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET, USERS

LIMIT_HEADERS = {"x-minlimit-remaining", "x-daylimit-remaining", "x-appminlimit-remaining"}


def _xml(reply: requests.Response):
    return ElementTree.fromstring(reply.content)


def test_every_answer_carries_the_limit_headers_counting_down(conn: Connected):
    first, second = conn.get("staff.api/list"), conn.get("category.api/list")
    assert {k.lower() for k in first.headers} >= LIMIT_HEADERS
    assert int(second.headers["X-MinLimit-Remaining"]) == int(first.headers["X-MinLimit-Remaining"]) - 1
    assert int(second.headers["X-DayLimit-Remaining"]) == 4998


def test_the_minute_limit_answers_429_with_retry_after_then_recovers(conn: Connected):
    control(conn.srv, "limits", {"per_minute": 3})
    assert [conn.get("staff.api/list").status_code for _ in range(3)] == [200, 200, 200]
    limited = conn.get("staff.api/list")
    assert limited.status_code == 429
    assert limited.content == b""
    assert limited.headers["X-Rate-Limit-Problem"] == "minute"
    assert 1 <= int(limited.headers["Retry-After"]) <= 61
    control(conn.srv, "clock", {"advance_seconds": 61})
    assert conn.get("staff.api/list").status_code == 200


def test_the_day_limit_answers_429_day_with_hours_to_wait(conn: Connected):
    control(conn.srv, "limits", {"per_day": 2})
    conn.get("staff.api/list"), conn.get("staff.api/list")
    limited = conn.get("staff.api/list")
    assert (limited.status_code, limited.headers["X-Rate-Limit-Problem"]) == (429, "day")
    assert int(limited.headers["Retry-After"]) <= 86_400
    assert limited.headers["X-DayLimit-Remaining"] == "0"


def test_more_than_the_allowed_calls_in_flight_are_refused(conn: Connected):
    control(conn.srv, "limits", {"concurrent": 2})
    control(conn.srv, "faults", {"kind": "slow", "path": "staff.api", "count": 2, "seconds": 1.5})
    results: list[int] = []
    threads = [
        threading.Thread(target=lambda: results.append(conn.get("staff.api/list").status_code)) for _ in range(2)
    ]
    for t in threads:
        t.start()
    control_deadline = threading.Event()
    control_deadline.wait(0.5)
    refused = conn.get("category.api/list")
    for t in threads:
        t.join()
    assert results == [200, 200]
    assert (refused.status_code, refused.headers["X-Rate-Limit-Problem"]) == (429, "concurrent")
    assert conn.get("category.api/list").status_code == 200
    # The sandbox's own count of calls at once includes the one it refused.
    assert requests.get(f"{conn.srv.url}/_sandbox/calls", timeout=10).json()["peak_in_flight"] == 3


def test_callers_that_wait_for_each_answer_are_never_refused_for_concurrency(conn: Connected):
    """Five callers, each sending its next call as soon as its last is answered, on its own kept-alive
    connection (as a task's session does): XPM counts a call only until it has answered, so none is
    refused and the sandbox never counts a sixth."""
    control(conn.srv, "limits", {"per_minute": 10_000, "per_day": 10_000})
    statuses: Counter[int] = Counter()

    def caller() -> None:
        with requests.Session() as session:
            for _ in range(100):
                statuses[session.get(conn.api + "staff.api/list", headers=conn.headers(), timeout=30).status_code] += 1

    callers = [threading.Thread(target=caller) for _ in range(5)]
    for t in callers:
        t.start()
    for t in callers:
        t.join()
    assert statuses == {200: 500}
    assert requests.get(f"{conn.srv.url}/_sandbox/calls", timeout=10).json()["peak_in_flight"] <= 5


@pytest.mark.parametrize(
    ("kind", "status", "detail"),
    [pytest.param("503", 503, "ServiceNotAvailable", id="503"), pytest.param("500", 500, None, id="500")],
)
def test_server_faults_on_demand(conn: Connected, kind, status, detail):
    control(conn.srv, "faults", {"kind": kind, "path": "client.api"})
    assert conn.get("staff.api/list").status_code == 200  # other paths are unaffected
    reply = conn.get("client.api/list")
    assert reply.status_code == status
    if detail:
        assert reply.json()["Detail"] == detail
    assert conn.get("client.api/list").status_code == 200  # one call only


def test_truncated_and_malformed_xml_on_demand(conn: Connected):
    control(conn.srv, "faults", {"kind": "truncate", "path": "staff.api"})
    with pytest.raises(ParseError):
        _xml(conn.get("staff.api/list"))
    control(conn.srv, "faults", {"kind": "malformed", "path": "staff.api"})
    with pytest.raises(ParseError):
        _xml(conn.get("staff.api/list"))


def test_a_business_error_is_http_200_with_status_error(conn: Connected):
    control(conn.srv, "faults", {"kind": "business_error", "path": "staff.api"})
    reply = conn.get("staff.api/list")
    assert reply.status_code == 200
    assert (_xml(reply).findtext("Status"), _xml(reply).findtext("ErrorDescription")) == (
        "ERROR",
        "The sandbox was asked to fail this call",
    )


def test_a_hung_answer_times_the_caller_out(conn: Connected):
    control(conn.srv, "faults", {"kind": "hang", "path": "staff.api", "seconds": 5})
    with pytest.raises(requests.Timeout):
        requests.get(conn.api + "staff.api/list", headers=conn.headers(), timeout=0.5)


def test_removing_the_privilege_or_the_tenant_gives_403(conn: Connected):
    tenant = conn.tenant_id
    control(conn.srv, "privilege", {"user": USERS.admin, "tenant_id": tenant, "admin": True, "third_party": False})
    assert conn.get("staff.api/list").status_code == 403
    control(conn.srv, "privilege", {"user": USERS.admin, "tenant_id": tenant, "admin": True, "third_party": True})
    assert conn.get("staff.api/list").status_code == 200
    control(conn.srv, f"tenants/{tenant}", {"active": False})
    reply = conn.get("staff.api/list")
    assert (reply.status_code, reply.json()["Detail"]) == (403, "AuthenticationUnsuccessful")


def test_revoking_the_grant_from_the_control_api(conn: Connected):
    assert control(conn.srv, "revoke", {})["revoked"] == 1
    assert conn.get("staff.api/list").status_code == 401


def test_the_revoke_grant_fault_revokes_the_grant_behind_the_call(conn: Connected):
    from tests.xpm_sandbox.conftest import token

    control(conn.srv, "faults", {"kind": "revoke_grant", "path": "staff.api"})
    reply = conn.get("staff.api/list")
    assert (reply.status_code, reply.json()["Detail"]) == (401, "AuthenticationUnsuccessful")
    assert conn.get("category.api/list").status_code == 401  # and it stays revoked
    refreshed = token(conn.srv, grant_type="refresh_token", refresh_token=conn.tokens["refresh_token"])
    assert (refreshed.status_code, refreshed.json()["error"]) == (400, "invalid_grant")


def test_the_remove_privilege_fault_takes_the_privilege_from_the_caller(conn: Connected):
    control(conn.srv, "faults", {"kind": "remove_privilege", "path": "staff.api"})
    assert conn.get("staff.api/list").status_code == 403
    assert conn.get("category.api/list").status_code == 403
    admin = conn.srv.sandbox.identity.users[USERS.admin]
    assert admin.practices[conn.tenant_id] == (True, False)


@pytest.mark.parametrize(("kind", "status"), [("401", 401), ("403", 403)])
def test_one_off_401_and_403_on_demand(conn: Connected, kind: str, status: int):
    control(conn.srv, "faults", {"kind": kind, "path": "staff.api"})
    reply = conn.get("staff.api/list")
    assert (reply.status_code, reply.json()["Detail"]) == (status, "AuthenticationUnsuccessful")
    assert conn.get("staff.api/list").status_code == 200


@pytest.mark.parametrize("problem", ["minute", "day"])
def test_a_429_on_demand(conn: Connected, problem: str):
    control(conn.srv, "faults", {"kind": "429", "path": "staff.api", "problem": problem, "seconds": 7})
    reply = conn.get("staff.api/list")
    assert reply.status_code == 429
    assert (reply.headers["Retry-After"], reply.headers["X-Rate-Limit-Problem"]) == ("7", problem)
    assert reply.content == b""


def test_an_emptied_or_rewrapped_list_on_demand(conn: Connected):
    control(conn.srv, "faults", {"kind": "empty", "path": "client.api/list"})
    root = _xml(conn.get("client.api/list"))
    assert root.findtext("Status") == "OK"
    assert root.find("Clients") is not None
    assert list(root.find("Clients")) == []
    control(conn.srv, "faults", {"kind": "wrong_wrapper", "path": "job.api/current"})
    root = _xml(conn.get("job.api/current"))
    assert root.find("Jobs") is None
    assert len(list(root.find("Items"))) == len(
        [j for j in conn.srv.sandbox.main.jobs.values() if j.state not in ("Completed", "Cancelled")]
    )


def test_an_unknown_fault_kind_is_refused_with_the_list(conn: Connected):
    reply = requests.post(f"{conn.srv.url}/_sandbox/faults", json={"kind": "gremlins"}, timeout=10)
    assert reply.status_code == 400
    assert "revoke_grant" in reply.json()["error"]


@dataclass
class _Remote:
    """What `connect` needs of a sandbox running in another process."""

    url: str
    client_id: str = SANDBOX_CLIENT_ID
    client_secret: str = SANDBOX_CLIENT_SECRET


def test_the_sandbox_stops_on_sigterm_with_a_request_hanging():
    import signal
    import subprocess
    import sys
    import time

    from xpm_sandbox.server import free_port

    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "xpm_devtools.cli", "sandbox", "--port", str(port), "--clients", "5", "--jobs", "5"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                requests.get(f"{url}/_sandbox", timeout=1)
                break
            except requests.ConnectionError:
                assert time.monotonic() < deadline
                time.sleep(0.2)
        requests.post(f"{url}/_sandbox/faults", json={"kind": "hang"}, timeout=5)

        hung = connect(_Remote(url))  # type: ignore[arg-type]
        threading.Thread(target=lambda: hung.get("staff.api/list"), daemon=True).start()
        time.sleep(1)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()


def test_modifiedsince_returns_only_clients_changed_since(conn: Connected):
    practice = conn.srv.sandbox.main
    newest = max(c.modified_at for c in practice.clients.values())
    since = newest.strftime("%Y-%m-%dT%H:%M:%S")
    root = _xml(conn.get("client.api/list", params={"detailed": "true", "modifiedsince": since}))
    uuids = [c.findtext("UUID") for c in root.iter("Client")]
    assert uuids == [c.uuid for c in practice.clients.values() if c.modified_at >= newest.replace(microsecond=0)]
    bad = _xml(conn.get("client.api/list", params={"modifiedsince": "yesterday"}))
    assert bad.findtext("Status") == "ERROR"


def test_detailed_adds_groups_and_relationships(conn: Connected):
    plain = _xml(conn.get("client.api/list", params={"detailed": "false"}))
    detailed = _xml(conn.get("client.api/list", params={"detailed": "true"}))
    assert plain.find(".//Client/Groups") is None
    assert detailed.find(".//Client/Groups") is not None
    assert len(plain.findall(".//Clients/Client")) == len(conn.srv.sandbox.main.clients)


def test_paged_list_follows_next_links_over_live_clients_only(conn: Connected):
    seen: list[str] = []
    url = conn.api + "client.api/paged-list?pageSize=7"
    pages = 0
    while url:
        root = _xml(requests.get(url, headers=conn.headers(), timeout=10))
        seen += [c.findtext("UUID") for c in root.iter("Client")]
        url = root.findtext("Pagination/Links/Next")
        pages += 1
    live = [c.uuid for c in conn.srv.sandbox.main.clients.values() if not (c.is_archived or c.is_deleted)]
    assert seen == live
    assert pages == -(-len(live) // 7)


def test_job_list_is_a_created_date_window_of_at_most_a_year(conn: Connected):
    practice = conn.srv.sandbox.main
    root = _xml(conn.get("job.api/list", params={"from": "20240101", "to": "20241231"}))
    numbers = {j.findtext("ID") for j in root.iter("Job")}
    assert numbers == {j.number for j in practice.jobs.values() if j.created_on.year == 2024}
    too_long = _xml(conn.get("job.api/list", params={"from": "20230101", "to": "20241231"}))
    assert (too_long.findtext("Status"), too_long.findtext("ErrorDescription")) == (
        "ERROR",
        "The date range cannot be more than one year",
    )


def test_current_jobs_are_the_open_ones(conn: Connected):
    practice = conn.srv.sandbox.main
    root = _xml(conn.get("job.api/current"))
    assert {j.findtext("ID") for j in root.iter("Job")} == {
        n for n, j in practice.jobs.items() if practice.is_current(j)
    }


def test_job_state_changes_by_interface_code_and_refuses_unknown_codes(conn: Connected):
    job = next(j for j in conn.srv.sandbox.main.jobs.values() if j.state != "Completed")
    ok = _xml(conn.put("job.api/state", f"<Job><ID>{job.number}</ID><State>COMPLETED</State></Job>"))
    assert ok.findtext("Status") == "OK"
    assert job.state == "Completed"
    bad = conn.put("job.api/state", f"<Job><ID>{job.number}</ID><State>NOPE</State></Job>")
    assert bad.status_code == 200
    assert _xml(bad).findtext("ErrorDescription") == "Invalid state code"


def test_job_update_blanks_what_is_left_out(conn: Connected):
    job = next(iter(conn.srv.sandbox.main.jobs.values()))
    dates = "<StartDate>20250101</StartDate><DueDate>20250301</DueDate>"
    body = f"<Job><ID>{job.number}</ID><Name>Renamed</Name>{dates}</Job>"
    root = _xml(conn.put("job.api/update", body))
    assert root.findtext("Job/Name") == "Renamed"
    assert root.findtext("Job/DueDate") == "2025-03-01T00:00:00"
    assert job.description == ""
    missing = _xml(conn.put("job.api/update", f"<Job><ID>{job.number}</ID><Name>X</Name></Job>"))
    assert missing.findtext("Status") == "ERROR"


def test_custom_fields_return_only_values_and_take_updates(conn: Connected):
    practice = conn.srv.sandbox.main
    client = next(c for c in practice.clients.values() if c.custom_fields)
    by_element = {d.value_element: d for d in practice.field_definitions.values() if d.use_client}
    root = _xml(conn.get(f"client.api/get/{client.uuid}/customfield"))
    assert {f.findtext("UUID") for f in root.iter("CustomField")} == set(client.custom_fields)

    flag, day = by_element["Boolean"], by_element["Date"]
    body = (
        f"<CustomFields><CustomField><UUID>{flag.uuid}</UUID><Boolean>true</Boolean></CustomField>"
        f"<CustomField><UUID>{day.uuid}</UUID><Date>20270131</Date></CustomField></CustomFields>"
    )
    assert _xml(conn.put(f"client.api/update/{client.uuid}/customfield", body)).findtext("Status") == "OK"
    after = {
        f.findtext("UUID"): f for f in _xml(conn.get(f"client.api/get/{client.uuid}/customfield")).iter("CustomField")
    }
    assert after[flag.uuid].findtext("Boolean") == "true"
    assert after[day.uuid].findtext("Date") == "2027-01-31T00:00:00"

    unset = f"<CustomFields><CustomField><UUID>{flag.uuid}</UUID><Boolean>false</Boolean></CustomField></CustomFields>"
    conn.put(f"client.api/update/{client.uuid}/customfield", unset)
    after = {
        f.findtext("UUID") for f in _xml(conn.get(f"client.api/get/{client.uuid}/customfield")).iter("CustomField")
    }
    assert flag.uuid not in after  # an unticked checkbox is simply absent


def test_next_day_changes_clients_and_jobs(srv):
    # The step moves the clock a day on: give tokens a longer life first.
    control(srv, "identity", {"access_lifetime_seconds": 3 * 86_400})
    conn = connect(srv)
    before = max(c.modified_at for c in conn.srv.sandbox.main.clients.values())
    changes = control(conn.srv, "next-day", {"share": 0.1})
    assert changes["clients_edited"] >= 6
    assert changes["jobs_added"]
    since = before.strftime("%Y-%m-%dT%H:%M:%S")
    root = _xml(conn.get("client.api/list", params={"modifiedsince": since}))
    assert len(root.findall(".//Clients/Client")) >= changes["clients_edited"]


def test_the_call_log_counts_calls_per_endpoint(conn: Connected):
    requests.delete(f"{conn.srv.url}/_sandbox/calls", timeout=10)
    conn.get("staff.api/list"), conn.get("staff.api/list")
    client = next(iter(conn.srv.sandbox.main.clients))
    conn.get(f"client.api/get/{client}/customfield")
    counts = requests.get(f"{conn.srv.url}/_sandbox/calls", timeout=10).json()
    assert counts["by_endpoint"] == {"GET staff.api/list": 2, "GET client.api/get/{id}/customfield": 1}
    assert counts["total"] == 3


def test_the_same_seed_builds_the_same_practice():
    from datetime import datetime

    from xpm_sandbox.generate import build_practice

    now = datetime(2026, 11, 21)
    a = build_practice("t", "P", seed=7, clients=50, jobs=80, now=now)
    b = build_practice("t", "P", seed=7, clients=50, jobs=80, now=now)
    assert list(a.clients) == list(b.clients)
    assert [j.state for j in a.jobs.values()] == [j.state for j in b.jobs.values()]
    assert {d.value_element for d in a.field_definitions.values()} == {"Text", "Decimal", "Number", "Boolean", "Date"}
