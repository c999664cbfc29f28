"""The morning deadline and failed nights in a row, through the DAGs (`dag.test()`, a real SMTP
server on loopback): each is told once, in Practice Activity and by email.

The deadline is set a minute before the test's own clock and the overnight cron two hours before
that, so the night the check belongs to has just passed whatever time the test runs."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import requests
from sqlalchemy.orm import Session

from tests.conftest import dag_of
from tests.integration.conftest import Inbox, Xpm
from xpm_sync import activity, config
from xpm_sync.store.types import utcnow

PRACTICE = "Harbour View Accountants"


@pytest.fixture
def ready(xpm: Xpm, airflow_db: Any, smtp: Inbox, monkeypatch: pytest.MonkeyPatch) -> Xpm:
    xpm.connect()
    xpm.control("limits", {"per_minute": 100_000})
    now = utcnow()
    deadline, due = now - timedelta(minutes=1), now - timedelta(hours=2)
    monkeypatch.setenv("AIRFLOW__XPM_SYNC__TIMEZONE", "UTC")
    monkeypatch.setenv("AIRFLOW__XPM_SYNC__OVERNIGHT_DEADLINE", f"{deadline:%H:%M}")
    monkeypatch.setenv("AIRFLOW__XPM_SYNC__OVERNIGHT_CRON", f"{due.minute} {due.hour} * * *")
    return xpm


def _run(name: str) -> Any:
    return dag_of(name).test()


def _alerts(xpm: Xpm) -> list[Any]:
    with Session(xpm.engine) as s:
        return [e for e in activity.recent(s, 60) if e.status == "Alert"]


def test_a_night_not_finished_by_the_deadline_is_told_once(ready: Xpm, smtp: Inbox):
    assert config.deadline_cron() is not None
    assert _run("xpm_morning_check").state == "success"
    [alert] = _alerts(ready)
    assert alert.message.startswith(f"The overnight sync of {PRACTICE} had not finished by the morning deadline")
    assert "it has not started" in alert.message  # no overnight run is queued or running in Airflow
    assert [m["Subject"] for m in smtp.messages] == [f"Overnight sync not finished: {PRACTICE}"]
    assert "had not finished by the morning deadline" in smtp.body()

    # The same night checked again (a retry, a second trigger): nothing more is said.
    assert _run("xpm_morning_check").state == "success"
    assert len(_alerts(ready)) == 1
    assert len(smtp.messages) == 1


def test_before_xpm_is_connected_the_check_skips_and_says_nothing(
    xpm: Xpm, airflow_db: Any, smtp: Inbox, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("AIRFLOW__XPM_SYNC__OVERNIGHT_DEADLINE", f"{utcnow() - timedelta(minutes=1):%H:%M}")
    run = _run("xpm_morning_check")
    assert run.state == "success"  # its one task skipped, saying why
    assert _alerts(xpm) == []
    assert smtp.messages == []


def test_a_night_that_finished_in_time_says_nothing(ready: Xpm, smtp: Inbox):
    assert _run("xpm_overnight_sync").state == "success"
    assert _run("xpm_morning_check").state == "success"
    assert _alerts(ready) == []
    assert smtp.messages == []


# Six overnight runs: on the embedded database only. The entries it counts are read by the same query
# as the deadline's, which the tests above run on both databases.
@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_failed_nights_in_a_row_are_emailed_once_when_they_reach_the_setting(
    ready: Xpm, smtp: Inbox, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("AIRFLOW__XPM_SYNC__FAILURES_BEFORE_EMAIL", "2")
    monkeypatch.setenv("AIRFLOW__XPM_SYNC__TASK_RETRY_DELAY_SECONDS", "0")  # the failing task's retries at once
    # Every night from now XPM's current job list comes back in a shape the reader refuses.
    ready.control("faults", {"kind": "wrong_wrapper", "path": "job.api/current", "count": 1000})

    assert _run("xpm_overnight_sync").state == "failed"
    assert smtp.messages == []  # one failed night: its own entry says so
    assert _run("xpm_overnight_sync").state == "failed"
    assert [m["Subject"] for m in smtp.messages] == [f"Overnight sync failed 2 nights in a row: {PRACTICE}"]
    [alert] = _alerts(ready)
    assert alert.message.startswith(f"The overnight sync of {PRACTICE} has failed 2 nights in a row.")
    assert _run("xpm_overnight_sync").state == "failed"
    assert len(smtp.messages) == 1  # the third failure of the same run of failures: nothing more

    # A good night ends the run of failures: the next failed night is the first again.
    requests.delete(f"{ready.srv.url}/_sandbox/faults", timeout=10).raise_for_status()
    assert _run("xpm_overnight_sync").state == "success"
    ready.control("faults", {"kind": "wrong_wrapper", "path": "job.api/current", "count": 1000})
    assert _run("xpm_overnight_sync").state == "failed"
    assert len(smtp.messages) == 1
