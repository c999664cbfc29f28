"""
### XPM push decisions

A change made here that meets a newer value in XPM, while the practice's settings leave the field
to XPM, stops as "conflict" in the outbox. `xpm_push` then starts this DAG (the Asset
`xpm://practice/push_conflicts`), which asks in Airflow's **Required Actions**, for each such
change, "keep the local value or XPM's?":

1. **decide**: one question listing every conflict not asked about yet. The local value goes to
   XPM with the next push, once, over XPM's; XPM's value discards the change, and the next pull
   brings it. No answer within `[xpm_sync] decision_timeout_hours` keeps XPM's value. Who decided
   is kept in Practice Activity.
2. **send**: when a local value was chosen, tells `xpm_push` to run now (the outbox Asset).

Pushes go on meanwhile: this DAG waits, `xpm_push` does not. With several practices each has its
own, `xpm_<name>_push_decisions`, asking only about that practice's changes.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import Asset, dag, task

from xpm_sync import catalog, wiring
from xpm_sync.decision_tasks import ConflictDecision
from xpm_sync.practices import Practice


def build(practice: Practice) -> Any:
    @dag(
        **wiring.dag_options(
            practice,
            "push_decisions",
            schedule=[Asset(catalog.asset_uri("push_conflicts"))],
            labels=("push",),
            doc=__doc__,
            retries=2,
        )
    )
    def xpm_push_decisions() -> None:
        decide = ConflictDecision(conn_id=practice.conn_id, task_id="decide", doc_md=ConflictDecision.__doc__)

        @task(outlets=[Asset(catalog.asset_uri("outbox"))])
        def send(decided: dict[str, Any] | None) -> None:
            """Tell the practice's push DAG (the outbox Asset) when a local value was chosen; skip otherwise."""
            if not decided or not decided.get("local"):
                from airflow.sdk.exceptions import AirflowSkipException

                raise AirflowSkipException("No local value was chosen: nothing more goes to XPM.")
            print(f"{decided['local']} local value(s) chosen: {practice.dag_id('push')} sends them now.")

        send(decide.output)

    return xpm_push_decisions()


DAGS = wiring.each_practice(build)
