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
