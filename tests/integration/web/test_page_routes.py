"""The page's routes as a browser's requests reach them (no browser: the e2e tests drive one)."""

from __future__ import annotations

import pytest

from tests.integration.web.conftest import Page


@pytest.mark.parametrize(
    "query",
    [
        pytest.param("?notice=settings&run_id=//x", id="run-id-with-slashes"),
        pytest.param("?notice=sync-started&run_id=" + "r" * 300, id="run-id-too-long"),
        pytest.param("?page=%C2%B2", id="superscript-two"),
        pytest.param("?page=" + "9" * 23, id="23-digit-page"),
        pytest.param("?page=-4&status=Nope", id="negative-page-unknown-status"),
    ],
)
def test_the_page_ignores_a_page_number_or_run_id_that_is_not_one(page: Page, query: str):
    reply = page.get("/xpm/" + query)
    assert reply.status_code == 200, reply.text[-500:]
    assert "Practice Activity" in reply.text
    assert "Open the run in Airflow" not in reply.text


def test_a_run_id_airflow_could_have_made_is_linked(page: Page):
    reply = page.get("/xpm/?notice=sync-started&run_id=manual__2026-12-02T01:00:00%2B00:00")
    assert reply.status_code == 200
    assert "/dags/xpm_manual_sync/runs/manual__2026-12-02T01:00:00+00:00" in reply.text


def test_the_run_state_of_a_run_id_that_is_not_one_is_refused_and_of_an_unknown_one_not_found(page: Page):
    for path in ("syncs", "pushes"):
        assert page.get(f"/xpm/api/v1/{path}/a%20b").status_code == 422
        assert page.get(f"/xpm/api/v1/{path}/" + "r" * 300).status_code == 422
        unknown = page.get(f"/xpm/api/v1/{path}/manual__2026-12-02T01:00:00+00:00")
        assert unknown.status_code == 404
        assert unknown.json()["detail"].startswith("There is no run manual__2026-12-02T01:00:00+00:00 of xpm_")


def test_anonymous_is_sent_to_sign_in_and_a_viewer_reads(page: Page):
    anonymous = page.get("/xpm/", user=None, headers={"accept": "text/html"}, follow_redirects=False)
    assert anonymous.status_code == 303
    assert "/auth/login" in anonymous.headers["location"]
    assert page.get("/xpm/", user="viewer").status_code == 200
