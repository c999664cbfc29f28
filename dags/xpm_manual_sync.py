"""
### XPM manual sync

Trigger from the Airflow UI ("Trigger DAG" with its form) to sync chosen entities now:

- **entities**: any of staff, clients, jobs, tax returns, custom fields and reference data;
- **full**: read everything again instead of only what changed;
- **client** / **job**: sync a single client (its UUID) or job (its number);
- **dry run**: fetch and count what would change, write nothing.

The first task records who asked and the estimated XPM calls in Practice Activity. A manual job
sync is refused while "Maintain jobs locally" is on. Custom fields may be pulled even when
"Sync custom fields from XPM" is off. Entities not chosen are skipped.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import Param, dag, task

from xpm_sync import catalog, wiring

DEFAULT_ARGS = {
    "owner": "xpm-sync",
    "on_failure_callback": wiring.on_failure,
    "retries": 2,
    "retry_delay": timedelta(minutes=1),
    "retry_exponential_backoff": True,
    "max_retry_delay": timedelta(minutes=15),
}

PARAMS = {
    "entities": Param(
        list(catalog.AFTER_RECONNECT),
        type="array",
        items={"type": "string", "enum": list(catalog.ALL)},
        title="Entities",
        description="What to sync.",
    ),
    "full": Param(False, type="boolean", title="Full sync", description="Read everything, not only changes."),
    "client": Param("", type="string", title="One client (UUID)", description="Leave empty for all clients."),
    "job": Param("", type="string", title="One job (number)", description="Leave empty for all jobs."),
    "dry_run": Param(False, type="boolean", title="Dry run", description="Count what would change; write nothing."),
}


@dag(
    dag_id="xpm_manual_sync",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    params=PARAMS,
    tags=["xpm", "sync", "manual"],
    doc_md=__doc__,
)
def xpm_manual_sync() -> None:
    @task.short_circuit
    def xpm_connection_ok(**context: Any) -> bool:
        from xpm_sync.sync import tasks

        return tasks.check_connection(context, manual=True)

    @task
    def plan(**context: Any) -> dict[str, Any]:
        from xpm_sync.sync import tasks

        return tasks.plan(context, list(context["params"]["entities"]))

    @task(trigger_rule="none_failed")
    def pull(entity: str, **context: Any) -> dict[str, Any]:
        from xpm_sync.sync import tasks

        return tasks.pull(entity, context, manual=True)

    @task(trigger_rule="all_done")
    def summary(results: dict[str, Any], **context: Any) -> dict[str, Any]:
        from xpm_sync.sync import tasks

        return tasks.summarise(results, context, manual=True)

    start = xpm_connection_ok() >> plan()
    pulls = wiring.entity_tasks(pull, start)
    summary(pulls)


xpm_manual_sync()
