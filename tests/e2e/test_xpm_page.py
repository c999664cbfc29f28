"""The XPM page in a real Chromium (Debian's, driven by Playwright) against a real Airflow: api-server,
scheduler and dag-processor with the XPM sandbox. Screenshots of each step go to .demo/screenshots/.

The tests share one Airflow (starting it takes most of a minute); each can run on its own.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import requests

from tests.e2e.browser import (
    RUN_TIMEOUT,
    back_in_airflow,
    chromium,
    open_xpm,
    shot,
    sign_in,
    sign_in_at_xero,
    xpm_frame,
)
from tests.e2e.conftest import USERS, Airflow, launch, loopback_inbox
from tests.integration.conftest import Inbox
from xpm_sandbox.state import USERS as XERO_USERS

ALERTS_TO = "it@practice.example"


@pytest.fixture(scope="module")
def inbox() -> Iterator[tuple[Inbox, int]]:
    """The alert email and the page's test email arrive here."""
    yield from loopback_inbox()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, inbox: tuple[Inbox, int]) -> Iterator[Airflow]:
    smtp = {"conn_type": "smtp", "host": "127.0.0.1", "port": inbox[1],
            "extra": {"disable_tls": True, "disable_ssl": True, "from_email": "xpm-sync@practice.example"}}  # fmt: skip
    with launch(
        tmp_path_factory.mktemp("xpm-page"),
        AIRFLOW_CONN_SMTP_DEFAULT=json.dumps(smtp),
        AIRFLOW__XPM_SYNC__ALERT_RECIPIENTS=ALERTS_TO,
    ) as af:
        yield af


def _note(af: Airflow, dag_id: str, run_id: str) -> str | None:
    """The run's note, once Airflow has it (the listener writes it just after the run is marked failed)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        note = af.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}").json().get("note")
        if note:
            return str(note)
        time.sleep(1)
    return None


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    yield from chromium()


def test_an_administrator_connects_syncs_and_reconnects_on_the_xpm_page(
    stack: Airflow, browser: Any, inbox: tuple[Inbox, int]
):
    from playwright.sync_api import expect

    page = sign_in(browser, stack)
    expect(page.get_by_role("link", name=re.compile("Xero Prac"))).to_be_visible()  # the nav entry
    xpm = open_xpm(page, stack)
    expect(xpm.locator("#status")).to_contain_text("XPM is not connected")
    expect(xpm.locator("#status")).to_contain_text(f"{stack.url}/xpm/oauth/callback")
    shot(page, "01-not-connected")

    xpm.get_by_role("button", name="Connect XPM", exact=True).click()
    sign_in_at_xero(page, stack, "02-xero-sign-in")
    xpm = back_in_airflow(page, stack)  # inside Airflow's frame, with its navigation around it
    expect(page.get_by_role("link", name=re.compile("Xero Prac"))).to_be_visible()
    expect(xpm.locator("#notice")).to_contain_text("XPM is connected.")
    expect(xpm.locator("#notice .state")).to_have_text("success", timeout=RUN_TIMEOUT)
    shot(page, "03-connected-first-sync-done")

    xpm = open_xpm(page, stack)
    practice = stack.srv.sandbox.main
    expect(xpm.locator("#status")).to_contain_text(practice.name)
    expect(xpm.locator("#status")).to_contain_text(practice.tenant_id)
    expect(xpm.locator("#status")).to_contain_text("Ada Admin")
    expect(xpm.locator("#synced")).to_contain_text(f"{len(practice.clients):,}")
    today = datetime.now(UTC).date().isoformat()
    expect(xpm.locator("#custom-field-coverage")).to_have_text(f"Custom fields complete to {today}.")
    expect(xpm.locator("#scopes")).to_have_text("practicemanager.read")  # nothing pushed: read access only
    expect(xpm.locator("#egress")).to_contain_text(re.compile(r"[\d.,]+ [KM]B this month"))
    expect(xpm.locator("#egress")).to_contain_text("of the 250 GB a month the Xero tier allows")
    shot(page, "04-status")

    # Tonight's plan, and what another budget for the custom field sweep would change.
    plan = xpm.locator("#plan")
    expect(plan.locator("tr", has_text="Staff")).to_contain_text(re.compile(r"[\d.,]+ K?B"))
    expect(plan.locator("tr.total")).to_contain_text("Total")
    expect(plan).to_contain_text("Custom field backlog")
    plan.get_by_label("Calls a night for the sweep").fill("50")
    plan.get_by_role("button", name="Show").click()
    xpm_frame(page).wait_for_url(re.compile(r"[?&]budget=50"), timeout=30_000)
    expect(xpm.locator("#plan")).to_contain_text("At 50 calls a night:")
    # Time, costs, invoices and quotes: read in the first sync, counted, and in tonight's plan.
    expect(xpm.locator("#synced")).to_contain_text(re.compile(rf"Time entries\D*{len(practice.times):,}"))
    expect(xpm.locator("#synced")).to_contain_text(re.compile(rf"Invoices\D*{len(practice.invoices):,}"))
    expect(xpm.locator("#plan tr", has_text="Time entries")).to_contain_text(re.compile(r"\d"))
    xpm.locator("#plan").scroll_into_view_if_needed()
    shot(page, "04b-tonights-plan")

    xpm.locator("#cog").click()
    jobs_setting = xpm.locator("form.setting:has(input[value=maintain_jobs_locally])")
    # Said before it is saved: the setting needs a scope this connection was not granted.
    expect(jobs_setting.locator(".scope-warning")).to_contain_text("needs the access practicemanager.job")
    jobs_setting.locator(".switch").click()
    expect(jobs_setting.locator("input[type=checkbox]")).not_to_be_checked()  # not saved yet
    anyway = jobs_setting.get_by_role("button", name="Turn it on anyway")
    expect(anyway).to_be_visible()
    shot(page, "05-setting-needs-more-access")
    anyway.click()
    expect(xpm.locator("#notice")).to_have_text("The setting was saved.")
    banner = xpm.locator("#scope-banner")
    expect(banner).to_contain_text("XPM needs more access")
    expect(banner).to_contain_text(
        "practicemanager.job, needed to push changes to XPM while 'Maintain jobs locally' is on"
    )
    expect(banner.get_by_role("button", name="Reconnect XPM")).to_be_visible()
    shot(page, "05a-needs-more-access")
    jobs = xpm.locator("form.sync:has(input[value=jobs]) button")
    expect(jobs).to_be_enabled()  # no local job change is waiting: a job sync adds jobs, overwriting none
    expect(xpm.locator("#activity tbody tr").first).to_contain_text("Maintain jobs locally turned on")
    expect(xpm.locator("#activity tbody tr").first).to_contain_text("admin")
    shot(page, "05c-jobs-maintained-locally")
    xpm.locator("form.setting:has(input[value=maintain_jobs_locally]) .switch").click()
    expect(jobs).to_be_enabled()

    # A read-only list switched off: tonight's plan leaves it out, saying why; then on again.
    quotes = xpm.locator("form.setting:has(input[value=read_quotes])")
    expect(quotes).to_contain_text("Read quotes from XPM")
    quotes.locator(".switch").click()
    expect(xpm.locator("#notice")).to_have_text("The setting was saved.")
    expect(xpm.locator("#plan tr", has_text="Quotes")).to_contain_text("'Read quotes from XPM' is off")
    shot(page, "05d-quotes-switched-off")
    xpm.locator("form.setting:has(input[value=read_quotes]) .switch").click()
    expect(xpm.locator("#notice")).to_have_text("The setting was saved.")
    expect(xpm.locator("#plan tr", has_text="Quotes")).not_to_contain_text("is off")
    expect(xpm.locator("#scope-banner")).to_have_count(0)  # nothing pushed again: nothing more needed

    jobs.click()
    expect(xpm.locator("#notice")).to_contain_text("The sync has started.")
    expect(xpm.locator("#notice .state")).to_have_text("success", timeout=RUN_TIMEOUT)
    expect(xpm.locator("#notice")).to_contain_text("The sync has finished.")  # the page reloads when it ends
    shot(page, "06-jobs-synced-from-the-button")

    # The Trigger form, with its defaults.
    before = {r["dag_run_id"] for r in stack.api("GET", "/dags/xpm_manual_sync/dagRuns").json()["dag_runs"]}
    page.goto(f"{stack.url}/dags/xpm_manual_sync")
    page.get_by_role("button", name="Trigger").first.click()
    dialog = page.get_by_role("dialog")
    expect(dialog.locator("#element_client")).to_be_attached()
    expect(dialog.get_by_role("button", name="Trigger")).to_be_enabled()
    shot(page, "07-trigger-form-defaults")
    dialog.get_by_role("button", name="Trigger").click()
    deadline = time.monotonic() + 60
    while True:
        runs = stack.api("GET", "/dags/xpm_manual_sync/dagRuns").json()["dag_runs"]
        new = [r for r in runs if r["dag_run_id"] not in before]
        if new:
            break
        assert time.monotonic() < deadline, "the Trigger form started no run"
        time.sleep(1)
    assert stack.wait("xpm_manual_sync", new[0]["dag_run_id"]) == "success"
    assert new[0]["conf"]["entities"]
    assert new[0]["conf"]["client"] is None

    # Xero revokes the grant: the next run fails, the email goes once, and the page says so.
    box, _port = inbox
    before = len(box.messages)
    stack.srv.sandbox.identity.revoke_all()
    first = stack.trigger("xpm_overnight_sync")
    assert stack.wait("xpm_overnight_sync", first) == "failed"
    # The next night calls nothing and is red too, with the reason as its note.
    second = stack.trigger("xpm_overnight_sync")
    assert stack.wait("xpm_overnight_sync", second) == "failed"
    assert (_note(stack, "xpm_overnight_sync", first) or "").startswith(
        "There is a problem with your XPM integration and authentication failed"
    )
    second_note = _note(stack, "xpm_overnight_sync", second) or ""
    assert second_note.startswith("Overnight sync skipped: XPM needs to reconnect"), second_note
    assert len(box.messages) - before == 1
    assert box.messages[-1]["X-Envelope-To"] == ALERTS_TO

    page.goto(f"{stack.url}/dags")  # the Dags list: the outage at a glance
    latest = page.locator(f'a[href="/dags/xpm_overnight_sync/runs/{second}"]')  # the card's "Latest Run"
    expect(latest).to_have_accessible_name(re.compile(r"failed$"), timeout=30_000)  # the red state icon
    shot(page, "08a-dags-list-outage")
    page.goto(f"{stack.url}/dags/xpm_overnight_sync/runs/{second}")
    expect(page.get_by_text(second_note[:60]).first).to_be_visible(timeout=30_000)
    shot(page, "08b-outage-run-with-its-note")

    xpm = open_xpm(page, stack)
    banner = xpm.locator("#reconnect-banner")
    expect(banner).to_contain_text("XPM needs to reconnect")
    expect(banner).to_contain_text("Authorise 3rd Party Full Access")
    expect(xpm.locator("form.sync button").first).to_be_disabled()
    alerts = xpm.locator("#alert-email")
    expect(alerts).to_contain_text(ALERTS_TO)
    expect(alerts).to_contain_text(f"Email sent to {ALERTS_TO}: XPM needs to reconnect")  # the email that went
    shot(page, "08-needs-reconnect")
    xpm.locator("#activity select[name=status]").select_option("Action Required")
    # The choice submits the filter form; read the rows only once the frame holds the filtered page,
    # or an old row could match and then be replaced under the test.
    xpm_frame(page).wait_for_url(re.compile(r"[?&]status=Action\+Required"), timeout=30_000)
    rows = xpm.locator("#activity tbody tr")
    expect(rows.first).to_contain_text("Overnight sync skipped: XPM needs to reconnect")  # the second night
    needs = rows.filter(has_text="There is a problem with your XPM integration and authentication failed")
    expect(needs).to_have_count(1)  # the outage's one alert entry, filed where a person looks
    expect(needs).to_contain_text("Action Required")
    expect(needs.get_by_role("link", name="overnight sync")).to_have_attribute(
        "href", f"/dags/xpm_overnight_sync/runs/{first}"
    )
    needs.scroll_into_view_if_needed()
    shot(page, "08c-action-required")

    banner.get_by_role("button", name="Reconnect XPM").click()
    sign_in_at_xero(page, stack, "09-xero-sign-in-again")
    xpm = back_in_airflow(page, stack)
    expect(xpm.locator("#notice")).to_contain_text("XPM is reconnected.")
    expect(xpm.locator("#reconnect-banner")).to_have_count(0)
    expect(xpm.locator("#activity")).to_contain_text("XPM connection reset by admin")
    expect(xpm.locator("#notice .state")).to_have_text("success", timeout=RUN_TIMEOUT)
    shot(page, "10-reconnected-full-sync-done")

    # The alert email's route, tried from the page.
    xpm.get_by_role("button", name="Send test email").click()
    expect(xpm.locator("#notice")).to_contain_text("The test email was tried")
    expect(xpm.locator("#alert-email")).to_contain_text(f"Email sent to {ALERTS_TO}: xpm-sync test email")
    assert box.messages[-1]["X-Envelope-To"] == ALERTS_TO
    shot(page, "10a-test-email-sent")


def _token(af: Airflow, user: str) -> dict[str, str]:
    reply = requests.post(f"{af.url}/auth/token", json={"username": user, "password": USERS[user][1]}, timeout=10)
    reply.raise_for_status()
    return {"Authorization": f"Bearer {reply.json()['access_token']}"}


def _page_token(af: Airflow, headers: dict[str, str]) -> str:
    page = requests.get(f"{af.url}/xpm/", headers=headers, timeout=30)
    assert page.status_code == 200, page.text[:300]
    match = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert match
    return match.group(1)


def test_anonymous_visitors_are_sent_to_sign_in_and_refused_changes(stack: Airflow):
    page = requests.get(f"{stack.url}/xpm/", headers={"Accept": "text/html"}, allow_redirects=False, timeout=10)
    assert page.status_code == 303
    assert "/auth/login" in page.headers["location"]
    for method, path in (("GET", "/xpm/api/v1/syncs/x"), ("POST", "/xpm/api/v1/syncs"), ("POST", "/xpm/settings")):
        reply = requests.request(method, f"{stack.url}{path}", data={"group": "jobs"}, timeout=10)
        assert reply.status_code == 401, path


def test_a_viewer_may_read_the_page_but_not_sync_connect_or_change_settings(stack: Airflow, browser: Any):
    from playwright.sync_api import expect

    viewer = _token(stack, "viewer")
    csrf = _page_token(stack, viewer)
    synced = requests.post(f"{stack.url}/xpm/api/v1/syncs", json={"entities": ["clients"]}, headers=viewer, timeout=10)
    assert synced.status_code == 403
    for path, form in (
        ("/xpm/settings", {"name": "maintain_jobs_locally", "value": "on"}),
        ("/xpm/connect", {}),
        ("/xpm/disconnect", {"confirm": "disconnect"}),
    ):
        reply = requests.post(f"{stack.url}{path}", data={**form, "csrf": csrf}, headers=viewer, timeout=10)
        assert reply.status_code == 403, path
    page = sign_in(browser, stack, "viewer")
    xpm = open_xpm(page, stack)
    expect(xpm.locator("#manual-sync")).to_contain_text("Your Airflow role may not start runs of xpm_manual_sync.")
    expect(xpm.locator("form.sync button").first).to_be_disabled()
    shot(page, "11-viewer")


def test_an_operator_may_sync_and_change_settings(stack: Airflow):
    operator = _token(stack, "operator")
    csrf = _page_token(stack, operator)
    reply = requests.post(
        f"{stack.url}/xpm/settings",
        data={"name": "sync_custom_fields_from_xpm", "value": "on", "csrf": csrf},
        headers=operator,
        allow_redirects=False,
        timeout=10,
    )
    assert reply.status_code == 303


def test_a_forged_replayed_or_someone_elses_sign_in_is_refused(stack: Airflow):
    admin, operator = _token(stack, "admin"), _token(stack, "operator")
    forged = requests.get(f"{stack.url}/xpm/oauth/callback?code=x&state=forged", headers=admin, timeout=10)
    assert forged.status_code == 400
    assert "This sign-in was not started here (unknown state)" in forged.text

    started = requests.post(
        f"{stack.url}/xpm/connect",
        data={"csrf": _page_token(stack, admin)},
        headers=admin,
        allow_redirects=False,
        timeout=10,
    )
    assert started.status_code == 303
    consent = requests.post(
        f"{stack.srv.url}/_sandbox/consent",
        json={"authorize_url": started.headers["location"], "user": XERO_USERS.admin},
        timeout=10,
    ).json()
    callback = consent["redirect"]
    assert callback.startswith(f"{stack.url}/xpm/oauth/callback")
    other = requests.get(callback, headers=operator, timeout=30)
    assert other.status_code == 400
    assert "This sign-in was started by another Airflow user" in other.text
    mine = requests.get(callback, headers=admin, allow_redirects=False, timeout=60)
    assert mine.status_code == 303
    replayed = requests.get(callback, headers=admin, timeout=30)
    assert replayed.status_code == 400
    assert "This sign-in was already used" in replayed.text


def test_a_change_without_the_pages_token_or_from_another_site_is_refused(stack: Airflow):
    admin = _token(stack, "admin")
    form = {"name": "maintain_jobs_locally", "value": "on"}
    missing = requests.post(f"{stack.url}/xpm/settings", data=form, headers=admin, timeout=10)
    assert missing.status_code == 403
    cross = requests.post(
        f"{stack.url}/xpm/settings",
        data={**form, "csrf": _page_token(stack, admin)},
        headers={**admin, "Origin": "https://elsewhere.example"},
        timeout=10,
    )
    assert cross.status_code == 403
    assert "another site" in cross.text


def _connected(browser: Any, af: Airflow, screenshot: str) -> tuple[Any, Any]:
    """The XPM page of a signed-in administrator, connecting first when an earlier test did not."""
    from playwright.sync_api import expect

    page = sign_in(browser, af)
    xpm = open_xpm(page, af)
    if xpm.get_by_role("button", name="Connect XPM", exact=True).count():
        xpm.get_by_role("button", name="Connect XPM", exact=True).click()
        sign_in_at_xero(page, af, screenshot)
        xpm = back_in_airflow(page, af)
        expect(xpm.locator("#notice .state")).to_have_text("success", timeout=RUN_TIMEOUT)
    return page, xpm


def test_changes_made_here_are_listed_refused_retried_and_pushed_from_the_page(stack: Airflow, browser: Any):
    from playwright.sync_api import expect

    from xpm_sync import changes
    from xpm_sync.store.engine import get_engine

    page, xpm = _connected(browser, stack, "12-connect")
    xpm.locator("#cog").click()
    switch = xpm.locator("form.setting:has(input[value=maintain_jobs_locally])")
    if not switch.locator("input[type=checkbox]").is_checked():
        switch.locator(".switch").click()
        anyway = switch.get_by_role("button", name="Turn it on anyway")  # "needs practicemanager.job"
        if anyway.is_visible():
            anyway.click()
        expect(xpm.locator("#notice")).to_have_text("The setting was saved.")
    if xpm.locator("#scope-banner").count():  # reconnect to grant what pushing jobs needs
        xpm.locator("#scope-banner").get_by_role("button", name="Reconnect XPM").click()
        sign_in_at_xero(page, stack, "12a-reconnect-for-practicemanager-job")
        xpm = back_in_airflow(page, stack)
        expect(xpm.locator("#notice")).to_contain_text("XPM is reconnected.")
        expect(xpm.locator("#scopes")).to_have_text("practicemanager.read practicemanager.job")
    if xpm.locator("#settings").is_hidden():
        xpm.locator("#cog").click()
    codes = xpm.locator("table.codes")
    codes.locator("tr:has-text('Review') input[name=code]").fill("REVIEW")
    codes.locator("tr:has-text('Review') button").click()
    expect(xpm.locator("#notice")).to_have_text("The job state's code was saved.")

    job = next(j for j in stack.srv.sandbox.main.jobs.values() if j.state not in ("Review", "Completed", "Cancelled"))
    stack.srv.sandbox.gateway.faults.clear()
    changes.set_job_state(get_engine(stack.store_url), job.number, "Review", actor="ada")
    from xpm_sandbox.gateway import Fault

    stack.srv.sandbox.gateway.faults.append(Fault("business_error", "job.api/state", description="Job is locked"))
    xpm = open_xpm(page, stack)
    expect(xpm.locator("form.sync:has(input[value=jobs]) button")).to_be_disabled()
    waits = xpm.locator("form.sync:has(input[value=jobs]) .refused")
    expect(waits).to_contain_text("Refused until 1 local job change(s) reach XPM (Push now sends them).")
    waiting = xpm.locator("#changes")
    expect(waiting).to_contain_text(f"Job {job.number}")
    expect(waiting).to_contain_text("Review")
    shot(page, "12-change-waiting")
    waiting.get_by_role("button", name="Push now").click()
    expect(xpm.locator("#notice .state")).to_have_text("failed", timeout=RUN_TIMEOUT)
    expect(xpm.locator("#changes")).to_contain_text("Job is locked")
    shot(page, "13-change-refused-by-xpm")
    assert job.state != "Review"

    xpm.locator("#changes").get_by_role("button", name="Retry").click()
    expect(xpm.locator("#notice")).to_contain_text("The change is back in line for the next push.")
    xpm.locator("#changes").get_by_role("button", name="Push now").click()
    expect(xpm.locator("#notice .state")).to_have_text("success", timeout=RUN_TIMEOUT)
    expect(xpm.locator("#changes")).to_contain_text("None: XPM has every change made here.")
    shot(page, "14-change-pushed")
    assert job.state == "Review"


def _jobs_kept_here(af: Airflow) -> None:
    """Jobs maintained here, with the Review state's interface code, as an administrator sets them."""
    from xpm_sync import changes, settings, status
    from xpm_sync.store.engine import get_engine, session_scope

    engine = get_engine(af.store_url)
    with session_scope(engine) as session:
        if not settings.load(session).maintain_jobs_locally:
            settings.change(session, "maintain_jobs_locally", True, actor="admin")
    if "practicemanager.job" not in (status.read(engine).scopes):
        connected = af.connect(XERO_USERS.admin, "--no-sync")  # the reconnect that grants practicemanager.job
        assert connected.returncode == 0, connected.stderr
    changes.set_state_code(engine, "Review", "REVIEW", actor="admin")


def _open_job(af: Airflow) -> Any:
    return next(j for j in af.srv.sandbox.main.jobs.values() if j.state not in ("Review", "Completed", "Cancelled"))


def _state_writes(af: Airflow) -> int:
    return sum(1 for write in af.srv.sandbox.gateway.writes if write == ("PUT", "job.api/state"))


def test_the_json_api_on_a_real_api_server(stack: Airflow, browser: Any):
    """Another system's requests: Airflow's token, the page's roles, once per Idempotency-Key, problems."""
    from openapi_spec_validator import validate
    from playwright.sync_api import expect

    api = f"{stack.url}/xpm/api/v1"
    page, xpm = _connected(browser, stack, "16-connect")
    _jobs_kept_here(stack)
    stack.srv.sandbox.gateway.faults.clear()
    job, viewer, user = _open_job(stack), _token(stack, "viewer"), _token(stack, "user")
    body = {"job_number": job.number, "state": "Review"}

    anonymous = requests.post(f"{api}/changes/job-state", json=body, timeout=10)
    assert anonymous.status_code == 401
    assert anonymous.headers["content-type"] == "application/problem+json"
    assert requests.get(f"{api}/jobs/{job.number}", headers=viewer, timeout=10).json()["state"] == job.state
    refused = requests.post(f"{api}/changes/job-state", json=body, headers=viewer, timeout=10)
    assert refused.status_code == 403

    for bad, field in (({"job_number": "J 1"}, "job_number"), ({"state": "Asleep"}, "state")):
        reply = requests.post(f"{api}/changes/job-state", json={**body, **bad}, headers=user, timeout=10)
        assert reply.status_code == 422, reply.text
        assert reply.json()["errors"][0]["field"] == field
    assert requests.get(f"{api}/changes", headers=viewer, timeout=10).json() == []

    keyed = {**user, "Idempotency-Key": f"state-{job.number}"}
    first = requests.post(f"{api}/changes/job-state", json=body, headers=keyed, timeout=30)
    assert first.status_code == 201, first.text
    again = requests.post(f"{api}/changes/job-state", json=body, headers=keyed, timeout=30)
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["change"]["id"] == first.json()["change"]["id"]
    assert [c["id"] for c in requests.get(f"{api}/changes", headers=viewer, timeout=10).json()] == [
        first.json()["change"]["id"]
    ]

    before = _state_writes(stack)
    push = requests.post(f"{api}/pushes", headers={**user, "Idempotency-Key": f"push-{job.number}"}, timeout=30)
    assert push.status_code == 202, push.text
    run = push.json()
    assert stack.wait("xpm_push", run["run_id"]) == "success"
    assert requests.get(f"{api}/pushes/{run['run_id']}", headers=viewer, timeout=10).json()["state"] == "success"
    assert job.state == "Review"  # in the sandbox
    assert _state_writes(stack) - before == 1
    late = requests.post(f"{api}/changes/job-state", json=body, headers=keyed, timeout=30)  # retried after the push
    assert late.headers["Idempotent-Replayed"] == "true"
    assert requests.get(f"{api}/changes", headers=viewer, timeout=10).json() == []

    spec = requests.get(f"{api}/openapi.json", timeout=10).json()
    validate(spec)
    assert spec["servers"] == [{"url": "/xpm/api/v1"}]
    xpm.get_by_role("link", name="JSON API").click()  # from the page's foot, to the docs in the whole window
    expect(page.get_by_role("heading", name="xpm-sync API, version 1")).to_be_visible()
    expect(page.get_by_text("POST /changes/job-state")).to_be_visible()
    shot(page, "16a-api-docs")


def test_a_job_state_changed_in_the_jobs_panel_is_pushed_to_xpm(stack: Airflow, browser: Any):
    from playwright.sync_api import expect

    page, xpm = _connected(browser, stack, "17-connect")
    _jobs_kept_here(stack)
    stack.srv.sandbox.gateway.faults.clear()
    job = _open_job(stack)
    before = _state_writes(stack)
    xpm = open_xpm(page, stack)
    panel = xpm.locator("#jobs")
    panel.locator("input[name=q]").fill(job.number)
    panel.get_by_role("button", name="Search").click()
    row = panel.locator(f"tr[data-job='{job.number}']")
    expect(row).to_contain_text(job.state)
    shot(page, "17a-jobs-panel-search")
    row.get_by_role("button", name=job.number).click()
    detail = panel.locator(".job-detail")
    expect(detail).to_contain_text(job.number)
    detail.get_by_label("New state").select_option("Review")
    detail.get_by_role("button", name="Change state").click()

    expect(xpm.locator("#notice")).to_contain_text("The change was recorded here")
    expect(panel.locator(f"tr[data-job='{job.number}']")).to_contain_text("waiting for XPM")
    expect(panel.locator(".job-detail")).to_contain_text("state → Review: pending")
    expect(xpm.locator("#changes")).to_contain_text(f"Job {job.number}")
    shot(page, "17b-job-change-waiting")
    # Recording the change told xpm_push (the outbox Asset), which may already be sending it: "Push now"
    # is the person's own way, and either way XPM gets the change once.
    xpm.locator("#changes").get_by_role("button", name="Push now").click()
    expect(xpm.locator("#notice")).to_contain_text("The push to XPM has started.")
    expect(xpm.locator("#notice .state")).to_have_text("success", timeout=RUN_TIMEOUT)
    expect(xpm.locator("#changes")).to_contain_text("None: XPM has every change made here.")
    shot(page, "17c-job-change-pushed")
    assert job.state == "Review"
    assert _state_writes(stack) - before == 1


def _awaiting(af: Airflow, dag_id: str, timeout: float = 240) -> dict[str, Any]:
    """The Required Action a run of `dag_id` waits on, once Airflow has it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        listed = af.api("GET", f"/dags/{dag_id}/dagRuns/~/hitlDetails").json().get("hitl_details", [])
        waiting = [d for d in listed if not d.get("response_received")]
        if waiting:
            ti = waiting[0]["task_instance"]
            path = f"/dags/{dag_id}/dagRuns/{ti['dag_run_id']}/taskInstances/{ti['task_id']}"
            if af.api("GET", path).json()["state"] == "awaiting_input":
                # A person answers after the scheduler has seen the task park; Airflow 3.3 fails a task
                # answered in the second between (its resume races the parking try's exit).
                time.sleep(5)
                return dict(waiting[0])
        time.sleep(2)
    raise AssertionError(f"no Required Action of {dag_id} appeared; logs in {af.logs}")


def _removed_clients(af: Airflow) -> set[str]:
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from xpm_sync.store import models as m
    from xpm_sync.store.engine import get_engine

    with Session(get_engine(af.store_url)) as s:
        return set(s.scalars(select(m.Client.uuid).where(m.Client.removed_upstream_at.is_not(None))))


def _decide_from_the_page(page: Any, af: Airflow, question: str, screenshot: str, asked: str | None = None) -> None:
    """The XPM page lists the question; its link opens the run's Required Action in Airflow, which
    asks it (or, for several changes, `asked`)."""
    from playwright.sync_api import expect

    xpm = open_xpm(page, af)
    panel = xpm.locator("#decisions")
    expect(panel).to_contain_text(question)
    shot(page, f"{screenshot}a-waiting-on-the-xpm-page")
    panel.get_by_role("link", name="Decide in Airflow").first.click()
    page.wait_for_url(re.compile(r".*/required_actions.*"), timeout=30_000)
    expect(page.get_by_text(asked or question).first).to_be_visible(timeout=30_000)
    shot(page, f"{screenshot}b-required-action")


def test_held_back_removals_are_approved_or_rejected_in_airflows_required_actions(stack: Airflow, browser: Any):
    """XPM drops 30% of the clients: the full sync waits on a Required Action; approving in Airflow's
    own page marks exactly those removed; a second time, rejecting changes nothing."""
    from playwright.sync_api import expect

    page, _xpm = _connected(browser, stack, "20-connect")
    clients = stack.srv.sandbox.main.clients
    already, asked_before = _removed_clients(stack), set()
    for answer, shots in (("Mark them removed", "20"), ("Keep them", "21")):
        gone = sorted(set(clients) - already - asked_before)[: len(clients) * 3 // 10]
        asked_before |= set(gone)
        dropped = {uuid: clients.pop(uuid) for uuid in gone}
        run_id = stack.trigger("xpm_manual_sync", {"entities": ["clients"], "full": True})
        asked = _awaiting(stack, "xpm_manual_sync")
        assert asked["task_instance"]["dag_run_id"] == run_id
        question = asked["subject"]
        assert question.startswith(f"(Clients) XPM no longer lists {len(gone)} of the ")
        _decide_from_the_page(page, stack, question, shots)
        page.get_by_role("button", name=answer).click()
        expect(page.get_by_text("decide_removals response successful")).to_be_visible(timeout=30_000)
        shot(page, f"{shots}c-answered")
        assert stack.wait("xpm_manual_sync", run_id) == "success"
        detail = stack.api(
            "GET", f"/dags/xpm_manual_sync/dagRuns/{run_id}/taskInstances/decide_removals/-1/hitlDetails"
        )
        assert detail.json()["responded_by_user"]["name"] == "admin"
        if answer == "Mark them removed":
            assert _removed_clients(stack) == already | set(gone)
        else:  # nothing held back is marked, and those of the first case are back: XPM lists them again
            assert _removed_clients(stack) == already
        clients.update(dropped)  # XPM lists them again: the next full list brings them back
    xpm = open_xpm(page, stack)
    expect(xpm.locator("#decisions")).to_have_count(0)
    expect(xpm.locator("#activity")).to_contain_text("Held-back removals kept (admin decided)")


def test_a_push_conflict_is_resolved_in_airflows_required_actions_and_lands_once(stack: Airflow, browser: Any):
    """A local job change meets a newer name in XPM after the practice hands jobs back to XPM: the
    question waits in xpm_push_decisions; keeping the local value in Airflow's page sends it, once."""
    from playwright.sync_api import expect

    from xpm_sync import changes, settings
    from xpm_sync.store.engine import get_engine, session_scope

    page, _xpm = _connected(browser, stack, "22-connect")
    _jobs_kept_here(stack)
    stack.srv.sandbox.gateway.faults.clear()
    engine = get_engine(stack.store_url)
    job = _open_job(stack)
    before = len([w for w in stack.srv.sandbox.gateway.writes if w == ("PUT", "job.api/update")])
    changes.update_job(engine, job.number, actor="ada", name="Year-end accounts (ours)")
    job.name = "Year-end accounts (XPM)"
    with session_scope(engine) as session:
        settings.change(session, "maintain_jobs_locally", False, actor="admin")
    try:
        push = stack.trigger("xpm_push")
        assert stack.wait("xpm_push", push) == "failed"  # red: the change did not go
        asked = _awaiting(stack, "xpm_push_decisions")
        assert asked["subject"] == "1 change(s) made here met newer values in XPM: keep the local value or XPM's?"
        question = f"Job {job.number}: name here 'Year-end accounts (ours)', in XPM 'Year-end accounts (XPM)'"
        _decide_from_the_page(page, stack, question, "22", asked=asked["subject"])
        page.get_by_role("combobox").first.click()  # the change's field: a list of the two answers
        page.get_by_role("option", name="Keep the local value").click()
        expect(page.get_by_text("Keep the local value").first).to_be_visible()
        shot(page, "22c-local-value-chosen")
        page.get_by_role("button", name="Apply these choices").click()
        expect(page.get_by_text("decide response successful")).to_be_visible(timeout=30_000)
        decided = asked["task_instance"]["dag_run_id"]
        assert stack.wait("xpm_push_decisions", decided) == "success"
        deadline = time.monotonic() + 240
        while job.name != "Year-end accounts (ours)" and time.monotonic() < deadline:
            time.sleep(2)
        assert job.name == "Year-end accounts (ours)"
        time.sleep(5)  # a second push would have come by now
        updates = [w for w in stack.srv.sandbox.gateway.writes if w == ("PUT", "job.api/update")]
        assert len(updates) - before == 1
    finally:
        with session_scope(engine) as session:
            settings.change(session, "maintain_jobs_locally", True, actor="admin")


def test_an_administrator_switches_practice_from_the_page(stack: Airflow, browser: Any):
    """Last in this module: the installation ends on the second practice."""
    from playwright.sync_api import expect

    page, xpm = _connected(browser, stack, "15-connect")
    main, second = stack.srv.sandbox.main, next(p for p in stack.srv.sandbox.practices.values()
                                                 if p is not stack.srv.sandbox.main)  # fmt: skip

    # A plain reconnect that picks the other practice is refused, and the refusal is logged.
    xpm.locator("#status").get_by_role("button", name="Reconnect XPM").click()
    sign_in_at_xero(page, stack, "15a-sign-in-two-practices", user=XERO_USERS.two_practices)
    chooser = page.locator("section.chooser")
    expect(chooser).to_contain_text("Choose carefully")
    pinned = chooser.locator("label.choice", has_text=main.name)
    expect(pinned).to_contain_text("connected now")
    expect(pinned.locator("input[type=radio]")).to_be_checked()
    shot(page, "15b-chooser-marks-the-pinned-practice")
    chooser.locator("label.choice", has_text=second.name).locator("input[type=radio]").check()
    chooser.get_by_role("button", name="Connect this practice").click()
    expect(page.locator("body")).to_contain_text(f"but this connection is pinned to '{main.name}'")
    expect(page.locator("body")).to_contain_text(f"The current connection to {main.name} still works.")
    shot(page, "15c-other-practice-refused")

    # Switching on purpose: the page's Switch practice, confirmed.
    xpm = open_xpm(page, stack)
    expect(xpm.locator("#activity tbody tr").first).to_contain_text("Sign-in refused: Pat Partner")
    xpm.locator("#switch-practice summary").click()
    switch = xpm.locator("#switch-practice")
    expect(switch).to_contain_text("Connecting the wrong practice syncs the wrong practice's data.")
    shot(page, "15d-switch-practice-warning")
    switch.get_by_role("button", name="Sign in to the other practice").click()
    expect(switch.locator("input[name=confirm]")).to_be_visible()  # not ticked: the browser holds it back
    assert "/identity/connect/authorize" not in page.url
    switch.locator("input[name=confirm]").check()
    switch.get_by_role("button", name="Sign in to the other practice").click()
    sign_in_at_xero(page, stack, "15e-sign-in-to-switch", user=XERO_USERS.two_practices)
    chooser = page.locator("section.chooser")
    chooser.locator("label.choice", has_text=second.name).locator("input[type=radio]").check()
    chooser.get_by_role("button", name="Connect this practice").click()
    xpm = back_in_airflow(page, stack)
    expect(xpm.locator("#notice")).to_contain_text("XPM is connected.")
    expect(xpm.locator("#status")).to_contain_text(second.name)
    expect(xpm.locator("#status")).to_contain_text(second.tenant_id)
    switched = f"XPM practice switched from {main.name} to {second.name} by admin"
    expect(xpm.locator("#activity")).to_contain_text(switched)
    expect(xpm.locator("#notice .state")).to_have_text("success", timeout=RUN_TIMEOUT)
    shot(page, "15f-switched-practice")


def test_an_administrator_disconnects_from_the_page(stack: Airflow, browser: Any):
    """Last of all: it leaves XPM disconnected. Airflow's frame allows no dialogs, so the page asks
    beside the button (a window.confirm there answers "no" at once and nothing happened)."""
    from playwright.sync_api import expect

    page, xpm = _connected(browser, stack, "19-connect")
    status = xpm.locator("#status")
    status.get_by_role("button", name="Disconnect").click()
    expect(status.locator(".confirm-box")).to_contain_text("Disconnect XPM? xpm-sync will stop calling XPM")
    shot(page, "19a-disconnect-asked")
    status.get_by_role("button", name="Yes, disconnect XPM").click()
    expect(xpm.locator("#notice")).to_have_text("XPM was disconnected: xpm-sync no longer calls it.")
    expect(xpm.locator("#status")).to_contain_text("XPM is not connected")
    shot(page, "19b-disconnected")
