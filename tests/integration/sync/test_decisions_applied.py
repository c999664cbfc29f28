"""What a decision does to the store (sandbox over HTTP, SQLite and PostgreSQL): jobs taken off XPM's
current list, a question nobody answered in time, and a question a newer list made moot. The
questions themselves are asked and answered through Airflow in tests/integration/web/test_decisions.py."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from tests.conftest import dag_of
from tests.integration.conftest import Xpm
from tests.integration.sync.test_pull import connected, sync  # noqa: F401 - the fixture, for these tests
from tests.integration.sync.truth import differences
from xpm_sync import activity, decisions
from xpm_sync.decision_tasks import RemovalDecision
from xpm_sync.store import models as m


def _held(xpm: Xpm, run_id: str) -> list[m.Decision]:
    tenant = xpm.srv.sandbox.main.tenant_id
    return decisions.held_in_run(xpm.engine, tenant, run_id, dag_id="xpm_manual_sync", task_id="decide_removals")


def _half_the_clients_dropped(xpm: Xpm) -> dict[str, Any]:
    """A synced practice whose XPM then lists half its clients; returns those it dropped."""
    sync(xpm, ["staff", "clients"], full=True)
    clients = xpm.srv.sandbox.main.clients
    return {uuid: clients.pop(uuid) for uuid in sorted(clients)[: len(clients) // 2]}


def test_approved_jobs_leave_the_current_list_and_the_next_pull_reads_their_final_state(connected: Xpm):  # noqa: F811
    sync(connected, full=True)
    practice = connected.srv.sandbox.main
    open_jobs = sorted(n for n, j in practice.jobs.items() if practice.is_current(j))
    closed = open_jobs[: len(open_jobs) // 2]
    for number in closed:
        practice.jobs[number].state = "Completed"
    held = sync(connected, ["jobs"], run_id="night-1")["jobs"]
    assert held.held_back == len(closed)
    asked = _held(connected, "night-1")
    assert [(d.kind, d.keys) for d in asked] == [("off_current", closed)]

    settled = decisions.settle_removals(connected.engine, asked, approve=True, who="ada")
    assert settled.marked == len(closed)
    with Session(connected.engine) as s:
        flags = dict(s.execute(select(m.Job.job_number, m.Job.is_current).where(m.Job.job_number.in_(closed))).all())
        states = set(s.scalars(select(m.Job.state).where(m.Job.job_number.in_(closed))))
    assert set(flags.values()) == {False}
    assert "Completed" not in states  # taken off the list; their final state is not read yet

    connected.srv.sandbox.gateway.reset_counts()
    sync(connected, ["jobs"], run_id="night-2")
    gets = [c for c in connected.srv.sandbox.gateway.calls if c.path.startswith("job.api/get/")]
    assert len(gets) == len(closed)
    assert differences(connected.engine, practice, custom_fields=False) == []
    with Session(connected.engine) as s:
        assert s.scalars(select(m.Decision.refreshed_at)).one() is not None
    connected.srv.sandbox.gateway.reset_counts()
    sync(connected, ["jobs"], run_id="night-3")  # read once: not again
    assert not [c for c in connected.srv.sandbox.gateway.calls if c.path.startswith("job.api/get/")]


def test_no_answer_in_time_keeps_the_rows_and_says_nobody_decided(connected: Xpm):  # noqa: F811
    _half_the_clients_dropped(connected)
    sync(connected, ["clients"], full=True, run_id="manual-1")
    _held(connected, "manual-1")
    # What Airflow's scheduler resumes the task with when the response timeout passes: the defaults.
    event = {"chosen_options": [decisions.KEEP], "params_input": {}, "responded_at": datetime.now(UTC),
             "responded_by_user": None, "timedout": True}  # fmt: skip
    task = dag_of("xpm_manual_sync").task_dict
    operator: RemovalDecision = task["decide_removals"]

    class Ti:
        dag_id, run_id, task_id = "xpm_manual_sync", "manual-1", "decide_removals"

    context: Any = {"ti": Ti(), "task_instance": Ti()}
    result = operator.execute_complete(context, event)
    assert result == {"chosen": decisions.KEEP, "decided_by": None, "marked": 0}
    with Session(connected.engine) as s:
        decision = s.scalars(select(m.Decision)).one()
        removed = s.scalars(select(m.Client.uuid).where(m.Client.removed_upstream_at.is_not(None))).all()
        said = activity.recent(s, 1)[0].message
    assert (decision.outcome, decision.decided_by) == ("timed_out", None)
    assert removed == []
    assert said.startswith("Held-back removals kept (nobody decided in time): ")


def test_a_newer_complete_list_makes_an_unanswered_question_moot(connected: Xpm):  # noqa: F811
    dropped = _half_the_clients_dropped(connected)
    sync(connected, ["clients"], full=True, run_id="manual-1")
    asked = _held(connected, "manual-1")
    connected.srv.sandbox.main.clients.update(dropped)  # XPM lists them again
    sync(connected, ["clients"], full=True, run_id="manual-2")
    settled = decisions.settle_removals(connected.engine, asked, approve=True, who="ada")
    assert settled.marked == 0
    assert "already superseded" in settled.message
    with Session(connected.engine) as s:
        assert s.scalars(select(m.Client.uuid).where(m.Client.removed_upstream_at.is_not(None))).all() == []


def test_the_same_answer_met_again_by_a_retry_is_one_question(connected: Xpm):  # noqa: F811
    _half_the_clients_dropped(connected)
    sync(connected, ["clients"], full=True, run_id="manual-1")
    sync(connected, ["clients"], full=True, run_id="manual-1")
    assert len(_held(connected, "manual-1")) == 1


def test_a_current_job_list_trusted_again_makes_the_question_about_it_moot(connected: Xpm):  # noqa: F811
    sync(connected, full=True)
    practice = connected.srv.sandbox.main
    open_jobs = sorted(n for n, j in practice.jobs.items() if practice.is_current(j))
    states = {n: practice.jobs[n].state for n in open_jobs[: len(open_jobs) // 2]}
    for number in states:
        practice.jobs[number].state = "Completed"
    sync(connected, ["jobs"], run_id="night-1")
    for number, state in states.items():  # XPM's hiccup is over: the jobs are open after all
        practice.jobs[number].state = state
    sync(connected, ["jobs"], run_id="night-2")
    with Session(connected.engine) as s:
        assert s.scalars(select(m.Decision.outcome)).all() == ["superseded"]
    assert differences(connected.engine, practice, custom_fields=False) == []
