"""A person in a real Chromium (Debian's, driven by Playwright): signing in to Airflow, opening the
XPM page, consenting at the sandbox's Xero sign-in. Screenshots go to .demo/screenshots/."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import REPO
from tests.e2e.conftest import USERS, Airflow
from xpm_sandbox.state import USERS as XERO_USERS

SHOTS = REPO / ".demo" / "screenshots"
RUN_TIMEOUT = 240_000  # ms
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def shot(page: Any, name: str) -> None:
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def sign_in(browser: Any, af: Airflow, user: str = "admin") -> Any:
    page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
    page.goto(f"{af.url}/")
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", USERS[user][1])
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r".*/$|.*/dags.*|.*/home.*"), timeout=30_000)
    return page


def open_xpm(page: Any, af: Airflow) -> Any:
    """Airflow's "Xero Practice Manager" view; returns the page inside its frame."""
    from playwright.sync_api import expect

    page.goto(f"{af.url}/plugin/xpm")
    frame = page.frame_locator("iframe").first
    expect(frame.locator("h1")).to_have_text("Xero Practice Manager", timeout=30_000)
    return frame


def xpm_frame(page: Any) -> Any:
    """The XPM page's frame itself (a Playwright Frame), for waiting on its own navigations."""
    return page.locator("iframe").first.element_handle().content_frame()


def sign_in_at_xero(page: Any, af: Airflow, screenshot: str, user: str = XERO_USERS.admin) -> None:
    """The sandbox's sign-in and consent page, in the whole window, as a person uses it."""
    page.wait_for_url(f"{af.srv.url}/identity/connect/authorize*", timeout=30_000)
    shot(page, screenshot)
    page.select_option("select[name=user]", user)
    page.get_by_role("button", name="Allow access").click()


def back_in_airflow(page: Any, af: Airflow) -> Any:
    """After Xero's sign-in the browser comes back to the XPM page inside Airflow's frame (Airflow's
    /plugin/xpm/<path> route opens <path> in the view's frame); returns the page inside the frame."""
    from playwright.sync_api import expect

    page.wait_for_url(f"{af.url}/plugin/xpm/xpm/?*", timeout=60_000)
    frame = page.frame_locator("iframe").first
    expect(frame.locator("h1")).to_have_text("Xero Practice Manager", timeout=30_000)
    return frame


def chromium() -> Iterator[Any]:
    """Debian's chromium, launched headless; fails (in CI) or skips when it is not installed."""
    path = shutil.which("chromium")
    if path is None:
        message = "Debian's chromium is not installed (apt-get install chromium); .ci/run installs it"
        if os.environ.get("XPM_SYNC_REQUIRE_BROWSER") == "1":
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        yield launched
        launched.close()
