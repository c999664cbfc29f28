"""
### XPM push

Sends the practice's own changes to XPM: job states and details while "Maintain jobs locally" is
on, client and job custom field values while "Sync custom fields from XPM" is off. It runs every
15 minutes (`[xpm_sync] push_cron`) and as soon as a change is recorded: the XPM page posts an event
on the Asset `xpm://practice/outbox` (or, for a role Airflow does not let post events, starts a
run), and `xpm-sync job ...` and `xpm-sync custom-field set` start a run with Airflow's command line.

Each record's changes are coalesced into as few calls as XPM allows, and compared with XPM first:
a change XPM already holds is not sent again. A change XPM refuses stays in the outbox marked
failed, with XPM's words in Practice Activity, and the rest go on. A change that meets a newer value
in XPM while XPM masters the field stops as "conflict": the `conflicts` task then starts
`xpm_push_decisions`, which asks in Airflow's Required Actions whether the local value or XPM's
stands. Nothing is pushed while XPM needs to reconnect. Pushes use what is left of the day's calls
after the pulls' 80%. With several practices each has its own, `xpm_<name>_push`, on its own
outbox Asset (`xpm://<name>/outbox`).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from airflow.sdk import Asset, AssetOrTimeSchedule, CronTriggerTimetable, dag, task

from xpm_sync import catalog, config, practices, wiring
from xpm_sync.practices import Practice


def build(practice: Practice) -> Any:
    timezone = config.schedule_timezone()

    @dag(
        **wiring.dag_options(
            practice,
            "push",
            schedule=AssetOrTimeSchedule(
                timetable=CronTriggerTimetable(config.get("push_cron"), timezone=timezone),
                assets=[Asset(catalog.asset_uri("outbox"))],
            ),
            timezone=timezone,
            labels=("push",),
            doc=__doc__,
            retries=3,
            retry_delay=timedelta(minutes=2),
            retry_exponential_backoff=True,
        )
    )
    def xpm_push() -> None:
        @task(pool=config.get("api_pool"))
        def push(**context: Any) -> dict[str, Any]:
            from xpm_sync.sync import tasks

            with practices.using(practice):
                return tasks.push(context)

        # A teardown: it runs however the push ended, and the run's colour stays the push's own.
        @task(outlets=[Asset(catalog.asset_uri("push_conflicts"))])
        def conflicts() -> None:
            """Start the practice's push decisions DAG (through this Asset) when a push left a conflict
            nobody was asked about."""
            from xpm_sync import decisions
            from xpm_sync.status import read
            from xpm_sync.store.engine import get_engine

            with practices.using(practice):
                tenant = read(get_engine()).tenant_id
                waiting = decisions.conflicts_unasked(get_engine(), tenant) if tenant else 0
            if not waiting:
                from airflow.sdk.exceptions import AirflowSkipException

                raise AirflowSkipException("No push conflict waits for a decision.")
            print(f"{waiting} push conflict(s) wait for a decision: {practice.dag_id('push_decisions')} asks.")

        push() >> conflicts().as_teardown()

    return xpm_push()


DAGS = wiring.each_practice(build)
