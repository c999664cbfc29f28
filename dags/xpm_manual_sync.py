"""
### XPM manual sync

Trigger from the Airflow UI ("Trigger DAG" with its form) to sync chosen entities now:

- **entities**: any of staff, clients, jobs, tax returns, custom fields and reference data;
- **full**: read everything again instead of only what changed;
- **client** / **job**: sync a single client (its UUID) or job (its number);
- **dry run**: fetch and count what would change, write nothing.

The first task records who asked and the estimated XPM calls in Practice Activity. A manual job
sync is refused while "Maintain jobs locally" is on, and nothing runs while XPM needs to reconnect:
a refused run fails with the reason, and each skipped task's log says why. Custom fields may be
pulled even when "Sync custom fields from XPM" is off. The XPM page in Airflow's menu starts the
same runs with a button. With several practices (`[xpm_sync] practices`) each has this DAG of its
own, `xpm_<name>_manual_sync`.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from airflow.sdk import Param, dag, task

from xpm_sync import catalog, ids, practices, wiring
from xpm_sync.practices import Practice

RETRIES = {
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
        examples=list(catalog.ALL),
        values_display=dict(catalog.LABELS),
        minItems=1,
        title="Entities",
        description="What to sync. The default is what a reconnect syncs.",
    ),
    "full": Param(False, type="boolean", title="Full sync", description="Read everything, not only what changed."),
    "client": Param(
        None,
        type=["null", "string"],
        pattern=ids.UUID_PATTERN,
        title="One client (UUID)",
        description=f"Optional: only this client. {ids.CLIENT_HELP[0].upper()}{ids.CLIENT_HELP[1:]}.",
    ),
    "job": Param(
        None,
        type=["null", "string"],
        pattern=ids.JOB_NUMBER_PATTERN,
        title="One job (number)",
        description=f"Optional: only this job. {ids.JOB_HELP[0].upper()}{ids.JOB_HELP[1:]}.",
    ),
    "dry_run": Param(False, type="boolean", title="Dry run", description="Count what would change; write nothing."),
    "confirm_removals": Param(
        False,
        type="boolean",
        title="Confirm removals",
        description="With a full sync: mark removed what XPM no longer lists, even many rows at once, "
        "without asking (otherwise they are held back and the run asks in Required Actions).",
    ),
}


def build(practice: Practice) -> Any:

    @dag(
        **wiring.dag_options(practice, "manual_sync", schedule=None, labels=("sync", "manual"), doc=__doc__, **RETRIES),
        params=PARAMS,
    )
    def xpm_manual_sync() -> None:
        @task
        def start(**context: Any) -> dict[str, Any]:
            from xpm_sync.sync import tasks

            with practices.using(practice):
                return tasks.start(context, manual=True)

        # Every entity task runs its own check: one not asked for skips saying so (never "upstream
        # failed"), one whose prerequisites failed in this run is named as not run.
        @task(trigger_rule="all_done")
        def pull(entity: str, **context: Any) -> dict[str, Any]:
            from xpm_sync.sync import tasks

            with practices.using(practice):
                return tasks.pull(entity, context, manual=True)

        @task(trigger_rule="all_done")
        def summary(opened: dict[str, Any], results: dict[str, Any], **context: Any) -> Any:
            from xpm_sync.sync import tasks

            with practices.using(practice):
                return tasks.summarise(opened, results, context, manual=True)

        opened = start()
        pulls = wiring.entity_tasks(pull, opened)
        summary(opened, pulls)
        wiring.removal_decision(pulls)

    return xpm_manual_sync()


DAGS = wiring.each_practice(build)
