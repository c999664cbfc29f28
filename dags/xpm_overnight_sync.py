"""
### XPM overnight sync

Every evening (cron and time zone from `[xpm_sync] overnight_cron` and `timezone`) this brings the
practice database in step with Xero Practice Manager:

1. **start**: when XPM needs reconnecting, an "Action Required" entry in Practice Activity; every
   task then skips, saying why in its log, and XPM is not called.
2. **Reference data**: staff, job categories, job states, client groups, custom field definitions.
3. **Clients** (contacts, groups, relationships, tax settings): those modified since the last run.
4. **Jobs**: XPM's current jobs, and the final state of jobs that left that list.
5. **Custom field values** of changed clients and open jobs, within the day's API budget
   (skipped when "Sync custom fields from XPM" is off).
6. **Tax returns**: the register derived from tax settings and tax-return jobs.
7. **Time entries, costs, invoices and quotes** (read only): the recent days, XPM's current invoices
   and quotes, an older year when it is due again, every page of costs, and the payments of invoices
   whose amount paid moved (each list can be switched off in the settings).
8. **summary**: one Practice Activity entry with the counts and the XPM calls used.
9. **decide_removals**: when a complete list would have marked too many rows removed, the run held
   them back and asks here, in Airflow's Required Actions, whether to mark exactly those removed
   (skipped when nothing was held back; no answer within `decision_timeout_hours` keeps them).

Each entity task publishes an Asset (`xpm://practice/<entity>`; `xpm://<name>/<entity>` for another
practice) for downstream pipelines, and takes a slot of the practice's pool (`xpm_api`, or
`xpm_api_<name>`: XPM allows 5 calls in flight per practice). With several practices
(`[xpm_sync] practices`) each has this DAG of its own, `xpm_<name>_overnight_sync`, on its own
schedule. Transient failures are retried
with exponential backoff; authentication failures fail at once.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from airflow.sdk import CronTriggerTimetable, dag, task

from xpm_sync import config, practices, wiring
from xpm_sync.practices import Practice


def build(practice: Practice) -> Any:
    timezone = config.schedule_timezone()

    @dag(
        **wiring.dag_options(
            practice,
            "overnight_sync",
            schedule=CronTriggerTimetable(config.get("overnight_cron"), timezone=timezone),
            timezone=timezone,
            labels=("sync",),
            doc=__doc__,
            retries=3,
            retry_delay=timedelta(seconds=config.get_int("task_retry_delay_seconds")),
            retry_exponential_backoff=True,
            max_retry_delay=timedelta(minutes=30),
        )
    )
    def xpm_overnight_sync() -> None:
        @task
        def start(**context: Any) -> dict[str, Any]:
            from xpm_sync.sync import tasks

            with practices.using(practice):
                return tasks.start(context, manual=False)

        @task(trigger_rule="all_done")
        def pull(entity: str, **context: Any) -> dict[str, Any]:
            from xpm_sync.sync import tasks

            with practices.using(practice):
                return tasks.pull(entity, context, manual=False)

        @task(trigger_rule="all_done")
        def summary(opened: dict[str, Any], results: dict[str, Any], **context: Any) -> Any:
            from xpm_sync.sync import tasks

            with practices.using(practice):
                return tasks.summarise(opened, results, context, manual=False)

        opened = start()
        pulls = wiring.entity_tasks(pull, opened)
        summary(opened, pulls)
        wiring.removal_decision(pulls)

    return xpm_overnight_sync()


DAGS = wiring.each_practice(build)
