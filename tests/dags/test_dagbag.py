"""Every DAG file imports cleanly and every DAG follows the project's rules."""

from __future__ import annotations

import pytest

from tests.conftest import REPO


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(REPO / "dags"))


def test_no_import_errors(dagbag):
    assert dagbag.import_errors == {}


def test_every_dag_file_holds_a_dag(dagbag):
    files = {p.name for p in (REPO / "dags").rglob("*.py") if not p.name.startswith("_")}
    loaded = {dag.fileloc.rsplit("/", 1)[-1] for dag in dagbag.dags.values()}
    assert files == loaded


def test_every_dag_has_tags_retries_and_no_catchup(dagbag):
    for dag_id, dag in dagbag.dags.items():
        assert dag.tags, f"{dag_id} has no tags"
        assert dag.catchup is False, f"{dag_id} catches up"
        for task in dag.tasks:
            assert task.retries >= 1 or getattr(task, "xpm_no_retry", False), f"{dag_id}.{task.task_id} has no retries"


def test_the_example_is_paused_until_someone_turns_it_on(dagbag):
    examples = {dag_id for dag_id, dag in dagbag.dags.items() if "example" in dag.tags}
    assert examples == {"xpm_example_changed_records"}
    assert all(dagbag.dags[dag_id].is_paused_upon_creation for dag_id in examples)


def test_every_practice_dag_runs_once_at_a_time_unpaused_and_calls_the_failure_callback(dagbag):
    from xpm_sync import wiring

    practice_dags = {dag_id: dag for dag_id, dag in dagbag.dags.items() if "example" not in dag.tags}
    kinds = ("overnight_sync", "manual_sync", "push", "push_decisions", "connection_health", "morning_check")
    assert set(practice_dags) == {f"xpm_{kind}" for kind in kinds}
    for dag_id, dag in practice_dags.items():
        assert dag.max_active_runs == 1, dag_id
        assert dag.is_paused_upon_creation is False, dag_id
        assert dag.start_date.year == 2026, dag_id
        for task in dag.tasks:
            callbacks = task.on_failure_callback
            callbacks = callbacks if isinstance(callbacks, list) else [callbacks]
            assert task.owner == "xpm-sync", f"{dag_id}.{task.task_id}"
            assert wiring.on_failure in callbacks, f"{dag_id}.{task.task_id}"


def test_each_dag_keeps_its_own_retry_policy(dagbag):
    from datetime import timedelta

    def policy(dag_id, task_id):
        task = dagbag.dags[dag_id].get_task(task_id)
        return task.retries, task.retry_delay, bool(task.retry_exponential_backoff), task.max_retry_delay

    overnight = policy("xpm_overnight_sync", "clients")
    assert (overnight[0], overnight[2], overnight[3]) == (3, True, timedelta(minutes=30))
    assert policy("xpm_manual_sync", "clients") == (2, timedelta(minutes=1), True, timedelta(minutes=15))
    assert policy("xpm_push", "push")[:3] == (3, timedelta(minutes=2), True)
    assert policy("xpm_connection_health", "check_connection")[:3] == (2, timedelta(minutes=10), False)
    assert policy("xpm_morning_check", "overnight_finished")[:3] == (2, timedelta(minutes=5), False)
    assert policy("xpm_push_decisions", "send")[0] == 2
