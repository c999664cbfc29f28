"""
### XPM connection health

Every morning (`[xpm_sync] health_cron`) this keeps the XPM connection alive and notices trouble
before the overnight sync does:

- refreshes the token when it is older than `[xpm_sync] health_refresh_after_days` (Xero expires a
  refresh token left unused for 60 days);
- checks the pinned practice still answers;
- checks that the staff member who connected XPM is still active staff, and writes an "Alert"
  entry in Practice Activity if not, before access stops;
- when access is already gone, raises the "XPM needs to reconnect" alert (one email per outage).

With several practices each has its own, `xpm_<name>_connection_health`.
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
            "connection_health",
            schedule=CronTriggerTimetable(config.get("health_cron"), timezone=timezone),
            timezone=timezone,
            labels=("health",),
            doc=__doc__,
            retries=2,
            retry_delay=timedelta(minutes=10),
        )
    )
    def xpm_connection_health() -> None:
        @task(pool=config.get("api_pool"))
        def check_connection() -> dict[str, Any]:
            from xpm_sync import health

            with practices.using(practice):
                return health.check()

        check_connection()

    return xpm_connection_health()


DAGS = wiring.each_practice(build)
