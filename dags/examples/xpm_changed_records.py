"""An example of building on xpm-sync: a DAG that runs when the sync has changed clients or jobs,
and reads exactly those changes from the change feed, nothing else.

Each entity task of the overnight and manual syncs publishes its Asset (`xpm://practice/<entity>`)
with what it changed in the event's `extra`: the practice, the run, the counts of rows inserted,
changed and marked removed, and the range of its rows in the `changes` table. `feed.changed_keys`
reads those rows. Replace the task's body with the practice's own work (refresh a report, tell a
CRM); this one logs the keys and returns them.

Paused when Airflow first sees it: unpause it (Dags > xpm_example_changed_records) to try it.
"""

from __future__ import annotations

import logging
from typing import Any

from airflow.sdk import Asset, dag, task

from xpm_sync import catalog

log = logging.getLogger(__name__)

WATCHED = ("clients", "jobs")


@dag(
    dag_id="xpm_example_changed_records",
    schedule=Asset(catalog.asset_uri(WATCHED[0])) | Asset(catalog.asset_uri(WATCHED[1])),
    catchup=False,
    is_paused_upon_creation=True,
    tags=["xpm", "example"],
    default_args={"retries": 1},
    doc_md=__doc__,
)
def xpm_example_changed_records() -> None:
    @task
    def changed_records(**context: Any) -> dict[str, dict[str, list[str]]]:
        from xpm_sync.store import feed
        from xpm_sync.store.engine import get_engine

        events = context["triggering_asset_events"]
        extras = [event.extra for asset in events for event in events[asset]]
        changed = feed.changed_keys(get_engine(), extras)
        for entity, kinds in changed.items():
            for kind, keys in kinds.items():
                log.info("%s %s: %s", entity, kind, ", ".join(keys[:20]) + (" ..." if len(keys) > 20 else ""))
        return changed

    changed_records()


xpm_example_changed_records()
