"""xpm_push on real Airflow (`dag.test()`), against the sandbox."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.orm import Session

from tests.conftest import dag_of
from tests.integration.conftest import Xpm
from tests.integration.sync.test_pull import sync
from tests.integration.sync.test_push import CODES
from xpm_sync import activity, changes, settings


@pytest.fixture
def ready(xpm: Xpm, airflow_db: Any) -> Xpm:
    xpm.connect()
    xpm.control("limits", {"per_minute": 100_000})
    sync(xpm, ["staff", "job_states", "clients", "jobs"], full=True)
    with Session(xpm.engine) as s, s.begin():
        settings.change(s, "maintain_jobs_locally", True, actor="admin")
    xpm.connect()  # granting practicemanager.job, which pushing jobs needs
    for name, code in CODES.items():
        changes.set_state_code(xpm.engine, name, code, actor="admin")
    return xpm


def _push_dag() -> Any:
    return dag_of("xpm_push")


def test_the_push_dag_sends_a_waiting_change_and_says_so(ready: Xpm):
    job = next(j for j in ready.srv.sandbox.main.jobs.values() if j.state == "Planned")
    changes.set_job_state(ready.engine, job.number, "Review", actor="ada")
    run = _push_dag().test()
    assert run.state == "success"
    assert job.state == "Review"
    with Session(ready.engine) as s:
        entry = activity.recent(s, 1, category="Push")[0]
    assert entry.message.startswith("(Jobs) pushed 1 change(s) to XPM")


def test_with_nothing_waiting_the_push_dag_calls_nothing(ready: Xpm):
    calls = len(ready.srv.sandbox.gateway.calls)
    run = _push_dag().test()
    assert {ti.task_id: str(ti.state) for ti in run.get_task_instances()} == {"push": "skipped", "conflicts": "skipped"}
    assert len(ready.srv.sandbox.gateway.calls) == calls


def test_nothing_is_pushed_while_xpm_needs_to_reconnect(ready: Xpm):
    job = next(j for j in ready.srv.sandbox.main.jobs.values() if j.state == "Planned")
    changes.set_job_state(ready.engine, job.number, "Review", actor="ada")
    ready.hook().tokens.mark_needs_reconnect("XPM needs to reconnect: test")
    calls = len(ready.srv.sandbox.gateway.calls)
    run = _push_dag().test()
    # Red, not skipped: a change is waiting and cannot go until someone reconnects.
    assert run.state == "failed"
    assert {ti.task_id: str(ti.state) for ti in run.get_task_instances()} == {"push": "failed", "conflicts": "skipped"}
    assert len(ready.srv.sandbox.gateway.calls) == calls
    assert job.state == "Planned"


def test_a_change_xpm_refuses_fails_the_run_with_xpms_words(ready: Xpm):
    job = next(j for j in ready.srv.sandbox.main.jobs.values() if j.state == "Planned")
    changes.set_job_state(ready.engine, job.number, "Review", actor="ada")
    ready.control("faults", {"kind": "business_error", "path": "job.api/state", "description": "Job is locked"})
    run = _push_dag().test()
    assert run.state == "failed"
    with Session(ready.engine) as s:
        entry = activity.recent(s, 1, category="Push")[0]
    assert f"1 failed: {job.number}: Job is locked" in entry.message
