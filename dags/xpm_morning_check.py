"""
### XPM morning check

At the practice's morning deadline (`[xpm_sync] overnight_deadline`, e.g. 07:00 in
`[xpm_sync] timezone`) this checks that last night's overnight sync has finished. If it has not
(still running, or never started), Practice Activity gets an "Alert" entry and the alert recipients
one email, once a night. It calls nothing at XPM. With the deadline empty it has no schedule;
before XPM is connected it skips, saying why.

Failed nights in a row are told when the overnight sync closes (`[xpm_sync] failures_before_email`).
With several practices each has its own, `xpm_<name>_morning_check`, at its own deadline.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from airflow.sdk import CronTriggerTimetable, dag, task

from xpm_sync import config, practices, wiring
from xpm_sync.practices import Practice


def build(practice: Practice) -> Any:
    timezone = config.schedule_timezone()
    cron = config.deadline_cron()
    overnight = practice.dag_id("overnight_sync")

    @dag(
        **wiring.dag_options(
            practice,
            "morning_check",
            schedule=CronTriggerTimetable(cron, timezone=timezone) if cron else None,
            timezone=timezone,
            labels=("health",),
            doc=__doc__,
            retries=2,
            retry_delay=timedelta(minutes=5),
        )
    )
    def xpm_morning_check() -> None:
        @task
        def overnight_finished(**context: Any) -> str:
            from airflow.sdk.exceptions import AirflowSkipException

            from xpm_sync import morning

            with practices.using(practice):
                if (problem := morning.not_connected()) is not None:
                    raise AirflowSkipException(problem)  # no practice yet: no night to check
                ti = context.get("ti")
                running = None
                if ti is not None:
                    # The Task SDK's own question to Airflow: how many overnight runs are going now.
                    running = ti.get_dr_count(dag_id=overnight, states=["queued", "running"])
                return morning.check_deadline(running=running)

        overnight_finished()

    return xpm_morning_check()


DAGS = wiring.each_practice(build)
