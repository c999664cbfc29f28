"""Both sync DAGs on real Airflow (`dag.test()`), against the sandbox, on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.orm import Session

from tests.conftest import dag_of
from tests.integration.conftest import Xpm
from tests.integration.sync.truth import differences
from xpm_sync import activity, settings
from xpm_sync.store.models import ActivityStatus
from xpm_sync.sync import policy


@pytest.fixture
def ready(xpm: Xpm, airflow_db: Any) -> Xpm:
    xpm.connect()
    xpm.control("limits", {"per_minute": 100_000})  # tasks pace with real sleeps; keep these runs quick
    return xpm


def _dag(name: str) -> Any:
    return dag_of(name)


def _entries(xpm: Xpm, n: int = 30) -> list[Any]:
    with Session(xpm.engine) as s:
        return list(activity.recent(s, n))


def _states(run: Any) -> dict[str, str]:
    return {ti.task_id: str(ti.state) for ti in run.get_task_instances()}


def test_the_overnight_sync_fills_the_store_and_a_second_run_writes_nothing(ready: Xpm):
    run = _dag("xpm_overnight_sync").test()
    assert run.state == "success", _states(run)
    assert differences(ready.engine, ready.srv.sandbox.main) == []
    summary = _entries(ready)[0]
    assert summary.message.startswith("Overnight sync finished:")
    assert summary.status == "Success"
    assert summary.details["calls"] > 0

    again = _dag("xpm_overnight_sync").test()
    assert again.state == "success"
    assert _entries(ready)[0].details["written"] == 0


def test_after_a_day_of_changes_the_overnight_sync_catches_up_with_far_fewer_calls(ready: Xpm):
    ready.control("identity", {"access_lifetime_seconds": 3 * 86_400})
    ready.connect()
    assert _dag("xpm_overnight_sync").test().state == "success"
    full_calls = _entries(ready)[0].details["calls"]
    ready.control("next-day", {"share": 0.05})
    assert _dag("xpm_overnight_sync").test().state == "success"
    assert differences(ready.engine, ready.srv.sandbox.main) == []
    incremental_calls = _entries(ready)[0].details["calls"]
    assert incremental_calls < full_calls / 2


def _note(run: Any) -> str | None:
    """The run's note, once the listener's writer has saved it (it writes from a thread of its own)."""
    import time

    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    for _ in range(100):
        with create_session() as session:
            note = session.query(DagRun).filter(DagRun.run_id == run.run_id).one().note
        if note:
            return note
        time.sleep(0.1)
    return None


def test_every_night_of_an_outage_the_overnight_run_is_red_with_the_reason_and_calls_nothing(ready: Xpm, caplog):
    ready.hook().tokens.mark_needs_reconnect("XPM needs to reconnect: test")
    calls = len(ready.srv.sandbox.gateway.calls)
    for night in (1, 2):  # the first night of the outage, and the next: both red, not only the first
        run = _dag("xpm_overnight_sync").test()
        states = _states(run)
        assert (states["start"], states["summary"], run.state) == ("success", "failed", "failed"), night
        assert {s for t, s in states.items() if t not in ("start", "summary")} == {"skipped"}
        assert len(ready.srv.sandbox.gateway.calls) == calls
        entry = _entries(ready)[0]
        assert entry.status == ActivityStatus.ACTION_REQUIRED.value
        assert entry.message.startswith("Overnight sync skipped: XPM needs to reconnect")
        assert _note(run) == entry.message
    assert "Clients not synced: XPM needs to reconnect." in caplog.text  # each skipped task says why


def test_a_manual_sync_of_chosen_entities_records_who_asked_and_the_estimate(ready: Xpm, caplog):
    run = _dag("xpm_manual_sync").test(run_conf={"entities": ["staff", "clients"], "full": True})
    assert run.state == "success", _states(run)
    states = _states(run)
    assert (states["staff"], states["clients"], states["jobs"]) == ("success", "success", "skipped")
    assert "Jobs was not asked for in this run (it asked for staff, clients)." in caplog.text
    messages = [e.message for e in _entries(ready)]
    request = next(m for m in messages if m.startswith("Manual full sync of"))
    assert request.startswith("Manual full sync of staff, clients requested by dag_test: about 2 XPM calls")
    assert messages[0].startswith("Manual sync finished:")
    # Each entity's Asset event says what its task changed: here, every client inserted.
    extra = _asset_event_extra("xpm://practice/clients", run.run_id)
    assert (extra["entity"], extra["run_id"], extra["inserted"], extra["changed"], extra["removed"]) == (
        "clients", run.run_id, len(ready.srv.sandbox.main.clients), 0, 0
    )  # fmt: skip
    assert extra["last_id"] - extra["first_id"] + 1 == extra["inserted"]


def _asset_event_extra(uri: str, run_id: str) -> dict[str, Any]:
    """The extra of the Asset event a run's task posted, as Airflow stored it (its own tables: a test's read)."""
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        query = (
            select(AssetEvent.extra)
            .join(AssetModel, AssetModel.id == AssetEvent.asset_id)
            .where(AssetModel.uri == uri, AssetEvent.source_run_id == run_id)
        )
        return dict(session.scalars(query).one())


def test_a_manual_job_sync_is_refused_while_local_job_changes_wait(ready: Xpm):
    from tests.integration.sync.test_pull import sync
    from xpm_sync import changes

    sync(ready, ["job_states", "clients", "jobs"], full=True)
    with Session(ready.engine) as s, s.begin():
        settings.change(s, "maintain_jobs_locally", True, actor="admin")
    changes.set_state_code(ready.engine, "Review", "REVIEW", actor="admin")
    job = next(j for j in ready.srv.sandbox.main.jobs.values() if j.state == "Planned")
    changes.set_job_state(ready.engine, job.number, "Review", actor="ada")
    run = _dag("xpm_manual_sync").test(run_conf={"entities": ["jobs"]})
    assert _states(run)["jobs"] == "skipped"
    assert (_states(run)["summary"], run.state) == ("failed", "failed")  # refused, so not green
    closing = _entries(ready)[0]
    assert (closing.status, closing.message) == ("Failure", policy.JOBS_LOCAL.format(count=1))
    refusal = next(e for e in _entries(ready) if e.message.startswith("(Jobs)"))
    assert refusal.message == f"(Jobs) {policy.JOBS_LOCAL.format(count=1)}"


def test_an_entity_that_fails_outside_xpm_fails_the_run_and_is_named(ready: Xpm):
    """A task that fails for a reason of its own (here the store has lost the staff table) leaves
    no XPM failure behind it; the run still closes as partly failed, naming it, and is not green."""
    from sqlalchemy import text

    dag = _dag("xpm_manual_sync")
    for task in dag.tasks:
        task.retries = 0
    with ready.engine.begin() as connection:
        connection.execute(text("DROP TABLE staff"))
    run = dag.test(run_conf={"entities": ["staff", "clients"], "full": True})
    states = _states(run)
    assert (states["staff"], states["summary"], run.state) == ("failed", "failed", "failed"), states
    # What was not asked for is skipped, saying so, never "upstream failed"; what was, and needed staff, not run.
    assert {states[n] for n in ("jobs", "tax_returns", "client_custom_fields")} == {"skipped"}, states
    assert "upstream_failed" not in states.values()
    closing = _entries(ready)[0]
    assert closing.status == "Failure"
    assert closing.message.startswith(
        "Manual sync partly failed: staff did not finish (see the entries above); "
        "clients not run, as what they need did not finish."
    ), closing.message
    assert _note(run) == closing.message
    failure = next(e for e in _entries(ready) if e.message.startswith("(Staff)"))
    assert (failure.status, failure.details["entity"]) == ("Failure", "staff")
    assert failure.message.startswith("(Staff) failed: "), failure.message
