"""Several practices on one Airflow, in a real Chromium: the partner connects two of them with one
sign-in through the chooser, the administrator switches between their pages, a pick of an XPM practice
another entry holds is refused, and the third practice is connected by its own owner. Screenshots go
to .demo/screenshots/ (30-*)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.browser import RUN_TIMEOUT, back_in_airflow, chromium, open_xpm, shot, sign_in, sign_in_at_xero
from tests.e2e.conftest import Airflow, launch
from xpm_sandbox.state import USERS as XERO_USERS

PRACTICES = {"xpm_north": {"practice_name": "North branch"}, "xpm_south": {"practice_name": "South branch"}}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Airflow]:
    with launch(tmp_path_factory.mktemp("several-practices"), practices=PRACTICES) as af:
        yield af


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    yield from chromium()


def test_practices_are_connected_switched_and_kept_apart_in_the_browser(stack: Airflow, browser: Any) -> None:
    from playwright.sync_api import expect

    sandbox = stack.srv.sandbox
    main, second, third = sandbox.main, sandbox.second, sandbox.third
    page = sign_in(browser, stack)
    xpm = open_xpm(page, stack)
    practices = xpm.locator("#practices")
    expect(practices.locator("tbody tr")).to_have_count(3)
    expect(practices.locator("tr", has_text="North branch")).to_contain_text("Not connected")
    shot(page, "30a-three-practices-none-connected")

    # The partner, once: Harbour View for this page's practice, Second Street connected as north.
    xpm.get_by_role("button", name="Connect XPM", exact=True).click()
    sign_in_at_xero(page, stack, "30b-partner-signs-in", user=XERO_USERS.two_practices)
    chooser = page.locator("section.chooser")
    expect(chooser).to_contain_text("Choose carefully")
    chooser.locator("fieldset").first.locator("label.choice", has_text=main.name).locator("input").check()
    chooser.locator(f"select[name='also:{second.tenant_id}']").select_option(label="connect as North branch")
    shot(page, "30c-chooser-connects-two-practices")
    chooser.get_by_role("button", name="Connect this practice").click()
    xpm = back_in_airflow(page, stack)
    expect(xpm.locator("#notice")).to_contain_text("XPM is connected.")
    expect(xpm.locator("#notice .state")).to_have_text("success", timeout=RUN_TIMEOUT)

    # The overview names both, each with its XPM practice; north's link opens north's own page.
    xpm = open_xpm(page, stack)
    practices = xpm.locator("#practices")
    expect(practices.locator("tr", has_text="North branch")).to_contain_text(second.name)
    expect(practices.locator("tr", has_text="North branch")).to_contain_text("Connected")
    expect(practices.locator("tr", has_text="South branch")).to_contain_text("Not connected")
    expect(xpm.locator("#status")).to_contain_text(main.name)
    shot(page, "30d-overview-two-connected")
    practices.get_by_role("link", name="North branch").click()
    expect(xpm.locator(".titles")).to_contain_text(f"North branch: {second.name}", timeout=30_000)
    expect(xpm.locator("#status")).to_contain_text(second.tenant_id)
    # North's activity: its own runs only (the scheduled runs of all three share their ids), nothing of
    # Harbour View's.
    activity = xpm.locator("#activity")
    expect(activity.locator("a[href*='/dags/xpm_north_manual_sync/runs/']").first).to_be_visible(timeout=RUN_TIMEOUT)
    expect(activity.locator("a[href*='/dags/xpm_manual_sync/runs/']")).to_have_count(0)
    expect(activity.locator("a[href*='/dags/xpm_south_overnight_sync/runs/']")).to_have_count(0)
    expect(activity).not_to_contain_text(main.name)
    # North's full sync, started by the same sign-in, fills north's rows only.
    expect(xpm.locator("#synced")).to_contain_text(
        re.compile(rf"Clients\D*{len(second.clients):,}"), timeout=RUN_TIMEOUT
    )
    shot(page, "30e-north-page")

    # South: the partner picks an XPM practice another entry holds, and is refused.
    practices = xpm.locator("#practices")
    practices.get_by_role("link", name="South branch").click()
    expect(xpm.locator(".titles")).to_contain_text("South branch: Not connected", timeout=30_000)
    xpm.get_by_role("button", name="Connect XPM", exact=True).click()
    sign_in_at_xero(page, stack, "30f-partner-signs-in-for-south", user=XERO_USERS.two_practices)
    chooser = page.locator("section.chooser")
    chooser.locator("fieldset").first.locator("label.choice", has_text=main.name).locator("input").check()
    chooser.get_by_role("button", name="Connect this practice").click()
    expect(page.locator("body")).to_contain_text(
        "is already connected here as the practice of the connection 'xpm_default'"
    )
    shot(page, "30g-held-practice-refused")

    # South's own owner connects Third Avenue: one XPM practice, no chooser.
    xpm = open_xpm(page, stack)
    xpm.locator("#practices").get_by_role("link", name="South branch").click()
    expect(xpm.locator(".titles")).to_contain_text("South branch", timeout=30_000)
    xpm.get_by_role("button", name="Connect XPM", exact=True).click()
    sign_in_at_xero(page, stack, "30h-owner-signs-in-for-south", user=XERO_USERS.third_practice)
    page.wait_for_url(f"{stack.url}/plugin/xpm/xpm/practices/south/?*", timeout=60_000)
    xpm = page.frame_locator("iframe").first
    expect(xpm.locator("#notice")).to_contain_text("XPM is connected.", timeout=30_000)
    expect(xpm.locator(".titles")).to_contain_text(f"South branch: {third.name}")
    expect(xpm.locator("#activity")).to_contain_text("Sign-in refused: Pat Partner")
    expect(xpm.locator("#practices tr", has_text="South branch")).to_contain_text("Connected")
    shot(page, "30i-south-connected")
