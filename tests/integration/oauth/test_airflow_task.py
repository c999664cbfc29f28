"""The hook inside a real Airflow task (`dag.test()`): it works, and no token reaches XCom or logs."""

from __future__ import annotations

import json
import logging

from tests.conftest import load_dag_file
from tests.integration.conftest import Xpm

DAG_FILE = """
import pendulum
from airflow.sdk import dag, task


@dag(dag_id="xpm_hook_in_a_task", schedule=None, start_date=pendulum.datetime(2026, 1, 1), catchup=False)
def hook_in_a_task():
    @task
    def read_practice() -> dict:
        from xpm_sync.hooks.xpm import XpmHook

        hook = XpmHook()
        return {"staff": len(list(hook.staff())), "practice": hook.practice_name(), "tenant": hook.tenant_id}

    read_practice()


hook_in_a_task()
"""


def test_a_task_using_the_hook_leaks_no_token_to_xcom_or_logs(xpm: Xpm, airflow_db, extra_dags, caplog, capsys):
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    caplog.set_level(logging.DEBUG)
    (extra_dags / "hook_in_a_task.py").write_text(DAG_FILE)
    module = load_dag_file(extra_dags / "hook_in_a_task.py", "hook_in_a_task")

    xpm.connect()
    xpm.expire_access_token()  # the task will refresh, so both pairs pass through it
    run = module.hook_in_a_task().test()
    assert run.state == "success"
    with create_session() as session:
        rows = session.query(XComModel).filter(XComModel.dag_id == "xpm_hook_in_a_task", XComModel.run_id == run.run_id)
        values = {x.key: x.value for x in rows}
    payload = values["return_value"]
    payload = payload if isinstance(payload, dict) else json.loads(payload)
    assert payload["staff"] == len(xpm.srv.sandbox.main.staff)
    assert payload["practice"] == "Harbour View Accountants"

    tokens = xpm.stored_tokens()
    out = capsys.readouterr()
    seen = json.dumps(values, default=str) + caplog.text + out.out + out.err
    assert xpm.refreshes == 1
    for secret in (tokens.access_token, tokens.refresh_token, xpm.srv.client_secret):
        assert secret not in seen
