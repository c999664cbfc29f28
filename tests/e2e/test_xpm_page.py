"""The XPM page in a real Chromium (Debian's, driven by Playwright) against a real Airflow: api-server,
scheduler and dag-processor with the XPM sandbox. Screenshots of each step go to .demo/screenshots/.

The tests share one Airflow (starting it takes most of a minute); each can run on its own.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import requests

from tests.e2e.browser import RUN_TIMEOUT, chromium, open_xpm, shot, sign_in, sign_in_at_xero
from tests.e2e.conftest import USERS, Airflow, launch
from xpm_sandbox.state import USERS as XERO_USERS


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Airflow]:
    with launch(tmp_path_factory.mktemp("xpm-page")) as af:
        yield af


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    yield from chromium()


def test_an_administrator_connects_syncs_and_reconnects_on_the_xpm_page(stack: Airflow, browser: Any):
    from playwright.sync_api import expect

    page = sign_in(browser, stack)
    expect(page.get_by_role("link", name=re.compile("Xero Prac"))).to_be_visible()  # the nav entry
    xpm = open_xpm(page, stack)
    expect(xpm.locator("#status")).to_contain_text("XPM is not connected")
    expect(xpm.locator("#status")).to_contain_text(f"{stack.url}/xpm/oauth/callback")
    shot(page, "01-not-connected")

    xpm.get_by_role("button", name="Connect XPM", exact=True).click()
    sign_in_at_xero(page, stack, "02-xero-sign-in")
    page.wait_for_url(f"{stack.url}/xpm/?*")
    expect(page.locator("#notice")).to_contain_text("XPM is connected.")
    expect(page.locator("#notice .state")).to_have_text("success", timeout=RUN_TIMEOUT)
    shot(page, "03-connected-first-sync-done")

    xpm = open_xpm(page, stack)
    practice = stack.srv.sandbox.main
    expect(xpm.locator("#status")).to_contain_text(practice.name)
    expect(xpm.locator("#status")).to_contain_text(practice.tenant_id)
    expect(xpm.locator("#status")).to_contain_text("Ada Admin")
    expect(xpm.locator("#synced")).to_contain_text(f"{len(practice.clients):,}")
    today = datetime.now(UTC).date().isoformat()
    expect(xpm.locator("#custom-field-coverage")).to_have_text(f"Custom fields complete to {today}.")
    shot(page, "04-status")

    xpm.locator("#cog").click()
    xpm.locator("form.setting:has(input[value=maintain_jobs_locally]) .switch").click()
    expect(xpm.locator("#notice")).to_have_text("The setting was saved.")
    jobs = xpm.locator("form.sync:has(input[value=jobs]) button")
    expect(jobs).to_be_enabled()  # no local job change is waiting: a job sync adds jobs, overwriting none
    expect(xpm.locator("#activity tbody tr").first).to_contain_text("Maintain jobs locally turned on")
    expect(xpm.locator("#activity tbody tr").first).to_contain_text("admin")
    shot(page, "05-jobs-maintained-locally")
    xpm.locator("form.setting:has(input[value=maintain_jobs_locally]) .switch").click()
    expect(jobs).to_be_enabled()

    jobs.click()
    expect(xpm.locator("#notice")).to_contain_text("The sync has started.")
    expect(xpm.locator("#notice .state")).to_have_text("success", timeout=RUN_TIMEOUT)
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

    # Xero revokes the grant: the next run fails once and the page says so.
    stack.srv.sandbox.identity.revoke_all()
    assert stack.wait("xpm_overnight_sync", stack.trigger("xpm_overnight_sync")) == "failed"
    xpm = open_xpm(page, stack)
    banner = xpm.locator("#reconnect-banner")
    expect(banner).to_contain_text("XPM needs to reconnect")
    expect(banner).to_contain_text("Authorise 3rd Party Full Access")
    expect(xpm.locator("form.sync button").first).to_be_disabled()
    shot(page, "08-needs-reconnect")

    banner.get_by_role("button", name="Reconnect XPM").click()
    sign_in_at_xero(page, stack, "09-xero-sign-in-again")
    page.wait_for_url(f"{stack.url}/xpm/?*")
    expect(page.locator("#notice")).to_contain_text("XPM is reconnected.")
    expect(page.locator("#reconnect-banner")).to_have_count(0)
    expect(page.locator("#activity")).to_contain_text("XPM connection reset by admin")
    expect(page.locator("#notice .state")).to_have_text("success", timeout=RUN_TIMEOUT)
    shot(page, "10-reconnected-full-sync-done")


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
    for method, path in (("GET", "/xpm/runs/xpm_manual_sync/x"), ("POST", "/xpm/sync"), ("POST", "/xpm/settings")):
        reply = requests.request(method, f"{stack.url}{path}", data={"group": "jobs"}, timeout=10)
        assert reply.status_code == 401, path


def test_a_viewer_may_read_the_page_but_not_sync_connect_or_change_settings(stack: Airflow, browser: Any):
    from playwright.sync_api import expect

    viewer = _token(stack, "viewer")
    csrf = _page_token(stack, viewer)
    for path, form in (
        ("/xpm/sync", {"group": "clients", "mode": "incremental"}),
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


def test_changes_made_here_are_listed_refused_retried_and_pushed_from_the_page(stack: Airflow, browser: Any):
    from playwright.sync_api import expect

    from xpm_sync import changes
    from xpm_sync.store.engine import get_engine

    page = sign_in(browser, stack)
    xpm = open_xpm(page, stack)
    if xpm.get_by_role("button", name="Connect XPM", exact=True).count():
        xpm.get_by_role("button", name="Connect XPM", exact=True).click()
        sign_in_at_xero(page, stack, "12-connect")
        page.wait_for_url(f"{stack.url}/xpm/?*")
        expect(page.locator("#notice .state")).to_have_text("success", timeout=RUN_TIMEOUT)
        xpm = open_xpm(page, stack)
    xpm.locator("#cog").click()
    switch = xpm.locator("form.setting:has(input[value=maintain_jobs_locally])")
    if not switch.locator("input[type=checkbox]").is_checked():
        switch.locator(".switch").click()
        expect(xpm.locator("#notice")).to_have_text("The setting was saved.")
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
    expect(waits).to_contain_text("Waits for 1 local job change(s) to reach XPM.")
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
