"""The page says where the "XPM needs to reconnect" email goes, sends a test one, and lists what was sent."""

from __future__ import annotations

from tests.integration.conftest import Inbox, smtp  # noqa: F401 - the fixture, for these tests
from tests.integration.web.conftest import Page


def test_the_page_names_the_recipients_and_the_smtp_connection_and_sends_a_test(
    page: Page,
    smtp: Inbox,  # noqa: F811
):
    html = page.get("/xpm/").text
    assert "admin@practice.example, it@practice.example" in html
    assert "the Airflow connection <code>smtp_default</code> (127.0.0.1:" in html
    assert "Send test email" in html
    sent = page.post("/xpm/alerts/test")
    assert sent.status_code == 303
    assert len(smtp.messages) == 1
    assert smtp.messages[0]["Subject"] == "xpm-sync test email"
    assert "Sent from the XPM page by admin" in smtp.body()
    after = page.get(sent.headers["location"]).text
    assert "The test email was tried" in after
    assert "Email sent to admin@practice.example, it@practice.example: xpm-sync test email" in after


def test_with_no_recipients_the_page_says_the_alert_is_not_emailed(page: Page, monkeypatch):
    monkeypatch.delenv("AIRFLOW__XPM_SYNC__ALERT_RECIPIENTS", raising=False)
    html = page.get("/xpm/").text
    assert "nobody: no alert recipients are set" in html
    assert "Send test email" not in html


def test_a_viewer_may_not_send_a_test_email(page: Page, smtp: Inbox):  # noqa: F811
    assert "Send test email" not in page.get("/xpm/", user="viewer").text
    assert page.post("/xpm/alerts/test", user="viewer").status_code == 403
    assert smtp.messages == []
