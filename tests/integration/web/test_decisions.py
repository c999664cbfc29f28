"""Decisions as Airflow Required Actions, on real Airflow (`dag.test()`) and its own public REST API
(in process, with each role's token), against the sandbox and a real practice database.

A held-back mass removal waits in the run that met it; a push conflict waits in xpm_push_decisions.
The answer is given as Airflow's Required Actions page gives it (PATCH .../hitlDetails), from a
thread beside the run, while `dag.test()` keeps the run waiting for it.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tests.conftest import dag_of
from tests.integration.dags.test_push_dag import ready  # noqa: F401 - the fixture, for the conflict test
from tests.integration.sync.test_pull import sync
from tests.integration.web.conftest import Page
from xpm_sync import activity, changes, decisions, settings
from xpm_sync.store import models as m


def _dag(name: str) -> Any:
    return dag_of(name)


class Answer:
    """Answers the first Required Action of `dag_id` as `user`, once it is asked; what the page and
    Airflow showed meanwhile is kept for the test."""

    def __init__(self, page: Page, dag_id: str, chosen: list[str], *, user: str = "user", params: Any = None):
        self.page, self.dag_id, self.chosen, self.user, self.params = page, dag_id, chosen, user, params
        self.asked: dict[str, Any] | None = None
        self.page_html = ""
        self.refused_viewer: int | None = None
        self.status: int | None = None
        self.error: str | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self._answer()
        except Exception as exc:  # said by the test; the run must still end, so its default is taken
            self.error = repr(exc)
            if self.asked is not None:
                path = self._path()
                mine = {"Authorization": f"Bearer {self.page.token('admin')}"}
                self.page.client.patch(path, json={"chosen_options": self.asked["defaults"]}, headers=mine)

    def _path(self) -> str:
        assert self.asked is not None
        run, task = self.asked["task_instance"]["dag_run_id"], self.asked["task_instance"]["task_id"]
        return f"/api/v2/dags/{self.dag_id}/dagRuns/{run}/taskInstances/{task}/-1/hitlDetails"

    def _answer(self) -> None:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            listed = self.page.get(f"/api/v2/dags/{self.dag_id}/dagRuns/~/hitlDetails", user=self.user).json()
            waiting = [d for d in listed.get("hitl_details", []) if not d.get("response_received")]
            if waiting:
                self.asked = waiting[0]
                self.page_html = self.page.get("/xpm/", user=self.user).text
                path = self._path()
                body = {"chosen_options": self.chosen, "params_input": self.params(self.asked) if self.params else {}}
                viewer = {"Authorization": f"Bearer {self.page.token('viewer')}"}
                self.refused_viewer = self.page.client.patch(path, json=body, headers=viewer).status_code
                mine = {"Authorization": f"Bearer {self.page.token(self.user)}"}
                self.status = self.page.client.patch(path, json=body, headers=mine).status_code
                return
            time.sleep(0.5)


@pytest.fixture
def held(page: Page, airflow_db: Any) -> tuple[Page, list[str]]:
    """A synced practice whose XPM then drops 30% of its clients."""
    xpm = page.xpm
    xpm.connect()
    xpm.control("limits", {"per_minute": 100_000})
    sync(xpm, ["staff", "clients"], full=True)
    clients = xpm.srv.sandbox.main.clients
    gone = sorted(clients)[: len(clients) * 3 // 10]
    for uuid in gone:
        del clients[uuid]
    return page, gone


def _removed(page: Page) -> set[str]:
    with Session(page.xpm.engine) as s:
        return set(s.scalars(select(m.Client.uuid).where(m.Client.removed_upstream_at.is_not(None))))


def test_approving_a_held_back_removal_marks_exactly_those_clients_removed(held: tuple[Page, list[str]]):
    page, gone = held
    answer = Answer(page, "xpm_manual_sync", [decisions.MARK])
    run = _dag("xpm_manual_sync").test(run_conf={"entities": ["clients"], "full": True})
    answer.thread.join(5)
    assert answer.error is None, answer.error
    states = {ti.task_id: str(ti.state) for ti in run.get_task_instances()}
    assert states["decide_removals"] == "success", states
    assert answer.asked is not None
    assert answer.status == 200
    stored = len(page.xpm.srv.sandbox.main.clients) + len(gone)
    assert answer.asked["subject"] == (
        f"(Clients) XPM no longer lists {len(gone):,} of the {stored:,} stored: mark them removed?"
    )
    assert answer.asked["options"] == [decisions.MARK, decisions.KEEP]
    assert answer.asked["defaults"] == [decisions.KEEP]
    # The list is downloadable from the question, and the page said what waits and where.
    assert f"[The {len(gone)} rows as CSV](/xpm/decisions/" in answer.asked["body"]
    assert "Waiting for a decision" in answer.page_html
    assert "/required_actions" in answer.page_html
    assert answer.refused_viewer == 403  # a viewer may read the page, not decide
    assert _removed(page) == set(gone)
    with Session(page.xpm.engine) as s:
        fed = set(s.scalars(select(m.Change.record_key).where(m.Change.kind == "removed")))
        decision = s.scalars(select(m.Decision)).one()
        said = [e.message for e in activity.recent(s, 10)]
    assert fed == set(gone)
    assert (decision.outcome, decision.decided_by) == ("approved", "user")
    assert any(f"{len(gone):,} of the {len(gone):,} rows held back marked removed, as user decided" in e for e in said)
    csv_lines = page.get(f"/xpm/decisions/{decision.id}.csv").text.splitlines()
    assert csv_lines[0] == "uuid,name"
    assert {line.split(",")[0] for line in csv_lines[1:]} == set(gone)
    assert "Waiting for a decision" not in page.get("/xpm/").text


def test_rejecting_a_held_back_removal_changes_nothing_and_says_who(held: tuple[Page, list[str]]):
    page, gone = held
    answer = Answer(page, "xpm_manual_sync", [decisions.KEEP], user="op")
    run = _dag("xpm_manual_sync").test(run_conf={"entities": ["clients"], "full": True})
    answer.thread.join(5)
    assert answer.error is None, answer.error
    assert answer.status == 200
    assert {ti.task_id: str(ti.state) for ti in run.get_task_instances()}["decide_removals"] == "success"
    assert _removed(page) == set()
    with Session(page.xpm.engine) as s:
        decision = s.scalars(select(m.Decision)).one()
        feed_rows = s.scalar(select(func.count()).select_from(m.Change).where(m.Change.kind == "removed"))
        said = [e.message for e in activity.recent(s, 5)]
    assert (decision.outcome, decision.decided_by, decision.choice) == ("rejected", "op", decisions.KEEP)
    assert feed_rows == 0
    stored = len(page.xpm.srv.sandbox.main.clients) + len(gone)
    question = f"(Clients) XPM no longer lists {len(gone)} of the {stored} stored"
    assert f"Held-back removals kept (op decided): {question}: kept" in said


def test_a_run_that_held_nothing_back_asks_nothing(page: Page, airflow_db: Any):
    page.xpm.connect()
    page.xpm.control("limits", {"per_minute": 100_000})
    run = _dag("xpm_manual_sync").test(run_conf={"entities": ["staff"], "full": True})
    assert {ti.task_id: str(ti.state) for ti in run.get_task_instances()}["decide_removals"] == "skipped"
    with Session(page.xpm.engine) as s:
        assert s.scalar(select(func.count()).select_from(m.Decision)) == 0


def test_a_push_conflict_resolved_for_the_local_value_lands_in_xpm_once(page: Page, ready: Any):  # noqa: F811
    xpm = page.xpm  # jobs kept here, with XPM's state codes known (the push DAG's own setup)
    first, second = [j for j in xpm.srv.sandbox.main.jobs.values() if j.state == "Planned"][:2]
    changes.update_job(xpm.engine, first.number, actor="ada", name="Annual accounts (ours)")
    changes.update_job(xpm.engine, second.number, actor="ada", name="Payroll (ours)")
    first.name, second.name = "Annual accounts (XPM)", "Payroll (XPM)"
    with Session(xpm.engine) as s, s.begin():
        settings.change(s, "maintain_jobs_locally", False, actor="admin")

    push = _dag("xpm_push").test()
    assert {ti.task_id: str(ti.state) for ti in push.get_task_instances()} == {"push": "failed", "conflicts": "success"}
    assert xpm.srv.sandbox.gateway.writes == []

    def choose(asked: dict[str, Any]) -> dict[str, str]:
        by_job = {p["schema"]["title"].split(":")[0]: name for name, p in asked["params"].items()}
        return {
            by_job[f"Job {first.number}"]: decisions.LOCAL,
            by_job[f"Job {second.number}"]: decisions.XPM,
        }

    answer = Answer(page, "xpm_push_decisions", [decisions.APPLY], params=choose)
    asked = _dag("xpm_push_decisions").test()
    answer.thread.join(5)
    assert answer.error is None, answer.error
    assert answer.status == 200, answer.asked
    assert {ti.task_id: str(ti.state) for ti in asked.get_task_instances()} == {"decide": "success", "send": "success"}
    assert _dag("xpm_push").test().state == "success"
    assert (first.name, second.name) == ("Annual accounts (ours)", "Payroll (XPM)")
    updates = [w for w in xpm.srv.sandbox.gateway.writes if w[1].endswith("job.api/update")]
    assert len(updates) == 1
    # Nothing is left to decide or to send, and another push sends nothing again.
    assert decisions.conflicts_unasked(xpm.engine, xpm.srv.sandbox.main.tenant_id) == 0
    assert _dag("xpm_push").test().state == "success"
    assert len([w for w in xpm.srv.sandbox.gateway.writes if w[1].endswith("job.api/update")]) == 1
    with Session(xpm.engine) as s:
        outcomes = sorted(s.scalars(select(m.Decision.outcome)))
        statuses = sorted(s.scalars(select(m.OutboxEntry.status)))
    assert outcomes == ["approved", "rejected"]
    assert statuses == ["discarded", "done"]
